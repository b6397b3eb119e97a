"""Specification of PDF and PNG rendering: every script shaped, placed and drawn right.

The references here are made independently of the code under test: HarfBuzz is
called directly on the font file a script should use, and the reference picture is
drawn from HarfBuzz's own glyph outlines with cairo, without any SVG. The unshaped
rendering cairosvg makes on its own is compared too, to prove each picture test
could fail.
"""

from __future__ import annotations

import html
import io
import re
import socket
import threading
from dataclasses import dataclass

import cairocffi as cairo
import cairosvg
import pytest
import uharfbuzz as hb
from fontTools.pens.boundsPen import BoundsPen
from fontTools.svgLib.path import parse_path
from lxml import etree
from PIL import Image, ImageChops, ImageOps

from certflow.render.fonts import FontBook, family_stems
from certflow.render.outline import MIN_SHRINK, PAGE_MARGIN, outline_text
from certflow.render.pdf import prepare_svg, render_pdf, render_png
from certflow.render.shaping import itemize, line_width, shape_runs
from certflow.render.svg import SvgTemplate
from certflow.settings import Settings

SVG_NS = "http://www.w3.org/2000/svg"
TEMPLATE = Settings().template_root / "course-completion.svg"
PAGE_WIDTH, PAGE_HEIGHT = 842, 595

_BOOK = FontBook()
_NEEDED = ("NotoSans-Bold", "NotoSansDevanagari-Bold", "NotoSansTamil-Bold", "NotoSansBengali-Bold",
           "NotoSansTelugu-Bold", "NotoSansGujarati-Bold", "NotoNaskhArabic-Bold",
           "NotoNastaliqUrdu-Bold", "NotoSansCJK-Bold")
_MISSING = [stem for stem in _NEEDED if not _BOOK.has(stem)]
pytestmark = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"Noto fonts missing ({', '.join(_MISSING)}): install fonts-noto-core and "
    "fonts-noto-cjk (`make test` does, as root)",
)


@dataclass(frozen=True)
class Case:
    script: str
    name: str
    font_file: str
    #: Family name cairosvg is given for its own, unshaped rendering.
    family: str
    #: Whether drawing one glyph per character visibly breaks the name.
    complex: bool = True
    #: Language HarfBuzz is told, where the renderer knows it from the text.
    language: str | None = None
    #: Face of a font collection, by family name.
    face: str | None = None


CASES = [
    Case("Latin", "Ada Lovelace", "NotoSans-Bold.ttf", "Noto Sans", complex=False),
    Case("Devanagari", "क्षत्रिय श्रीनिवास", "NotoSansDevanagari-Bold.ttf", "Noto Sans Devanagari"),
    Case("Tamil", "முருகன் செல்வம்", "NotoSansTamil-Bold.ttf", "Noto Sans Tamil"),
    Case("Bengali", "সুব্রত মুখোপাধ্যায়", "NotoSansBengali-Bold.ttf", "Noto Sans Bengali"),
    Case("Telugu", "శ్రీనివాస్ రావు", "NotoSansTelugu-Bold.ttf", "Noto Sans Telugu"),
    # No conjunct and no reordered vowel: unshaped glyphs happen to look right.
    Case("Gujarati", "ગીતા પટેલ", "NotoSansGujarati-Bold.ttf", "Noto Sans Gujarati", complex=False),
    Case("Gujarati conjunct", "કિરણ ત્રિવેદી", "NotoSansGujarati-Bold.ttf", "Noto Sans Gujarati"),
    Case("Arabic", "محمد علی", "NotoNaskhArabic-Bold.ttf", "Noto Naskh Arabic"),
    Case("Urdu", "عائشہ صدیقی", "NotoNastaliqUrdu-Bold.ttf", "Noto Nastaliq Urdu", language="ur"),
    Case("CJK", "李小龍", "NotoSansCJK-Bold.ttc", "Noto Sans CJK SC", complex=False, face="Noto Sans CJK SC"),
]


