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
not consulted. Text that would not fit is shrunk (see :func:`fit_factor`).

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

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import cairosvg
from lxml import etree

from certflow.render.fonts import FontBook, default_font_book, family_stems
from certflow.render.images import DEFAULT_LIMITS, ImageLimits, sanitise_inline_images
from certflow.render.shaping import RTL_SCRIPTS, GlyphRun, itemize, line_width, shape_runs
from certflow.render.svg import hardened_parser, remove_element
from certflow.render.textlayer import (
    IDENTITY,
    Affine,
    TextLine,
    add_png_text,
    add_text_layer,
    document_language,
    multiply,
    parse_transform,
)

__all__ = [
    "MIN_SHRINK",
    "PAGE_MARGIN",
    "REVOKED_MARK",
    "add_revoked_mark",
    "drop_remote_images",
    "fit_factor",
    "outline_text",
    "prepare_svg",
    "render_pdf",
    "render_png",
]

_SVG = "{http://www.w3.org/2000/svg}"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

#: Share of the page width kept clear on each side when a text has no box of its own.
PAGE_MARGIN = 0.08
#: Text is never set smaller than this share of its font size: past it, it is
#: condensed horizontally instead, which keeps it readable and on its own line.
MIN_SHRINK = 0.4

#: Elements whose text content is part of a ``<text>``'s line.
_INLINE_TEXT = frozenset({"tspan", "a", "textPath"})

#: Attributes that only make sense on text; everything else (fill, stroke, opacity,
#: id, class, transform, clip-path, style...) is carried over to the outlines' group.
_TEXT_ONLY_ATTRIBUTES = frozenset({
    "x", "y", "dx", "dy", "rotate", "textLength", "lengthAdjust", "font", "font-family",
    "font-size", "font-size-adjust", "font-stretch", "font-style", "font-variant",
    "font-weight", "text-anchor", "letter-spacing", "word-spacing", "kerning",
    "direction", "unicode-bidi", "writing-mode", "dominant-baseline",
    "alignment-baseline", "baseline-shift", "text-rendering", "white-space",
    "data-max-width", _XML_SPACE, _XML_LANG, "lang",
})

#: Containers whose coordinates are not the page's, so the page cannot bound text.
_OWN_COORDINATES = frozenset({"svg", "symbol", "pattern", "marker", "clipPath", "mask", "defs"})

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_LENGTH = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zA-Z%]*)\s*$")
#: User units per unit; SVG's px is the user unit.
_UNITS = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4}
_FONT_SIZE_KEYWORDS = {
    "xx-small": 9.0, "x-small": 10.0, "small": 13.0, "medium": 16.0,
    "large": 18.0, "x-large": 24.0, "xx-large": 32.0,
}
_DEFAULT_FONT_SIZE = 16.0


def _parse(svg: str) -> etree._Element:
    # Encoded first: lxml refuses a str that carries an encoding declaration.
    return etree.fromstring(svg.encode("utf-8"), hardened_parser())


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


# --------------------------------------------------------------------------- styles


class _Styles:
    """Computed text properties of elements of one document, as SVG inherits them.

    A declaration in ``style="..."`` beats the presentation attribute of the same
    name. Results are memoised per element because every glyph run asks for them.
    """

    def __init__(self) -> None:
        self._declared: dict[etree._Element, dict[str, str]] = {}
        self._sizes: dict[etree._Element, float] = {}

    def declared(self, element: etree._Element, name: str) -> str | None:
        props = self._declared.get(element)
        if props is None:
            props = {}
            for declaration in (element.get("style") or "").split(";"):
                key, colon, declared = declaration.partition(":")
                if colon:
                    props[key.strip().lower()] = declared.replace("!important", "").strip()
            self._declared[element] = props
        value = props.get(name)
        if value is None:
            value = element.get(name)
        if value is None or value.strip() in ("", "inherit"):
            return None
        return value.strip()

    def inherited(self, element: etree._Element | None, name: str) -> str | None:
        while element is not None:
            value = self.declared(element, name)
            if value is not None:
                return value
            element = element.getparent()
        return None

    def font_size(self, element: etree._Element | None) -> float:
        if element is None:
            return _DEFAULT_FONT_SIZE
        cached = self._sizes.get(element)
        if cached is not None:
            return cached
        parent_size = self.font_size(element.getparent())
        value = self.declared(element, "font-size")
        size = parent_size
        if value is not None:
            keyword = _FONT_SIZE_KEYWORDS.get(value.lower())
            if keyword is not None:
                size = keyword
            elif value.lower() == "larger":
                size = parent_size * 1.2
            elif value.lower() == "smaller":
                size = parent_size / 1.2
            else:
                parsed = _length(value, parent_size)
                if parsed is not None and parsed > 0:
                    size = parsed
        self._sizes[element] = size
        return size

    def lang(self, element: etree._Element) -> str | None:
        node: etree._Element | None = element
        while node is not None:
            value = node.get(_XML_LANG) or node.get("lang")
            if value:
                return value
            node = node.getparent()
        return None

    def preserve_space(self, element: etree._Element) -> bool:
        node: etree._Element | None = element
        while node is not None:
            value = node.get(_XML_SPACE)
            if value:
                return value == "preserve"
            node = node.getparent()
        return False


