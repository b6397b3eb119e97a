"""Every error a worker answers is JSON: ``{"error": {"code", "message"}}``.

One shape for every client of the API, whether a view refuses a request
(:func:`error_response`) or aiohttp refuses it before a view runs, or a view
crashes (:func:`json_errors`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import cast

import orjson
from aiohttp import web as aiohttp_web
from faust.web import Response

log = logging.getLogger(__name__)

#: Codes of the errors aiohttp raises itself: no route, wrong method, a body over
#: aiohttp's own limit, a malformed request.
_HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "TOO_LARGE",
    414: "TOO_LARGE",
    431: "TOO_LARGE",
}

Handler = Callable[[aiohttp_web.Request], Awaitable[aiohttp_web.StreamResponse]]


def json_error(
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
) -> aiohttp_web.Response:
    """The API's error answer: a machine-readable code and a sentence for people."""
    return aiohttp_web.Response(
        status=status,
        body=orjson.dumps({"error": {"code": code, "message": message}}),
        content_type="application/json",
        headers=headers,
    )


def error_response(
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
) -> Response:
    """:func:`json_error` for a view: Faust declares views to return its own
    :class:`Response`, and its only web driver answers with aiohttp's, which this is."""
    return cast(Response, json_error(status, code, message, headers=headers))


@aiohttp_web.middleware
async def json_errors(request: aiohttp_web.Request, handler: Handler) -> aiohttp_web.StreamResponse:
    """Answer unknown routes, wrong methods, oversized bodies and crashes in JSON.

    Faust only lets views answer for themselves; what aiohttp decides before a view
    runs (404, 405, 413) would otherwise be ``text/plain``, and an exception in a
    view a bare 500 page, unlike the ``{"error": {"code", "message"}}`` every
    client of this API parses.
    """
    try:
        return await handler(request)
    except aiohttp_web.HTTPException as exc:
        if exc.status < 400:
            raise
        kept = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        code = _HTTP_CODES.get(exc.status, "HTTP_ERROR")
        return json_error(exc.status, code, exc.reason, headers=kept)
    except Exception:
        log.exception("unexpected failure answering %s %s", request.method, request.path)
        return json_error(500, "INTERNAL_ERROR", "the request could not be answered")