def font_path(case: Case) -> tuple[str, int]:
    """The font file the case's script must be set in, found without the code under test."""
    stem = case.font_file.rsplit(".", 1)[0]
    path = _BOOK.file(stem)
    assert path is not None, case.font_file
    if case.face is None:
        return str(path), 0
    blob = hb.Blob.from_file_path(str(path))
    for index in range(hb.Face(blob).count):
        if hb.Face(blob, index).get_name(hb.OTNameIdPredefined.FONT_FAMILY) == case.face:
            return str(path), index
    raise AssertionError(f"{case.face} not in {path}")


def harfbuzz(case: Case, size: float) -> tuple[hb.Font, list[tuple[int, float, float]], float]:
    """HarfBuzz's own shaping of the whole name: its font, (glyph id, x, y) in px
    with y down, and the name's width in px."""
    path, index = font_path(case)
    font = hb.Font(hb.Face(hb.Blob.from_file_path(path), index))
    buffer = hb.Buffer()
    buffer.add_str(case.name)
    buffer.guess_segment_properties()
    if case.language:
        buffer.language = case.language
    hb.shape(font, buffer)
    scale = size / font.face.upem
    glyphs, pen = [], 0.0
    for info, pos in zip(buffer.glyph_infos, buffer.glyph_positions, strict=False):
        glyphs.append((info.codepoint, (pen + pos.x_offset) * scale, -pos.y_offset * scale))
        pen += pos.x_advance
    return font, glyphs, pen * scale


# ------------------------------------------------------------------ pictures

WIDTH, HEIGHT, SIZE, BASELINE = 800, 200, 48, 120


def name_svg(name: str, family: str = "Noto Sans", *, size: float = SIZE, extra: str = "") -> str:
    return (
        f'<svg xmlns="{SVG_NS}" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>'
        f'<text x="{WIDTH / 2}" y="{BASELINE}" font-size="{size}" font-weight="700" '
        f'text-anchor="middle" font-family="{family}" fill="#000" {extra}>{html.escape(name)}</text></svg>'
    )


