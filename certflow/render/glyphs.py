"""A glyph's outline, read once from its font, in the three forms certflow draws it.

An outline is recorded by a fontTools pen (:class:`_TemplatePen`) and kept as an
SVG path template (text outlined in a served SVG), a cairo path (what the renderer
draws) and a PDF path template (glyph forms written into a PDF): placing a glyph is
then arithmetic and one ``%`` format, with no pen and no font on the hot path.
Which font a glyph is read from is :mod:`certflow.render.fonts`'.
"""

from __future__ import annotations

from dataclasses import dataclass

from fontTools.pens.basePen import BasePen

from certflow.render.cairopath import CLOSE_PATH, CURVE_TO, LINE_TO, MOVE_TO, CairoPath, Segment, encode_path


@dataclass(frozen=True, slots=True, eq=False)
class GlyphOutline:
    """A glyph's outline in font units, y up: as an SVG path template, as a cairo
    path and as a PDF path template.

    ``template`` holds ``%.1f`` for every coordinate and ``xs``/``ys`` the values, so
    placing the glyph in SVG (:func:`certflow.render.outline.outline_text`) is
    arithmetic plus one C-level ``%`` format: no pen, no fontTools, no lock on the
    hot path. ``cairo`` is what the renderer draws (:mod:`certflow.render.cairopath`)
    and ``pdf_template`` (cubic curves only, ``%.2f`` per coordinate of
    ``pdf_xs``/``pdf_ys``) what it writes into a PDF itself
    (:mod:`certflow.render.forms`). Compared and hashed by identity: each is made
    once per font and glyph, and used as a cache key.
    """

    template: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    cairo: CairoPath
    pdf_template: str
    pdf_xs: tuple[float, ...]
    pdf_ys: tuple[float, ...]
    #: (x min, y min, x max, y max) of every point, control points included (a box
    #: that holds the glyph), or None for a glyph that draws nothing.
    bounds: tuple[float, float, float, float] | None

    def path(self, x: float, y: float, sx: float, sy: float) -> str:
        """SVG path data with the origin at (``x``, ``y``) in user units, y down."""
        if not self.xs:
            return self.template
        return self.template % _placed(self.xs, self.ys, x, y, sx, sy)

    def pdf_path(self, x: float, y: float, sx: float, sy: float) -> str:
        """PDF path operators with the origin at (``x``, ``y``), y down, as in SVG."""
        return self.pdf_template % _placed(self.pdf_xs, self.pdf_ys, x, y, sx, sy)


#: The PDF path operator of each cairo segment kind.
_PDF_OPERATORS = {MOVE_TO: "m", LINE_TO: "l", CURVE_TO: "c", CLOSE_PATH: "h"}


def _placed(
    xs: tuple[float, ...], ys: tuple[float, ...], x: float, y: float, sx: float, sy: float
) -> tuple[float, ...]:
    """A glyph's points scaled by (``sx``, ``sy``) about (``x``, ``y``), y turned down
    (font units point up, SVG's and the PDF's page coordinates here point down)."""
    values: list[float] = []
    append = values.append
    for gx, gy in zip(xs, ys, strict=True):
        append(x + sx * gx)
        append(y - sy * gy)
    return tuple(values)


