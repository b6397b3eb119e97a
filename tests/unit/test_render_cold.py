"""Cold renders at speed, and the caches that make them fast never mix certificates.

A PDF's glyphs are drawn from cached cairo paths and, where they are plainly filled,
written as form XObjects whose compressed streams are cached across certificates
(:mod:`certflow.render.forms`); shaped lines and re-encoded images are cached too.
These tests hold every certificate to what the old pipeline (path strings through
cairosvg, a font book of its own) draws for it, read back with poppler.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import zlib

import cairosvg
import pikepdf
import pytest
from PIL import Image, ImageChops

from certflow.render import forms, pdf
from certflow.render.fonts import FontBook
from certflow.render.images import ImageLimits, sanitise_inline_images
from certflow.render.layout import _parse
from certflow.render.pdf import prepare_svg, render_pdf
from certflow.render.perf import PDF_STAGES, measure_pdf, sample_certificates

pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs poppler-utils")

SVG_NS = "http://www.w3.org/2000/svg"


def raster(document: bytes) -> Image.Image:
    png = subprocess.run(["pdftoppm", "-png", "-gray", "-r", "36", "-"], input=document,
                         capture_output=True, check=True).stdout
    return Image.open(io.BytesIO(png)).convert("L")


def pdftotext(document: bytes) -> str:
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", "-", "-"], input=document, capture_output=True, check=True)
    return " ".join(out.stdout.decode().split())


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute pixel difference, 0..1."""
    histogram = ImageChops.difference(a, b).histogram()
    return sum(value * count for value, count in enumerate(histogram)) / sum(histogram) / 255


def classic(svg: str) -> bytes:
    """The certificate as the renderer drew it before its caches: every glyph as SVG
    path data through cairosvg, shaped with a font book of its own."""
    return cairosvg.svg2pdf(bytestring=prepare_svg(svg, font_book=FontBook()), dpi=72, unsafe=False)


def test_cold_certificates_each_show_their_own_name_and_no_other() -> None:
    certificates = sample_certificates(6, start=100)
    names = [re.search(r'font-size="38"[^>]*>([^<]+)<', svg).group(1) for svg in certificates]  # type: ignore[union-attr]
    assert len(set(names)) == len(names)
    book = FontBook()  # every cache starts cold for these fonts
    rendered = [render_pdf(svg, font_book=book) for svg in certificates]
    references = [raster(classic(svg)) for svg in certificates]
    for index, document in enumerate(rendered):
        text = pdftotext(document)
        assert names[index] in text
        assert not [other for other in names if other != names[index] and other in text]
        picture = raster(document)
        own = difference(picture, references[index])
        others = [difference(picture, reference) for j, reference in enumerate(references) if j != index]
        # The same drawing to within anti-aliasing; another certificate's differs tenfold.
        assert own < 0.001 and min(others) > 5 * own, (own, others)


def test_a_templates_fixed_lines_are_written_once_and_no_marker_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = sample_certificates(2, start=200)
    book = FontBook()
    render_pdf(first, font_book=book)
    deflated: list[int] = []
    compress = zlib.compress

    def counting(data: bytes, level: int = -1) -> bytes:
        deflated.append(len(data))
        return compress(data, level)

    monkeypatch.setattr(forms.zlib, "compress", counting)
    document = render_pdf(second, font_book=book)
    # Only the learner's name is new: the heading, the course, the issuer, "Director"
    # come out of the cache.
    assert len(deflated) == 1
    with pikepdf.open(io.BytesIO(document)) as opened:
        xobjects = opened.pages[0].Resources.XObject
        contents = [xobject.read_bytes() for xobject in xobjects.values()
                    if xobject.get("/Subtype") == pikepdf.Name.Form]
    assert len(contents) >= 6
    assert all(b" c\n" in content and content.rstrip().endswith(b"f") for content in contents)
    assert not any(b" re f" in content for content in contents), "a marker was left in the PDF"


def test_lost_markers_fall_back_to_drawing_through_cairo(monkeypatch: pytest.MonkeyPatch) -> None:
    svg = sample_certificates(1, start=300)[0]
    expected = raster(render_pdf(svg))
    monkeypatch.setattr(pdf, "fill_forms", lambda *_args: 0)
    fallback = render_pdf(svg)
    assert difference(raster(fallback), expected) < 0.001
    with pikepdf.open(io.BytesIO(fallback)) as opened:
        contents = opened.pages[0].Contents
        streams = list(contents) if isinstance(contents, pikepdf.Array) else [contents]
        page = b"".join(stream.read_bytes() for stream in streams)
    assert len(re.findall(rb" c\s", page)) > 500, "the glyphs are drawn in the page itself"