class _CairoPen:
    """fontTools-style pen drawing HarfBuzz outlines straight into a cairo path."""

    def __init__(self, context: cairo.Context) -> None:
        self.context = context

    def moveTo(self, p: tuple[float, float]) -> None:
        self.context.move_to(*p)

    def lineTo(self, p: tuple[float, float]) -> None:
        self.context.line_to(*p)

    def curveTo(self, a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> None:
        self.context.curve_to(*a, *b, *c)

    def qCurveTo(self, control: tuple[float, float], end: tuple[float, float]) -> None:
        (x0, y0), (cx, cy), (x, y) = self.context.get_current_point(), control, end
        self.context.curve_to(x0 + 2 / 3 * (cx - x0), y0 + 2 / 3 * (cy - y0),
                              x + 2 / 3 * (cx - x), y + 2 / 3 * (cy - y), x, y)

    def closePath(self) -> None:
        self.context.close_path()


def reference_png(case: Case) -> bytes:
    """The name as it should look: HarfBuzz glyphs, centred, filled by cairo."""
    font, glyphs, width = harfbuzz(case, SIZE)
    surface = cairo.ImageSurface(cairo.FORMAT_ARGB32, WIDTH, HEIGHT)
    context = cairo.Context(surface)
    context.set_source_rgb(1, 1, 1)
    context.paint()
    scale = SIZE / font.face.upem
    for gid, x, y in glyphs:
        context.save()
        context.translate(WIDTH / 2 - width / 2 + x, BASELINE + y)
        context.scale(scale, -scale)
        font.draw_glyph_with_pen(gid, _CairoPen(context))
        context.restore()
    context.set_source_rgb(0, 0, 0)
    context.fill()
    out = io.BytesIO()
    surface.write_to_png(out)
    return out.getvalue()


def gray(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("L")


def ink_difference(first: bytes, second: bytes) -> float:
    """Mean absolute pixel difference (0..1) over the box holding both images' ink,
    so a mostly white canvas cannot hide a wrong name."""
    a, b = gray(first), gray(second)
    boxes = [box for box in (ImageOps.invert(a).getbbox(), ImageOps.invert(b).getbbox()) if box]
    box = (min(x[0] for x in boxes), min(x[1] for x in boxes), max(x[2] for x in boxes), max(x[3] for x in boxes))
    histogram = ImageChops.difference(a, b).crop(box).histogram()
    return sum(value * count for value, count in enumerate(histogram)) / sum(histogram) / 255


# ------------------------------------------------------------------ geometry


def paths_bbox(group: etree._Element) -> tuple[float, float, float, float]:
    """Control-point bounding box of every path under ``group`` (no transforms)."""
    pen = BoundsPen(None)
    for path in group.iter(f"{{{SVG_NS}}}path"):
        parse_path(path.get("d"), pen)
    assert pen.bounds is not None
    return pen.bounds


def outlined_group(svg: str, label: str) -> etree._Element:
    root = etree.fromstring(outline_text(svg, _BOOK).encode())
    assert not list(root.iter(f"{{{SVG_NS}}}text")), "every <text> is outlined"
    (group,) = root.xpath("//*[@aria-label=$label]", label=label)
    return group


def fill_template(name: str, **values: str) -> str:
    template = SvgTemplate.parse(TEMPLATE.read_bytes(), url="file:///course-completion.svg")
    defaults = {
        "certificateName": "Course Completion Certificate", "recipientName": name,
        "courseName": "Data Science", "issuerName": "NCERT", "issuedDate": "2024-05-01",
        "recipientId": "learner-1", "signatory0Designation": "Director",
        "qrCodeImage": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==",
    }
    return template.fill({**defaults, **values})


# ------------------------------------------------------------------ shaping


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.script)
def test_shaping_equals_harfbuzz_on_the_scripts_own_font(case: Case) -> None:
    runs = shape_runs(case.name, 38, 700, font_book=_BOOK)
    _font, expected, _width = harfbuzz(case, 38)

    assert [run.font.path.name for run in runs] == [case.font_file]
    path, index = font_path(case)
    assert (str(runs[0].font.path), runs[0].font.index) == (path, index)
    produced = [(glyph.gid, glyph.x, glyph.y) for glyph in runs[0].glyphs]
    assert [gid for gid, _, _ in produced] == [gid for gid, _, _ in expected]
    positions = [value for _, x, y in produced for value in (x, y)]
    assert positions == pytest.approx([value for _, x, y in expected for value in (x, y)], abs=1e-6)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.script)
def test_rendered_name_matches_harfbuzz_outlines_and_not_cairosvgs_own_text(case: Case) -> None:
    svg = name_svg(case.name, case.family)
    rendered = render_png(svg, scale=1.0, font_book=_BOOK)
    reference = reference_png(case)

    difference = ink_difference(rendered, reference)
    assert difference < 0.02, f"rendered name differs from HarfBuzz's by {difference:.1%}"
    if case.complex:
        unshaped = ink_difference(cairosvg.svg2png(bytestring=svg.encode()), reference)
        assert unshaped > 0.10, f"cairosvg's unshaped text differs by only {unshaped:.1%}"


def test_a_bold_weight_picks_the_bold_file_and_a_normal_one_the_regular() -> None:
    assert shape_runs("क्षत्रिय", 20, 600, font_book=_BOOK)[0].font.path.name == "NotoSansDevanagari-Bold.ttf"
    assert shape_runs("क्षत्रिय", 20, "bold", font_book=_BOOK)[0].font.path.name == "NotoSansDevanagari-Bold.ttf"
    assert shape_runs("क्षत्रिय", 20, 400, font_book=_BOOK)[0].font.path.name == "NotoSansDevanagari-Regular.ttf"


def test_arabic_is_laid_out_right_to_left() -> None:
    (run,) = shape_runs("محمد علی", 38, 700, font_book=_BOOK)
    first_letter = [glyph for glyph in run.glyphs if glyph.cluster == 0]
    assert run.rtl
    assert first_letter and max(g.x for g in first_letter) == max(g.x for g in run.glyphs)
    assert run.glyphs[-1].cluster == 0, "the first letter is the rightmost glyph"


