"""Images on a certificate (signatures, logos, the QR code): one set of limits for all.

Every image a certificate carries passes the same checks before anything decodes
its pixels (:func:`check_image`): it must be a PNG, JPEG, GIF or WebP (the formats
allowed by ``CERTFLOW_IMAGE_FORMATS``; never SVG, which can carry scripts and
further images of its own), at most ``CERTFLOW_IMAGE_MAX_BYTES`` long, and its
*declared* size (read from the header alone, without decoding) at most
``CERTFLOW_IMAGE_MAX_PIXELS``. The header is what matters: a 17 KB PNG may declare
12000×12000 pixels, and the renderer would allocate all 576 MB of them.

Where the checks run:

* images fetched for a PDF/PNG (:func:`image_data_uri`): an ``http(s)`` image is
  fetched once through the same guarded fetcher as templates (its own host
  allow-list, size and time limits), checked, re-encoded as PNG (which drops
  anything but pixels) and inlined as a ``data:`` URI; one that cannot be had is
  left out of the rendering, never fatal;
* ``data:`` images in generate events (signatory images, the logo): checked when the
  event is validated (:func:`check_inline_image`), so a bomb is dead-lettered as
  ``INVALID_PARAM_VALUE`` before any certificate is made;
* ``data:`` images a template embeds: checked when the template is parsed into the
  worker's template cache (:func:`check_template_images`): ``TEMPLATE_INVALID``;
* every ``data:`` image in the document the renderer is about to draw, whether the
  template embedded it or a value put it there (:func:`sanitise_inline_images`,
  called by ``certflow.render.pdf.prepare_svg``, the one way into cairosvg): each is
  checked and re-encoded as PNG, or removed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import re
import struct
import threading
import urllib.parse
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cachetools import LRUCache
from lxml import etree
from PIL import Image, UnidentifiedImageError

from certflow.errors import CertflowError, ErrorCode
from certflow.render.svg import hardened_parser, remove_element

if TYPE_CHECKING:
    from certflow.settings import Settings

log = logging.getLogger(__name__)

_SVG = "{http://www.w3.org/2000/svg}"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
#: Largest image accepted by default, in pixels (``CERTFLOW_IMAGE_MAX_PIXELS``):
#: bigger ones are decompression bombs or mistakes. A signature is a few hundred
#: thousand pixels; 4 million decode to 16 MB of RGBA.
MAX_IMAGE_PIXELS = 4_000_000
#: Largest image accepted by default, in bytes (``CERTFLOW_IMAGE_MAX_BYTES``): the
#: fetch limit's default, so fetched and inline images are held to the same size.
MAX_IMAGE_BYTES = 2_097_152
#: The raster formats certflow can accept at all; settings may only narrow them.
RASTER_FORMATS = frozenset({"PNG", "JPEG", "GIF", "WEBP"})
_RASTER_FORMATS = RASTER_FORMATS
#: Media types a ``data:`` URI may declare for each format.
_MEDIA_TYPES = {
    "PNG": ("image/png",),
    "JPEG": ("image/jpeg", "image/jpg", "image/pjpeg"),
    "GIF": ("image/gif",),
    "WEBP": ("image/webp",),
}

# Pillow's own guard, for every image opened anywhere in the process (cairosvg
# opens non-PNG images with Pillow too): it warns above this many pixels and
# refuses twice as many. Its default, 89 million, lets a 178-million-pixel image
# through. :func:`check_image` raises it to a configured limit above this default.
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


class ImageRefused(ValueError):
    """An image that breaks the limits; the message says which and by how much."""


@dataclass(frozen=True)
class ImageLimits:
    """What an image may be: formats, bytes, declared pixels."""

    max_pixels: int = MAX_IMAGE_PIXELS
    max_bytes: int = MAX_IMAGE_BYTES
    formats: frozenset[str] = RASTER_FORMATS

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLimits:
        return cls(
            max_pixels=settings.image_max_pixels,
            max_bytes=settings.image_max_bytes,
            formats=frozenset(settings.image_formats),
        )

    @property
    def media_types(self) -> frozenset[str]:
        return frozenset(t for fmt in self.formats for t in _MEDIA_TYPES.get(fmt, ()))

    def describe_formats(self) -> str:
        names = sorted(self.formats)
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


DEFAULT_LIMITS = ImageLimits()


class ImageSource(Protocol):
    async def get(self, ref: str) -> str: ...


def check_image(
    body: bytes, limits: ImageLimits = DEFAULT_LIMITS, *, reencode: bool = False, compress_level: int = 6
) -> bytes | None:
    """Check ``body`` against ``limits`` from its header alone; with ``reencode``,
    decode it (only then, and only within the limits) and return it as a PNG,
    deflated at ``compress_level`` (1 where it is decoded again at once).

    Raises :class:`ImageRefused`. Only the decoders of the allowed formats are
    tried: Pillow otherwise probes the bytes with every plugin it has (TIFF, PSD,
    EPS …), each a parser a hostile producer would get to exercise for nothing.
    """
    if len(body) > limits.max_bytes:
        raise ImageRefused(f"is {len(body)} bytes; at most {limits.max_bytes} are allowed")
    if limits.max_pixels > (Image.MAX_IMAGE_PIXELS or 0):
        # Pillow's own guard must not refuse what the configured limit allows; it is
        # only ever raised to it, never lowered (the check below does the refusing).
        Image.MAX_IMAGE_PIXELS = limits.max_pixels
    try:
        with warnings.catch_warnings():
            # Over the limit but under twice it, Pillow only warns; we refuse below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(body), formats=sorted(limits.formats))
        with opened as image:
            if image.format not in limits.formats:
                raise ImageRefused(f"is {image.format}, not a raster image")
            if image.width * image.height > limits.max_pixels:
                raise ImageRefused(
                    f"is {image.width}×{image.height} pixels; at most {limits.max_pixels} are allowed"
                )
            if not reencode:
                return None
            image.load()
            out = io.BytesIO()
            image.convert("RGBA").save(out, format="PNG", compress_level=compress_level)
            return out.getvalue()
    except UnidentifiedImageError:
        raise ImageRefused(f"is not a {limits.describe_formats()} image") from None
    except Image.DecompressionBombError as exc:
        # Over twice the limit Pillow refuses by itself, before we see the size.
        raise ImageRefused(
            f"declares too many pixels ({exc}); at most {limits.max_pixels} are allowed"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error) as exc:
        if isinstance(exc, ImageRefused):
            raise
        # What Pillow raises for damaged or hostile data varies by format and by
        # where the damage is; all of it means "not a usable image", none of it may
        # escape into the renderer.
        raise ImageRefused(f"is not a usable image: {exc}") from None


def image_data_uri(body: bytes, url: str, limits: ImageLimits = DEFAULT_LIMITS) -> str:
    """A fetched image as a PNG ``data:`` URI, or TEMPLATE_INVALID if it is not one."""
    try:
        png = check_image(body, limits, reencode=True)
    except ImageRefused as exc:
        raise CertflowError(ErrorCode.TEMPLATE_INVALID, f"{url} {exc}") from None
    assert png is not None
    return _png_uri(png)


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


_WHITESPACE = re.compile(rb"[\t\n\r\f ]+")


def data_uri_bytes(uri: str, limits: ImageLimits = DEFAULT_LIMITS) -> bytes:
    """The bytes of an image ``data:`` URI, refused (:class:`ImageRefused`) when it
    declares a media type other than the allowed formats' (``image/svg+xml`` above
    all: a nested SVG document can carry scripts and images of its own) or holds
    more than ``limits.max_bytes``, judged before decoding."""
    head, comma, payload = uri.strip().partition(",")
    if not comma or not head[:5].lower() == "data:":
        raise ImageRefused("is not a data: URI")
    params = [part.strip().lower() for part in head[5:].split(";")]
    media_type = params[0]
    if media_type not in limits.media_types:
        raise ImageRefused(
            f"declares {media_type or 'no media type'}; only {limits.describe_formats()} images are allowed"
        )
    if "base64" in params[1:]:
        compact = _WHITESPACE.sub(b"", payload.encode("ascii", "replace"))
        if len(compact) // 4 * 3 > limits.max_bytes:
            raise ImageRefused(
                f"is about {len(compact) // 4 * 3} bytes; at most {limits.max_bytes} are allowed"
            )
        try:
            return base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise ImageRefused("is not valid base64") from None
    if len(payload) > 3 * limits.max_bytes:
        raise ImageRefused(f"is over {limits.max_bytes} bytes; at most {limits.max_bytes} are allowed")
    return urllib.parse.unquote_to_bytes(payload)


def check_inline_image(
    uri: str, limits: ImageLimits = DEFAULT_LIMITS, *, reencode: bool = False, compress_level: int = 6
) -> str:
    """A ``data:`` image URI checked against ``limits`` (:class:`ImageRefused` if not).

    Returns ``uri`` itself, or with ``reencode`` the image re-encoded as a PNG
    ``data:`` URI: only pixels, in the one format the renderer's own decoder reads.
    """
    png = check_image(data_uri_bytes(uri, limits), limits, reencode=reencode, compress_level=compress_level)
    return _png_uri(png) if png is not None else uri


#: Bytes of re-encoded images kept for the renderer (:func:`_renderable`).
RENDERABLE_CACHE_BYTES = 16 * 1024 * 1024
#: (SHA-256 of the URI, limits) → (whether it was refused, the PNG URI or the refusal).
_renderable_cache: LRUCache[tuple[bytes, ImageLimits], tuple[bool, str]] = LRUCache(
    maxsize=RENDERABLE_CACHE_BYTES, getsizeof=lambda value: len(value[1]) + 64
)
_renderable_lock = threading.Lock()


def _renderable(uri: str, limits: ImageLimits) -> str:
    """:func:`check_inline_image` re-encoding ``uri`` for the renderer, remembered by
    the URI's SHA-256 and the limits.

    A template's logo and signatures are the same in thousands of certificates:
    each is decoded and re-encoded once, not once per PDF (a certificate's own QR
    code is new every time). The result depends on nothing but the bytes and the
    limits, so it can be shared by every certificate, refusals included. The PNG
    is deflated at level 1: cairo decodes it at once and deflates it again itself.
    """
    key = (hashlib.sha256(uri.encode()).digest(), limits)
    with _renderable_lock:
        known = _renderable_cache.get(key)
    if known is None:
        try:
            known = (False, check_inline_image(uri, limits, reencode=True, compress_level=1))
        except ImageRefused as exc:
            known = (True, str(exc))
        with _renderable_lock:
            _renderable_cache[key] = known
    refused, value = known
    if refused:
        raise ImageRefused(value)
    return value


def _image_elements(root: etree._Element) -> Iterable[etree._Element]:
    return root.iter(_SVG + "image", _SVG + "feImage")


def check_template_images(source: bytes, url: str, limits: ImageLimits = DEFAULT_LIMITS) -> None:
    """TEMPLATE_INVALID if the template ``source`` embeds a ``data:`` image that breaks
    ``limits``: refused once, when the template is parsed, rather than left to be
    dropped from every PDF and PNG made from it (``sanitise_inline_images`` still
    checks at render time, whatever the template cache let through)."""
    if b"data:" not in source:
        return
    try:
        root = etree.fromstring(source, hardened_parser())
    except etree.XMLSyntaxError:
        return  # not a template at all: SvgTemplate.parse says so
    for element in _image_elements(root):
        for attribute in ("href", _XLINK_HREF):
            ref = element.get(attribute)
            if ref is None or not ref.strip().lower().startswith("data:"):
                continue
            try:
                check_inline_image(ref, limits)
            except ImageRefused as exc:
                raise CertflowError(
                    ErrorCode.TEMPLATE_INVALID, f"template {url} embeds an image that {exc}"
                ) from None


def sanitise_inline_images(root: etree._Element, limits: ImageLimits = DEFAULT_LIMITS) -> int:
    """Check and re-encode every ``data:`` image in ``root`` in place; remove the
    elements whose image is refused. Returns how many were removed.

    Run right before cairosvg draws the document (``prepare_svg``), so whatever put
    an image there (the template, an event value, a fetched image) cannot make the
    renderer decode more than ``limits`` allow.
    """
    doomed: list[etree._Element] = []
    for element in _image_elements(root):
        for attribute in ("href", _XLINK_HREF):
            ref = element.get(attribute)
            if ref is None or not ref.strip().lower().startswith("data:"):
                continue
            try:
                element.set(attribute, _renderable(ref, limits))
            except ImageRefused as exc:
                log.info("inline image left off the rendering: it %s", exc)
                doomed.append(element)
                break
    for element in doomed:
        remove_element(element)
    return len(doomed)


async def inline_remote_images(svg: str, images: ImageSource) -> str:
    """``svg`` with every http(s) ``<image>`` replaced by its inlined copy, or left
    without its link when it cannot be had."""
    if "http" not in svg:
        return svg
    parser = hardened_parser()
    root = etree.fromstring(svg.encode(), parser)
    changed = False
    for element in root.iter(_SVG + "image"):
        for attribute in ("href", _XLINK_HREF):
            ref = (element.get(attribute) or "").strip()
            if not ref.lower().startswith(("http://", "https://")):
                continue
            try:
                element.set(attribute, await images.get(ref))
            except CertflowError as exc:
                # Left out, not left as a link: a browser would fetch it from
                # wherever it points (the served SVG's policy blocks that too).
                del element.attrib[attribute]
                log.info("image %s left off the rendering: %s %s", ref, exc.code.value, exc.message)
            changed = True
    return etree.tostring(root, encoding="unicode") if changed else svg
