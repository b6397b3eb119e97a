"""Filled certificate SVG to PDF or PNG, with every script drawn correctly.

cairosvg draws SVG ``<text>`` one glyph per character, without shaping: Devanagari
conjuncts fall apart, vowel signs land on the wrong side, Arabic letters stand
unjoined and left to right. So before cairosvg sees the document, every ``<text>`` is
shaped with HarfBuzz (:mod:`certflow.render.shaping`) and replaced by the glyphs'
outlines as ``<path>`` elements. What cairosvg then draws is plain vector shapes: right
in every script, identical on every machine, and needing no fonts wherever the PDF
is opened.

Layout follows SVG's rules for the cases certificate templates use: ``x``/``y``,
``text-anchor``, ``font-size``/``-weight``/``-style``, ``letter-spacing``,
``transform`` and painting attributes, all inherited from ancestors as in SVG, and
``<tspan>`` that continues the line or starts a new one at its own ``x``/``y`` (first
value only; per-character position lists, ``rotate`` and ``<textPath>`` are drawn as
plain runs). Styles come from attributes and ``style="..."``; ``<style>`` sheets are
not consulted. Text that would not fit is shrunk (see :func:`certflow.render.outline.fit_factor`).

Remote images are never embedded: the document is rendered without network access,
so an ``<image>`` whose ``href`` is not a ``data:`` URL is removed first (signature
images are fetched, checked and inlined by whoever fills the template, if at all).
Every ``data:`` image left is checked against the image limits (format, bytes,
declared pixels) and re-encoded as PNG, or removed, right before cairosvg sees it
(:func:`certflow.render.images.sanitise_inline_images`): a 17 KB PNG declaring
12000×12000 pixels would otherwise make cairosvg allocate 576 MB.

Everything here is CPU-bound and synchronous; callers run it in a thread or process
pool. Fonts and glyph outlines are shared read-only caches, so threads may render
concurrently.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import pikepdf
from lxml import etree

from certflow.render.draw import DrawnPdf, svg_to_pdf, svg_to_png
from certflow.render.fonts import FontBook, default_font_book
from certflow.render.forms import fill_forms
from certflow.render.images import DEFAULT_LIMITS, ImageLimits, sanitise_inline_images
from certflow.render.layout import _DEFAULT_FONT_SIZE, _NUMBER, _SVG, _XLINK_HREF, _length, _parse
from certflow.render.outline import _NO_TEXT_LAYER, GLYPHS, GlyphPaint, _outline_tree
from certflow.render.svg import remove_element
from certflow.render.textlayer import (
    TextLine,
    add_png_text,
    document_language,
    save_pdf,
    write_text_layer,
)

__all__ = [
    "REVOKED_MARK",
    "add_revoked_mark",
    "drop_remote_images",
    "prepare_svg",
    "render_pdf",
    "render_png",
]

#: The word drawn across a revoked certificate.
REVOKED_MARK = "REVOKED"



def _page_size(root: etree._Element) -> tuple[float, float, float, float]:
    """(x, y, width, height) of the page in user units."""
    view_box = _view_box(root)
    if view_box:
        return view_box
    width = _length(root.get("width"), _DEFAULT_FONT_SIZE) or 842.0
    height = _length(root.get("height"), _DEFAULT_FONT_SIZE) or 595.0
    return 0.0, 0.0, width, height


def _view_box(root: etree._Element) -> tuple[float, float, float, float] | None:
    numbers = [float(n) for n in _NUMBER.findall(root.get("viewBox") or "")]
    if len(numbers) == 4 and numbers[2] > 0 and numbers[3] > 0:
        return numbers[0], numbers[1], numbers[2], numbers[3]
    return None


def add_revoked_mark(root: etree._Element) -> None:
    """Draw a large translucent red "REVOKED" diagonally across the page, on top."""
    x, y, width, height = _page_size(root)
    cx, cy = x + width / 2, y + height / 2
    angle = -math.degrees(math.atan2(height, width))
    size = min(width, height) / 4.5
    group = etree.SubElement(root, _SVG + "g", {
        "transform": f"rotate({angle:.2f} {cx:.2f} {cy:.2f})",
        "aria-label": REVOKED_MARK,
        # Rotated text comes out of extractors one letter per line: the text layer
        # carries the word horizontally instead (see _prepare).
        _NO_TEXT_LAYER: "true",
    })
    etree.SubElement(group, _SVG + "text", {
        "x": f"{cx:.2f}", "y": f"{cy + size * 0.35:.2f}", "text-anchor": "middle",
        "font-family": "Noto Sans", "font-weight": "700", "font-size": f"{size:.2f}",
        "letter-spacing": f"{size * 0.08:.2f}", "fill": "#c62828", "fill-opacity": "0.6",
        "stroke": "#ffffff", "stroke-opacity": "0.8", "stroke-width": f"{size * 0.02:.2f}",
    }).text = REVOKED_MARK


def drop_remote_images(root: etree._Element) -> int:
    """Remove every ``<image>``/``<feImage>`` whose href is not a ``data:`` URL.

    Rendering must never fetch: a template or event could point an href at an
    internal address (SSRF), and remote images are not embedded by this renderer.
    Returns how many were removed.
    """
    doomed = []
    for element in root.iter(_SVG + "image", _SVG + "feImage"):
        href = element.get(_XLINK_HREF) or element.get("href") or ""
        if not href.strip().lower().startswith("data:"):
            doomed.append(element)
    for element in doomed:
        remove_element(element)
    return len(doomed)



def prepare_svg(
    svg: str, font_book: FontBook | None = None, image_limits: ImageLimits = DEFAULT_LIMITS
) -> bytes:
    """What the renderer hands to cairosvg: text outlined (as path data), remote
    images dropped, inline images checked and re-encoded (or dropped)."""
    return _prepare(svg, font_book, image_limits, paint=False).svg


@dataclass(slots=True)
class _Prepared:
    """A certificate on its way to cairosvg, and what its PDF's text layer needs."""

    root: etree._Element
    lines: list[TextLine]
    view_box: tuple[float, float, float, float] | None
    title: str
    #: The glyphs of the outlined paths, by their :data:`GLYPHS` index.
    paints: list[GlyphPaint]
    #: ``root`` serialised, once :func:`_prepare` is done with it.
    svg: bytes = b""


