"""Glyph outlines kept as cairo paths, ready to append to a drawing without Python.

Handing cairosvg glyph outlines as SVG path strings made it parse every coordinate
of every glyph with regular expressions, for every certificate: about half the time
of a PDF. A glyph's outline never changes, so it is turned into a ``cairo_path_t``
once per glyph and process (in font units, TrueType's quadratic curves converted to
cubic ones, which is what cairo draws), and each occurrence on a page is one
``cairo_append_path`` under a translation and scale: a handful of C calls per glyph.

``cairocffi.cairo`` (the C library) and ``Context._pointer`` are the low-level API
cairocffi documents for calling cairo functions it does not wrap with its own
types; ``append_path`` itself would rebuild the C array from Python on every call.
"""

from __future__ import annotations

from collections.abc import Sequence

import cairocffi
from cairocffi import cairo as cairo_c
from cairocffi import ffi

__all__ = ["CLOSE_PATH", "CURVE_TO", "LINE_TO", "MOVE_TO", "CairoPath", "Segment", "encode_path"]

MOVE_TO: int = cairocffi.PATH_MOVE_TO
LINE_TO: int = cairocffi.PATH_LINE_TO
CURVE_TO: int = cairocffi.PATH_CURVE_TO
CLOSE_PATH: int = cairocffi.PATH_CLOSE_PATH

#: Points that follow each kind of segment's header in ``cairo_path_data_t``.
_POINTS = {MOVE_TO: 1, LINE_TO: 1, CURVE_TO: 3, CLOSE_PATH: 0}

#: One segment: its kind and its points' coordinates, x and y alternating.
Segment = tuple[int, tuple[float, ...]]


class CairoPath:
    """An immutable ``cairo_path_t`` in the C memory it owns.

    cairo only reads the path it is given to append, so one instance may be
    appended by any number of threads at once.
    """

    __slots__ = ("_data", "_path", "empty")

    def __init__(self, data: object, path: object, empty: bool) -> None:
        # ``_data`` is the array ``_path`` points into: kept alive with it.
        self._data = data
        self._path = path
        self.empty = empty

    def append_to(self, context: cairocffi.Context, x: float, y: float, sx: float, sy: float) -> None:
        """Add the path to ``context``'s current path, its origin at (``x``, ``y``)
        in user units, scaled by ``sx`` and ``sy`` (a negative ``sy`` flips the
        font's y-up units onto SVG's y-down page)."""
        if self.empty:
            return
        pointer = context._pointer  # noqa: SLF001 - cairocffi's documented low-level handle
        cairo_c.cairo_save(pointer)
        cairo_c.cairo_translate(pointer, x, y)
        cairo_c.cairo_scale(pointer, sx, sy)
        cairo_c.cairo_append_path(pointer, self._path)
        cairo_c.cairo_restore(pointer)


def encode_path(segments: Sequence[Segment]) -> CairoPath:
    """``segments`` as a cairo path (ValueError on a segment with the wrong number
    of coordinates: cairo would read past the array)."""
    length = 0
    for kind, coordinates in segments:
        if len(coordinates) != 2 * _POINTS[kind]:
            raise ValueError(f"path segment {kind} takes {2 * _POINTS[kind]} coordinates, not {len(coordinates)}")
        length += 1 + _POINTS[kind]
    data = ffi.new("cairo_path_data_t[]", max(length, 1))
    position = 0
    for kind, coordinates in segments:
        header = data[position].header
        header.type = kind
        header.length = 1 + len(coordinates) // 2
        position += 1
        for index in range(0, len(coordinates), 2):
            point = data[position].point
            point.x = coordinates[index]
            point.y = coordinates[index + 1]
            position += 1
    path = ffi.new("cairo_path_t *", {"status": cairocffi.STATUS_SUCCESS, "data": data, "num_data": length})
    return CairoPath(data, path, empty=length == 0)
