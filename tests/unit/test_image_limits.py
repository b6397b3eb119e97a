"""Decompression bombs and other hostile images (security issue 10, hole 5).

A 17 KB PNG can declare 12000×12000 pixels; cairosvg then allocates all of them
(576 MB measured for one PNG render). Every image a certificate carries, inline or
fetched, in the template or in an event value, is held to the same limits
(``certflow.render.images``): by the event's validation, and once more right before
cairosvg draws the document (``prepare_svg``).
"""

from __future__ import annotations

import base64
import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import orjson
import pytest
from lxml import etree
from PIL import Image

from certflow.errors import CertflowError, ErrorCode
from certflow.events.models import parse_event
from certflow.generate.models import GenerateCertificateRequest, validation_context
from certflow.render.images import (
    ImageLimits,
    ImageRefused,
    check_inline_image,
    image_data_uri,
)
from certflow.render.pdf import prepare_svg
from certflow.render.svg import SvgTemplate
from certflow.settings import Settings

SVG_NS = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
ROOT = Path(__file__).parents[2]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 12_000, height: int = 12_000) -> bytes:
    """A valid 1-bit PNG of ``width × height`` black pixels: about 17 KB of file,
    576 MB of RGBA once decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)
    deflate = zlib.compressobj(9)
    data = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def data_uri(body: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64," + base64.b64encode(body).decode()


def small_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (8, 4), (10, 20, 30, 255)).save(out, format="PNG")
    return out.getvalue()


def small_gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (3, 2)).save(out, format="GIF")
    return out.getvalue()


BOMB = bomb_png()
NESTED_SVG = data_uri(
    b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "image/svg+xml"
)


def test_the_bomb_is_small_and_declares_144_million_pixels() -> None:
    assert len(BOMB) < 20_000
    assert struct.unpack(">II", BOMB[16:24]) == (12_000, 12_000)  # IHDR's width and height


def generate_event(sunbird_fixture, **edata: object) -> bytes:
    event = orjson.loads(sunbird_fixture("certgen_EVENT_3_generate_certificate_no_oldId.json"))
    event["edata"].update(edata)
    return orjson.dumps(event)


def _parse(raw: bytes, **limits: object) -> GenerateCertificateRequest:
    return parse_event(
        GenerateCertificateRequest,
        raw,
        max_bytes=1024 * 1024,
        context=validation_context(suppress_signatory_errors=True, image_limits=ImageLimits(**limits)),
    )


@pytest.mark.parametrize(
    ("image", "why"),
    [
        (data_uri(BOMB), "(144000000 pixels)"),
        (NESTED_SVG, "image/svg+xml"),
        ("data:image/png;base64,AAAA", "not a GIF, JPEG, PNG or WEBP image"),
        ("data:image/png;base64,%%%%", "base64"),
    ],
    ids=["bomb", "nested-svg", "not-an-image", "not-base64"],
)
@pytest.mark.parametrize("field", ["signatory", "logo"])
def test_an_event_carrying_a_hostile_inline_image_is_dead_lettered_with_a_clear_code(
    sunbird_fixture, field: str, image: str, why: str
) -> None:
    signatory = {"name": "CEO", "id": "ceo", "designation": "CEO", "image": data_uri(small_png())}
    if field == "signatory":
        raw = generate_event(sunbird_fixture, signatoryList=[{**signatory, "image": image}])
        where = "signatoryList[0].image"
    else:
        raw = generate_event(sunbird_fixture, signatoryList=[signatory], logo=image)
        where = "logo"

    with pytest.raises(CertflowError) as caught:
        _parse(raw)

    assert caught.value.code is ErrorCode.INVALID_PARAM_VALUE
    assert where in caught.value.message
    assert why in caught.value.message


def test_real_inline_images_within_the_limits_are_accepted(sunbird_fixture) -> None:
    raw = generate_event(
        sunbird_fixture,
        signatoryList=[{"name": "CEO", "id": "ceo", "designation": "CEO", "image": data_uri(small_gif(), "image/gif")}],
        logo=data_uri(small_png()),
    )

    assert _parse(raw).edata.logo == data_uri(small_png())


def test_the_limits_are_the_configured_ones(sunbird_fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTFLOW_IMAGE_MAX_PIXELS", "16")
    monkeypatch.setenv("CERTFLOW_IMAGE_FORMATS", "png,jpg")
    limits = ImageLimits.from_settings(Settings())
    assert limits == ImageLimits(max_pixels=16, formats=frozenset({"PNG", "JPEG"}))

    with pytest.raises(ImageRefused, match="8×4 pixels; at most 16"):
        check_inline_image(data_uri(small_png()), ImageLimits(max_pixels=16))
    with pytest.raises(ImageRefused, match="image/gif"):
        check_inline_image(data_uri(small_gif(), "image/gif"), limits)
    with pytest.raises(ImageRefused, match="bytes"):
        check_inline_image(data_uri(small_png()), ImageLimits(max_bytes=10))
    with pytest.raises(CertflowError, match="bytes"):
        image_data_uri(small_png(), "https://cdn.example.org/s.png", ImageLimits(max_bytes=10))


def _certificate(image_in_template: str = "", value: str = "") -> str:
    """A filled certificate: an image the template embeds, and one a value fills in."""
    template = SvgTemplate.parse(
        (
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            'width="842" height="595">'
            f'<image id="logo" x="10" y="10" width="80" height="40" href="{image_in_template}"/>'
            '<image id="sig" x="10" y="60" width="80" height="40" xlink:href="${signatory0Image}"/>'
            '<image id="qr" x="10" y="110" width="40" height="40" href="${qrCodeImage}"/>'
            '<text x="100" y="100">${recipientName}</text></svg>'
        ).encode(),
        url="course.svg",
    )
    return template.fill(
        {"signatory0Image": value, "qrCodeImage": data_uri(small_png()), "recipientName": "Asha"}
    )


def _hrefs(prepared: bytes) -> dict[str, str]:
    root = etree.fromstring(prepared)
    return {
        element.get("id"): element.get("href") or element.get(XLINK_HREF)
        for element in root.iter(SVG_NS + "image")
    }


@pytest.mark.parametrize(
    ("in_template", "value"),
    [(data_uri(BOMB), data_uri(small_gif(), "image/gif")), (data_uri(small_gif(), "image/gif"), data_uri(BOMB))],
    ids=["bomb-in-template", "bomb-in-value"],
)
def test_the_renderer_draws_only_checked_images_re_encoded_as_png(in_template: str, value: str) -> None:
    """``prepare_svg`` (what cairosvg gets): the bomb is gone, wherever it came from;
    the good images are there, as PNG."""
    hrefs = _hrefs(prepare_svg(_certificate(in_template, value)))

    bombed = "logo" if in_template == data_uri(BOMB) else "sig"
    assert bombed not in hrefs
    assert set(hrefs) == {"logo", "sig", "qr"} - {bombed}
    for href in hrefs.values():
        assert href.startswith("data:image/png;base64,")
        assert Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1]))).format == "PNG"


def test_nested_svg_images_never_reach_the_renderer() -> None:
    hrefs = _hrefs(prepare_svg(_certificate(NESTED_SVG, NESTED_SVG)))

    assert set(hrefs) == {"qr"}


#: The peak is the process's own high-water mark (VmHWM): ``ru_maxrss`` would carry
#: over the parent's (pytest's) peak across ``exec``.
_RENDER_IN_A_CHILD = """
import re, sys, time
from certflow.render.pdf import render_png
svg = open(sys.argv[1], encoding="utf-8").read()
started = time.monotonic()
png = render_png(svg)
seconds = time.monotonic() - started
status = open("/proc/self/status").read()
print(len(png), seconds, int(re.search(r"VmHWM:\\s*(\\d+)", status).group(1)) // 1024)
"""


@pytest.mark.parametrize("where", ["template", "value"])
def test_rendering_a_certificate_with_a_bomb_stays_under_100_mb(tmp_path: Path, where: str) -> None:
    """The whole PNG render of a certificate carrying the bomb (the worker's render
    process, measured as a process of its own): quick and small. Before the limits
    it took 590 MB."""
    good = data_uri(small_gif(), "image/gif")
    svg = _certificate(data_uri(BOMB), good) if where == "template" else _certificate(good, data_uri(BOMB))
    path = tmp_path / "certificate.svg"
    path.write_text(svg, encoding="utf-8")

    done = subprocess.run(
        [sys.executable, "-c", _RENDER_IN_A_CHILD, str(path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )

    assert done.returncode == 0, done.stderr
    size, seconds, peak_mb = json.loads("[" + done.stdout.strip().replace(" ", ",") + "]")
    assert size > 0
    assert seconds < 5
    assert peak_mb < 100, f"the render peaked at {peak_mb} MB"


@pytest.mark.parametrize(
    ("image", "why"),
    [(data_uri(BOMB), "(144000000 pixels)"), (NESTED_SVG, "image/svg+xml")],
    ids=["bomb", "nested-svg"],
)
def test_a_template_embedding_a_hostile_image_is_refused_when_parsed(image: str, why: str) -> None:
    """Once per template, as TEMPLATE_INVALID, instead of the image being dropped
    from every PDF and PNG made from it."""
    from certflow.generate.factory import parse_template

    source = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        f'<image xlink:href="{image}"/><text>${{recipientName}}</text></svg>'
    ).encode()

    with pytest.raises(CertflowError) as caught:
        parse_template(source, "https://templates.example.org/t.svg", ImageLimits())

    assert caught.value.code is ErrorCode.TEMPLATE_INVALID
    assert "t.svg embeds an image that" in caught.value.message
    assert why in caught.value.message
    good = source.replace(image.encode(), data_uri(small_png()).encode())
    assert parse_template(good, "https://templates.example.org/t.svg", ImageLimits()).placeholders == {
        "recipientName"
    }