def _page(body: str) -> str:
    return (f'<svg xmlns="{SVG_NS}" xmlns:xlink="http://www.w3.org/1999/xlink" width="400" height="200" '
            f'viewBox="0 0 400 200"><rect width="400" height="200" fill="#fff"/>{body}</svg>')


PAINTINGS = {
    "plain": '<text x="20" y="80" font-size="40" fill="#123456">क्षत्रिय Ada</text>',
    "translucent": '<text x="20" y="80" font-size="40" fill="#c00" fill-opacity="0.4">क्षत्रिय Ada</text>',
    "stroked": '<text x="20" y="80" font-size="40" fill="#ff0" stroke="#000" stroke-width="2">Ada</text>',
    "gradient": ('<defs><linearGradient id="g"><stop offset="0" stop-color="#f00"/><stop offset="1" '
                 'stop-color="#00f"/></linearGradient></defs><text x="20" y="80" font-size="60" fill="url(#g)">'
                 "Gradient</text>"),
    "group opacity": '<g opacity="0.5"><text x="20" y="80" font-size="40">Half <tspan fill="#0a0">green</tspan></text></g>',
    "transformed": '<g transform="rotate(-10 200 100) scale(1.2)"><text x="20" y="80" font-size="30">Turned</text></g>',
    "clip": ('<defs><clipPath id="c"><text x="20" y="120" font-size="100" font-weight="700">CLIP</text></clipPath>'
             '</defs><rect width="400" height="200" fill="#08f" clip-path="url(#c)"/>'),
    "pattern": ('<defs><pattern id="p" width="80" height="40" patternUnits="userSpaceOnUse"><text x="0" y="30" '
                'font-size="30">ab</text></pattern></defs><rect width="400" height="200" fill="url(#p)"/>'),
    "hidden": '<text x="20" y="80" font-size="40" visibility="hidden">Hidden</text><text x="20" y="160" font-size="40">Shown</text>',
    "used twice": ('<defs><text id="t" x="0" y="40" font-size="30">Twice</text></defs><use href="#t" x="20" y="20"/>'
                   '<use xlink:href="#t" x="200" y="100"/>'),
}


@pytest.mark.parametrize("body", PAINTINGS.values(), ids=PAINTINGS.keys())
def test_every_way_text_is_painted_draws_what_the_classic_pipeline_draws(body: str) -> None:
    svg = _page(body)
    drawn = raster(render_pdf(svg, text_layer=False))
    assert difference(drawn, raster(classic(svg))) < 0.002
    blank = raster(classic(_page("")))
    assert difference(drawn, blank) > 0.002, "the text is drawn at all"


def test_a_document_cannot_name_glyphs_of_its_own() -> None:
    svg = _page('<path data-certflow-glyphs="0" d="M300 20h60v60h-60z" fill="#000"/>'
                '<text x="20" y="80" font-size="40">Ada</text>')
    drawn = raster(render_pdf(svg, text_layer=False))
    # The square is drawn as the path it is, and the text once, where it belongs.
    assert drawn.getpixel((330 * 36 // 72, 50 * 36 // 72)) < 64
    assert difference(drawn, raster(classic(svg))) < 0.002


def test_a_refused_image_stays_refused_when_its_refusal_is_remembered() -> None:
    bomb = Image.new("1", (200, 200))
    out = io.BytesIO()
    bomb.save(out, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
    limits = ImageLimits(max_pixels=100)
    svg = _page(f'<image width="10" height="10" href="{uri}"/><image width="10" height="10" href="{uri}"/>')
    for _ in range(2):
        assert sanitise_inline_images(_parse(svg), limits) == 2


def test_the_bench_measures_every_stage() -> None:
    figures = measure_pdf(2)
    stages = figures["stages"]
    assert isinstance(stages, dict) and set(stages["wall"]) == set(PDF_STAGES) == set(stages["cpu"])
    assert isinstance(figures["render_pdf"], dict) and figures["render_pdf"]["wall"] > 0
