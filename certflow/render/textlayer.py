"""The PDF's invisible text layer, title and language; the PNG's alt text.

The certificate's text is drawn as glyph outlines (see :mod:`certflow.render.pdf`),
so without help a PDF has no text: ``pdftotext`` finds nothing, search fails and a
screen reader reads nothing. After cairosvg has drawn the page, every line of text
the template had is written again over its outlines as *invisible* text (text render
mode 3, ``3 Tr``), the way OCR tools lay a text layer over a scan:

* the font is a "glyph-less" TrueType font made here with fontTools (one empty
  glyph, embedded, a few hundred bytes): every character code is drawn with it, and
  the ``ToUnicode`` CMap maps each 2-byte code to the same UTF-16 code unit, so any
  script (Devanagari, Tamil, Arabic …) is extracted exactly as the template's text
  was, in logical order, without a real font of that script in the PDF;
* each line is placed on the outlines' baseline and stretched (``Tz``) to their
  width, so selecting text in a viewer highlights the drawn line;
* each line sits in a ``/Span <</Lang (xx)>> BDC … EMC`` marked-content span with
  the language its script suggests; the catalog gets ``/Lang``, the info dictionary
  and the XMP metadata the title, and viewers are asked to show the title.
"""

from __future__ import annotations

import io
import math
import re
import struct
import unicodedata
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from xml.sax.saxutils import escape as xml_escape

import pikepdf

from certflow.i18n import lang_of

__all__ = [
    "Affine",
    "TextLine",
    "add_png_text",
    "add_text_layer",
    "document_language",
    "parse_transform",
    "save_pdf",
    "visual_order",
    "write_text_layer",
]

#: (a, b, c, d, e, f): x' = a x + c y + e, y' = b x + d y + f (SVG's and PDF's order).
Affine = tuple[float, float, float, float, float, float]
IDENTITY: Affine = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)

#: Advance of the glyph-less font's one glyph, in 1/1000 em.
_ADVANCE = 500


@dataclass(frozen=True, slots=True)
class TextLine:
    """One drawn line, in the root SVG's user space: ``matrix`` maps the text's own
    coordinates (where the baseline starts at ``x``, ``y`` and is ``width`` long) to it."""

    text: str
    x: float
    y: float
    width: float
    size: float
    matrix: Affine = IDENTITY


def multiply(outer: Affine, inner: Affine) -> Affine:
    """``outer ∘ inner``: apply ``inner`` first."""
    a1, b1, c1, d1, e1, f1 = outer
    a2, b2, c2, d2, e2, f2 = inner
    return (a1 * a2 + c1 * b2, b1 * a2 + d1 * b2, a1 * c2 + c1 * d2, b1 * c2 + d1 * d2,
            a1 * e2 + c1 * f2 + e1, b1 * e2 + d1 * f2 + f1)


def _apply(m: Affine, x: float, y: float) -> tuple[float, float]:
    return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]


_TRANSFORM = re.compile(r"(matrix|translate|scale|rotate|skewX|skewY)\s*\(([^)]*)\)")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_transform(value: str | None) -> Affine:
    """SVG's ``transform`` attribute as one matrix (identity if absent or unreadable)."""
    result = IDENTITY
    for name, args in _TRANSFORM.findall(value or ""):
        n = [float(v) for v in _NUMBER.findall(args)]
        step: Affine = IDENTITY
        if name == "matrix" and len(n) == 6:
            step = (n[0], n[1], n[2], n[3], n[4], n[5])
        elif name == "translate" and n:
            step = (1, 0, 0, 1, n[0], n[1] if len(n) > 1 else 0.0)
        elif name == "scale" and n:
            step = (n[0], 0, 0, n[1] if len(n) > 1 else n[0], 0, 0)
        elif name == "rotate" and n:
            r = math.radians(n[0])
            step = (math.cos(r), math.sin(r), -math.sin(r), math.cos(r), 0, 0)
            if len(n) == 3:
                step = multiply(multiply((1, 0, 0, 1, n[1], n[2]), step), (1, 0, 0, 1, -n[1], -n[2]))
        elif name == "skewX" and n:
            step = (1, 0, math.tan(math.radians(n[0])), 1, 0, 0)
        elif name == "skewY" and n:
            step = (1, math.tan(math.radians(n[0])), 0, 1, 0, 0)
        result = multiply(result, step)
    return result


