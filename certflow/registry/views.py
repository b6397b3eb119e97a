"""Certificates over HTTP: fetch, render, verify, revoke, and the status lists.

Every route that names a certificate or a status list is answered by the worker that
owns it (``owner_route`` forwards the request), so any worker behind a Service can
take any request. The QR code on a certificate points at
``{basePath}/{id}``; a browser asking that URL gets a human-readable verification
page, a program gets JSON.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import urllib.parse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import orjson
from aiohttp import web as aiohttp_web
from aiokafka.errors import KafkaError
from faust.web import Request, Response

from certflow.credentials.rdfc import add_rdfc_proof
from certflow.credentials.status_list import StatusList, status_list_credential
from certflow.credentials.trust import TrustPolicy
from certflow.credentials.verification import (
    VerificationResult,
    issuer_id,
    verify_certificate,
)
from certflow.errors import CertflowError, ErrorCode
from certflow.faust_fixes.routing import (
    FORWARDED_HEADER,
    changelog_partitions,
    is_this_worker,
    not_ready,
    other_workers_answers,
    owner_of,
    owner_route,
    read_at_most,
    tables_recovered,
)
from certflow.jsonlimits import JSONTooDeep, loads_bounded
from certflow.pages import (
    access_code_page,
    match_access_code,
    normalise_code,
    not_found_page,
    verification_page,
)
from certflow.registry.agents import RevocationOrigin, recipient_lang
from certflow.registry.archive import ZipSink, safe_name_part
from certflow.registry.batch_selection import BatchSelection, BatchSource, NothingToExport, find_batch
from certflow.registry.export import (
    EXPORT_FORMATS,
    IN_FLIGHT_PER_PROCESS,
    CertificateRenderer,
    ExportFormat,
    export_batch,
    render_processes,
)
from certflow.registry.status import STATUS_LIST_ID, status_list_id, status_list_url
from certflow.render.images import inline_remote_images
from certflow.web.auth import Access, requires_token
from certflow.web.base import CertflowView
from certflow.web.errors import error_response
from certflow.web.headers import add_security_headers

if TYPE_CHECKING:
    from certflow.app import CertflowApp

log = logging.getLogger(__name__)

#: A presented credential larger than this is refused before parsing.
MAX_PRESENTED_BYTES = 256 * 1024
#: An admin's revocation body: a reason, nothing more.
MAX_REVOCATION_BYTES = 16 * 1024
CERTIFICATE_ID = r"[A-Za-z0-9_-]{1,128}"
#: A printed access code, normalised (``certflow.pages.access.normalise_code``).
ACCESS_CODE = re.compile(r"[A-Z0-9]{6}")
#: The access-code form's fields are cut to this many characters.
MAX_FORM_CHARS = 200
#: A course batch id in a URL: one path segment (Sunbird's are digits).
BATCH_ID = r"[^/]{1,256}"
#: Every printable format of a certificate: file extension → media type. The route
#: ``/certs/{id}.{fmt}`` and the links a certificate lists are derived from it.
MEDIA_TYPES = {"svg": "image/svg+xml", "pdf": "application/pdf", "png": "image/png"}


class CertificateView(CertflowView):
    """The certificate and its status: JSON, or a verification page for browsers."""

    @owner_route("certificates", "id")
    async def get(self, request: Request, id: str) -> Response:  # noqa: A002 - route name
        browser = wants_html(request)
        stored = self.app.flows.registry.certificate(id)
        if stored is None or stored.get("record") is None:
            if browser:
                return self.html(not_found_page(id), status=404)
            return error_response(404, "CERTIFICATE_NOT_FOUND", f"no certificate {id}")
        record = stored["record"]
        result = await verify_stored(self.app, record["certificate"])
        if browser and "verifyUrl" in record:  # a VC-API credential has no page: its JSON
            page = verification_page(record, result.as_dict(), revocation=stored.get("revocation"))
            return self.html(page)
        body = {
            "id": id,
            "status": "revoked" if stored.get("revocation") else "active",
            "revocation": stored.get("revocation"),
            "verification": result.as_dict(),
            "credential": _with_rdfc_proof(self.app, record["certificate"]),
            "links": {fmt: f"{_base(record)}/{id}.{fmt}" for fmt in MEDIA_TYPES},
        }
        return self.json(body)


def wants_html(request: Request) -> bool:
    """A browser (``Accept: text/html``) rather than a program asking for JSON."""
    return "text/html" in request.headers.get("Accept", "")


class CertificateFileView(CertflowView):
    """The printable certificate: the filled SVG, or a PDF or PNG rendered from it."""

    @owner_route("certificates", "id")
    async def get(self, request: Request, id: str, fmt: str) -> Response:  # noqa: A002 - the route names its parameter
        services = self.app.services
        stored = self.app.flows.registry.certificate(id)
        if stored is None or stored.get("record") is None:
            return error_response(404, "CERTIFICATE_NOT_FOUND", f"no certificate {id}")
        record = stored["record"]

        async def document() -> str:
            # Drawn from the certificate's facts. Remote images (signatures, logos)
            # are inlined for every format: the SVG's Content-Security-Policy lets a
            # browser load images from data: only, and the renderer must not fetch
            # anything itself.
            return await inline_remote_images(await services.certificates.printable(record), services.images)

        try:
            if fmt == "svg":
                body = (await document()).encode()
            else:
                # A revoked certificate downloads with a visible REVOKED mark; the
                # PDF carries the certificate's name as its title.
                body = await services.renderer.render(
                    id, document, fmt,  # type: ignore[arg-type]  # the route admits MEDIA_TYPES only
                    title=record.get("certificateName") or None,
                    lang=recipient_lang(record),
                    revoked=bool(stored.get("revocation")),
                )
        except CertflowError as exc:
            # No printable form (a VC-API credential): 404; a template that changed
            # or cannot be fetched: the drawing is unavailable, the credential is not.
            status = {ErrorCode.NOT_PRINTABLE: 404, ErrorCode.TEMPLATE_CHANGED: 409}.get(exc.code, 503)
            return error_response(status, exc.code.value, exc.message)
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
    async def post(self, request: Request, id: str) -> Response:  # noqa: A002 - the route names its parameter
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


class BatchExportView(CertflowView):
    """A batch's certificates in force as one zip of PDFs or PNGs, with ``manifest.json``
    (admin token; :mod:`certflow.registry.export`, as ``certflow export``).

    Any worker answers: the certificates are read from the broker, not from tables
    partitioned over the workers. The zip is streamed: its first files leave while
    later ones are rendered, on every core of this worker, in processes started for
    the export (an idle worker holds none). One export at a time per worker, since
    one takes every core: another gets 503 with ``Retry-After``.
    """

    @requires_token(Access.ADMIN)
    async def get(self, request: Request, batchId: str) -> Response:  # noqa: N803 - the route names its parameter
        fmt = request.query.get("format", "pdf")
        if fmt not in EXPORT_FORMATS:
            return error_response(400, "INVALID_PARAM_VALUE", f"format must be one of {', '.join(EXPORT_FORMATS)}")
        lock = export_lock(self.app)
        if lock.locked():
            return error_response(503, "BUSY", "this worker is exporting another batch; retry later",
                                  headers={"Retry-After": "30"})
        async with lock:
            source = BatchSource.from_settings(self.app.settings)
            try:
                selection = await find_batch(source, batchId)
            except (KafkaError, TimeoutError, OSError, RuntimeError) as exc:  # RuntimeError: no such topic
                log.warning("export of batch %s: the broker could not be read: %r", batchId, exc)
                return not_ready(f"the certificates could not be read from the broker: {exc}")
            if not selection.in_force:
                return error_response(404, "BATCH_NOT_FOUND", str(NothingToExport(selection)))
            response = aiohttp_web.StreamResponse(
                headers={"Content-Disposition": attachment(f"certificates-{batchId}.zip")}
            )
            response.content_type = "application/zip"
            if request.method == "HEAD":
                return cast(Response, response)
            add_security_headers(response)  # sent with prepare, before the middleware sees it
            connection = cast(aiohttp_web.Request, request)  # Faust's only web driver is aiohttp's
            await response.prepare(connection)
            await self._stream(connection, response, source, selection, fmt)
            return cast(Response, response)

    async def _stream(
        self, request: aiohttp_web.Request, response: aiohttp_web.StreamResponse, source: BatchSource,
        selection: BatchSelection, fmt: ExportFormat,
    ) -> None:
        services = self.app.services
        processes = os.cpu_count() or 1
        with render_processes(processes) as executor:
            renderer = CertificateRenderer(
                services.certificates.printable, services.images, executor, services.image_limits,
                in_flight=processes * IN_FLIGHT_PER_PROCESS,
            )
            try:
                report = await export_batch(source, selection, fmt, ZipSink(response.write), renderer)
            except ConnectionResetError:
                log.info("export of batch %s abandoned: the client went away", selection.batch_id)
                return
            except Exception:
                # The status (200) is sent: the only way left to say "failed" is to
                # cut the connection, so that no client takes a truncated zip as whole.
                log.exception("export of batch %s failed while streaming", selection.batch_id)
                if request.transport is not None:
                    request.transport.close()
                return
        await response.write_eof()
        log.info("exported batch %s: %d %ss in %.1f s (%.1f/s), %d left out, %d failed",
                 selection.batch_id, len(report.exported), fmt.upper(), report.seconds, report.per_second,
                 len(report.left_out), len(report.failed))


_EXPORT_LOCK = "certflow_export_lock"


def export_lock(app: CertflowApp) -> asyncio.Lock:
    """The worker's one export at a time (made on first use, on the app's loop)."""
    lock: asyncio.Lock | None = getattr(app, _EXPORT_LOCK, None)
    if lock is None:
        lock = asyncio.Lock()
        setattr(app, _EXPORT_LOCK, lock)
    return lock


def attachment(file_name: str) -> str:
    """``Content-Disposition`` for a download named ``file_name``: a plain ASCII name
    for old clients, the exact one (RFC 6266 ``filename*``) for the others."""
    safe = safe_name_part(file_name) or "certificates.zip"
    ascii_name = safe.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{urllib.parse.quote(safe)}"


class VerifyView(CertflowView):
    """Verify a presented credential (POST), or a paper certificate by its access code (GET)."""

    async def get(self, request: Request) -> Response:
        """The access-code form; with ``code`` and ``who``, its answer: the matches of
        every worker, each from the index entries of the partitions it holds (a
        worker asked by another answers its own matches, as JSON)."""
        code = request.query.get("code", "")[:MAX_FORM_CHARS]
        who = request.query.get("who", "")[:MAX_FORM_CHARS]
        if not code and not who:
            return self.html(access_code_page())
        key = normalise_code(code)
        if not ACCESS_CODE.fullmatch(key) or not who.strip():
            page = access_code_page(code=code, name_or_short_id=who, error=(
                "Enter the 6-character access code and the learner's name or the short id."))
            return self.html(page, status=400)
        asked_by_worker = bool(request.headers.get(FORWARDED_HEADER))
        others = [] if asked_by_worker else await other_workers_answers(
            self, request, self.app.flows.registry.access_codes)
        if isinstance(others, Response):
            return others
        if not tables_recovered(self.app):
            return not_ready("tables are being recovered")
        matches = await self._matches_here(key, who)
        if asked_by_worker:
            return self.json({"matches": matches})
        try:
            for answer in others:
                matches.extend(orjson.loads(answer)["matches"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            # A worker of the release before answers with its page: only while a
            # rolling upgrade replaces it.
            return not_ready("a worker answered in a form this one does not read")
        # One certificate may be held twice meanwhile (a partition moving between workers).
        unique = sorted({match["id"]: match for match in matches}.values(),
                        key=lambda match: (str(match.get("issuedDate", "")), str(match["id"])))
        return self.html(access_code_page(code=code, name_or_short_id=who, matches=unique))

    async def _matches_here(self, code: str, who: str) -> list[dict[str, Any]]:
        """The certificates this worker indexes under ``code`` that ``who`` names."""
        registry = self.app.flows.registry
        partitions = await changelog_partitions(self.app, registry.access_codes)
        return [dict(match) for match in
                match_access_code(registry.access_code_entries(code, partitions), code, who)]

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
    async def get(self, request: Request, list: str) -> Response:  # noqa: A002 - the route names its parameter
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


def register(app: CertflowApp) -> None:
    """The registry's views: certificates, their files, revocation, verification, status
    lists, and a batch's bulk export."""
    certificate = f"/certs/{{id:{CERTIFICATE_ID}}}"
    formats = "|".join(MEDIA_TYPES)
    app.page(certificate)(CertificateView)
    app.page(f"{certificate}.{{fmt:{formats}}}")(CertificateFileView)
    app.page(f"{certificate}/revoke")(RevokeView)
    app.page("/verify")(VerifyView)
    app.page(f"/status/{{list:{STATUS_LIST_ID.pattern}}}")(StatusListView)
    app.page(f"/batches/{{batchId:{BATCH_ID}}}/certificates.zip")(BatchExportView)
