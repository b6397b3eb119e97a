"""Faust's built-in debugging pages, off.

``/table/{name}/{key}/`` answers any table's value for any key (learner profiles,
enrolments, issued certificates) to whoever can reach the port, ``/router/`` lists
the cluster's hosts and partitions; none of it is certflow's API. Faust's
``web_tables_enabled``/``web_router_enabled`` settings do not cover every path
(faust-streaming 0.11+ still routes some), so a middleware answers 404 for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web as aiohttp_web
from faust.types import AppT
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from certflow.web.errors import json_error

#: Faust app options that turn its generic table and router pages off.
FAUST_PAGES_OFF: dict[str, Any] = {"web_tables_enabled": False, "web_router_enabled": False}
#: Paths of Faust's pages, refused whatever Faust serves.
FAUST_PAGES = ("/table", "/router")

Handler = Callable[[aiohttp_web.Request], Awaitable[aiohttp_web.StreamResponse]]


@aiohttp_web.middleware
async def hide_faust_pages(request: aiohttp_web.Request, handler: Handler) -> aiohttp_web.StreamResponse:
    """404 for Faust's pages, in the API's JSON error shape."""
    if request.path.startswith(FAUST_PAGES):
        return json_error(404, "NOT_FOUND", f"no such resource: {request.path}")
    return await handler(request)


def middlewares(app: AppT) -> list[Any]:
    """The middleware list of the worker's aiohttp application.

    Faust types ``app.web`` as its abstract ``Web``; its only driver is aiohttp's,
    whose ``web_app`` is where middlewares go (before the server starts: aiohttp
    freezes the list then).
    """
    return cast(AiohttpWeb, app.web).web_app.middlewares  # type: ignore[return-value]  # aiohttp types the list as frozen-capable
