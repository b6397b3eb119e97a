"""Where a cold PDF's time goes: each stage of :func:`~certflow.render.pdf.render_pdf`
timed over many different certificates (``certflow bench`` part 3 reports it).

"Cold" means a certificate this process has not rendered before, as a learner's
first download is: every certificate here has its own learner name and its own QR
code, so no cache holds its name's shapes or its QR image. What a template shares
between its certificates (its fixed lines, the course name, the signature image,
the fonts) is rightly warm after the first certificate, as in a worker that has
served one download; that first one is reported apart.

The stages are the steps ``render_pdf`` runs, called one by one here:

* ``text``: parse the SVG, shape every line (HarfBuzz) and outline it;
* ``images``: drop remote images, check and re-encode inline ones (the QR code);
* ``cairosvg parse``: serialise the prepared document and parse it into cairosvg;
* ``cairo draw``: cairosvg draws the page, the glyphs from cached cairo paths;
* ``cairo write``: cairo writes the PDF (path operators, deflate);
* ``text layer``: pikepdf adds the invisible text, title, language and XMP.
"""

from __future__ import annotations

import base64
import io
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import product
from pathlib import Path

from lxml import etree
from PIL import Image, ImageDraw

from certflow.render.draw import _PDF, DrawnPdf, _tree, svg_to_png
from certflow.render.fonts import FontBook, default_font_book
from certflow.render.forms import new_nonce
from certflow.render.images import DEFAULT_LIMITS
from certflow.render.pdf import _clean_images, _finish_pdf, _outline, render_pdf, render_png
from certflow.render.qr import access_code, qr_code_data_uri
from certflow.render.svg import SvgTemplate
from certflow.render.textlayer import add_png_text

__all__ = ["PDF_STAGES", "Timings", "measure_pdf", "measure_png", "sample_certificates"]

#: The built-in template every bench certificate is made from.
TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "course-completion.svg"

PDF_STAGES = ("text", "images", "cairosvg parse", "cairo draw", "cairo write", "glyph forms, text layer")

_FIRST = ("प्रिया", "राहुल", "अनन्या", "विक्रम", "सुनीता", "अर्जुन", "कविता", "रोहित", "मीनाक्षी", "धर्मेन्द्र")
_MIDDLE = ("", "कुमार", "देवी", "प्रसाद", "लक्ष्मी", "नारायण", "श्री", "चन्द्र", "किशोर", "रानी")
_LAST = ("शर्मा", "वर्मा", "त्रिपाठी", "श्रीवास्तव", "क्षत्रिय", "द्विवेदी", "चतुर्वेदी", "मिश्र", "ठाकुर", "पाण्डेय")


def learner_names() -> Iterator[str]:
    """Distinct Devanagari names (1,000 of them), with conjuncts and vowel signs
    that make HarfBuzz do real work."""
    for middle, last, first in product(_MIDDLE, _LAST, _FIRST):
        yield " ".join(part for part in (first, middle, last) if part)


def _signature_png() -> str:
    """A signature-like image as a ``data:`` URI: the same on every certificate, as a
    template's signatory image is."""
    image = Image.new("RGBA", (360, 150), (255, 255, 255, 0))
    draw = ImageDraw.Draw(image)
    points = [(20 + 8 * i, 90 + ((i * 37) % 41) - 20) for i in range(40)]
    draw.line(points, fill=(20, 30, 90, 255), width=4, joint="curve")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def sample_certificates(count: int, *, start: int = 0) -> list[str]:
    """``count`` filled certificates of the built-in template, each with its own
    Devanagari learner name and QR code (names ``start`` … ``start + count - 1``)."""
    names = list(learner_names())
    if start + count > len(names):
        raise ValueError(f"at most {len(names)} distinct certificates")
    template = SvgTemplate.parse(TEMPLATE.read_bytes(), url=TEMPLATE.as_uri())
    signature = _signature_png()
    secret = b"certflow bench"
    certificates = []
    for index, name in enumerate(names[start : start + count], start):
        certificate_id = f"bench-{index:06d}"
        certificates.append(template.fill({
            "certificateName": "Course Completion Certificate", "recipientName": name,
            "courseName": "डेटा विज्ञान की बुनियाद", "issuerName": "NCERT", "issuedDate": "06 December 2026",
            "certificateDescription": "", "signatory0Designation": "Director", "signatory0Image": signature,
            "qrCodeImage": qr_code_data_uri(f"https://certs.example.org/certs/{certificate_id}",
                                            access_code(secret, certificate_id)),
        }))
    return certificates


