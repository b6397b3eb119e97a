"""One certificate in the format a file name asks for: what ``certflow render
TEMPLATE DATA -o OUT.svg|.pdf|.png`` writes, through the very function the worker's
render pool calls, so a template author previews the real PDF and PNG."""

from __future__ import annotations

from pathlib import PurePath
from typing import Literal

from certflow.render.images import DEFAULT_LIMITS, ImageLimits
from certflow.render.pdf import render_pdf, render_png

__all__ = ["OutputFormat", "output_format", "render_certificate"]

OutputFormat = Literal["svg", "pdf", "png"]
_FORMATS: dict[str, OutputFormat] = {".svg": "svg", ".pdf": "pdf", ".png": "png"}


def output_format(path: str | PurePath) -> OutputFormat:
    """``svg``, ``pdf`` or ``png`` from the file name's extension (any case);
    ValueError for anything else."""
    suffix = PurePath(path).suffix.lower()
    try:
        return _FORMATS[suffix]
    except KeyError:
        raise ValueError(f"{str(path)!r}: the output must end in .svg, .pdf or .png") from None


def render_certificate(
    svg: str,
    fmt: OutputFormat,
    *,
    image_limits: ImageLimits = DEFAULT_LIMITS,
    title: str | None = None,
    lang: str | None = None,
    revoked: bool = False,
) -> bytes:
    """The filled certificate ``svg`` as ``fmt`` bytes (the SVG itself as UTF-8)."""
    if fmt == "svg":
        return svg.encode("utf-8")
    if fmt == "pdf":
        return render_pdf(svg, image_limits=image_limits, title=title, lang=lang, revoked=revoked)
    if fmt == "png":
        return render_png(svg, image_limits=image_limits, title=title, lang=lang, revoked=revoked)
    raise ValueError(f"unknown format {fmt!r}")
