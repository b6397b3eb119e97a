"""Every ``<text>`` replaced by its shaped glyph outlines, shrunk to fit.

Lines are laid out by :mod:`certflow.render.layout`; here they are fitted to their
box or the page (see :func:`fit_factor`) and drawn as ``<path>`` elements, recording
each line for the PDF's text layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import cairocffi
from lxml import etree

from certflow.render.fonts import FontBook, default_font_book
from certflow.render.glyphs import GlyphOutline
from certflow.render.layout import (
    _DEFAULT_FONT_SIZE,
    _NUMBER,
    _OWN_COORDINATES,
    _SVG,
    _TEXT_ONLY_ATTRIBUTES,
    _Chunk,
    _layout,
    _length,
    _local,
    _parse,
    _Part,
    _Styles,
)
from certflow.render.textlayer import (
    IDENTITY,
    Affine,
    TextLine,
    multiply,
    parse_transform,
)

__all__ = ["GLYPHS", "MIN_SHRINK", "PAGE_MARGIN", "GlyphPaint", "fit_factor", "outline_text"]

#: Share of the page width kept clear on each side when a text has no box of its own.
PAGE_MARGIN = 0.08
#: Text is never set smaller than this share of its font size: past it, it is
#: condensed horizontally instead, which keeps it readable and on its own line.
MIN_SHRINK = 0.4

#: An attribute on a group whose text stays out of the PDF's text layer.
_NO_TEXT_LAYER = "data-certflow-no-text-layer"
#: The attribute of an outlined ``<path>`` naming its glyphs (an index into the
#: paints of one rendering) in place of path data.
GLYPHS = "data-certflow-glyphs"
#: Elements whose content cairosvg draws on a surface of its own.
_OWN_SURFACE = frozenset({"mask", "pattern"})


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


#: One glyph on the page: its outline, origin (user units) and scale (user units
#: per font unit, y up in the font).
Placement = tuple[GlyphOutline, float, float, float, float]


@dataclass(frozen=True, slots=True)
class GlyphPaint:
    """The glyphs of one shaped piece, placed on the page: what one outlined
    ``<path>`` draws.

    The renderer draws them straight from their cached cairo paths
    (:mod:`certflow.render.draw`); :meth:`path_data` is the same drawing as SVG path
    data, for :func:`outline_text` and for what cairosvg must draw itself.
    """

    placements: tuple[Placement, ...]

    def append_to(self, context: cairocffi.Context) -> None:
        """Add every glyph's outline to ``context``'s current path."""
        for outline, x, y, sx, sy in self.placements:
            outline.cairo.append_to(context, x, y, sx, -sy)

    def path_data(self) -> str:
        """SVG path data of all the glyphs."""
        return "".join(outline.path(x, y, sx, sy) for outline, x, y, sx, sy in self.placements)

    def pdf_path(self) -> str:
        """The glyphs as PDF path operators, in the same user space (y down)."""
        return "".join(outline.pdf_path(x, y, sx, sy) for outline, x, y, sx, sy in self.placements)

    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in user units, y down: a box holding every glyph."""
        x0 = y0 = float("inf")
        x1 = y1 = float("-inf")
        for outline, x, y, sx, sy in self.placements:
            if outline.bounds is None:
                continue
            gx0, gy0, gx1, gy1 = outline.bounds
            x0, x1 = min(x0, x + sx * gx0), max(x1, x + sx * gx1)
            y0, y1 = min(y0, y - sy * gy1), max(y1, y - sy * gy0)
        if x0 > x1:
            return 0.0, 0.0, 0.0, 0.0
        return x0, y0, x1, y1


def _glyph_paint(part: _Part, origin_x: float, origin_y: float, uniform: float, condense: float) -> GlyphPaint:
    """The glyphs of ``part`` that draw something, the chunk's left edge at ``origin_x``."""
    placements: list[Placement] = []
    sx_factor = uniform * condense
    for run in part.runs:
        scale = run.scale
        sx, sy = scale * sx_factor, scale * uniform
        font = run.font
        for glyph in run.glyphs:
            outline = font.outline(glyph.gid)
            if outline.xs:
                placements.append((outline, origin_x + (part.offset + glyph.x) * sx_factor,
                                   origin_y + part.baseline_shift + glyph.y * uniform, sx, sy))
    return GlyphPaint(tuple(placements))


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
    text: etree._Element,
    styles: _Styles,
    book: FontBook,
    lines: list[TextLine] | None = None,
    paints: list[GlyphPaint] | None = None,
) -> etree._Element:
    """A ``<g>`` of ``<path>`` outlines that draws what ``text`` would; each of its
    lines is added to ``lines`` (for the PDF's text layer) when given.

    With ``paints``, a path carries no path data but the index (:data:`GLYPHS`) of
    its glyphs, appended to ``paints``, for :mod:`certflow.render.draw`.
    """
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
            paint = _glyph_paint(part, left, chunk.y, uniform, condense)
            if not paint.placements:
                continue
            if paints is None:
                path = etree.SubElement(group, _SVG + "path", {"d": paint.path_data(), "fill-rule": "nonzero"})
            else:
                path = etree.SubElement(group, _SVG + "path", {GLYPHS: str(len(paints)), "fill-rule": "nonzero"})
                paints.append(paint)
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


def _outline_tree(
    root: etree._Element,
    book: FontBook,
    lines: list[TextLine] | None = None,
    paints: list[GlyphPaint] | None = None,
) -> int:
    """Replace every ``<text>`` under ``root`` with outlines; return how many.

    With ``paints``, outlines are left for :mod:`certflow.render.draw` to draw (see
    :func:`_outlined`), except those in a ``<mask>`` or ``<pattern>``: cairosvg
    draws these on surfaces of its own, which only read path data.
    """
    styles = _Styles()
    texts = [element for element in root.iter(_SVG + "text")]
    for text in texts:
        parent = text.getparent()
        if parent is None:
            continue
        own = None if paints is None or _in_own_surface(text) else paints
        parent.replace(text, _outlined(text, styles, book, lines, own))
    return len(texts)


def _in_own_surface(element: etree._Element) -> bool:
    """Whether cairosvg draws ``element`` on a separate surface (a mask or pattern)."""
    return any(_local(ancestor.tag) in _OWN_SURFACE for ancestor in element.iterancestors())




def outline_text(svg: str, font_book: FontBook | None = None) -> str:
    """``svg`` with every ``<text>`` replaced by shaped glyph outlines (``<path>``)."""
    root = _parse(svg)
    _outline_tree(root, font_book or default_font_book())
    return etree.tostring(root, encoding="unicode")