def _length(value: str | None, font_size: float) -> float | None:
    """An SVG length in user units; ``em`` and ``%`` are relative to ``font_size``."""
    if not value:
        return None
    match = _LENGTH.match(value)
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit == "em":
        return number * font_size
    if unit == "%":
        return number * font_size / 100
    if unit == "ex":
        return number * font_size / 2
    if unit == "rem":
        return number * _DEFAULT_FONT_SIZE
    scale = _UNITS.get(unit)
    return None if scale is None else number * scale


def _first_length(value: str | None, font_size: float) -> float | None:
    """First of an SVG coordinate list (``x="10 20 30"``): per-glyph lists are not laid out."""
    if not value:
        return None
    first = value.replace(",", " ").split()
    return _length(first[0], font_size) if first else None


# --------------------------------------------------------------------------- layout


@dataclass(slots=True)
class _Piece:
    """Text from one element of a ``<text>`` (its own text or a child's tail)."""

    text: str
    element: etree._Element
    x: float | None = None
    y: float | None = None
    dx: float = 0.0
    dy: float = 0.0


@dataclass(slots=True)
class _Part:
    """A shaped piece inside a chunk, ``offset`` px from the chunk's left edge."""

    piece: _Piece
    runs: list[GlyphRun]
    offset: float = 0.0
    baseline_shift: float = 0.0

    @property
    def width(self) -> float:
        return line_width(self.runs)


@dataclass(slots=True)
class _Chunk:
    """SVG's "text chunk": text anchored at one absolute position."""

    x: float
    y: float
    anchor: str
    parts: list[_Part] = field(default_factory=list)
    width: float = 0.0

    def anchor_shift(self) -> float:
        """How far left of ``x`` the chunk's left edge lies."""
        if self.anchor == "middle":
            return self.width / 2
        if self.anchor == "end":
            return self.width
        return 0.0


def _collect_pieces(text: etree._Element) -> list[_Piece]:
    """Every stretch of character data of ``text``, in document order, with the
    absolute or relative position an element puts on its first character."""
    pieces: list[_Piece] = []
    pending: dict[str, float] = {}

    def emit(value: str | None, owner: etree._Element) -> None:
        if not value:
            return
        pieces.append(_Piece(value, owner, pending.pop("x", None), pending.pop("y", None),
                             pending.pop("dx", 0.0), pending.pop("dy", 0.0)))

    def visit(element: etree._Element) -> None:
        own: dict[str, float] = {}
        for name in ("x", "y", "dx", "dy"):
            value = _first_length(element.get(name), _DEFAULT_FONT_SIZE)
            if value is not None:
                pending[name] = own[name] = value
        emit(element.text, element)
        for child in element:
            if _local(child.tag) in _INLINE_TEXT:
                visit(child)
            emit(child.tail, element)
        if element is not text:
            # A position on a tspan with no text moves nothing after it.
            for name, value in own.items():
                if pending.get(name) == value:
                    del pending[name]

    visit(text)
    return pieces


def _normalise_space(pieces: list[_Piece], preserve: bool) -> list[_Piece]:
    """SVG's ``xml:space`` rules across the whole element: newlines and tabs become
    spaces; by default runs of spaces collapse and the ends are trimmed."""
    for piece in pieces:
        piece.text = piece.text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")
    if preserve:
        return _drop_empty(pieces)
    previous_space = True  # trims the leading space of the whole element
    for piece in pieces:
        collapsed = re.sub(" {2,}", " ", piece.text)
        if previous_space and collapsed.startswith(" "):
            collapsed = collapsed[1:]
        if collapsed:
            previous_space = collapsed.endswith(" ")
        piece.text = collapsed
    for piece in reversed(pieces):  # trims the trailing space of the whole element
        piece.text = piece.text.rstrip(" ")
        if piece.text:
            break
    return _drop_empty(pieces)