def _outline_of(pen: _TemplatePen) -> GlyphOutline:
    """What ``pen`` recorded, in every form :class:`GlyphOutline` keeps."""
    parts: list[str] = []
    pdf_xs: list[float] = []
    pdf_ys: list[float] = []
    for kind, coordinates in pen.segments:
        parts.append("%.2f %.2f " * (len(coordinates) // 2) + _PDF_OPERATORS[kind] + "\n")
        pdf_xs.extend(coordinates[0::2])
        pdf_ys.extend(coordinates[1::2])
    bounds = (min(pdf_xs), min(pdf_ys), max(pdf_xs), max(pdf_ys)) if pdf_xs else None
    return GlyphOutline(
        "".join(pen.parts), tuple(pen.xs), tuple(pen.ys), encode_path(pen.segments),
        "".join(parts), tuple(pdf_xs), tuple(pdf_ys), bounds,
    )


Point = tuple[float, float]


class _TemplatePen(BasePen):  # type: ignore[misc]  # fontTools ships no type information
    """Records a glyph as an SVG path template and as cairo segments.

    ``BasePen`` decomposes components and splits TrueType's multi-point quadratic
    curves into SVG's one-point ``Q``; cairo has only cubic curves, so each
    quadratic piece is also recorded as the cubic that draws exactly the same curve.
    """

    def __init__(self, glyph_set: object) -> None:
        super().__init__(glyph_set)
        self.parts: list[str] = []
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.segments: list[Segment] = []
        #: The pen's own current point: BasePen's is private and not updated by
        #: the ``qCurveTo`` shortcut below.
        self._here: Point = (0.0, 0.0)

    def _points(self, command: str, *points: Point) -> None:
        self.parts.append(command + " ".join("%.1f %.1f" for _ in points))
        for px, py in points:
            self.xs.append(px)
            self.ys.append(py)

    def _quadratic(self, control: Point, end: Point) -> None:
        """One quadratic piece from the current point, as a cairo cubic."""
        (x0, y0), (cx, cy), (x, y) = self._here, control, end
        self.segments.append((CURVE_TO, (x0 + 2 / 3 * (cx - x0), y0 + 2 / 3 * (cy - y0),
                                         x + 2 / 3 * (cx - x), y + 2 / 3 * (cy - y), x, y)))
        self._here = end

    def _moveTo(self, pt: Point) -> None:  # noqa: N802 - BasePen's hook name
        self._points("M", pt)
        self.segments.append((MOVE_TO, pt))
        self._here = pt

    def _lineTo(self, pt: Point) -> None:  # noqa: N802 - BasePen's hook name
        self._points("L", pt)
        self.segments.append((LINE_TO, pt))
        self._here = pt

    def _curveToOne(self, p1: Point, p2: Point, p3: Point) -> None:  # noqa: N802 - BasePen's hook name
        self._points("C", p1, p2, p3)
        self.segments.append((CURVE_TO, (*p1, *p2, *p3)))
        self._here = p3

    def _qCurveToOne(self, p1: Point, p2: Point) -> None:  # noqa: N802 - BasePen's hook name
        self._points("Q", p1, p2)
        self._quadratic(p1, p2)

    def qCurveTo(self, *points: Point | None) -> None:  # noqa: N802 - BasePen's hook name
        """TrueType's run of off-curve points as one ``Q`` and then ``T`` per point.

        The implied on-curve point between two off-curve points is their midpoint,
        so the next control point is exactly the reflection ``T`` assumes: the same
        curve with half the coordinates in the SVG path (:func:`outline_text`'s
        output stays small).
        """
        if len(points) < 3 or points[-1] is None:
            super().qCurveTo(*points)
            return
        controls = points[:-1]
        end = points[-1]
        first, second = controls[0], controls[1]
        assert first is not None and second is not None and end is not None
        middle = ((first[0] + second[0]) / 2, (first[1] + second[1]) / 2)
        self._points("Q", first, middle)
        self._quadratic(first, middle)
        for index in range(1, len(controls) - 1):
            here, after = controls[index], controls[index + 1]
            assert here is not None and after is not None
            middle = ((here[0] + after[0]) / 2, (here[1] + after[1]) / 2)
            self._points("T", middle)
            self._quadratic(here, middle)
        last = controls[-1]
        assert last is not None
        self._points("T", end)
        self._quadratic(last, end)

    def _closePath(self) -> None:  # noqa: N802 - BasePen's hook name
        self.parts.append("Z")
        self.segments.append((CLOSE_PATH, ()))

    def _endPath(self) -> None:  # noqa: N802 - BasePen's hook name
        pass


def read_outline(glyph_set: object, glyph_name: str | None) -> GlyphOutline:
    """The outline of ``glyph_name`` in ``glyph_set`` (a fontTools glyph set); an
    empty one for None (a glyph id outside the font)."""
    pen = _TemplatePen(glyph_set)
    if glyph_name is not None:
        glyph_set[glyph_name].draw(pen)  # type: ignore[index]
    return _outline_of(pen)
