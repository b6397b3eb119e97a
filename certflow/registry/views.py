"""Certificates over HTTP: fetch, render, verify, revoke, and the status lists.

Every route that names a certificate or a status list is answered by the worker that
owns it (``owner_route`` forwards the request), so any worker behind a Service can
take any request. The QR code on a certificate points at
``{basePath}/{id}``; a browser asking that URL gets a human-readable verification
page, a program gets JSON.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from faust.web import Request, Response

from certflow.credentials.rdfc import add_rdfc_proof
from certflow.credentials.status_list import StatusList, status_list_credential
from certflow.credentials.trust import TrustPolicy
from certflow.credentials.verification import (
    VerificationResult,
    issuer_id,
    verify_certificate,
)
from certflow.faust_fixes.routing import (
    is_this_worker,
    owner_of,
    owner_route,
    read_at_most,
)
from certflow.jsonlimits import JSONTooDeep, loads_bounded
from certflow.registry.agents import RevocationOrigin
from certflow.registry.status import STATUS_LIST_ID, status_list_id, status_list_url
from certflow.render.images import inline_remote_images
from certflow.web.auth import Access, requires_token
from certflow.web.base import CertflowView
from certflow.web.errors import error_response

if TYPE_CHECKING:
    from certflow.app import CertflowApp

log = logging.getLogger(__name__)

#: A presented credential larger than this is refused before parsing.
MAX_PRESENTED_BYTES = 256 * 1024
#: An admin's revocation body: a reason, nothing more.
MAX_REVOCATION_BYTES = 16 * 1024
CERTIFICATE_ID = r"[A-Za-z0-9_-]{1,128}"
#: Every printable format of a certificate: file extension → media type. The route
#: ``/certs/{id}.{fmt}`` and the links a certificate lists are derived from it.
MEDIA_TYPES = {"svg": "image/svg+xml", "pdf": "application/pdf", "png": "image/png"}


class CertificateView(CertflowView):
    """The certificate and its status: JSON, or a verification page for browsers."""

    @owner_route("certificates", "id")
    async def get(self, request: Request, id: str) -> Response:  # noqa: A002 - route name
        stored = self.app.flows.registry.certificate(id)
        if stored is None or stored.get("record") is None:
            return error_response(404, "CERTIFICATE_NOT_FOUND", f"no certificate {id}")
        record = stored["record"]
        result = await verify_stored(self.app, record["certificate"])
        body = {
            "id": id,
            "status": "revoked" if stored.get("revocation") else "active",
            "revocation": stored.get("revocation"),
            "verification": result.as_dict(),
            "credential": _with_rdfc_proof(self.app, record["certificate"]),
            "links": {fmt: f"{_base(record)}/{id}.{fmt}" for fmt in MEDIA_TYPES},
        }
        if "text/html" in request.headers.get("Accept", ""):
            return self.html(_verification_page(record, stored.get("revocation"), result))
        return self.json(body)


class CertificateFileView(CertflowView):
    """The printable certificate: the filled SVG, or a PDF or PNG rendered from it."""

    @owner_route("certificates", "id")
    async def get(self, request: Request, id: str, fmt: str) -> Response:  # noqa: A002
        services = self.app.services
        stored = self.app.flows.registry.certificate(id)
        if stored is None or stored.get("record") is None:
            return error_response(404, "CERTIFICATE_NOT_FOUND", f"no certificate {id}")
        if "svg" not in stored["record"]:
            # A credential issued through the VC-API has no printable certificate.
            return error_response(404, "NOT_PRINTABLE", f"certificate {id} has no printable form")
        # Remote images (signatures, logos) are inlined for every format: the SVG's
        # Content-Security-Policy lets a browser load images from data: only, and
        # the renderer must not fetch anything itself.
        printable = await inline_remote_images(stored["record"]["svg"], services.images)
        if fmt == "svg":
            body = printable.encode()
        else:
            body = await services.renderer.render(id, printable, fmt)  # type: ignore[arg-type]  # the route admits MEDIA_TYPES only
        return self.bytes(body, content_type=MEDIA_TYPES[fmt])


class RevokeView(CertflowView):
    """Revoke a certificate (an admin action: ``Authorization: Bearer <token>``).

    Answered by the worker that owns the certificate's record, so that only a
    certificate that exists is revoked: an unknown id is a 404 and nothing is
    recorded (a revocation recorded ahead of its certificate would revoke a
    certificate issued later under that id, and ids are predictable).
    """

    @requires_token(Access.ADMIN)
    @owner_route("certificates", "id", body_limit=MAX_REVOCATION_BYTES)
    async def post(self, request: Request, id: str) -> Response:  # noqa: A002
        reason = "revoked by an administrator"
        raw = await read_at_most(request, MAX_REVOCATION_BYTES)
        if raw is None:
            return error_response(413, "TOO_LARGE", f"the body is at most {MAX_REVOCATION_BYTES} bytes")
        if raw.strip():
            try:
                body = loads_bounded(raw)
            except orjson.JSONDecodeError:
                return error_response(400, "MALFORMED_JSON", "the body must be JSON")
            if not isinstance(body, dict):
                message = 'the body must be a JSON object: {"reason": "…"}'
                return error_response(400, "MALFORMED_JSON", message)
            reason = str(body.get("reason") or reason)[:500]
        registry = self.app.flows.registry
        stored = registry.certificate(id)
        if stored is None or stored.get("record") is None:
            return error_response(404, "CERTIFICATE_NOT_FOUND", f"no certificate {id}")
        if stored.get("revocation"):
            return self.json({"id": id, "status": "revoked", "revocation": stored["revocation"]})
        await registry.request_revocation(id, reason=reason, origin=RevocationOrigin.ADMIN)
        return self.json({"id": id, "status": "revocation requested"}, status=202)


class VerifyView(CertflowView):
    """Verify a presented credential: signature, status, validity period, issuer."""

    async def post(self, request: Request) -> Response:
        raw = await read_at_most(request, MAX_PRESENTED_BYTES)
        if raw is None:
            return error_response(413, "TOO_LARGE", f"a credential is at most {MAX_PRESENTED_BYTES} bytes")
        try:
            presented = loads_bounded(raw)
        except JSONTooDeep as exc:
            return error_response(400, "MALFORMED_JSON", f"the body is not a credential: {exc}")
        except orjson.JSONDecodeError:
            return error_response(400, "MALFORMED_JSON", "the body must be a JSON credential")
        if not isinstance(presented, dict):
            return error_response(400, "MALFORMED_JSON", "the body must be a JSON object")
        credential = presented.get("verifiableCredential", presented)
        if not isinstance(credential, dict):
            return error_response(
                400, "MALFORMED_JSON", "verifiableCredential must be a JSON object (one credential)"
            )
        result = await verify_stored(self.app, credential)
        return self.json(result.as_dict(), status=200)


class StatusListView(CertflowView):
    """A signed ``BitstringStatusListCredential``: the revocation bits of one list."""

    @owner_route("status_lists", "list")
    async def get(self, request: Request, list: str) -> Response:  # noqa: A002
        return self.json(signed_status_list(self.app, list))


def signed_status_list(app: CertflowApp, list_id: str) -> dict[str, Any]:
    settings = app.settings
    bits = StatusList(settings.status_list_size)
    for index in app.flows.registry.revoked_indices(list_id):
        bits.set(index, True)
    signer = app.services.keys.current
    return status_list_credential(
        status_list_url(settings.public_url, list_id),
        bits.encoded(),
        issuer=signer.did,
        key=signer,
        valid_from=datetime.now(UTC),
    )


_TRUST_POLICY = "certflow_trust_policy"


def trust_policy(app: CertflowApp) -> TrustPolicy:
    """Whose certificates verify here: this deployment's keys and CERTFLOW_TRUSTED_ISSUERS
    (worked out once per app)."""
    policy: TrustPolicy | None = getattr(app, _TRUST_POLICY, None)
    if policy is None:
        policy = TrustPolicy.from_settings(app.settings, app.services.keys)
        setattr(app, _TRUST_POLICY, policy)
    return policy


async def verify_stored(app: CertflowApp, credential: dict[str, Any]) -> VerificationResult:
    """Verify as every certflow verifier does (``verify_certificate``), with the live status lists.

    Only this deployment's own credentials have their lists here; a credential of
    another trusted issuer names a list this deployment does not hold, whatever its
    URL looks like, so its status is unknown rather than read from a local list.
    """
    ours = issuer_id(credential) in app.services.keys.dids
    revoked = await _revoked(app, credential.get("credentialStatus")) if ours else None

    def status_of(entry: Any) -> bool | None:
        if not ours:
            raise LookupError("its status list is another issuer's, which this deployment does not hold")
        return revoked

    return verify_certificate(credential, trust=trust_policy(app), status_of=status_of, now=datetime.now(UTC))


async def _revoked(app: CertflowApp, entry: Any) -> bool | None:
    """The bit of a status entry, from the worker that owns its list; None if unknown.

    The entry may come from a credential anyone can POST to ``/verify``: only a list
    id of this deployment's shape is looked up (never a path of the caller's choosing
    on another worker), and whatever goes wrong asking the owner means "unknown".
    """
    if not isinstance(entry, dict):
        return None
    try:
        list_id = status_list_id(str(entry["statusListCredential"]))
        index = int(entry["statusListIndex"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    registry = app.flows.registry
    if not STATUS_LIST_ID.fullmatch(list_id) or not 0 <= index < app.settings.status_list_size:
        return None
    try:
        owner = await owner_of(app, registry.status_lists, list_id.encode())
    except KeyError:
        log.warning("status list %s has no owner yet (partitions are being assigned)", list_id)
        return None
    if is_this_worker(app, owner):
        return index in registry.revoked_indices(list_id)
    try:
        async with app.http_client.get(owner.with_path(f"/status/{list_id}")) as response:
            if response.status != 200:
                log.warning("status list %s: its owner %s answered %s", list_id, owner, response.status)
                return None
            published = await response.json()
        return StatusList.decode(published["credentialSubject"]["encodedList"]).get(index)
    except Exception as exc:  # noqa: BLE001 - an unreachable or odd owner means "unknown"
        log.warning("status list %s could not be read from %s: %r", list_id, owner, exc)
        return None


def _with_rdfc_proof(app: CertflowApp, credential: dict[str, Any]) -> dict[str, Any]:
    """The credential with an eddsa-rdfc-2022 proof beside its JCS one (a proof set the
    DCC's verifier and wallets accept); cached, so a page view signs at most once."""
    try:
        return add_rdfc_proof(credential, app.services.keys.current)
    except ValueError as exc:  # UnsafeJsonLd: terms RDFC would leave unsigned
        log.warning("no RDFC proof for %s: %s", credential.get("id"), exc)
        return credential


def _base(record: dict[str, Any]) -> str:
    return record["verifyUrl"].rsplit("/", 1)[0]


def _verification_page(
    record: dict[str, Any], revocation: dict[str, Any] | None, result: VerificationResult
) -> str:
    """What someone who scans the QR code sees: whether to trust the paper in hand."""
    e = html.escape
    if revocation:
        verdict, colour = f"Revoked: {revocation.get('reason', '')}", "#b71c1c"
    elif result.verified:
        verdict, colour = "Valid certificate", "#1b5e20"
    else:
        reasons = "; ".join(c["reason"] for c in result.as_dict()["checks"] if not c["ok"])
        verdict, colour = f"Not valid: {reasons}", "#b71c1c"
    base = _base(record)
    rows = [
        ("Awarded to", record["recipient"]["name"]),
        ("Certificate", record["certificateName"]),
        ("Course", record["course"]["name"] or record["course"]["id"]),
        ("Issued by", record["certificate"]["issuer"].get("name", "")),
        ("Issued on", record["issuedDate"]),
        ("Access code", record["accessCode"]),
        ("Certificate id", record["id"]),
    ]
    table = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
    links = " · ".join(
        f'<a href="{e(base)}/{e(record["id"])}.{fmt}">{fmt.upper()}</a>' for fmt in MEDIA_TYPES
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(record['certificateName'])}: verification</title>"
        "<style>body{font-family:'Noto Sans',sans-serif;max-width:40rem;margin:2rem auto;"
        "padding:0 1rem;color:#222}th{text-align:left;padding-right:1rem;color:#555}"
        "td,th{padding:.3rem 0;vertical-align:top}.verdict{padding:1rem;border-radius:.4rem;"
        f"color:#fff;background:{colour};font-size:1.2rem}}</style></head><body>"
        f'<p class="verdict">{e(verdict)}</p><table>{table}</table>'
        f"<p>Download: {links}</p></body></html>"
    )


def register(app: CertflowApp) -> None:
    """The registry's views: certificates, their files, revocation, verification, status lists."""
    certificate = f"/certs/{{id:{CERTIFICATE_ID}}}"
    formats = "|".join(MEDIA_TYPES)
    app.page(certificate)(CertificateView)
    app.page(f"{certificate}.{{fmt:{formats}}}")(CertificateFileView)
    app.page(f"{certificate}/revoke")(RevokeView)
    app.page("/verify")(VerifyView)
    app.page(f"/status/{{list:{STATUS_LIST_ID.pattern}}}")(StatusListView)
