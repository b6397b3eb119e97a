"""Remote images on a certificate (signatures, logos), fetched safely and inlined.

A certificate's SVG may point at signature images by URL, as Sunbird's events do.
A browser fetches them itself; the PDF/PNG renderer must not (it would be an SSRF
hole with our network position), so before rendering, each ``http(s)`` image is
fetched once through the same guarded fetcher as templates (its own host allow-list,
size and time limits), checked to be a real raster image, re-encoded as PNG (which
drops anything but pixels) and inlined as a ``data:`` URI. An image that cannot be
had is left out of the rendering, never fatal.
"""

from __future__ import annotations

import base64
import io
import logging
import struct
from typing import Protocol

from lxml import etree
from PIL import Image, UnidentifiedImageError

from certflow.errors import CertflowError, ErrorCode
from certflow.render.svg import hardened_parser

log = logging.getLogger(__name__)

_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
#: Largest image accepted, in pixels: bigger ones are decompression bombs or mistakes.
MAX_IMAGE_PIXELS = 4_000_000
_RASTER_FORMATS = frozenset({"PNG", "JPEG", "GIF", "WEBP"})


class ImageSource(Protocol):
    async def get(self, ref: str) -> str: ...


def image_data_uri(body: bytes, url: str) -> str:
    """A fetched image as a PNG ``data:`` URI, or TEMPLATE_INVALID if it is not one.

    Only the decoders of the accepted formats are tried: Pillow otherwise probes the
    bytes with every plugin it has (TIFF, PSD, EPS …), each a parser a hostile server
    would get to exercise for nothing.
    """
    try:
        with Image.open(io.BytesIO(body), formats=sorted(_RASTER_FORMATS)) as image:
            if image.format not in _RASTER_FORMATS:
                raise CertflowError(ErrorCode.TEMPLATE_INVALID, f"{url} is {image.format}, not a raster image")
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise CertflowError(
                    ErrorCode.TEMPLATE_INVALID,
                    f"{url} is {image.width}×{image.height} pixels; at most {MAX_IMAGE_PIXELS} are allowed",
                )
            image.load()
            out = io.BytesIO()
            image.convert("RGBA").save(out, format="PNG")
    except UnidentifiedImageError:
        raise CertflowError(
            ErrorCode.TEMPLATE_INVALID,
            f"{url} is not a {', '.join(sorted(_RASTER_FORMATS)[:-1])} or "
            f"{sorted(_RASTER_FORMATS)[-1]} image",
        ) from None
    except (
        OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error,
        Image.DecompressionBombError,
    ) as exc:
        # What Pillow raises for damaged or hostile data varies by format and by
        # where the damage is; all of it means "not a usable image", none of it may
        # escape into the renderer.
        raise CertflowError(ErrorCode.TEMPLATE_INVALID, f"{url} is not a usable image: {exc}") from None
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


async def inline_remote_images(svg: str, images: ImageSource) -> str:
    """``svg`` with every http(s) ``<image>`` replaced by its inlined copy, or left
    without its link when it cannot be had."""
    if "http" not in svg:
        return svg
    parser = hardened_parser()
    root = etree.fromstring(svg.encode(), parser)
    changed = False
    for element in root.iter("{http://www.w3.org/2000/svg}image"):
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
