"""Text layout for outlining: SVG styles as inherited, lengths, and a ``<text>``'s
pieces shaped and laid out into chunks (see :mod:`certflow.render.outline`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from certflow.render.fonts import FontBook, family_stems
from certflow.render.shaping import RTL_SCRIPTS, GlyphRun, itemize, line_width, shape_runs
from certflow.render.svg import hardened_parser

_SVG = "{http://www.w3.org/2000/svg}"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

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
