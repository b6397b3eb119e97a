""""Add to wallet": the VC-API exchange a wallet uses to claim a certificate, as pure logic.

The flow (the Digital Credentials Consortium's, which the Learner Credential
Wallet speaks, and the VC-API "exchanges" it is built on):

1. The certificate page shows a button and a QR code holding a deep link
   (:func:`wallet_deep_link`) to a fresh exchange (:func:`create_exchange`), whose
   URL is ``{CERTFLOW_PUBLIC_URL}/exchanges/{exchange_id}``.
2. The wallet POSTs ``{}`` to the exchange URL and gets a DIDAuth request
   (:func:`presentation_request`): "prove you control a DID", with a one-time
   ``challenge`` and the service's ``domain``.
3. The wallet POSTs ``{verifiablePresentation}``, signed by its ``did:key`` for
   ``authentication`` with that challenge and domain. :func:`accept_presentation`
   checks it, binds the certificate to the holder (``credentialSubject.id`` = the
   holder's DID), signs it again (eddsa-jcs-2022 + eddsa-rdfc-2022: a proof set
   every wallet's verifier accepts), marks the exchange used and answers
   ``{verifiablePresentation: {verifiableCredential: [credential]}}``.

Claims are one-time and expire: a second presentation, or one after ``expires``,
is refused (410). State lives in a dict-like store of JSON objects (exchange id →
:meth:`Exchange.to_json`), so a Faust table can back it; the exchange is marked
used *before* the credential is returned, and a route must send an exchange's
requests to the one worker that owns its key (the table's partition), so that
two concurrent presentations cannot both claim it.

Binding changes the credential, so it is signed again; its ``id`` and
``credentialStatus`` stay the certificate's, so revoking the certificate revokes
every wallet's copy.
"""

from __future__ import annotations

import json
import secrets
import urllib.parse
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from certflow.credentials.contexts import VC_V2_CONTEXT
from certflow.credentials.cryptosuites import RDFC
from certflow.credentials.keys import SigningKey
from certflow.credentials.proof import AUTHENTICATION, resolve_did_key, sign, verify_proof
from certflow.credentials.validation import holder_id, presentation_problems

#: How long a claim link stays usable.
DEFAULT_TTL = timedelta(minutes=15)

#: The store: exchange id → :meth:`Exchange.to_json`. A dict in tests, a Faust table in a worker.
ExchangeStore = MutableMapping[str, dict[str, Any]]


