"""The render pool: off the event loop, shared and cached by certificate."""

from __future__ import annotations

import asyncio

from certflow.render.pool import RenderPool

SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">'
       '<text x="10" y="50" font-family="DejaVu Sans">शिक्षार्थी</text></svg>')


async def test_a_cached_rendering_does_not_draw_the_document_again() -> None:
    pool = RenderPool(cache_size=4)
    drawn: list[str] = []

    async def document() -> str:
        drawn.append("drawn")
        await asyncio.sleep(0)
        return SVG

    try:
        first, second = await asyncio.gather(pool.render("c1", document, "pdf"), pool.render("c1", document, "pdf"))
        third = await pool.render("c1", document, "pdf")
        revoked = await pool.render("c1", document, "pdf", revoked=True)
    finally:
        pool.close()
    assert first.startswith(b"%PDF") and first == second == third
    assert revoked != first
    assert drawn == ["drawn", "drawn"]  # once clean (shared by two requests), once revoked
    assert (pool.hits, pool.misses) == (1, 3)
