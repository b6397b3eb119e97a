"""The certificate's glyphs written into its PDF as form XObjects made here, the
template's fixed lines compressed once and reused by every certificate.

Once cairosvg no longer parses path strings (:mod:`certflow.render.draw`), most of
a PDF's time is cairo writing the glyphs' outlines: thousands of curve operators
formatted number by number and deflated, for every certificate, though most of them
(the heading, "This is to certify that", the course, the issuer) are the same on
every certificate of a template.

So where a glyph path is filled with one opaque colour (what certificate text is),
the renderer paints a *marker* instead (:func:`paint_marker`): a recording surface
the size of the glyphs, which cairo writes as a form XObject (``/x7 Do``) in exactly
the place, clip and transformation the glyphs would have had. The marker fills its
box twice, in a colour that encodes its number and in one drawn at random for the
rendering, which nothing in a template can know. After cairo has written the page,
:func:`fill_forms` finds each marker's form XObject and replaces its content with
the glyphs' outlines and their colour, the compressed stream taken from a cache
when the same glyphs in the same place and colour were written before.

The PDF draws what the same paths drawn by cairo would (same outlines, same user
space, to 1/100 of a point). Should a marker not be found (a future cairo writing
recordings inline, say), the renderer draws that certificate's glyphs through
cairo again (:func:`certflow.render.pdf.render_pdf`), never a marker.
"""

from __future__ import annotations

import re
import secrets
import threading
import zlib
from dataclasses import dataclass

import cairocffi
import pikepdf
from cachetools import LRUCache

from certflow.render.outline import GlyphPaint

__all__ = ["GlyphForm", "fill_forms", "form_content", "marker_color", "new_nonce", "paint_marker"]

#: Bytes of compressed glyph streams kept per process (:func:`form_content`): a
#: template's fixed lines are a few kilobytes each; learners' names, each used once,
#: pass through without crowding them out of the LRU.
FORM_CACHE_BYTES = 4 * 1024 * 1024

_COLOR = rb"([\d.]+) ([\d.]+) ([\d.]+) rg(?: /[\w.]+ gs)?\s+[-\d. ]+ re f\s+"
#: A marker's content as cairo writes it: its box filled in its number's colour,
#: then in the rendering's own colour.
_MARKER = re.compile(rb"^q\s+" + _COLOR + _COLOR + rb"Q\s*$")


@dataclass(frozen=True, slots=True)
class GlyphForm:
    """Glyphs to be filled with ``rgb`` (0..1 each) in the place of marker ``number``."""

    paint: GlyphPaint
    rgb: tuple[float, float, float]


def new_nonce() -> int:
    """A rendering's own marker colour, as a 24-bit number."""
    return secrets.randbits(24)


def paint_marker(
    context: cairocffi.Context, number: int, nonce: int, bounds: tuple[float, float, float, float]
) -> None:
    """Paint marker ``number`` of the rendering ``nonce`` over ``bounds`` (user units)."""
    x0, y0, x1, y1 = bounds
    box = (x0 - 1, y0 - 1, x1 - x0 + 2, y1 - y0 + 2)
    marker = cairocffi.RecordingSurface(cairocffi.CONTENT_COLOR_ALPHA, box)
    drawing = cairocffi.Context(marker)
    for code in (number, nonce):
        drawing.set_source_rgb(*marker_color(code))
        drawing.rectangle(*box)
        drawing.fill()
    context.save()
    context.set_source_surface(marker, 0, 0)
    context.paint()
    context.restore()


def marker_color(number: int) -> tuple[float, float, float]:
    """The fill colour that says "marker ``number``": one byte per channel (cairo
    writes 6 decimals, so every byte survives the round trip exactly)."""
    if not 0 <= number < 1 << 24:
        raise ValueError("marker numbers are 24-bit")
    return (number & 0xFF) / 255, (number >> 8 & 0xFF) / 255, (number >> 16) / 255


def _marker_number(content: bytes, nonce: int) -> int | None:
    """The number of the marker of rendering ``nonce`` whose form XObject content is
    ``content``, if it is one."""
    match = _MARKER.match(content)
    if match is None:
        return None
    r, g, b, nr, ng, nb = (round(float(value) * 255) for value in match.groups())
    if nr | ng << 8 | nb << 16 != nonce:
        return None
    return r | g << 8 | b << 16


_cache: LRUCache[tuple[object, ...], bytes] = LRUCache(maxsize=FORM_CACHE_BYTES, getsizeof=len)
_cache_lock = threading.Lock()


def form_content(form: GlyphForm) -> bytes:
    """The compressed content stream that fills ``form``'s glyphs with its colour.

    Cached by the glyph outlines (by identity: one object per font and glyph), their
    places and the colour, which is everything the stream says: a template's fixed
    lines are formatted and deflated once per process, the learner's name each time.
    """
    key = (form.rgb, form.paint.placements)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    r, g, b = form.rgb
    content = f"{r:.4f} {g:.4f} {b:.4f} rg\n{form.paint.pdf_path()}f\n".encode("ascii")
    compressed = zlib.compress(content, 6)
    with _cache_lock:
        _cache[key] = compressed
    return compressed


def fill_forms(pdf: pikepdf.Pdf, forms: list[GlyphForm], nonce: int) -> int:
    """Replace the content of every marker of rendering ``nonce`` in ``pdf`` with its
    glyphs; return how many were found. Forms nested in others (a group with
    opacity, a mask) are searched too."""
    found = 0
    seen: set[tuple[int, int]] = set()
    pending: list[pikepdf.Object] = [pdf.pages[0].obj]
    while pending:
        owner = pending.pop()
        resources = owner.get(pikepdf.Name.Resources)
        xobjects = resources.get(pikepdf.Name.XObject) if isinstance(resources, pikepdf.Dictionary) else None
        if not isinstance(xobjects, pikepdf.Dictionary):
            continue
        for _name, xobject in xobjects.items():
            if not isinstance(xobject, pikepdf.Stream) or xobject.get(pikepdf.Name.Subtype) != pikepdf.Name.Form:
                continue
            if xobject.objgen in seen:
                continue
            seen.add(xobject.objgen)
            number = _marker_number(xobject.read_bytes(), nonce)
            if number is None:
                pending.append(xobject)
                continue
            if number >= len(forms):
                continue
            form = forms[number]
            xobject.write(form_content(form), filter=pikepdf.Name.FlateDecode)
            x0, y0, x1, y1 = form.paint.bounds()
            xobject.BBox = pikepdf.Array([x0 - 1, y0 - 1, x1 + 1, y1 + 1])
            found += 1
    return found
