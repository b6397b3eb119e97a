"""Every PDF carries an invisible text layer over its outlines, a title and a
language; PNGs carry alt text; a revoked certificate is visibly marked REVOKED.

Read back with poppler (``pdftotext``, ``pdftoppm``), independent of the writer.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pikepdf
import pytest
from PIL import Image, ImageChops

from certflow.render.fonts import FontBook
from certflow.render.pdf import render_pdf, render_png
from certflow.render.textlayer import add_png_text, parse_transform, visual_order

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")

#: A Sunbird template whose title is the ``${certificateName}`` placeholder.
TEMPLATE = (Path(__file__).parent.parent / "fixtures" / "templates" / "File-01311849840255795242.svg").read_text()
_BOOK = FontBook()


def fill(name: str, course: str = "Data science basics") -> str:
    values = {"certificateName": "Merit certificate", "recipientName": name, "courseName": course,
              "issuerName": "Sunbird Academy", "issuedDate": "2026-03-14",
              "certificateDescription": "", "recipientId": "u1"}
    svg = TEMPLATE
    for key, value in values.items():
        svg = svg.replace(f"${{{key}}}", value)
    svg = re.sub(r'href="\$\{[^}]*\}"', 'href=""', svg)
    return re.sub(r"\$\{[^}]*\}", "", svg)


def pdftotext(pdf: bytes, tmp_path: Path, *args: str) -> str:
    path = tmp_path / "c.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", *args, str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def words(pdf: bytes, tmp_path: Path) -> dict[str, tuple[float, float, float, float]]:
    out = pdftotext(pdf, tmp_path, "-bbox")
    return {m.group(5): tuple(float(m.group(i)) for i in range(1, 5)) for m in re.finditer(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', out)}


def raster(pdf: bytes, tmp_path: Path) -> Image.Image:
    path = tmp_path / "r.pdf"
    path.write_bytes(pdf)
    png = subprocess.run(["pdftoppm", "-png", "-r", "50", str(path)], check=True, capture_output=True).stdout
    return Image.open(io.BytesIO(png)).convert("RGB")


def test_pdftotext_finds_the_latin_and_devanagari_name_and_course(tmp_path):
    latin = pdftotext(render_pdf(fill("Asha Verma"), font_book=_BOOK), tmp_path)
    assert "Asha Verma" in latin and "Data science basics" in latin and "Sunbird Academy" in latin
    assert "2026-03-14" in latin
    devanagari = pdftotext(render_pdf(fill("क्षत्रिय श्रीनिवास", "पायथन की मूल बातें"), font_book=_BOOK), tmp_path)
    assert "क्षत्रिय श्रीनिवास" in devanagari and "पायथन की मूल बातें" in devanagari


def test_tamil_and_urdu_come_out_in_logical_order(tmp_path):
    assert "முருகன் செல்வம்" in pdftotext(render_pdf(fill("முருகன் செல்வம்"), font_book=_BOOK), tmp_path)
    urdu = pdftotext(render_pdf(fill("عائشہ صدیقی"), font_book=_BOOK), tmp_path)
    assert "عائشہ صدیقی" in urdu


def test_the_text_layer_is_invisible_and_lies_on_the_outlines(tmp_path):
    svg = fill("Asha Verma")
    with_layer = render_pdf(svg, font_book=_BOOK)
    without = render_pdf(svg, font_book=_BOOK, text_layer=False)
    assert ImageChops.difference(raster(with_layer, tmp_path), raster(without, tmp_path)).getbbox() is None
    boxes = words(with_layer, tmp_path)
    x0, y0, x1, y1 = boxes["Asha"][0], boxes["Asha"][1], boxes["Verma"][2], boxes["Verma"][3]
    # The name is centred on x=421, its baseline at y=224, 38 px type (pdftotext's
    # box is the font's ascent..descent: 0.8..0.2 em).
    assert abs((x0 + x1) / 2 - 421) < 3
    assert abs(y1 - (224 + 0.2 * 38)) < 1 and abs(y0 - (224 - 0.8 * 38)) < 1


def test_transformed_text_is_placed_where_it_is_drawn(tmp_path):
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="400" height="200" viewBox="0 0 800 400">'
           '<g transform="translate(100 50)"><text x="0" y="100" font-size="40">Shifted</text></g></svg>')
    box = words(render_pdf(svg, font_book=_BOOK), tmp_path)["Shifted"]
    # viewBox 800x400 on a 400x200 page: half scale; baseline at (100, 150) → (50, 75).
    assert abs(box[0] - 50) < 1 and abs(box[3] - (75 + 0.2 * 20)) < 1


def test_title_and_language(tmp_path):
    pdf = render_pdf(fill("आशा वर्मा", "पायथन की मूल बातें"), font_book=_BOOK)
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        assert str(doc.docinfo["/Title"]) == "Merit certificate"
        assert str(doc.Root.Lang) == "en"  # more Latin letters than Devanagari on this page
        assert doc.Root.ViewerPreferences.DisplayDocTitle
        meta = doc.open_metadata()
        assert meta["dc:title"] == "Merit certificate"
    hindi = render_pdf(fill("आशा वर्मा"), font_book=_BOOK, title="योग्यता प्रमाणपत्र", lang="hi")
    with pikepdf.open(io.BytesIO(hindi)) as doc:
        assert str(doc.docinfo["/Title"]) == "योग्यता प्रमाणपत्र" and str(doc.Root.Lang) == "hi"
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        # Each line's language is marked on its span, from its script.
        content = b"".join(stream.read_bytes() for stream in doc.pages[0].Contents)
        assert content.count(b"/Span <</Lang (hi)>> BDC") == 2 and b"/Span <</Lang (en)>> BDC" in content
        assert b"3 Tr" in content
    svg_title = fill("A").replace("<rect", "<title>Certificate of merit</title><rect", 1)
    with pikepdf.open(io.BytesIO(render_pdf(svg_title, font_book=_BOOK))) as doc:
        assert str(doc.docinfo["/Title"]) == "Certificate of merit"


def test_png_carries_title_and_alt_text():
    png = render_png(fill("आशा वर्मा"), scale=0.5, font_book=_BOOK)
    info = Image.open(io.BytesIO(png)).info
    assert info["Title"] == "Merit certificate"
    assert "आशा वर्मा" in info["Description"] and "Data science basics" in info["Description"]
    given = Image.open(io.BytesIO(render_png(fill("A"), scale=0.5, font_book=_BOOK, description="Alt"))).info
    assert given["Description"] == "Alt"
    with pytest.raises(ValueError):
        add_png_text(b"GIF89a", {"Title": "x"})


def test_revoked_pdf_and_png_are_marked(tmp_path):
    svg = fill("Asha Verma")
    clean_pdf, revoked_pdf = render_pdf(svg, font_book=_BOOK), render_pdf(svg, font_book=_BOOK, revoked=True)
    assert "REVOKED" not in pdftotext(clean_pdf, tmp_path)
    text = pdftotext(revoked_pdf, tmp_path)
    assert "REVOKED" in text and "Asha Verma" in text
    with pikepdf.open(io.BytesIO(revoked_pdf)) as doc:
        assert str(doc.docinfo["/Title"]) == "REVOKED: Merit certificate"
    # Visible: the page's centre turns red where it was the cream background.
    red = raster(revoked_pdf, tmp_path)
    diff = ImageChops.difference(red, raster(clean_pdf, tmp_path)).getbbox()
    assert diff is not None and diff[2] - diff[0] > red.width * 0.5
    png = Image.open(io.BytesIO(render_png(svg, scale=0.5, font_book=_BOOK, revoked=True))).convert("RGB")
    clean_png = Image.open(io.BytesIO(render_png(svg, scale=0.5, font_book=_BOOK))).convert("RGB")
    changed = ImageChops.difference(png, clean_png).getbbox()
    assert changed is not None and changed[2] - changed[0] > png.width * 0.5
    reds = sum(1 for r, g, b in png.get_flattened_data() if r > 180 and g < 150 and b < 150)
    assert reds > png.width * png.height * 0.03


def test_helpers():
    assert visual_order("Asha") == "Asha"
    assert visual_order("عائشہ") == "ہشئاع"
    assert visual_order("عائشہ 2026") == "2026 ہشئاع"
    a, _b, _c, d, e, f = parse_transform("translate(10 20) scale(2)")
    assert (a, d, e, f) == (2, 2, 10, 20)
    a, b, _c, d, e, f = parse_transform("rotate(90 10 10)")
    assert abs(e - 20) < 1e-9 and abs(f - 0) < 1e-9 and abs(b - 1) < 1e-9
    assert parse_transform(None) == (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def test_output_format_by_extension_and_the_pool_function():
    from certflow.render.output import output_format, render_certificate
    from certflow.render.pool import _render

    assert [output_format(p) for p in ("a.svg", "b.PDF", "dir/c.png")] == ["svg", "pdf", "png"]
    with pytest.raises(ValueError, match=r"\.svg, \.pdf or \.png"):
        output_format("c.jpg")
    svg = fill("Asha Verma")
    assert render_certificate(svg, "svg") == svg.encode()
    assert render_certificate(svg, "pdf").startswith(b"%PDF")
    assert render_certificate(svg, "png").startswith(b"\x89PNG")
    from certflow.render.images import DEFAULT_LIMITS

    assert _render(svg, "pdf", DEFAULT_LIMITS, "T", "en", True).startswith(b"%PDF")