def _drop_empty(pieces: list[_Piece]) -> list[_Piece]:
    """Pieces with text; an emptied piece's position passes to the next one, so
    ``<text x="10">\n  <tspan>Name</tspan></text>`` still starts at 10."""
    kept: list[_Piece] = []
    carry: _Piece | None = None
    for piece in pieces:
        if carry is not None:
            piece.x = piece.x if piece.x is not None else carry.x
            piece.y = piece.y if piece.y is not None else carry.y
            piece.dx += carry.dx
            piece.dy += carry.dy
            carry = None
        if piece.text:
            kept.append(piece)
        else:
            carry = piece
    return kept


def _shape_piece(piece: _Piece, styles: _Styles, book: FontBook) -> list[GlyphRun]:
    element = piece.element
    size = styles.font_size(element)
    style = (styles.inherited(element, "font-style") or "normal").lower()
    font_family = styles.inherited(element, "font-family") or ""
    first_family = font_family.lower().split(",")[0].strip(" '\"")
    spacing_value = styles.inherited(element, "letter-spacing")
    spacing = 0.0 if spacing_value in (None, "normal") else (_length(spacing_value, size) or 0.0)
    return shape_runs(
        piece.text,
        size,
        styles.inherited(element, "font-weight") or 400,
        italic=style in ("italic", "oblique"),
        serif="serif" in first_family and "sans" not in first_family,
        lang=styles.lang(element),
        letter_spacing=spacing,
        font_book=book,
        families=family_stems(font_family),
    )


def _is_rtl(text: str) -> bool:
    """Paragraph direction of a chunk: that of its first letter."""
    items = itemize(text)
    first = min(items, key=lambda item: item.start) if items else None
    return first is not None and first.script in RTL_SCRIPTS


def _layout(text: etree._Element, styles: _Styles, book: FontBook) -> list[_Chunk]:
    """Shape the pieces of ``text`` and group them into anchored chunks."""
    pieces = _normalise_space(_collect_pieces(text), styles.preserve_space(text))
    chunks: list[_Chunk] = []
    x = y = 0.0
    for piece in pieces:
        if not chunks or piece.x is not None or piece.y is not None:
            if chunks:
                # A tspan that only sets y goes on where the previous line ended.
                last = _close_chunk(chunks[-1])
                x = last.x - last.anchor_shift() + last.width
            x = piece.x if piece.x is not None else x
            y = piece.y if piece.y is not None else y
            anchor = (styles.inherited(piece.element, "text-anchor") or "start").lower()
            if (styles.inherited(piece.element, "direction") or "ltr").lower() == "rtl":
                anchor = {"start": "end", "end": "start"}.get(anchor, anchor)
            chunks.append(_Chunk(x, y, anchor))
        chunk = chunks[-1]
        y += piece.dy
        chunk.parts.append(_Part(piece, _shape_piece(piece, styles, book), baseline_shift=y - chunk.y))
    if chunks:
        _close_chunk(chunks[-1])
    return chunks


def _close_chunk(chunk: _Chunk) -> _Chunk:
    """Place the chunk's parts side by side and set its width.

    Pieces of a right-to-left line (a name split over tspans) go right to left.
    """
    ordered = chunk.parts
    if len(ordered) > 1 and _is_rtl("".join(part.piece.text for part in ordered)):
        ordered = ordered[::-1]
    pen = 0.0
    for part in ordered:
        pen += part.piece.dx
        part.offset = pen
        pen += part.width
    chunk.width = pen
    return chunk


# --------------------------------------------------------------------------- fitting


def fit_factor(width: float, box: float | None) -> float:
    """How much to scale a line ``width`` px wide so it fits in ``box`` px (≤ 1).

    This is the total horizontal factor; :func:`_split_factor` turns it into a
    smaller font size down to :data:`MIN_SHRINK`, then horizontal condensing.
    """
    if box is None or box <= 0 or width <= box:
        return 1.0
    return box / width


def _split_factor(factor: float) -> tuple[float, float]:
    """(uniform scale, extra horizontal scale) whose product is ``factor``."""
    uniform = max(factor, MIN_SHRINK)
    return uniform, factor / uniform


