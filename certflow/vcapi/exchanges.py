""""Add to wallet": one-time VC-API exchanges that hand a certificate to a learner's wallet.

Routes (VC-API exchanges, as the Learner Credential Wallet speaks them):

* ``POST /certs/{id}/exchanges``: a new exchange for certificate ``id``. Needs the
  admin token (``Authorization: Bearer``), or the learner's signed link token
  (``?token=``, the learner page's, :func:`certflow.notify.links.learner_token`)
  for the certificate's recipient. Answers 201 ``{exchangeId, exchangeUrl, expires,
  deepLink, chapi}``: the URL a wallet POSTs to, the LCW deep link (QR code content)
  and the CHAPI request for a browser wallet.
* ``POST /exchanges/{exchangeId}``: the wallet's exchange. ``{}`` starts it (a DIDAuth
  ``verifiablePresentationRequest`` with a one-time challenge and the domain of
  ``CERTFLOW_PUBLIC_URL``); ``{verifiablePresentation}`` signed by the wallet's
  ``did:key`` continues it, and the answer carries the certificate bound to that DID
  (``credentialSubject.id``), signed again with eddsa-jcs-2022 + eddsa-rdfc-2022.

Where exchanges live. The exchange id is ``{certificate id}.{32 random characters}``,
so its requests are routed (``owner_route`` on the ``certificates`` table) to the
worker that owns the certificate, which keeps its open exchanges in memory
(:class:`ExchangeBook`, bounded, 15 minutes each). A Faust table cannot be written
from a web view (only from an agent's event), and a claim must be checked and marked
used in one step: on one worker, in one synchronous call
(:func:`certflow.credentials.exchange.accept_presentation`), two presentations cannot
both claim it. A rebalance or restart forgets open exchanges: the wallet gets 404 and
the learner opens a new link; it never lets an exchange be claimed twice.

Threat model. Whoever holds an exchange URL can claim the certificate bound to a DID
of their choice, so the URL is a short-lived capability, made only for the learner
(learner token) or an administrator; a certificate's public URL (on the paper, in its
QR code) is not enough, or anyone who saw the paper could hold a credential naming
the learner under their own DID. The certificate's content is public anyway
(``GET /certs/{id}``); what the exchange adds is the binding to the holder's key.
Revoking the certificate revokes every wallet's copy (same ``credentialStatus``).
"""

from __future__ import annotations

import secrets
import urllib.parse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from faust.web import Request, Response

from certflow.credentials.exchange import (
    DEFAULT_TTL,
    Exchange,
    ExchangeError,
    accept_presentation,
    chapi_request,
    create_exchange,
    exchange_url,
    start_exchange,
    wallet_deep_link,
)
from certflow.faust_fixes.routing import owner_route
from certflow.notify.links import derive_link_secret, verify_learner_token
from certflow.pages import wallet_offer_page
from certflow.registry.views import CERTIFICATE_ID
from certflow.render.qr import qr_code_data_uri
from certflow.vcapi.views import read_json
from certflow.web.auth import Access, accepted_tokens, bearer_matches, unauthorized
from certflow.web.base import CertflowView
from certflow.web.errors import error_response

if TYPE_CHECKING:
    from certflow.app import CertflowApp

#: Open exchanges one worker keeps at most (expired ones are dropped first).
MAX_OPEN_EXCHANGES = 10_000
#: A wallet's presentation (DIDAuth) is small.
MAX_EXCHANGE_BYTES = 64 * 1024
#: The random part of an exchange id: secrets.token_urlsafe(24), 192 bits.
TOKEN_PATTERN = r"[A-Za-z0-9_-]{32}"
_BOOK = "certflow_exchange_book"


class ExchangeBook(dict[str, dict[str, Any]]):
    """This worker's open exchanges: exchange id → ``Exchange.to_json()``."""

    def prune(self, now: datetime) -> None:
        for exchange_id in [k for k, v in self.items() if datetime.fromisoformat(v["expires"]) <= now]:
            del self[exchange_id]


def exchange_book(app: CertflowApp) -> ExchangeBook:
    book: ExchangeBook | None = getattr(app, _BOOK, None)
    if book is None:
        book = ExchangeBook()
        setattr(app, _BOOK, book)
    return book


def wallet_offer_url(public_url: str, certificate_id: str) -> str:
    """Where "Add to wallet" creates an exchange: ``POST {public_url}/certs/{id}/exchanges``
    (with the learner's ``?token=`` or the admin token); built from ``CERTFLOW_PUBLIC_URL``."""
    return f"{public_url.rstrip('/')}/certs/{urllib.parse.quote(certificate_id, safe='')}/exchanges"


