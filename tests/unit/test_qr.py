"""Specification of the verification QR code and its access code."""

from __future__ import annotations

import base64
import io
import itertools
import re
import uuid

import zxingcpp
from PIL import Image

from certflow.render.qr import ACCESS_CODE_ALPHABET, access_code, qr_code_data_uri, qr_code_png

ACCESS_CODE = re.compile(r"[A-HJ-NP-Z][1-9][A-HJ-NP-Z][1-9][A-HJ-NP-Z][1-9]")
CERT_URL = f"https://dev.sunbirded.org/certs/{uuid.UUID('5c1e3a3e-8d1b-4e0f-9a53-2f4f2b6a1d7c')}"


def decode(png: bytes) -> list[str]:
    return [barcode.text for barcode in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def test_alphabet_is_sunbirds() -> None:
    assert ACCESS_CODE_ALPHABET == "123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    assert not set("0IO") & set(ACCESS_CODE_ALPHABET)


SECRET = b"issuer secret"


def test_access_codes_alternate_letter_and_digit_from_the_alphabet() -> None:
    codes = [access_code(SECRET, f"certificate-{i}") for i in range(10_000)]
    for code in codes:
        assert ACCESS_CODE.fullmatch(code), code
        assert set(code) <= set(ACCESS_CODE_ALPHABET)
    # ~10 million possible codes: 10,000 draws should almost never repeat.
    assert len(set(codes)) > 9_900
    assert sum(a == b for a, b in itertools.pairwise(codes)) < 5
    # Every allowed character shows up in its positions, so no position is stuck.
    assert {c for code in codes for c in code[::2]} == set(ACCESS_CODE_ALPHABET) - set("123456789")
    assert {c for code in codes for c in code[1::2]} == set("123456789")


def test_the_same_certificate_always_gets_the_same_code_and_others_cannot_guess_it() -> None:
    assert access_code(SECRET, "c-1") == access_code(SECRET, "c-1")
    others = [access_code(f"other secret {i}".encode(), "c-1") for i in range(50)]
    assert sum(code == access_code(SECRET, "c-1") for code in others) <= 1


def test_png_decodes_to_exactly_the_certificate_url() -> None:
    png = qr_code_png(CERT_URL, "P4L3Y9")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert decode(png) == [CERT_URL]


def test_png_is_small_with_room_for_the_access_code_under_the_code() -> None:
    image = Image.open(io.BytesIO(qr_code_png(CERT_URL, access_code(SECRET, CERT_URL))))
    width, height = image.size
    assert 100 <= width <= 400
    assert height > width  # the caption band
    # The caption band holds dark pixels (the access code) centred under the code.
    caption = image.convert("L").crop((0, width, width, height))
    left, _, right, _ = caption.point(lambda v: 255 - v).getbbox()
    assert abs((left + right) / 2 - width / 2) <= 3


def test_data_uri_wraps_the_png() -> None:
    uri = qr_code_data_uri(CERT_URL, "A1B2C3")
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    assert decode(base64.b64decode(uri[len(prefix):], validate=True)) == [CERT_URL]