def test_urdu_letters_choose_nastaliq_and_arabic_ones_naskh() -> None:
    assert shape_runs("عائشہ", 20, font_book=_BOOK)[0].font.path.name == "NotoNastaliqUrdu-Regular.ttf"
    assert shape_runs("محمد", 20, font_book=_BOOK)[0].font.path.name == "NotoNaskhArabic-Regular.ttf"
    assert shape_runs("محمد", 20, lang="ur", font_book=_BOOK)[0].font.path.name == "NotoNastaliqUrdu-Regular.ttf"


def test_the_templates_font_family_wins_wherever_it_covers_the_text() -> None:
    """An Urdu name in a template naming Noto Naskh Arabic is set in Naskh, not
    Nastaliq; a family that does not cover the text (Noto Sans for Devanagari) falls
    through to the script's own font."""
    naskh_first = family_stems("'Noto Sans', 'Noto Naskh Arabic', sans-serif")

    def font(text: str, families: tuple[str, ...]) -> str:
        return shape_runs(text, 20, font_book=_BOOK, families=families)[0].font.path.name

    assert font("عائشہ", naskh_first) == "NotoNaskhArabic-Regular.ttf"
    assert font("عائشہ", ()) == "NotoNastaliqUrdu-Regular.ttf"
    assert font("Asha", family_stems('"Noto Serif", serif')) == "NotoSerif-Regular.ttf"
    assert font("आशा", naskh_first) == "NotoSansDevanagari-Regular.ttf"


def test_a_rendered_urdu_name_uses_the_font_the_template_names() -> None:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="100">'
        '<text x="10" y="50" font-family="\'Noto Naskh Arabic\'" font-size="30">عائشہ</text></svg>'
    )
    nastaliq = prepare_svg(svg.replace("Noto Naskh Arabic", "Noto Nastaliq Urdu"), font_book=_BOOK)

    assert prepare_svg(svg, font_book=_BOOK) != nastaliq


def test_mixed_text_is_split_by_script_with_spaces_kept_in_their_run() -> None:
    text = "Dr. प्रिया Sharma"
    items = itemize(text)
    assert [(text[i.start:i.end], i.script) for i in items] == [
        ("Dr. ", "Latn"), ("प्रिया ", "Deva"), ("Sharma", "Latn"),
    ]
    runs = shape_runs(text, 20, font_book=_BOOK)
    assert [run.font.path.name for run in runs] == [
        "NotoSans-Regular.ttf", "NotoSansDevanagari-Regular.ttf", "NotoSans-Regular.ttf",
    ]
    assert runs[1].x == pytest.approx(runs[0].advance)


def test_an_rtl_paragraph_puts_its_first_word_right_and_keeps_digits_left_to_right() -> None:
    text = "محمد 2024"
    visual = [text[i.start:i.end] for i in itemize(text)]
    assert visual == ["2024", "محمد "]
    runs = shape_runs(text, 20, font_book=_BOOK)
    digits = runs[0]
    assert not digits.rtl and [g.cluster for g in digits.glyphs] == sorted(g.cluster for g in digits.glyphs)


def test_letter_spacing_widens_a_latin_line_by_one_space_per_character() -> None:
    plain = line_width(shape_runs("Certificate", 32, font_book=_BOOK))
    spaced = line_width(shape_runs("Certificate", 32, letter_spacing=2, font_book=_BOOK))
    assert spaced == pytest.approx(plain + 2 * len("Certificate"))


def test_letter_spacing_leaves_joined_arabic_letters_joined() -> None:
    plain = shape_runs("محمد", 32, font_book=_BOOK)
    spaced = shape_runs("محمد", 32, letter_spacing=2, font_book=_BOOK)
    assert [g.x for g in spaced[0].glyphs] == [g.x for g in plain[0].glyphs]


# ------------------------------------------------------------------ outlining


