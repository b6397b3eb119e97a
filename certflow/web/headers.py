"""Security headers on every answer, decided in one place by what the answer is.

A certificate's SVG is a document a browser renders on the worker's origin; even
sanitised (:mod:`certflow.render.sanitise`), it is served as if it were hostile, so
a mistake in the allow-list is not yet cross-site scripting:

* SVG, PNG and PDF: ``sandbox`` (no script, no same-origin access, no forms),
  ``default-src 'none'``, images only from ``data:`` and this origin, inline
  styles (a template's own ``<style>``, already sanitised) and nothing else.
* HTML pages: no script and no framing by other sites.
* Everything: ``X-Content-Type-Options: nosniff``, so a body is never read as a
  type other than the one it is served as.

A middleware rather than each view: a request forwarded to the worker that owns a
certificate comes back as bytes through ``owner_route``, and the receiving worker
sets the headers on what it answers, whatever the owner did.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web as aiohttp_web
from faust import App

from certflow.faust_fixes.web import middlewares

#: Certificate files: documents a browser renders, with no active part allowed.
DOCUMENT_POLICY = (
    "sandbox; default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'; "
    "font-src data:; frame-ancestors 'self'"
)
#: certflow's own HTML pages: styles inline, no scripts, not framed elsewhere.
PAGE_POLICY = (
    "default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
#: JSON and text: nothing in them is ever rendered.
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"

_DOCUMENT_TYPES = frozenset({"image/svg+xml", "image/png", "application/pdf"})

Handler = Callable[[aiohttp_web.Request], Awaitable[aiohttp_web.StreamResponse]]


def content_security_policy(content_type: str) -> str:
    """The policy for an answer of ``content_type`` (without parameters)."""
    if content_type in _DOCUMENT_TYPES:
        return DOCUMENT_POLICY
    if content_type == "text/html":
        return PAGE_POLICY
    return DATA_POLICY


def add_security_headers(response: aiohttp_web.StreamResponse) -> None:
    """The headers for what ``response`` is (by its content type).

    The middleware adds them to every answer once its view returns; a view that
    streams its answer sends the headers before that (``prepare``), so it calls
    this itself first.
    """
    response.headers["Content-Security-Policy"] = content_security_policy(response.content_type)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Referrer-Policy", "no-referrer")


@aiohttp_web.middleware
async def security_headers(
    request: aiohttp_web.Request, handler: Handler
) -> aiohttp_web.StreamResponse:
    response = await handler(request)
    if not response.prepared:  # a streamed answer has sent its own (add_security_headers)
        add_security_headers(response)
    return response


def register(app: App) -> None:
    """Add the headers to every answer of ``app``'s web server.

    Called before the server starts (aiohttp freezes its middleware list then), and
    put first of certflow's middlewares, so it runs outermost and also sees the JSON
    error answers.
    """
    middlewares(app).insert(0, security_headers)