def _page(root: etree._Element) -> tuple[float, float] | None:
    """(left, width) of the page in user units, from the viewBox or width."""
    view_box = root.get("viewBox")
    if view_box:
        numbers = [float(n) for n in _NUMBER.findall(view_box)]
        if len(numbers) == 4 and numbers[2] > 0:
            return numbers[0], numbers[2]
    width = _length(root.get("width"), _DEFAULT_FONT_SIZE)
    return (0.0, width) if width and width > 0 else None


def _in_page_coordinates(text: etree._Element) -> bool:
    """Whether ``text``'s user units are the root's: no transform or nested viewport."""
    node: etree._Element | None = text
    while node is not None and node.getparent() is not None:
        if node.get("transform") or _local(node.tag) in _OWN_COORDINATES:
            return False
        node = node.getparent()
    return True


def _page_box(chunk: _Chunk, page: tuple[float, float]) -> float | None:
    """Width available to ``chunk`` between its anchor and the page margins."""
    left_edge, width = page
    for margin in (PAGE_MARGIN, 0.0):
        left, right = left_edge + margin * width, left_edge + (1 - margin) * width
        if chunk.anchor == "middle":
            box = 2 * min(chunk.x - left, right - chunk.x)
        elif chunk.anchor == "end":
            box = chunk.x - left
        else:
            box = right - chunk.x
        if box > 0.1 * width:
            return box
    return None


def _shrink(text: etree._Element, chunks: list[_Chunk], styles: _Styles) -> float:
    """The element's fit factor: its own box (``data-max-width``, else
    ``textLength``) or, in page coordinates, the page minus its margins."""
    size = styles.font_size(text)
    box = _length(text.get("data-max-width"), size) or _length(text.get("textLength"), size)
    if box is not None:
        return min((fit_factor(chunk.width, box) for chunk in chunks), default=1.0)
    root = text.getroottree().getroot()
    page = _page(root)
    if page is None or not _in_page_coordinates(text):
        return 1.0
    return min((fit_factor(chunk.width, _page_box(chunk, page)) for chunk in chunks), default=1.0)


# --------------------------------------------------------------------------- output


def _glyph_paths(part: _Part, origin_x: float, origin_y: float, uniform: float, condense: float) -> str:
    """Path data of all glyphs of ``part``, the chunk's left edge at ``origin_x``."""
    out: list[str] = []
    sx_factor = uniform * condense
    for run in part.runs:
        scale = run.scale
        sx, sy = scale * sx_factor, scale * uniform
        font = run.font
        for glyph in run.glyphs:
            outline = font.outline(glyph.gid)
            if outline.xs:
                out.append(outline.path(origin_x + (part.offset + glyph.x) * sx_factor,
                                        origin_y + part.baseline_shift + glyph.y * uniform, sx, sy))
    return "".join(out)


def _painting_attributes(element: etree._Element) -> Iterator[tuple[str, str]]:
    for key, value in element.attrib.items():
        if key not in _TEXT_ONLY_ATTRIBUTES:
            # lxml-stubs type attribute names and values str | bytes; lxml gives str.
            yield cast(str, key), cast(str, value)


def _user_space(text: etree._Element) -> Affine | None:
    """The matrix from ``text``'s coordinates to the root's user space, or None when
    the text is not drawn on the page as is (inside ``defs``, a symbol, a nested
    viewport, or under ``display="none"``)."""
    matrix = IDENTITY
    node: etree._Element | None = text
    while node is not None and node.getparent() is not None:
        if (
            _local(node.tag) in _OWN_COORDINATES
            or node.get(_NO_TEXT_LAYER)
            or node.get("display") == "none"
            or "display:none" in (node.get("style") or "").replace(" ", "")
        ):
            return None
        matrix = multiply(parse_transform(node.get("transform")), matrix)
        node = node.getparent()
    return matrix


