"""Hostile templates and images, beyond ``test_svg_template.py`` and ``test_fetch.py``.

Those files cover XXE, billion laughs, external DTDs, scripts and handlers, and what
the fetcher refuses or cuts off. This one covers what they leave open: links whose
scheme a placeholder decides, XInclude and stylesheet instructions, templates and
inline images too large for a certificate to be published, the whole fetch → parse
pipeline against a hostile server on 127.0.0.1 (non-SVG bodies, compression bombs,
address spellings of loopback), and signature images (``certflow.render.images``):
50 MB bodies, things that are not images, decompression bombs, SVG posing as an
image.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import random
import struct
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from lxml import etree
from PIL import Image

from certflow.credentials.keys import KeyRing, SigningKey
from certflow.errors import CertflowError, ErrorCode
from certflow.events.models import parse_event
from certflow.events.records import MAX_PUBLISHED_BYTES
from certflow.generate.factory import build_certificate_factory
from certflow.generate.models import GenerateCertificateRequest, validation_context
from certflow.render.fetch import FetchPolicy, SafeFetcher
from certflow.render.images import MAX_IMAGE_PIXELS, image_data_uri, inline_remote_images
from certflow.render.svg import MAX_CERTIFICATE_MARKUP_BYTES, SvgTemplate
from certflow.render.template_cache import TemplateCache
from certflow.settings import Settings

SVG_NS = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
URL = "https://templates.example.org/course.svg"
MB = 1024 * 1024


def parse(source: bytes) -> SvgTemplate:
    return SvgTemplate.parse(source, url=URL)


def svg(body: str) -> bytes:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        f"{body}</svg>"
    ).encode()


def by_id(markup: str, element_id: str) -> etree._Element:
    (element,) = etree.fromstring(markup.encode()).xpath("//*[@id=$id]", id=element_id)
    return element


# --- links a placeholder decides -----------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["javascript:alert(document.domain)", "  JavaScript:alert(1)", "java\tscript:alert(1)",
     "vbscript:msgbox(1)", "file:///etc/passwd"],
)
def test_a_learner_named_like_a_script_link_does_not_become_one(value: str) -> None:
    """Sunbird templates put ``${…}`` in hrefs (signatures, the QR code); a template
    that links a name must not turn a name into a clickable script."""
    template = parse(svg(
        '<a id="a" href="${recipientName}"><text id="t">${recipientName}</text></a>'
        '<image id="i" xlink:href="${courseName}"/>'
    ))

    filled = template.fill({"recipientName": value, "courseName": value})

    assert by_id(filled, "a").get("href") == ""
    assert by_id(filled, "i").get(XLINK_HREF) == ""
    assert by_id(filled, "t").text == value  # text stays text


def test_safe_values_still_fill_links_and_the_qr_code() -> None:
    template = parse(svg(
        '<image id="qr" href="${qrCodeImage}"/><image id="sig" xlink:href="${signatory0Image}"/>'
        '<a id="rel" href="${recipientId}/profile"/><a id="fixed" href="https://x.example.org/${recipientId}"/>'
    ))
    qr = "data:image/png;base64," + "A" * 10_000

    filled = template.fill({
        "qrCodeImage": qr, "signatory0Image": "https://cdn.example.org/s.png", "recipientId": "javascript:1",
    })

    assert by_id(filled, "qr").get("href") == qr
    assert by_id(filled, "sig").get(XLINK_HREF) == "https://cdn.example.org/s.png"
    # A value *after* a fixed scheme or inside a path cannot choose the scheme.
    assert by_id(filled, "fixed").get("href") == "https://x.example.org/javascript:1"
    assert by_id(filled, "rel").get("href") == "/profile"  # the value chose a scheme: left out
    assert template.placeholders == {"qrCodeImage", "signatory0Image", "recipientId"}


@pytest.mark.parametrize(
    "markup",
    [
        '<a id="x" href="java${courseName}"/>',
        '<a id="x" href="${courseName}${recipientName}"/>',
        '<a id="x" href="${courseName}:alert(1)"/>',
    ],
)
def test_a_link_a_value_could_complete_into_a_scheme_is_dropped(markup: str) -> None:
    template = parse(svg(markup))

    filled = template.fill({"courseName": "script:alert(1)", "recipientName": "javascript"})

    assert by_id(filled, "x").get("href") is None
    assert template.removed == 1


def test_an_animation_whose_target_a_value_chooses_is_removed() -> None:
    template = parse(svg('<a href="#ok"><set attributeName="${courseName}" to="javascript:alert(1)"/></a>'))

    assert "set" not in template.fill({"courseName": "href"})
    assert template.removed == 1


# --- other ways to smuggle something in ----------------------------------------------------


def test_xinclude_is_never_processed_and_its_file_link_is_removed() -> None:
    template = parse(svg(
        '<text id="t"><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
        'href="file:///etc/passwd" parse="text"/></text>'
    ))

    filled = template.fill({})

    assert "root:" not in filled and "file:" not in filled


def test_character_references_cannot_hide_a_script_link() -> None:
    template = parse(svg('<a id="a" href="&#x6A;ava&#x73;cript&#58;alert(1)"><text>x</text></a>'))

    assert by_id(template.fill({}), "a").get("href") is None
    assert template.removed == 1


def test_a_stylesheet_instruction_is_dropped_with_everything_outside_the_root() -> None:
    source = b'<?xml-stylesheet type="text/xsl" href="http://127.0.0.1:9/evil.xsl"?>' + svg("<text>x</text>")

    filled = parse(source).fill({})

    assert "stylesheet" not in filled and "evil" not in filled


def test_ten_thousand_nested_groups_are_refused_quickly() -> None:
    started = time.perf_counter()

    with pytest.raises(CertflowError) as caught:
        parse(svg("<g>" * 10_000 + "</g>" * 10_000))

    assert caught.value.code is ErrorCode.TEMPLATE_INVALID
    assert time.perf_counter() - started < 0.5


def test_forty_thousand_handlers_are_all_removed_quickly() -> None:
    started = time.perf_counter()

    template = parse(svg('<rect onclick="alert(1)" onload="alert(2)"/>' * 20_000))

    assert "alert" not in template.fill({})
    assert template.removed == 40_000
    assert time.perf_counter() - started < 1.0


def test_a_template_too_large_for_a_published_certificate_is_invalid() -> None:
    """Under the 2 MiB fetch limit, but its certificates could never be published."""
    picture = "data:image/png;base64," + "A" * (900 * 1024)

    with pytest.raises(CertflowError) as caught:
        parse(svg(f'<image href="{picture}"/><text>${{recipientName}}</text>'))

    assert caught.value.code is ErrorCode.TEMPLATE_INVALID
    assert str(MAX_CERTIFICATE_MARKUP_BYTES) in caught.value.message


async def test_signatures_inlined_too_large_to_publish_make_a_coded_failure(sunbird_fixture) -> None:
    """Each 350 KB ``data:`` signature appears in the SVG and in the credential: the
    request fits, its certificate would not. Refused with a code, not left to the
    producer (which would stop the agent)."""
    event = orjson.loads(sunbird_fixture("certgen_EVENT_3_generate_certificate_no_oldId.json"))
    # A real image (within the image limits, as validation requires) that does not
    # compress: 300×300 pixels of noise, about 350 KB as a PNG.
    noise = Image.frombytes("RGBA", (300, 300), random.Random(0).randbytes(300 * 300 * 4))
    out = io.BytesIO()
    noise.save(out, format="PNG")
    signature = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
    event["edata"].update(svgTemplate="course-completion.svg", signatoryList=[
        {"name": "CEO", "id": "CEO", "designation": "CEO", "image": signature},
        {"name": "Director", "id": "D", "designation": "Director", "image": signature},
    ])
    request = parse_event(GenerateCertificateRequest, orjson.dumps(event), max_bytes=2 * MB,
                          context=validation_context(suppress_signatory_errors=True))
    policy = FetchPolicy((), allow_private_networks=False, timeout_seconds=1, max_bytes=MB, max_redirects=0)
    async with SafeFetcher(policy) as fetcher:
        settings = Settings(base_path="https://certs.example.org/certs")
        factory = build_certificate_factory(settings, fetcher, KeyRing((SigningKey.generate(),)))

        with pytest.raises(CertflowError) as caught:
            await factory.issue(next(request.per_recipient()), now=datetime.now(UTC))

    assert caught.value.code is ErrorCode.CERTIFICATE_TOO_LARGE
    assert str(MAX_PUBLISHED_BYTES) in caught.value.message


# --- a hostile server: the fetch → parse pipeline ---------------------------------------


def png(width: int = 4, height: int = 4) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (200, 30, 30, 255)).save(out, format="PNG")
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header announcing ``width × height`` pixels, with next to no data."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    data = png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
    return b"\x89PNG\r\n\x1a\n" + header + data + png_chunk(b"IEND", b"")


@functools.cache
def png_with_a_text_bomb() -> bytes:
    """A 4×4 PNG carrying a compressed text chunk that inflates to 50 MB."""
    bomb = png_chunk(b"zTXt", b"comment\x00\x00" + zlib.compress(b"\x00" * (50 * MB), 9))
    small = png()
    return small[:33] + bomb + small[33:]


@functools.cache
def gzip_bomb(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    chunk = b"\x00" * MB
    return b"".join(compressor.compress(chunk) for _ in range(size // MB)) + compressor.flush()


@dataclass
class Hostile:
    server: TestServer
    requests: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server.port}{path}"


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    app = web.Application()
    state = Hostile(server=TestServer(app))
    bomb = gzip_bomb(64 * MB)

    def fixed(body: bytes, content_type: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            state.requests[request.path] += 1
            return web.Response(body=body, content_type=content_type)

        return handler

    async def gzipped(request: web.Request) -> web.StreamResponse:
        state.requests[request.path] += 1
        response = web.Response(body=bomb, content_type="image/svg+xml")
        response.headers["Content-Encoding"] = "gzip"
        return response

    async def fifty_megabytes(request: web.Request) -> web.StreamResponse:
        """Announces 50 MB and streams it, counting what actually left."""
        state.requests[request.path] += 1
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 50 * MB
        await response.prepare(request)
        chunk = b"\x89PNG" + b"\x00" * (MB - 4)
        try:
            for _ in range(50):
                await response.write(chunk)
                state.sent[request.path] += len(chunk)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    async def fifty_megabytes_unannounced(request: web.Request) -> web.StreamResponse:
        state.requests[request.path] += 1
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(50):
                await response.write(b"\x00" * MB)
                state.sent[request.path] += MB
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    routes = {
        "/good.png": fixed(png(), "image/png"),
        "/image.gif": fixed(_gif(), "image/gif"),
        "/page.html": fixed(b"<html><body>Not found, sorry</body></html>", "text/html"),
        "/template.png": fixed(png(), "image/png"),
        "/drawing.svg": fixed(svg('<circle r="5" onload="alert(1)"/>'), "image/svg+xml"),
        "/bomb.png": fixed(png_claiming(20_000, 20_000), "image/png"),
        "/wide.png": fixed(png_claiming(3_000, 3_000), "image/png"),
        "/text-bomb.png": fixed(png_with_a_text_bomb(), "image/png"),
        "/gzip-bomb.svg": gzipped,
        "/fifty.png": fifty_megabytes,
        "/fifty-chunked.png": fifty_megabytes_unannounced,
    }
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    await state.server.start_server(shutdown_timeout=0.1)
    try:
        yield state
    finally:
        await state.server.close()


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (3, 2)).save(out, format="GIF")
    return out.getvalue()


def policy(**overrides: Any) -> FetchPolicy:
    values: dict[str, Any] = {
        "allowed_hosts": ("127.0.0.1",),
        "allow_private_networks": True,
        "timeout_seconds": 2.0,
        "max_bytes": 2 * MB,  # the CERTFLOW_FETCH_MAX_BYTES default
        "max_redirects": 3,
    }
    values.update(overrides)
    return FetchPolicy(**values)


@pytest.fixture
async def make_cache(tmp_path: Path) -> AsyncIterator[Callable[..., TemplateCache[Any]]]:
    fetchers: list[SafeFetcher] = []

    def make(parse_with: Callable[[bytes, str], Any], **overrides: Any) -> TemplateCache[Any]:
        fetcher = SafeFetcher(policy(**overrides))
        fetchers.append(fetcher)
        return TemplateCache(fetcher, parse_with, template_root=tmp_path)

    yield make
    for fetcher in fetchers:
        await fetcher.close()


def parse_template(body: bytes, url: str) -> SvgTemplate:
    return SvgTemplate.parse(body, url=url)


async def refused(cache: TemplateCache[Any], url: str, code: ErrorCode) -> CertflowError:
    with pytest.raises(CertflowError) as caught:
        await cache.get(url)
    assert caught.value.code is code, caught.value
    return caught.value


@pytest.mark.parametrize("path", ["/template.png", "/page.html"])
async def test_a_template_url_serving_something_else_is_an_invalid_template(
    hostile: Hostile, make_cache: Callable[..., TemplateCache[Any]], path: str
) -> None:
    await refused(make_cache(parse_template), hostile.url(path), ErrorCode.TEMPLATE_INVALID)


async def test_a_compressed_template_that_inflates_to_64_megabytes_is_cut_off_at_the_limit(
    hostile: Hostile, make_cache: Callable[..., TemplateCache[Any]]
) -> None:
    started = time.monotonic()

    error = await refused(make_cache(parse_template), hostile.url("/gzip-bomb.svg"), ErrorCode.TEMPLATE_FETCH_FAILED)

    assert "limit" in error.message
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("host", ["0x7f000001", "0177.0.0.1", "0x7f.1", "017700000001"])
async def test_other_spellings_of_loopback_are_refused_without_a_request(
    hostile: Hostile, make_cache: Callable[..., TemplateCache[Any]], host: str
) -> None:
    cache = make_cache(parse_template, allowed_hosts=(host,), allow_private_networks=False)

    await refused(cache, hostile.url("/drawing.svg", host=host), ErrorCode.TEMPLATE_NOT_ALLOWED)
    assert hostile.requests["/drawing.svg"] == 0


# --- images: only pixels get through -----------------------------------------------------


def test_a_real_image_becomes_a_png_data_uri_whatever_it_was() -> None:
    uri = image_data_uri(_gif(), "https://cdn.example.org/s.gif")

    assert uri.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size == (3, 2)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html><body>404</body></html>", "not a GIF, JPEG, PNG or WEBP image"),
        (svg('<script>alert(1)</script>'), "not a GIF, JPEG, PNG or WEBP image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not a GIF, JPEG, PNG or WEBP image"),
        (png_claiming(20_000, 20_000), "pixels"),  # 400 million: a decompression bomb
        (png_claiming(3_000, 3_000), f"at most {MAX_IMAGE_PIXELS}"),
        (png_with_a_text_bomb(), "not a usable image"),
        (png(64, 64)[:70], "not a usable image"),  # cut off in its pixel data
    ],
    ids=["html", "svg", "eps", "bomb", "too-many-pixels", "text-chunk-bomb", "truncated"],
)
def test_what_is_not_a_plain_raster_image_is_refused_quickly(body: bytes, why: str) -> None:
    started = time.perf_counter()

    with pytest.raises(CertflowError) as caught:
        image_data_uri(body, "https://cdn.example.org/s.png")

    assert caught.value.code is ErrorCode.TEMPLATE_INVALID
    assert why in caught.value.message
    assert time.perf_counter() - started < 0.5


async def test_only_real_images_from_allowed_hosts_are_inlined_for_rendering(
    hostile: Hostile, make_cache: Callable[..., TemplateCache[Any]]
) -> None:
    """What a certificate's SVG, PDF and PNG get: each hostile image is left out (its
    link removed, so neither a browser nor the renderer fetches it), the worker carries on."""
    images = make_cache(image_data_uri)
    refs = {
        "good": hostile.url("/good.png"),
        "gif": hostile.url("/image.gif"),
        "html": hostile.url("/page.html"),
        "svg": hostile.url("/drawing.svg"),
        "bomb": hostile.url("/bomb.png"),
        "text-bomb": hostile.url("/text-bomb.png"),
        "fifty": hostile.url("/fifty.png"),
        "fifty-chunked": hostile.url("/fifty-chunked.png"),
        "other-host": hostile.url("/good.png", host="localhost"),
        "inline": "data:image/png;base64,AAAA",
    }
    certificate = svg("".join(f'<image id="{key}" xlink:href="{ref}"/>' for key, ref in refs.items()))
    started = time.monotonic()

    rendered = await inline_remote_images(certificate.decode(), images)

    assert time.monotonic() - started < 3.0
    inlined = {key: by_id(rendered, key).get(XLINK_HREF) for key in refs}
    assert inlined["good"].startswith("data:image/png;base64,")
    assert inlined["gif"].startswith("data:image/png;base64,")
    for key in ("html", "svg", "bomb", "text-bomb", "fifty", "fifty-chunked", "other-host"):
        assert inlined[key] is None, key  # left out, not left for a browser to fetch
    assert inlined["inline"] == refs["inline"]
    # 50 MB were announced or streamed; far less was ever sent before the fetcher hung up.
    assert hostile.sent["/fifty.png"] < 8 * MB
    assert hostile.sent["/fifty-chunked.png"] < 8 * MB
    assert hostile.requests["/good.png"] == 1  # localhost is not on the image allow list


async def test_without_image_hosts_nothing_is_fetched(
    hostile: Hostile, make_cache: Callable[..., TemplateCache[Any]]
) -> None:
    """``CERTFLOW_IMAGE_ALLOWED_HOSTS`` empty (the default): no image request at all."""
    images = make_cache(image_data_uri, allowed_hosts=())
    certificate = svg(f'<image id="sig" href="{hostile.url("/good.png")}"/>').decode()

    inlined = await inline_remote_images(certificate, images)

    assert by_id(inlined, "sig").get("href") is None  # left out, not left for a browser to fetch
    assert hostile.requests["/good.png"] == 0