def offer(app: CertflowApp, certificate_id: str, *, now: datetime | None = None) -> dict[str, Any]:
    """A new exchange for ``certificate_id``, made on this worker (call it on the
    certificate's owner, e.g. inside an ``owner_route`` view), and what a page shows:
    ``{exchangeId, exchangeUrl, expires, deepLink, chapi}``."""
    moment = now or datetime.now(UTC)
    book = exchange_book(app)
    book.prune(moment)
    if len(book) >= MAX_OPEN_EXCHANGES:
        raise ExchangeError(503, "too many open claim links: try again in a few minutes")
    tokens = iter([f"{certificate_id}.{secrets.token_urlsafe(24)}", secrets.token_urlsafe(24)])
    exchange: Exchange = create_exchange(book, certificate_id, now=moment, ttl=DEFAULT_TTL,
                                         token=lambda: next(tokens))
    url = exchange_url(app.settings.public_url, exchange)
    return {
        "exchangeId": exchange.exchange_id,
        "exchangeUrl": url,
        "expires": exchange.expires.isoformat(),
        "deepLink": wallet_deep_link(url),
        "chapi": chapi_request(url),
    }


def _learner_secret(app: CertflowApp) -> bytes:
    key = app.services.keys.current
    return derive_link_secret(key.private_key_multibase, app.settings.learner_link_secret)


def _domain(app: CertflowApp) -> str:
    return urllib.parse.urlsplit(app.settings.public_url).hostname or ""


class CreateExchangeView(CertflowView):
    """``POST /certs/{id}/exchanges``: a one-time claim link for the certificate's learner."""

    async def post(self, request: Request, id: str) -> Response:  # noqa: A002 - route name
        admin = bearer_matches(request.headers.get("Authorization"),
                               accepted_tokens(self.app.settings, Access.ADMIN))
        if not admin and not request.query.get("token"):
            return unauthorized(self, request, Access.ADMIN)
        return await self._create(request, id=id)

    @owner_route("certificates", "id")
    async def _create(self, request: Request, id: str) -> Response:  # noqa: A002 - the route names its parameter
        stored = self.app.flows.registry.certificate(id)
        if stored is None or stored.get("record") is None:
            return error_response(404, "CERTIFICATE_NOT_FOUND", f"no certificate {id}")
        admin = bearer_matches(request.headers.get("Authorization"),
                               accepted_tokens(self.app.settings, Access.ADMIN))
        recipient = (stored["record"].get("recipient") or {}).get("id")
        if not admin and not (
            recipient and verify_learner_token(str(recipient), request.query.get("token", ""),
                                               _learner_secret(self.app))
        ):
            return error_response(401, "UNAUTHORIZED", "the learner's link token is not valid for this "
                                  "certificate", headers={"WWW-Authenticate": 'Bearer realm="certflow"'})
        if stored.get("revocation"):
            return error_response(410, "CERTIFICATE_REVOKED", f"certificate {id} is revoked")
        try:
            made = offer(self.app, id)
        except ExchangeError as exc:
            return self.json(exc.as_body(), status=exc.status)
        if "text/html" in request.headers.get("Accept", ""):
            # The learner page's "Add to wallet" button: the link and its QR code.
            name = str(stored["record"].get("certificateName") or "")
            qr = qr_code_data_uri(made["deepLink"], "")
            return self.html(wallet_offer_page(name, made, qr), status=201)
        return self.json(made, status=201)


class ExchangeView(CertflowView):
    """``POST /exchanges/{exchangeId}``: start (``{}``) or continue (``{verifiablePresentation}``)."""

    @owner_route("certificates", "id", body_limit=MAX_EXCHANGE_BYTES)
    async def post(self, request: Request, id: str, token: str) -> Response:  # noqa: A002 - the route names its parameter
        body = await read_json(request, MAX_EXCHANGE_BYTES)
        if isinstance(body, Response):
            return body
        app = self.app
        exchange_id = f"{id}.{token}"
        now = datetime.now(UTC)
        book = exchange_book(app)
        registry = app.flows.registry

        def credential_of(certificate_id: str) -> dict[str, Any] | None:
            stored = registry.certificate(certificate_id)
            if stored is None or stored.get("record") is None or stored.get("revocation"):
                return None
            certificate: dict[str, Any] = stored["record"]["certificate"]
            return certificate

        try:
            if not isinstance(body, dict) or "verifiablePresentation" not in body:
                answer = start_exchange(book, exchange_id, now=now, public_url=app.settings.public_url,
                                        domain=_domain(app))
            else:
                answer = accept_presentation(book, exchange_id, body, now=now, domain=_domain(app),
                                             credential_of=credential_of, key=app.services.keys.current)
        except ExchangeError as exc:
            return self.json(exc.as_body(), status=exc.status)
        return self.json(answer)


def register(app: CertflowApp) -> None:
    certificate = f"/certs/{{id:{CERTIFICATE_ID}}}"
    app.page(f"{certificate}/exchanges")(CreateExchangeView)
    app.page(f"/exchanges/{{id:{CERTIFICATE_ID}}}.{{token:{TOKEN_PATTERN}}}")(ExchangeView)