@cache
def _glyphless_font() -> bytes:
    """A TrueType font whose glyphs draw nothing: the text layer's font."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder([".notdef", "blank"])
    builder.setupCharacterMap({0x20: "blank"})
    empty = TTGlyphPen(None).glyph()
    builder.setupGlyf({".notdef": empty, "blank": empty})
    builder.setupHorizontalMetrics({".notdef": (_ADVANCE, 0), "blank": (_ADVANCE, 0)})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": "CertflowTextLayer", "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200)
    builder.setupPost()
    out = io.BytesIO()
    builder.save(out)
    return out.getvalue()


@cache
def _cid_to_gid() -> bytes:
    """The font's CIDToGIDMap, every code to glyph 1, compressed: the same 128 KB
    for every PDF, so it is compressed once per process."""
    return zlib.compress(b"\x00\x01" * 65536, 9)


_TO_UNICODE = b"""/CIDInit /ProcSet findresource begin
12 dict begin
begincmap
/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def
/CMapName /Adobe-Identity-UCS def
/CMapType 2 def
1 begincodespacerange
<0000> <FFFF>
endcodespacerange
1 beginbfrange
<0000> <FFFF> <0000>
endbfrange
endcmap
CMapName currentdict /CMap defineresource pop
end
end
"""


def _font(pdf: pikepdf.Pdf) -> pikepdf.Dictionary:
    """The Type0 font of the text layer: every code → glyph 1 (blank), code = UTF-16 unit."""
    file = pikepdf.Stream(pdf, _glyphless_font())
    descriptor = pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.FontDescriptor, FontName=pikepdf.Name("/CertflowTextLayer"),
        Flags=4, FontBBox=[0, -200, _ADVANCE, 800], ItalicAngle=0, Ascent=800, Descent=-200,
        CapHeight=700, StemV=80, FontFile2=file,
    ))
    cid_to_gid = pikepdf.Stream(pdf, _cid_to_gid())
    cid_to_gid[pikepdf.Name.Filter] = pikepdf.Name.FlateDecode
    descendant = pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.CIDFontType2,
        BaseFont=pikepdf.Name("/CertflowTextLayer"),
        CIDSystemInfo=pikepdf.Dictionary(Registry=pikepdf.String("Adobe"),
                                         Ordering=pikepdf.String("Identity"), Supplement=0),
        FontDescriptor=descriptor, DW=_ADVANCE, CIDToGIDMap=cid_to_gid,
    ))
    return pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type0, BaseFont=pikepdf.Name("/CertflowTextLayer"),
        Encoding=pikepdf.Name("/Identity-H"), DescendantFonts=[descendant],
        ToUnicode=pikepdf.Stream(pdf, _TO_UNICODE),
    ))


def _number(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def _page_transform(view_box: Sequence[float] | None, page_w: float, page_h: float) -> Affine:
    """Root user space → PDF points (origin bottom left), as cairosvg lays the page out
    (viewBox scaled uniformly and centred: SVG's default ``xMidYMid meet``)."""
    scale, ox, oy = 1.0, 0.0, 0.0
    if view_box and view_box[2] > 0 and view_box[3] > 0:
        vx, vy, vw, vh = view_box
        scale = min(page_w / vw, page_h / vh)
        ox = (page_w - scale * vw) / 2 - scale * vx
        oy = (page_h - scale * vh) / 2 - scale * vy
    return (scale, 0.0, 0.0, -scale, ox, page_h - oy)


def document_language(lines: Sequence[TextLine], default: str = "en") -> str:
    """The language of most of the letters, judged by their script."""
    counts: Counter[str] = Counter()
    for line in lines:
        for char in line.text:
            if char.isalpha():
                lang = lang_of(char)
                if lang:
                    counts[lang] += 1
    return counts.most_common(1)[0][0] if counts else default


def _pdf_string(text: str) -> str:
    """A literal PDF string, escaped (for marked-content properties)."""
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def visual_order(text: str) -> str:
    """``text`` in the order its characters stand on a right-to-left line.

    Text extractors (poppler's pdftotext, pdf.js) read right-to-left characters
    placed left to right as visual order and reverse them back; so an RTL line is
    written reversed, except its left-to-right runs (digits, Latin words), which keep
    their order. A small part of the Unicode bidi algorithm, enough for names and
    dates; an LTR line is returned unchanged.
    """
    strong = (unicodedata.bidirectional(c) for c in text if unicodedata.bidirectional(c) in ("L", "R", "AL"))
    first = next(strong, "L")
    if first == "L":
        return text
    runs: list[tuple[bool, list[str]]] = []
    for char in text:
        ltr = unicodedata.bidirectional(char) in ("L", "EN", "AN")
        if runs and runs[-1][0] == ltr:
            runs[-1][1].append(char)
        else:
            runs.append((ltr, [char]))
    return "".join("".join(chars) if ltr else "".join(reversed(chars)) for ltr, chars in reversed(runs))


def _content(lines: Sequence[TextLine], page: Affine, font_name: str) -> bytes:
    out = ["q BT 3 Tr"]
    for line in lines:
        text = line.text.strip()
        if not text or line.size <= 0 or line.width <= 0:
            continue
        codes = visual_order(text).encode("utf-16-be")
        count = len(codes) // 2
        m = multiply(page, line.matrix)
        # Text space (y up, origin at the baseline start) → page: x right along the
        # baseline, y up = minus the SVG's y.
        origin = _apply(m, line.x, line.y)
        tm = (m[0], m[1], -m[2], -m[3], origin[0], origin[1])
        natural = count * _ADVANCE / 1000 * line.size
        stretch = 100 * line.width / natural if natural else 100
        lang = lang_of(text) or ""
        props = f"/Span <</Lang {_pdf_string(lang)}>> BDC " if lang else ""
        out.append(
            f"{props}/{font_name} {_number(line.size)} Tf {_number(stretch)} Tz "
            f"{' '.join(_number(v) for v in tm)} Tm <{codes.hex().upper()}> Tj{' EMC' if lang else ''}"
        )
    out.append("ET Q")
    return "\n".join(out).encode()


def add_text_layer(
    pdf_bytes: bytes,
    lines: Sequence[TextLine],
    *,
    view_box: Sequence[float] | None,
    title: str,
    lang: str,
) -> bytes:
    """``pdf_bytes`` (one page) with ``lines`` as invisible text, ``title`` and ``lang``."""
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        write_text_layer(pdf, lines, view_box=view_box, title=title, lang=lang)
        return save_pdf(pdf)


def write_text_layer(
    pdf: pikepdf.Pdf,
    lines: Sequence[TextLine],
    *,
    view_box: Sequence[float] | None,
    title: str,
    lang: str,
) -> None:
    """:func:`add_text_layer` on an open ``pdf``, for a caller with more to change."""
    page = pdf.pages[0]
    box = [float(v) for v in page.mediabox]
    transform = _page_transform(view_box, box[2] - box[0], box[3] - box[1])
    if lines:
        font_name = page.add_resource(_font(pdf), pikepdf.Name.Font, prefix="TL")
        # The drawing's graphics state must not leak into the layer: wrap it.
        page.contents_add(pikepdf.Stream(pdf, b"q\n"), prepend=True)
        page.contents_add(pikepdf.Stream(pdf, b"\nQ\n" + _content(lines, transform, str(font_name)[1:])))
    pdf.trailer.Info = pdf.make_indirect(pikepdf.Dictionary(Title=pikepdf.String(title)))
    pdf.Root.Lang = pikepdf.String(lang)
    pdf.Root.ViewerPreferences = pikepdf.Dictionary(DisplayDocTitle=True)
    metadata = pikepdf.Stream(pdf, _xmp(title, lang))
    metadata.Type, metadata.Subtype = pikepdf.Name.Metadata, pikepdf.Name.XML
    pdf.Root.Metadata = pdf.make_indirect(metadata)


def save_pdf(pdf: pikepdf.Pdf, *, object_streams: bool = True) -> bytes:
    """``pdf`` written out compactly: streams compressed and, with ``object_streams``,
    objects packed into compressed object streams (else kept as they were)."""
    out = io.BytesIO()
    mode = pikepdf.ObjectStreamMode.generate if object_streams else pikepdf.ObjectStreamMode.preserve
    pdf.save(out, compress_streams=True, object_stream_mode=mode)
    return out.getvalue()


def _xmp(title: str, lang: str) -> bytes:
    """The XMP metadata packet: title and language, as pikepdf's metadata editor
    writes them, made directly (the editor's parse and sync of the document
    information cost more than the whole text layer)."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="certflow">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        ' <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{_xml_text(title)}</rdf:li></rdf:Alt></dc:title>'
        f'<dc:language><rdf:Bag><rdf:li>{_xml_text(lang)}</rdf:li></rdf:Bag></dc:language>'
        '</rdf:Description></rdf:RDF>\n'
        '</x:xmpmeta>\n'
        '<?xpacket end="w"?>'
    ).encode()


#: Characters XML 1.0 does not allow, even escaped.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: str) -> str:
    """``value`` as XML character data."""
    return xml_escape(_XML_ILLEGAL.sub("", value))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def add_png_text(png: bytes, entries: dict[str, str], lang: str = "") -> bytes:
    """``png`` with an ``iTXt`` chunk (UTF-8, language tagged) per entry
    (``Title``, ``Description`` …), inserted right after ``IHDR``; pixels untouched."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    ihdr_end = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    chunks = b"".join(
        _png_chunk(b"iTXt", key.encode("latin-1") + b"\x00\x00\x00" + lang.encode("ascii", "ignore")
                   + b"\x00\x00" + text.encode("utf-8"))
        for key, text in entries.items() if text
    )
    return png[:ihdr_end] + chunks + png[ihdr_end:]
