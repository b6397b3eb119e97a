"""PDF and PNG on demand, off the event loop, cached.

Shaping and rasterising a certificate takes tens of milliseconds of CPU, mostly in
Python (fontTools) under the GIL, so a thread would still stall the worker's event
loop; a separate process does not. One process is enough on a small pod and keeps
fonts cached between requests; the LRU in front keeps repeated downloads (a learner
fetching their certificate twice, a verifier re-checking) from rendering again.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Literal

from cachetools import LRUCache

from certflow.render.images import DEFAULT_LIMITS, ImageLimits
from certflow.render.output import render_certificate

Format = Literal["pdf", "png"]


def _render(
    svg: str, fmt: Format, image_limits: ImageLimits, title: str | None = None,
    lang: str | None = None, revoked: bool = False,
) -> bytes:
    # The function `certflow render -o OUT.pdf|.png` calls too (render/output.py).
    return render_certificate(svg, fmt, image_limits=image_limits, title=title, lang=lang, revoked=revoked)


class RenderPool:
    """Renders certificates in a worker process; results cached by certificate and format."""

    def __init__(
        self, *, cache_size: int, processes: int = 1, image_limits: ImageLimits = DEFAULT_LIMITS
    ) -> None:
        #: Every image the renderer draws is held to these (``prepare_svg``).
        self.image_limits = image_limits
        self._cache: LRUCache[tuple[str, Format, bool], bytes] = LRUCache(maxsize=max(cache_size, 1))
        self._processes = processes
        self._executor: ProcessPoolExecutor | None = None
        self._pending: dict[tuple[str, Format, bool], asyncio.Future[bytes]] = {}
        self.hits = 0
        self.misses = 0

    async def render(
        self, key: str, document: Callable[[], Awaitable[str]], fmt: Format, *, title: str | None = None,
        lang: str | None = None, revoked: bool = False,
    ) -> bytes:
        """The rendered certificate ``key``; concurrent requests for it share one render.

        ``document`` makes the SVG to render (drawing it from the certificate's facts,
        inlining its images): awaited only when the rendering is not cached, so a
        cached download costs a lookup. ``title``/``lang``: the PDF's (and PNG's)
        title and language (the certificate's name, the learner's language);
        ``revoked``: drawn with a REVOKED mark, cached apart from the clean rendering.
        """
        slot = (key, fmt, revoked)
        cached = self._cache.get(slot)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        pending = self._pending.get(slot)
        if pending is None:
            pending = asyncio.ensure_future(self._render(document, fmt, title, lang, revoked))
            self._pending[slot] = pending
            pending.add_done_callback(lambda _: self._pending.pop(slot, None))
        rendered = await asyncio.shield(pending)
        self._cache[slot] = rendered
        return rendered

    async def _render(
        self, document: Callable[[], Awaitable[str]], fmt: Format, title: str | None, lang: str | None,
        revoked: bool,
    ) -> bytes:
        svg = await document()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), _render, svg, fmt, self.image_limits, title, lang, revoked)

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # "spawn": forking a process that runs an event loop and Kafka client
            # threads is unsafe; a fresh interpreter imports only the renderer.
            self._executor = ProcessPoolExecutor(
                max_workers=self._processes, mp_context=multiprocessing.get_context("spawn")
            )
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
