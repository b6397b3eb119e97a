"""The verification QR code printed on every certificate, with its access code.

Sunbird prints a short access code under the QR code so someone holding a paper copy
can verify it by typing the code. Sunbird drew that code by looping on a random
generator until the text matched a pattern, which cost ~100 ms per certificate and
gave certificates issued in the same millisecond the same code. Here the code is an
HMAC-SHA256 of the certificate id under a secret only the issuer holds: constant
time, unpredictable to anyone without the secret, and the same every time the same
certificate is made, so a certificate re-created after a redelivery is identical to
the first, not a near-copy with another code on it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
from functools import cache

import zxingcpp
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "ACCESS_CODE_ALPHABET",
    "access_code",
    "qr_code_data_uri",
    "qr_code_png",
]

#: Sunbird's alphabet: no ``0``, ``I`` or ``O``, which readers confuse with each other.
ACCESS_CODE_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_LETTERS = "".join(c for c in ACCESS_CODE_ALPHABET if c.isalpha())
_DIGITS = "".join(c for c in ACCESS_CODE_ALPHABET if c.isdigit())

#: Pixels per QR module: enough for phone cameras and printers, small enough that the
#: PNG (and the data URI inside every certificate) stays around a kilobyte.
_MODULE_PX = 3
_FONT_PX = 22
#: No outline: on a 1-bit image even half a pixel closes the counters of 6, 8 and 9.
_STROKE_PX = 0
#: Height of the white band under the code that holds the access code.
_CAPTION_PX = 26


def access_code(secret: bytes, certificate_id: str) -> str:
    """Six characters, letter then digit three times (e.g. ``P4L3Y9``), as Sunbird's.

    Each position takes its own byte of the MAC, reduced into its sub-alphabet
    (the bias of reducing a byte modulo 24 or 9 is too small to matter for a code
    that is checked against the registry, never used as a key).
    """
    mac = hmac.new(secret, certificate_id.encode(), hashlib.sha256).digest()
    return "".join(
        _LETTERS[mac[2 * i] % len(_LETTERS)] + _DIGITS[mac[2 * i + 1] % len(_DIGITS)]
        for i in range(3)
    )


@cache
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font, so no font file has to ship or be found on the host."""
    return ImageFont.load_default(size=_FONT_PX)


@cache
def _glyph(char: str) -> tuple[Image.Image, int, int, float]:
    """One access-code character as a 1-bit mask, its offset from the pen, its advance.

    Rasterising text costs about as much as encoding the QR code; the alphabet has 33
    characters, so each is drawn once per process and pasted afterwards. The default
    font applies no kerning, so pasting glyphs side by side matches ``draw.text``.
    """
    font = _font()
    left, top, right, bottom = (
        round(v) for v in font.getbbox(char, anchor="ls", stroke_width=_STROKE_PX)
    )
    mask = Image.new("1", (right - left, bottom - top), 0)
    ImageDraw.Draw(mask).text(
        (-left, -top),
        char,
        fill=1,
        font=font,
        anchor="ls",
        stroke_width=_STROKE_PX,
        stroke_fill=1,
    )
    return mask, left, top, font.getlength(char)


def _draw_caption(canvas: Image.Image, text: str, *, centre_x: float, baseline: int) -> None:
    """Draw ``text`` in black, centred horizontally on ``centre_x``, from cached glyphs."""
    glyphs = [_glyph(char) for char in text]
    pen = centre_x - sum(advance for *_, advance in glyphs) / 2
    for mask, left, top, advance in glyphs:
        canvas.paste(0, (round(pen) + left, baseline + top), mask)
        pen += advance


def qr_code_png(text: str, access_code: str) -> bytes:
    """A 1-bit PNG: a QR code of ``text`` with ``access_code`` centred below it.

    Error correction is level H so the code still scans after printing, folding or a
    logo drawn over it by a template. Black and white only: a QR code has no other
    colours, and one bit per pixel keeps the PNG (inlined into every certificate)
    near a kilobyte and quick to encode. Compression is at its lowest because this
    runs once per certificate and bytes are cheaper than CPU here.
    """
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="H")
    # One pixel per module, scaled up by Pillow in 1-bit mode: cheaper than letting
    # zxing draw a 9x larger 8-bit image and thresholding it.
    pixels = memoryview(barcode.to_image(scale=1, add_quiet_zones=True))  # type: ignore[arg-type]  # zxingcpp's stub omits Image's buffer protocol
    assert pixels.shape is not None  # a 2-D buffer always has a shape
    modules_high, modules_wide = pixels.shape
    width, height = modules_wide * _MODULE_PX, modules_high * _MODULE_PX
    code = (
        Image.frombuffer("L", (modules_wide, modules_high), pixels, "raw", "L", 0, 1)  # type: ignore[arg-type]  # any buffer works; Pillow annotates bytes
        .convert("1", dither=Image.Dither.NONE)
        .resize((width, height), Image.Resampling.NEAREST)
    )

    canvas = Image.new("1", (width, height + _CAPTION_PX), 1)
    canvas.paste(code, (0, 0))
    # The quiet zone above already separates code and caption; sit the text high.
    _draw_caption(canvas, access_code, centre_x=width / 2, baseline=height + _FONT_PX - 6)

    out = io.BytesIO()
    canvas.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def qr_code_data_uri(text: str, access_code: str) -> str:
    """The value for a template's ``${qrCodeImage}``: the PNG inlined as a data URI.

    Inlining keeps the certificate self-contained, so it renders identically offline
    and years later without a QR image service.
    """
    png = qr_code_png(text, access_code)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