def _prepare(
    svg: str, font_book: FontBook | None, image_limits: ImageLimits, *, revoked: bool = False,
    paint: bool = True,
) -> _Prepared:
    """Parse, outline and clean ``svg`` for cairosvg. With ``paint``, outlined paths
    refer to their glyphs (:mod:`certflow.render.draw`) rather than carry path data."""
    prepared = _outline(svg, font_book, revoked=revoked, paint=paint)
    _clean_images(prepared, image_limits)
    prepared.svg = etree.tostring(prepared.root, encoding="utf-8")
    return prepared


def _outline(svg: str, font_book: FontBook | None, *, revoked: bool, paint: bool) -> _Prepared:
    """The first stage of :func:`_prepare`: parse, mark revoked, shape and outline."""
    root = _parse(svg)
    for element in root.iter():
        if GLYPHS in element.attrib:
            # Only the outlines made below may name glyphs to draw.
            del element.attrib[GLYPHS]
    if revoked:
        add_revoked_mark(root)
    title_element = root.find(_SVG + "title")
    title = " ".join((title_element.text or "").split()) if title_element is not None else ""
    lines: list[TextLine] = []
    paints: list[GlyphPaint] | None = [] if paint else None
    _outline_tree(root, font_book or default_font_book(), lines, paints)
    if revoked:
        x, y, width, height = _page_size(root)
        size = min(width, height) / 9
        lines.insert(0, TextLine(REVOKED_MARK, x + width * 0.3, y + height / 2, width * 0.4, size))
        for element in root.iter():
            element.attrib.pop(_NO_TEXT_LAYER, None)  # type: ignore[call-overload]  # lxml-stubs lack pop's None default
    return _Prepared(root, lines, _view_box(root), title, paints or [])