def _outlined(
    text: etree._Element, styles: _Styles, book: FontBook, lines: list[TextLine] | None = None
) -> etree._Element:
    """A ``<g>`` of ``<path>`` outlines that draws what ``text`` would; each of its
    lines is added to ``lines`` (for the PDF's text layer) when given."""
    chunks = _layout(text, styles, book)
    uniform, condense = _split_factor(_shrink(text, chunks, styles))
    matrix = _user_space(text) if lines is not None else None
    if lines is not None and matrix is not None:
        for chunk in chunks:
            words = "".join(part.piece.text for part in chunk.parts).strip()
            if words:
                size = max(styles.font_size(part.piece.element) for part in chunk.parts) * uniform
                lines.append(TextLine(
                    words, chunk.x - chunk.anchor_shift() * uniform * condense, chunk.y,
                    chunk.width * uniform * condense, size, matrix,
                ))
    group = etree.Element(_SVG + "g")
    for key, value in _painting_attributes(text):
        group.set(key, value)
    label = " ".join("".join(part.piece.text for part in chunk.parts).strip() for chunk in chunks).strip()
    if label:
        group.set("aria-label", label)
    for chunk in chunks:
        left = chunk.x - chunk.anchor_shift() * uniform * condense
        for part in chunk.parts:
            d = _glyph_paths(part, left, chunk.y, uniform, condense)
            if not d:
                continue
            path = etree.SubElement(group, _SVG + "path", {"d": d, "fill-rule": "nonzero"})
            if part.piece.element is not text:
                _style_like_tspan(path, part.piece.element, text)
    group.tail = text.tail
    return group


def _style_like_tspan(path: etree._Element, element: etree._Element, text: etree._Element) -> None:
    """Give ``path`` the painting attributes of the tspans between it and ``text``,
    innermost last so it wins, as inheritance would."""
    chain: list[etree._Element] = []
    node: etree._Element | None = element
    while node is not None and node is not text:
        chain.append(node)
        node = node.getparent()
    for ancestor in reversed(chain):
        for key, value in _painting_attributes(ancestor):
            if key != "id":
                path.set(key, value)


def _outline_tree(root: etree._Element, book: FontBook, lines: list[TextLine] | None = None) -> int:
    """Replace every ``<text>`` under ``root`` with outlines; return how many."""
    styles = _Styles()
    texts = [element for element in root.iter(_SVG + "text")]
    for text in texts:
        parent = text.getparent()
        if parent is None:
            continue
        parent.replace(text, _outlined(text, styles, book, lines))
    return len(texts)


#: The word drawn across a revoked certificate.
REVOKED_MARK = "REVOKED"
#: An attribute on a group whose text stays out of the PDF's text layer.
_NO_TEXT_LAYER = "data-certflow-no-text-layer"


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


def outline_text(svg: str, font_book: FontBook | None = None) -> str:
    """``svg`` with every ``<text>`` replaced by shaped glyph outlines (``<path>``)."""
    root = _parse(svg)
    _outline_tree(root, font_book or default_font_book())
    return etree.tostring(root, encoding="unicode")


def prepare_svg(
    svg: str, font_book: FontBook | None = None, image_limits: ImageLimits = DEFAULT_LIMITS
) -> bytes:
    """What the renderer hands to cairosvg: text outlined, remote images dropped,
    inline images checked and re-encoded (or dropped)."""
    return _prepare(svg, font_book, image_limits).svg


@dataclass(slots=True)
class _Prepared:
    svg: bytes
    lines: list[TextLine]
    view_box: tuple[float, float, float, float] | None
    title: str


def _prepare(
    svg: str, font_book: FontBook | None, image_limits: ImageLimits, *, revoked: bool = False
) -> _Prepared:
    root = _parse(svg)
    if revoked:
        add_revoked_mark(root)
    title_element = root.find(_SVG + "title")
    title = " ".join((title_element.text or "").split()) if title_element is not None else ""
    lines: list[TextLine] = []
    _outline_tree(root, font_book or default_font_book(), lines)
    if revoked:
        x, y, width, height = _page_size(root)
        size = min(width, height) / 9
        lines.insert(0, TextLine(REVOKED_MARK, x + width * 0.3, y + height / 2, width * 0.4, size))
        for element in root.iter():
            element.attrib.pop(_NO_TEXT_LAYER, None)  # type: ignore[call-overload]  # lxml-stubs lack pop's None default
    drop_remote_images(root)
    sanitise_inline_images(root, image_limits)
    return _Prepared(etree.tostring(root, encoding="utf-8"), lines, _view_box(root), title)


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
    # No url and unsafe=False: cairosvg resolves nothing outside the document.
    pdf: bytes = cairosvg.svg2pdf(bytestring=prepared.svg, dpi=72, unsafe=False)
    if not text_layer:
        return pdf
    return add_text_layer(
        pdf, prepared.lines, view_box=prepared.view_box, title=_title(prepared, title),
        lang=lang or document_language(prepared.lines),
    )


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
    png = cairosvg.svg2png(bytestring=prepared.svg, scale=scale, unsafe=False)
    return add_png_text(
        png,
        {"Title": _title(prepared, title), "Description": description or _description(prepared)},
        lang=lang or document_language(prepared.lines),
    )