class ExchangeError(Exception):
    """Why an exchange request is refused, with the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def as_body(self) -> dict[str, Any]:
        return {"errors": [{"message": self.reason}]}


@dataclass(frozen=True)
class Exchange:
    exchange_id: str
    certificate_id: str
    challenge: str
    created: datetime
    expires: datetime
    #: Set once claimed: the holder's DID and when.
    holder: str | None = None
    claimed: datetime | None = None

    @property
    def used(self) -> bool:
        return self.claimed is not None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("created", "expires", "claimed"):
            if data[name] is not None:
                data[name] = data[name].isoformat()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Exchange:
        moments = {
            name: datetime.fromisoformat(data[name]) if data.get(name) else None
            for name in ("created", "expires", "claimed")
        }
        return cls(
            exchange_id=str(data["exchange_id"]),
            certificate_id=str(data["certificate_id"]),
            challenge=str(data["challenge"]),
            # Every stored exchange has both (create_exchange sets them); one without is corrupt.
            created=moments["created"],  # type: ignore[arg-type]  # see above
            expires=moments["expires"],  # type: ignore[arg-type]  # see above
            holder=data.get("holder"),
            claimed=moments["claimed"],
        )


def create_exchange(
    store: ExchangeStore,
    certificate_id: str,
    *,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
    token: Callable[[], str] = lambda: secrets.token_urlsafe(24),
) -> Exchange:
    """A new one-time exchange for ``certificate_id``, kept in ``store``.

    The exchange id and the challenge are unguessable (``token``: 192 random bits);
    the id is a capability, so it is made only for someone entitled to claim the
    certificate (the learner's certificate page).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    exchange = Exchange(token(), certificate_id, token(), now, now + ttl)
    store[exchange.exchange_id] = exchange.to_json()
    return exchange


def exchange_url(public_url: str, exchange: Exchange | str) -> str:
    """``{public_url}/exchanges/{id}``: built from ``CERTFLOW_PUBLIC_URL``, never a Host header."""
    exchange_id = exchange.exchange_id if isinstance(exchange, Exchange) else exchange
    return f"{public_url.rstrip('/')}/exchanges/{urllib.parse.quote(exchange_id, safe='')}"


def load_exchange(store: ExchangeStore, exchange_id: str, *, now: datetime) -> Exchange:
    """The exchange, if it may still be used; :class:`ExchangeError` (404/410) otherwise."""
    data = store.get(exchange_id)
    if data is None:
        raise ExchangeError(404, "no such exchange")
    exchange = Exchange.from_json(data)
    if exchange.used:
        raise ExchangeError(410, "this claim link has already been used")
    if now >= exchange.expires:
        raise ExchangeError(410, "this claim link has expired: open the certificate page for a new one")
    return exchange


def presentation_request(exchange: Exchange, *, service_url: str, domain: str) -> dict[str, Any]:
    """The answer to the wallet's first POST: a DIDAuth ``VerifiablePresentationRequest``.

    ``service_url``: the exchange URL (where the presentation is to be sent);
    ``domain``: the service's host name, which the presentation's proof must repeat.
    """
    return {
        "verifiablePresentationRequest": {
            "query": [{"type": "DIDAuthentication", "acceptedMethods": [{"method": "key"}],
                       "acceptedCryptosuites": [{"cryptosuite": "eddsa-rdfc-2022"},
                                                {"cryptosuite": "eddsa-jcs-2022"}]}],
            "challenge": exchange.challenge,
            "domain": domain,
            "interact": {
                "service": [{"type": "UnmediatedHttpPresentationService2021", "serviceEndpoint": service_url}]
            },
        }
    }


def start_exchange(store: ExchangeStore, exchange_id: str, *, now: datetime, public_url: str,
                   domain: str) -> dict[str, Any]:
    """The wallet's first POST to ``/exchanges/{id}`` (body ``{}``): the DIDAuth request."""
    exchange = load_exchange(store, exchange_id, now=now)
    return presentation_request(exchange, service_url=exchange_url(public_url, exchange), domain=domain)


def verify_did_auth(presentation: Any, *, challenge: str, domain: str) -> str:
    """The holder's DID, if ``presentation`` is a valid DIDAuth for ``challenge`` and ``domain``.

    Signed with eddsa-rdfc-2022 or eddsa-jcs-2022 by a ``did:key``, purpose
    ``authentication``; a ``holder``, when given, must be that DID.
    :class:`ExchangeError` (400) otherwise.
    """
    if not isinstance(presentation, dict):
        raise ExchangeError(400, "verifiablePresentation must be a JSON object")
    problems = presentation_problems(presentation)
    if problems:
        raise ExchangeError(400, "malformed presentation: " + "; ".join(problems))
    if presentation.get("proof") is None:
        raise ExchangeError(400, "the presentation must be signed by the holder (DIDAuthentication)")
    check = verify_proof(
        presentation, resolve_did_key, expected_purpose=AUTHENTICATION, challenge=challenge, domain=domain
    )
    if not check.ok:
        raise ExchangeError(400, f"DIDAuthentication failed: {check.reason}")
    signer = check.did
    if signer is None or not signer.startswith("did:key:"):
        raise ExchangeError(400, "the presentation must be signed by a did:key")
    holder = holder_id(presentation)
    if holder is not None and holder != signer:
        raise ExchangeError(400, f"holder {holder} is not the presentation's signer {signer}")
    return signer


def bind_to_holder(
    credential: Mapping[str, Any], holder: str, *, key: SigningKey, now: datetime
) -> dict[str, Any]:
    """The certificate with ``credentialSubject.id`` = ``holder``, signed again with
    both proofs (eddsa-jcs-2022, then eddsa-rdfc-2022)."""
    unsigned = {name: value for name, value in credential.items() if name != "proof"}
    subject = unsigned.get("credentialSubject")
    if not isinstance(subject, dict):
        raise ValueError("only a credential with one credentialSubject can be bound to a holder")
    unsigned["credentialSubject"] = {"id": holder, **{k: v for k, v in subject.items() if k != "id"}}
    signed = sign(unsigned, key, created=now)
    return sign(signed, key, created=now, cryptosuite=RDFC, add_to_proof_set=True)


def accept_presentation(
    store: ExchangeStore,
    exchange_id: str,
    body: Any,
    *,
    now: datetime,
    domain: str,
    credential_of: Callable[[str], Mapping[str, Any] | None],
    key: SigningKey,
) -> dict[str, Any]:
    """The wallet's second POST: ``{verifiablePresentation}`` → the bound credential.

    ``credential_of(certificate_id)``: the certificate as issued (the registry's
    copy), or None when it is gone. Returns the VC-API exchange answer
    ``{verifiablePresentation: {…, verifiableCredential: [credential]}}``;
    raises :class:`ExchangeError` (400 bad presentation, 404 unknown exchange or
    certificate, 410 used or expired). The exchange is marked used only when the
    presentation is good, and before the credential is handed out.
    """
    exchange = load_exchange(store, exchange_id, now=now)
    if not isinstance(body, dict):
        raise ExchangeError(400, "the request body must be {verifiablePresentation: {...}}")
    holder = verify_did_auth(body.get("verifiablePresentation"), challenge=exchange.challenge, domain=domain)
    credential = credential_of(exchange.certificate_id)
    if credential is None:
        raise ExchangeError(404, "the certificate of this claim link no longer exists")
    bound = bind_to_holder(credential, holder, key=key, now=now)
    store[exchange_id] = replace(exchange, holder=holder, claimed=now).to_json()
    return {
        "verifiablePresentation": {
            "@context": [VC_V2_CONTEXT],
            "type": ["VerifiablePresentation"],
            "verifiableCredential": [bound],
        }
    }


# --- what the certificate page shows ---------------------------------------------------


def wallet_deep_link(
    exchange_url: str,
    *,
    style: str = "lcw",
    issuer: str | None = None,
    challenge: str | None = None,
) -> str:
    """The link (and QR code content) that opens a wallet on the exchange.

    * ``lcw`` (default): the Learner Credential Wallet's universal link,
      ``https://lcw.app/request.html?request={"protocols":{"vcapi":URL}}``
      (URL-encoded JSON); it opens the app when installed, a help page otherwise.
    * ``dccrequest``: the same request as a custom-scheme deep link,
      ``dccrequest://request?request=…``.
    * ``legacy``: the DCC's older form, ``dccrequest://request?issuer=…&
      vc_request_url=…&auth_type=bearer&challenge=…&vp_version=1.1``, for
      wallets that predate VC-API exchanges (``issuer`` and ``challenge`` needed).
    """
    request = json.dumps({"protocols": {"vcapi": exchange_url}}, separators=(",", ":"))
    if style == "lcw":
        return "https://lcw.app/request.html?" + urllib.parse.urlencode({"request": request})
    if style == "dccrequest":
        return "dccrequest://request?" + urllib.parse.urlencode({"request": request})
    if style == "legacy":
        if not issuer or not challenge:
            raise ValueError("the legacy deep link needs issuer and challenge")
        return "dccrequest://request?" + urllib.parse.urlencode(
            {"issuer": issuer, "vc_request_url": exchange_url, "auth_type": "bearer",
             "challenge": challenge, "vp_version": "1.1"}
        )
    raise ValueError(f"unknown deep link style {style!r}")


def chapi_request(exchange_url: str) -> dict[str, Any]:
    """What a web page hands ``navigator.credentials.get`` (CHAPI) to start the exchange
    in a browser wallet: a VerifiablePresentation request whose ``interact`` names it."""
    return {
        "web": {
            "VerifiablePresentation": {
                "query": [{"type": "DIDAuthentication"}],
                "interact": {"service": [{"type": "VerifiableCredentialApiExchangeService",
                                          "serviceEndpoint": exchange_url}]},
            }
        },
        "recommendedHandlerOrigins": ["https://lcw.app"],
    }