@dataclass
class Timings:
    """Milliseconds per certificate: wall clock and this process's CPU time."""

    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def add(self, stage: str, wall: float, cpu: float) -> None:
        self.wall.setdefault(stage, []).append(1000 * wall)
        self.cpu.setdefault(stage, []).append(1000 * cpu)

    def p50(self) -> dict[str, dict[str, float]]:
        """Median per stage: ``{"wall": {...}, "cpu": {...}}``."""
        return {
            "wall": {stage: statistics.median(values) for stage, values in self.wall.items()},
            "cpu": {stage: statistics.median(values) for stage, values in self.cpu.items()},
        }


class _Laps:
    """Stage boundaries on both clocks."""

    def __init__(self, timings: Timings) -> None:
        self._timings = timings
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self, stage: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self._timings.add(stage, wall - self._wall, cpu - self._cpu)
        self._wall, self._cpu = wall, cpu


def _timed(timings: Timings, stage: str, render: Callable[[], bytes]) -> bytes:
    laps = _Laps(timings)
    out = render()
    laps.lap(stage)
    return out


def _pdf_by_stage(svg: str, book: FontBook, timings: Timings) -> bytes:
    """``render_pdf(svg)`` step by step, each step timed."""
    laps = _Laps(timings)
    prepared = _outline(svg, book, revoked=False, paint=True)
    laps.lap("text")
    _clean_images(prepared, DEFAULT_LIMITS)
    laps.lap("images")
    tree = _tree(etree.tostring(prepared.root, encoding="utf-8"))
    laps.lap("cairosvg parse")
    output = io.BytesIO()
    drawn = DrawnPdf(b"", [], new_nonce())
    surface = _PDF(tree, output, prepared.paints, drawn.forms, drawn.nonce)
    laps.lap("cairo draw")
    surface.finish()
    drawn.pdf = output.getvalue()
    laps.lap("cairo write")
    pdf = _finish_pdf(drawn, prepared, None, None)
    laps.lap("glyph forms, text layer")
    assert pdf is not None, "the markers were lost"
    return pdf


def measure_pdf(count: int = 50, *, font_book: FontBook | None = None) -> dict[str, object]:
    """p50 per stage over ``count`` cold certificates, the whole ``render_pdf`` over
    ``count`` more, and the first render of the process (fonts loading).

    Returns ``{"stages": {"wall": {stage: ms}, "cpu": {stage: ms}}, "render_pdf":
    {"wall": ms, "cpu": ms}, "first_ms": ms, "bytes": size of the last PDF}``.
    """
    book = font_book or default_font_book()
    certificates = sample_certificates(2 * count + 1)
    first = Timings()
    _timed(first, "first", partial(render_pdf, certificates[0], font_book=book))
    stages = Timings()
    for svg in certificates[1 : count + 1]:
        _pdf_by_stage(svg, book, stages)
    whole = Timings()
    pdf = b""
    for svg in certificates[count + 1 :]:
        pdf = _timed(whole, "render_pdf", partial(render_pdf, svg, font_book=book))
    p50 = whole.p50()
    return {
        "stages": stages.p50(),
        "render_pdf": {"wall": p50["wall"]["render_pdf"], "cpu": p50["cpu"]["render_pdf"]},
        "first_ms": first.wall["first"][0],
        "bytes": len(pdf),
    }


def measure_png(count: int = 20, *, scale: float = 2.0, font_book: FontBook | None = None) -> dict[str, object]:
    """p50 of ``render_png`` at ``scale`` over ``count`` cold certificates, and of
    its stages: preparing the document (text, images), drawing and encoding the
    PNG (cairo), the alt text."""
    book = font_book or default_font_book()
    certificates = sample_certificates(2 * count + 1, start=500)
    render_png(certificates[0], scale=scale, font_book=book)
    stages = Timings()
    for svg in certificates[1 : count + 1]:
        laps = _Laps(stages)
        prepared = _outline(svg, book, revoked=False, paint=True)
        _clean_images(prepared, DEFAULT_LIMITS)
        laps.lap("prepare")
        png = svg_to_png(etree.tostring(prepared.root, encoding="utf-8"), prepared.paints, scale)
        laps.lap("cairo draw and PNG")
        add_png_text(png, {"Title": "Certificate"})
        laps.lap("alt text")
    whole = Timings()
    for svg in certificates[count + 1 :]:
        _timed(whole, "render_png", partial(render_png, svg, scale=scale, font_book=book))
    p50 = whole.p50()
    return {
        "stages": stages.p50(),
        "render_png": {"wall": p50["wall"]["render_png"], "cpu": p50["cpu"]["render_png"]},
        "scale": scale,
    }