def test_text_anchor_and_style_are_inherited_from_a_parent_group() -> None:
    svg = (
        f'<svg xmlns="{SVG_NS}" viewBox="0 0 400 100">'
        '<g text-anchor="end" font-size="20" fill="#c00"><text x="300" y="50">Hello</text></g></svg>'
    )
    group = outlined_group(svg, "Hello")
    x_min, _y_min, x_max, _y_max = paths_bbox(group)
    width = line_width(shape_runs("Hello", 20, font_book=_BOOK))
    assert 300 - 3 < x_max <= 300, "ends at x, less the last glyph's side bearing"
    assert x_min == pytest.approx(300 - width, abs=3)
    assert group.getparent().get("fill") == "#c00", "fill reaches the paths by inheritance"


def test_text_attributes_are_kept_on_the_outlines_group() -> None:
    svg = (
        f'<svg xmlns="{SVG_NS}" viewBox="0 0 400 100">'
        '<text id="title" x="10" y="50" fill="#123456" transform="rotate(5)" opacity="0.5">Hi</text></svg>'
    )
    group = outlined_group(svg, "Hi")
    assert group.tag == f"{{{SVG_NS}}}g"
    assert (group.get("id"), group.get("fill"), group.get("transform"), group.get("opacity")) == (
        "title", "#123456", "rotate(5)", "0.5"
    )
    assert group.get("x") is None and group.get("font-size") is None


def test_a_tspan_with_its_own_position_starts_a_new_line() -> None:
    svg = (
        f'<svg xmlns="{SVG_NS}" viewBox="0 0 400 200" font-size="20">'
        '<text x="10" y="50">First<tspan x="10" y="150" fill="#f00">Second</tspan></text></svg>'
    )
    group = outlined_group(svg, "First Second")
    first, second = group.findall(f"{{{SVG_NS}}}path")
    assert paths_bbox(first)[3] <= 52 and paths_bbox(second)[1] >= 130
    assert paths_bbox(second)[0] == pytest.approx(paths_bbox(first)[0], abs=2)
    assert second.get("fill") == "#f00"


def test_a_tspan_without_position_continues_the_line() -> None:
    svg = (
        f'<svg xmlns="{SVG_NS}" viewBox="0 0 400 100" font-size="20">'
        '<text x="10" y="50">Issued by <tspan font-weight="700">NCERT</tspan></text></svg>'
    )
    group = outlined_group(svg, "Issued by NCERT")
    _first, second = group.findall(f"{{{SVG_NS}}}path")
    lead = line_width(shape_runs("Issued by ", 20, font_book=_BOOK))
    assert paths_bbox(second)[0] == pytest.approx(10 + lead, abs=3)


def test_a_tspan_that_only_moves_down_goes_on_where_the_line_ended() -> None:
    svg = (
        f'<svg xmlns="{SVG_NS}" viewBox="0 0 400 200" font-size="20">'
        '<text x="10" y="50">First<tspan y="100">Second</tspan></text></svg>'
    )
    _first, second = outlined_group(svg, "First Second").findall(f"{{{SVG_NS}}}path")
    width = line_width(shape_runs("First", 20, font_book=_BOOK))
    assert paths_bbox(second)[0] == pytest.approx(10 + width, abs=3)
    assert paths_bbox(second)[1] > 80


def test_whitespace_is_collapsed_and_trimmed_as_svg_does() -> None:
    svg = f'<svg xmlns="{SVG_NS}" viewBox="0 0 400 100"><text x="10" y="50">\n   Ada \n\t  Lovelace  \n</text></svg>'
    assert outlined_group(svg, "Ada Lovelace") is not None


def test_a_name_that_fits_is_not_shrunk() -> None:
    svg = fill_template("Ada Lovelace")
    x_min, _, x_max, _ = paths_bbox(outlined_group(svg, "Ada Lovelace"))
    width = line_width(shape_runs("Ada Lovelace", 38, 700, font_book=_BOOK))
    assert x_max - x_min == pytest.approx(width, abs=6)