def _clean_images(prepared: _Prepared, image_limits: ImageLimits) -> None:
    """The second stage of :func:`_prepare`: nothing remote, every image re-encoded
    within the limits or removed."""
    drop_remote_images(prepared.root)
    sanitise_inline_images(prepared.root, image_limits)


def _finish_pdf(
    drawn: DrawnPdf, prepared: _Prepared, title: str | None, lang: str | None, *, text_layer: bool = True
) -> bytes | None:
    """The last stage of :func:`render_pdf`: the glyphs in place of their markers
    (:mod:`certflow.render.forms`), the text layer, title and language. None if
    markers were painted but none is found in cairo's PDF: the caller draws the
    glyphs through cairo instead."""
    if not drawn.forms and not text_layer:
        return drawn.pdf
    with pikepdf.open(io.BytesIO(drawn.pdf)) as pdf:
        if drawn.forms and not fill_forms(pdf, drawn.forms, drawn.nonce):
            return None
        if text_layer:
            write_text_layer(
                pdf, prepared.lines, view_box=prepared.view_box, title=_title(prepared, title),
                lang=lang or document_language(prepared.lines),
            )
        # Without the text layer, the file keeps cairo's plain layout.
        return save_pdf(pdf, object_streams=text_layer)


def _title(prepared: _Prepared, title: str | None) -> str:
    """The given title, else the SVG's ``<title>``, else its first line of text."""
    revoked = any(line.text == REVOKED_MARK for line in prepared.lines)
    chosen = title or prepared.title or next(
        (line.text for line in prepared.lines if line.text != REVOKED_MARK), "Certificate"
    )
    return f"{REVOKED_MARK}: {chosen}" if revoked else chosen


def _description(prepared: _Prepared) -> str:
    """Alt text of a certificate picture: every line of text it shows, in order."""
    return "Certificate. " + " · ".join(line.text for line in prepared.lines)


def render_pdf(
    svg: str,
    *,
    font_book: FontBook | None = None,
    image_limits: ImageLimits = DEFAULT_LIMITS,
    title: str | None = None,
    lang: str | None = None,
    revoked: bool = False,
    text_layer: bool = True,
) -> bytes:
    """A one-page vector PDF of the filled certificate ``svg``.

    One user unit (px) becomes one PDF point, so a template drawn 842 × 595, as
    Sunbird's are, gives an A4 landscape page; mm and in keep their true size. Text
    is drawn as outlines; with ``text_layer`` (the default) every line is also
    written as invisible, selectable text over them, and the PDF gets a title
    (``title``, else the SVG's ``<title>``, else its first line) and a language
    (``lang``, else that of most of its letters) (:mod:`certflow.render.textlayer`).
    ``revoked`` draws a large "REVOKED" across the page.
    """
    prepared = _prepare(svg, font_book, image_limits, revoked=revoked)
    pdf = _finish_pdf(svg_to_pdf(prepared.svg, prepared.paints), prepared, title, lang, text_layer=text_layer)
    if pdf is None:
        pdf = _finish_pdf(svg_to_pdf(prepared.svg, prepared.paints, forms=False), prepared, title, lang,
                          text_layer=text_layer)
    assert pdf is not None  # without markers there is nothing to miss
    return pdf


def render_png(
    svg: str,
    *,
    scale: float = 2.0,
    font_book: FontBook | None = None,
    image_limits: ImageLimits = DEFAULT_LIMITS,
    title: str | None = None,
    description: str | None = None,
    lang: str | None = None,
    revoked: bool = False,
) -> bytes:
    """A PNG of the filled certificate ``svg``, ``scale`` pixels per user unit, with
    ``Title`` and ``Description`` (alt text: every line of the certificate's text,
    unless given) in iTXt chunks; ``revoked`` draws "REVOKED" across it."""
    prepared = _prepare(svg, font_book, image_limits, revoked=revoked)
    png = svg_to_png(prepared.svg, prepared.paints, scale)
    return add_png_text(
        png,
        {"Title": _title(prepared, title), "Description": description or _description(prepared)},
        lang=lang or document_language(prepared.lines),
    )
