"""Who may call what: one token check for every protected view.

Public, because anyone holding a certificate must be able to check it: the
certificate views (``GET /certs/{id}``, ``/certs/{id}.svg|pdf|png``), ``POST /verify``,
``GET /status/{list}``, and the orchestrator's ``/health`` and ``/ready``
(:data:`PUBLIC_ROUTES`). Everything else names a learner, acts as an administrator or
describes the deployment, and needs ``Authorization: Bearer <token>``:

* :attr:`Access.ADMIN`: ``CERTFLOW_ADMIN_TOKEN``. Revoking a certificate, a
  learner's decisions and issued state.
* :attr:`Access.METRICS`: ``CERTFLOW_METRICS_TOKEN`` or the admin token. ``/stats``
  and ``/metrics`` (topic names, counts, table sizes), so that Prometheus can scrape
  with a token that can do nothing else.
* :attr:`Access.ISSUER`: ``CERTFLOW_ISSUER_API_TOKEN`` (not the admin token): the
  VC-API's ``POST /credentials/issue``, registered only when that token is set.

Views use :func:`requires_token`, outermost, so a request is checked by the worker
that receives it, before it is forwarded to the owner of its key (which checks it
again: the ``Authorization`` header is forwarded). A missing or wrong token gets
``401`` with ``WWW-Authenticate: Bearer`` and the usual JSON error. An unset token
refuses everything it would allow.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable
from enum import Enum
from functools import wraps
from typing import Any

from faust.web import Request, Response, View

from certflow.settings import Settings
from certflow.web.base import CertflowView
from certflow.web.errors import error_response

#: Routes anyone may call (method, aiohttp route pattern); every other route needs a token.
PUBLIC_ROUTES = frozenset({
    ("GET", "/certs/{id}"),
    ("GET", "/certs/{id}.{fmt}"),
    ("POST", "/verify"),
    ("GET", "/verify"),
    # Guarded by the signed, expiring token of the learner's email link.
    ("GET", "/learners/{userId}"),
    ("GET", "/status/{list}"),
    ("GET", "/health"),
    ("GET", "/ready"),
    # The VC-API's verifiers (certflow.vcapi.views), public like POST /verify.
    ("POST", "/credentials/verify"),
    ("POST", "/presentations/verify"),
    # A wallet's exchange: the unguessable exchange id in the URL is the capability
    # (made by POST /certs/{id}/exchanges, which needs a token; certflow.vcapi.exchanges).
    ("POST", "/exchanges/{id}.{token}"),
})

#: Attribute set on a view method that :func:`requires_token` guards.
GUARD_ATTRIBUTE = "certflow_access"

Handler = Callable[..., Awaitable[Response]]


class Access(Enum):
    """What a token allows."""

    ADMIN = "admin"
    METRICS = "metrics"
    #: ``CERTFLOW_ISSUER_API_TOKEN`` only: the VC-API's ``POST /credentials/issue``.
    ISSUER = "issuer"


def accepted_tokens(settings: Settings, access: Access) -> list[str]:
    """The configured tokens that grant ``access`` (never an empty one)."""
    if access is Access.ISSUER:
        return [settings.issuer_api_token] if settings.issuer_api_token else []
    tokens = [settings.admin_token]
    if access is Access.METRICS:
        tokens.append(settings.metrics_token)
    return [token for token in tokens if token]


def bearer_matches(authorization: str | None, tokens: Iterable[str]) -> bool:
    """Whether an ``Authorization`` header carries one of ``tokens`` as a bearer token.

    The scheme is case-insensitive (RFC 7235). Tokens are compared in constant time,
    as SHA-256 digests of their bytes: equal lengths, so the time taken does not
    tell a token's length either, and bytes, because ``hmac.compare_digest`` raises
    ``TypeError`` for a ``str`` with non-ASCII characters, which a client controls.
    Every token is compared, so the time does not tell which one nearly matched.
    """
    scheme, _, presented = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    presented_bytes = presented.strip().encode("utf-8", "surrogateescape")
    if not presented_bytes:
        return False
    digest = hashlib.sha256(presented_bytes).digest()
    matches = [
        hmac.compare_digest(digest, hashlib.sha256(token.encode("utf-8")).digest()) for token in tokens
    ]
    return any(matches)


def unauthorized(view: View, request: Request, access: Access) -> Response:
    """``401`` in the API's JSON error shape, with the challenge RFC 6750 asks for."""
    challenge = 'Bearer realm="certflow"'
    if request.headers.get("Authorization"):
        challenge += ', error="invalid_token"'
    needs = {
        Access.ADMIN: "the admin token",
        Access.METRICS: "the metrics or admin token",
        Access.ISSUER: "the issuer API token",
    }[access]
    return error_response(
        401,
        "UNAUTHORIZED",
        f"this route needs {needs}: Authorization: Bearer <token>",
        headers={"WWW-Authenticate": challenge},
    )


def requires_token(access: Access = Access.ADMIN) -> Callable[[Handler], Handler]:
    """Decorate a view method: answer ``401`` unless the request carries a token for ``access``.

    Put it above ``owner_route``, so a request is refused where it arrives, before
    it is forwarded.
    """

    def decorator(handler: Handler) -> Handler:
        @wraps(handler)
        async def guarded(view: CertflowView, request: Request, **kwargs: Any) -> Response:
            if not bearer_matches(
                request.headers.get("Authorization"), accepted_tokens(view.app.settings, access)
            ):
                return unauthorized(view, request, access)
            return await handler(view, request, **kwargs)

        setattr(guarded, GUARD_ATTRIBUTE, access)
        return guarded

    return decorator