def test_a_200_character_name_stays_inside_the_page() -> None:
    name = " ".join(["Venkatanarasimharajuvaripeta"] * 7)[:200]
    assert len(name) == 200
    group = outlined_group(fill_template(name), name)
    x_min, y_min, x_max, y_max = paths_bbox(group)
    margin = PAGE_MARGIN * PAGE_WIDTH
    assert margin - 1 <= x_min and x_max <= PAGE_WIDTH - margin + 1
    assert y_min >= 0 and y_max <= PAGE_HEIGHT
    assert y_max - y_min >= MIN_SHRINK * 38 * 0.6, "the font is not shrunk below its floor"


def test_a_long_devanagari_course_name_shrinks_to_the_page_too() -> None:
    course = "डेटा विज्ञान और मशीन लर्निंग के मूल सिद्धांत: एक व्यावहारिक परिचय (उन्नत स्तर)"
    x_min, _, x_max, _ = paths_bbox(outlined_group(fill_template("Ada", courseName=course), course))
    margin = PAGE_MARGIN * PAGE_WIDTH
    assert margin - 1 <= x_min and x_max <= PAGE_WIDTH - margin + 1


def test_a_text_box_given_by_the_template_bounds_the_text() -> None:
    for attribute in ('data-max-width="120"', 'textLength="120"'):
        svg = name_svg("Venkatanarasimharajuvaripeta", extra=attribute)
        x_min, _, x_max, _ = paths_bbox(outlined_group(svg, "Venkatanarasimharajuvaripeta"))
        assert x_max - x_min <= 120


# ------------------------------------------------------------------ output


def test_render_pdf_makes_an_a4_pdf_with_no_fonts_to_embed() -> None:
    # The text layer (test_pdf_text_layer.py) is left out: its glyph-less font is
    # the only font a certificate PDF has.
    pdf = render_pdf(fill_template("क्षत्रिय श्रीनिवास"), font_book=_BOOK, text_layer=False)
    assert pdf.startswith(b"%PDF")
    assert re.search(rb"/MediaBox \[ ?0 0 842 595 ?\]", pdf), "842 x 595 user units are A4 points"
    assert b"/FontFile" not in pdf and b"/Font <<" not in pdf


def test_render_png_makes_a_png_of_the_page_size_times_scale() -> None:
    svg = fill_template("முருகன் செல்வம்")
    assert Image.open(io.BytesIO(render_png(svg, scale=1.0, font_book=_BOOK))).size == (PAGE_WIDTH, PAGE_HEIGHT)
    assert Image.open(io.BytesIO(render_png(svg, font_book=_BOOK))).size == (2 * PAGE_WIDTH, 2 * PAGE_HEIGHT)


def test_remote_images_are_dropped_and_data_images_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*_args: object) -> None:
        raise AssertionError("rendering must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    svg = fill_template(
        "محمد علی",
        signatory0Image="https://signatures.example.org/director.png",
        signatory1Image="http://169.254.169.254/latest/meta-data",
    ).replace(
        "</svg>", '<image xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="//cdn.example.org/x.png"/></svg>'
    )

    root = etree.fromstring(prepare_svg(svg, _BOOK))
    hrefs = [
        image.get("href") or image.get("{http://www.w3.org/1999/xlink}href")
        for image in root.iter(f"{{{SVG_NS}}}image")
    ]
    assert hrefs and all(href.startswith("data:image/png") for href in hrefs)
    assert render_pdf(svg, font_book=_BOOK).startswith(b"%PDF")
    assert render_png(svg, scale=0.5, font_book=_BOOK).startswith(b"\x89PNG")


def test_threads_share_a_font_book_and_render_the_same_picture() -> None:
    book = FontBook()  # cold caches, filled by the threads at once
    svg = name_svg("সুব্রত মুখোপাধ্যায়", "Noto Sans Bengali")
    results: list[bytes] = []
    lock = threading.Lock()

    def work() -> None:
        png = render_png(svg, scale=0.5, font_book=book)
        with lock:
            results.append(png)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert results[0] == render_png(svg, scale=0.5, font_book=_BOOK)

