"""cairosvg, with the certificate's glyphs drawn from cached cairo paths.

Outlined text reaches cairosvg as ``<path>`` elements that carry, instead of path
data, the index (:data:`certflow.render.outline.GLYPHS`) of their
:class:`~certflow.render.outline.GlyphPaint`. The surfaces here add those glyphs to
cairo's current path right before cairosvg's own ``draw`` of the element, which then
fills and strokes it like any other path: same colours, opacity, stroke and
inheritance, without cairosvg parsing a path string per glyph (most of a PDF's
time before).

cairosvg applies an element's own transform, clip, mask or filter after that point,
and paints gradients and patterns from the element's bounding box, which it computes
from path data. An outlined path never has the first kind of its own (they stay on
the outlines' group); should a stylesheet give it one, or its paint be a ``url(…)``,
the path gets its path data after all and cairosvg draws it as it always did.

In a PDF, a glyph path that is only filled, with one opaque colour, is painted as a
marker of :mod:`certflow.render.forms` instead, which the glyphs replace once cairo
has written the page (except while cairosvg collects a clip path, which needs the
path itself).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cairosvg.colors import color
from cairosvg.helpers import paint as paint_value
from cairosvg.parser import Tree
from cairosvg.surface import PDFSurface, PNGSurface

from certflow.render.forms import GlyphForm, new_nonce, paint_marker
from certflow.render.outline import GLYPHS, GlyphPaint

__all__ = ["DrawnPdf", "svg_to_pdf", "svg_to_png"]

#: Attributes that make cairosvg place, clip or compose a path after our glyphs
#: would already be on the current path: with any of them, cairosvg draws path data.
_OWN_GEOMETRY = frozenset({
    "transform", "transform-origin", "clip", "clip-path", "mask", "filter", "x", "y",
    "width", "height",
})


class _GlyphDrawing:
    """Mixin for a cairosvg surface: paths marked with :data:`GLYPHS` are drawn from
    ``paints``; with ``forms`` a list, the plainly filled ones as markers of
    :mod:`certflow.render.forms` recorded in it. cairosvg's ``Surface`` draws the
    whole document from ``__init__``, so these must be set before it runs."""

    _paints: Sequence[GlyphPaint]
    _forms: list[GlyphForm] | None = None
    _nonce: int = 0
    context: Any  # cairocffi.Context, set by cairosvg's Surface
    stroke_and_fill: bool  # False while cairosvg collects a clip path

    def draw(self, node: Any) -> None:  # cairosvg's Node is untyped
        index = node.get(GLYPHS)
        if index is not None and node.tag == "path":
            paint = self._paint(index)
            if paint is None:
                return  # not one of ours: _prepare strips the attribute from input
            if _needs_path_data(node):
                node["d"] = paint.path_data()
            elif self._forms is not None and self.stroke_and_fill and self._as_form(node, paint):
                return
            else:
                paint.append_to(self.context)
        super().draw(node)  # type: ignore[misc]  # cairosvg's Surface.draw, next in the MRO

    def _paint(self, index: str) -> GlyphPaint | None:
        try:
            number = int(index)
        except ValueError:
            return None
        return self._paints[number] if 0 <= number < len(self._paints) else None

    def _as_form(self, node: Any, paint: GlyphPaint) -> bool:
        """Paint a marker for ``paint`` if its path is only filled, with one opaque
        colour, as cairosvg would fill it; False (nothing done) otherwise."""
        assert self._forms is not None
        rgb = _opaque_fill(node)
        if rgb is None:
            return False
        if node.get("display", "inline") != "none" and node.get("visibility", "visible") != "hidden":
            paint_marker(self.context, len(self._forms), self._nonce, paint.bounds())
            self._forms.append(GlyphForm(paint, rgb))
        return True


def _opaque_fill(node: Any) -> tuple[float, float, float] | None:
    """The colour ``node`` is filled with, if it is filled with one opaque colour
    (nonzero rule) and not stroked: what cairosvg's ``draw`` computes from it."""
    try:
        opacity = float(node.get("opacity", 1))
        fill_source, fill_color = paint_value(node.get("fill", "black"))
        stroke_source, stroke_color = paint_value(node.get("stroke"))
        fill = color(fill_color, float(node.get("fill-opacity", 1)) * opacity)
        stroke = color(stroke_color, float(node.get("stroke-opacity", 1)) * opacity)
    except ValueError:
        return None
    if fill_source or stroke_source or fill[3] != 1 or stroke[3] != 0:
        return None
    if node.get("fill-rule") == "evenodd":
        return None
    return fill[0], fill[1], fill[2]


def _needs_path_data(node: Any) -> bool:
    """Whether cairosvg must see ``node``'s path data to draw it right."""
    if not _OWN_GEOMETRY.isdisjoint(node.keys()):
        return True
    return any("url(" in str(node.get(name, "")) for name in ("fill", "stroke"))


class _PDF(_GlyphDrawing, PDFSurface):  # type: ignore[misc]  # cairosvg ships no type information
    def __init__(
        self, tree: Tree, output: io.BytesIO, paints: Sequence[GlyphPaint], forms: list[GlyphForm] | None, nonce: int
    ) -> None:
        self._paints, self._forms, self._nonce = paints, forms, nonce
        # One user unit is one point: 72 dpi.
        super().__init__(tree, output, 72)


class _PNG(_GlyphDrawing, PNGSurface):  # type: ignore[misc]  # cairosvg ships no type information
    def __init__(self, tree: Tree, output: io.BytesIO | None, paints: Sequence[GlyphPaint], scale: float) -> None:
        self._paints = paints
        super().__init__(tree, output, 96, scale=scale)


def _tree(svg: bytes) -> Tree:
    # No url and unsafe=False: cairosvg resolves nothing outside the document.
    return Tree(bytestring=svg, unsafe=False)


@dataclass(slots=True)
class DrawnPdf:
    """cairo's PDF and, if markers were painted, what :func:`fill_forms` needs."""

    pdf: bytes
    forms: list[GlyphForm]
    nonce: int


def svg_to_pdf(svg: bytes, paints: Sequence[GlyphPaint], *, forms: bool = True) -> DrawnPdf:
    """A one-page PDF of ``svg``, one user unit per point, what cairosvg's
    ``svg2pdf(dpi=72)`` makes of it, with the glyphs ``paints`` hold: as markers to
    fill (:mod:`certflow.render.forms`) where they can be, with ``forms``."""
    output = io.BytesIO()
    drawn = DrawnPdf(b"", [], new_nonce())
    _PDF(_tree(svg), output, paints, drawn.forms if forms else None, drawn.nonce).finish()
    drawn.pdf = output.getvalue()
    return drawn


def svg_to_png(svg: bytes, paints: Sequence[GlyphPaint], scale: float) -> bytes:
    """A PNG of ``svg``, ``scale`` pixels per user unit, as cairosvg's ``svg2png``.

    Encoded by cairo (libpng's defaults). Pillow at deflate level 1 was measured too:
    15 % faster at scale 2 for a file 37 % larger, not worth it for a download.
    """
    output = io.BytesIO()
    _PNG(_tree(svg), output, paints, scale).finish()
    return output.getvalue()
