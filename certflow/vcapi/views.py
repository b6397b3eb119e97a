"""The VC-API routes: issue, verify a credential, verify a presentation.

``POST /credentials/issue`` exists only when ``CERTFLOW_ISSUER_API_TOKEN`` is set, and
needs ``Authorization: Bearer <that token>``. A credential without an ``id`` gets
``urn:uuid:{uuid4}`` (VC-API: the issuer may assign one). A VC 2.0 credential without
``credentialStatus`` gets a ``BitstringStatusListEntry`` (revocation) in a list of the
API prefix, ``a{partition}-{n}``, published at ``{CERTFLOW_PUBLIC_URL}/status/{list}``.

Status slots: before signing, the worker sends a reservation to the
``certflow.vcapi.issued`` topic and takes the slot from the offset Kafka gave it, as
:meth:`certflow.registry.status.StatusSlot.of_message` does for certificates: unique
under any concurrency and across workers, with no allocation state (a reservation
whose credential is never signed leaves an unused bit). The signed credential is then
sent to the same topic, keyed by its registry id, and stored by the registry (the
``certificates`` table, co-partitioned with the topic): ``GET /certs/{id}`` serves it,
``POST /certs/{id}/revoke`` revokes it. Its registry id is the UUID of a ``urn:uuid:``
id, else ``uuid5(URL, id)`` (so a caller's id can never overwrite another
certificate); the answer's ``Location`` header names ``/certs/{registry id}``.

Every URL is built from ``CERTFLOW_PUBLIC_URL``, never from the request.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import faust
import orjson
from faust.web import Request, Response

from certflow.credentials.vcapi import (
    ApiResult,
    complete_issue,
    prepare_issue,
    verify_credential_request,
    verify_presentation_request,
)
from certflow.credentials.verification import StatusOf, issuer_id
from certflow.faust_fixes.routing import read_at_most
from certflow.jsonlimits import loads_bounded
from certflow.registry.status import API_PREFIX, status_list_url
from certflow.registry.views import MAX_PRESENTED_BYTES, _revoked, trust_policy
from certflow.web.auth import Access, requires_token
from certflow.web.base import CertflowView
from certflow.web.errors import error_response

if TYPE_CHECKING:
    from certflow.app import CertflowApp

log = logging.getLogger(__name__)

#: An issue request (a credential to sign) larger than this is refused before parsing.
MAX_ISSUE_BYTES = 256 * 1024
_TOPIC = "certflow_vcapi_topic"


def registry_id(credential_id: str) -> str:
    """The registry key (``/certs/{key}``) of an API-issued credential's ``id``."""
    if credential_id.lower().startswith("urn:uuid:"):
        try:
            return str(uuid.UUID(credential_id[9:]))
        except ValueError:
            pass
    return str(uuid.uuid5(uuid.NAMESPACE_URL, credential_id))


async def read_json(request: Request, limit: int) -> Any | Response:
    """The JSON body, or the error response (413, 400) to answer instead."""
    raw = await read_at_most(request, limit)
    if raw is None:
        return error_response(413, "TOO_LARGE", f"the body is at most {limit} bytes")
    try:
        return loads_bounded(raw)
    except orjson.JSONDecodeError as exc:  # JSONTooDeep is one
        return error_response(400, "MALFORMED_JSON", f"the body must be JSON: {exc}")


def api_response(view: CertflowView, result: ApiResult, headers: dict[str, str] | None = None) -> Response:
    return view.json(result.body, status=result.status, headers=headers)


async def status_source(app: CertflowApp, credentials: list[Any]) -> StatusOf:
    """A ``status_of`` for the pure verifiers, with the live bits of this deployment's
    credentials looked up first (from each list's owner, as ``verify_stored`` does).
    Another issuer's list is not held here: its status is unknown (LookupError)."""
    bits: dict[bytes, bool | None] = {}
    ours = app.services.keys.dids
    for credential in credentials:
        if not isinstance(credential, dict) or issuer_id(credential) not in ours:
            continue
        entries = credential.get("credentialStatus")
        for entry in entries if isinstance(entries, list) else [entries]:
            if isinstance(entry, dict):
                bits[orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)] = await _revoked(app, entry)

    def status_of(entry: Any) -> bool | None:
        key = orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
        if key not in bits:
            raise LookupError("its status list is another issuer's, which this deployment does not hold")
        return bits[key]

    return status_of


class IssueView(CertflowView):
    """``POST /credentials/issue`` ``{credential, options}`` → 201 ``{verifiableCredential}``."""

    @requires_token(Access.ISSUER)
    async def post(self, request: Request) -> Response:
        body = await read_json(request, MAX_ISSUE_BYTES)
        if isinstance(body, Response):
            return body
        app = self.app
        keys = app.services.keys
        plan = prepare_issue(body, issuer_dids=keys.dids, new_credential_id=f"urn:uuid:{uuid.uuid4()}")
        if isinstance(plan, ApiResult):
            return api_response(self, plan)
        credential_id = plan.credential_id or f"urn:uuid:{uuid.uuid4()}"
        key = registry_id(credential_id)
        topic: faust.TopicT = getattr(app, _TOPIC)
        now = datetime.now(UTC)
        url, index = None, None
        if plan.needs_status:
            # The slot is the reservation's place in the topic: unique, owned by nobody.
            sent = await topic.send(key=key.encode(), value=orjson.dumps({"reservation": credential_id}))
            metadata = await sent
            size = app.settings.status_list_size
            list_id = f"{API_PREFIX}{metadata.partition}-{metadata.offset // size}"
            url, index = status_list_url(app.settings.public_url, list_id), metadata.offset % size
        result = complete_issue(plan, key=keys.current, now=now, status_list_url=url, status_index=index)
        if result.status != 201:
            return api_response(self, result)
        certificate_url = f"{app.settings.public_url.rstrip('/')}/certs/{key}"
        record = {
            "id": key,
            "kind": "vcapi",
            "certificate": result.body["verifiableCredential"],
            "verifyUrl": certificate_url,
            "issuedDate": now.isoformat(),
        }
        await (await topic.send(key=key.encode(), value=orjson.dumps(record)))
        return api_response(self, result, headers={"Location": certificate_url})


class CredentialVerifyView(CertflowView):
    """``POST /credentials/verify`` ``{verifiableCredential, options}``: 200 verified, 400 not."""

    async def post(self, request: Request) -> Response:
        body = await read_json(request, MAX_PRESENTED_BYTES)
        if isinstance(body, Response):
            return body
        credential = body.get("verifiableCredential") if isinstance(body, dict) else None
        status_of = await status_source(self.app, [credential])
        result = verify_credential_request(
            body, now=datetime.now(UTC), status_of=status_of,
            resolve_key=trust_policy(self.app).resolve_key,
        )
        return api_response(self, result)


class PresentationVerifyView(CertflowView):
    """``POST /presentations/verify`` ``{verifiablePresentation, options: {challenge, domain}}``."""

    async def post(self, request: Request) -> Response:
        body = await read_json(request, MAX_PRESENTED_BYTES)
        if isinstance(body, Response):
            return body
        presentation = body.get("verifiablePresentation") if isinstance(body, dict) else None
        presented = presentation.get("verifiableCredential", []) if isinstance(presentation, dict) else []
        credentials = presented if isinstance(presented, list) else [presented]
        status_of = await status_source(self.app, credentials[:16])
        result = verify_presentation_request(
            body, now=datetime.now(UTC), status_of=status_of,
            resolve_key=trust_policy(self.app).resolve_key,
        )
        return api_response(self, result)


def register(app: CertflowApp) -> None:
    """The VC-API routes, and the agent that stores API-issued credentials in the registry."""
    registry = app.flows.registry
    topic = app.topic(app.settings.topics.vcapi_issued)
    setattr(app, _TOPIC, topic)

    async def store_issued(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            if b'"reservation"' in (event.value or b"")[:32]:
                continue  # a status slot taken before signing: nothing to store
            await registry.store_certificate(event)

    app.agent(topic, name="certflow.vcapi.issued")(store_issued)
    if app.settings.issuer_api_token:
        app.page("/credentials/issue")(IssueView)
    app.page("/credentials/verify")(CredentialVerifyView)
    app.page("/presentations/verify")(PresentationVerifyView)
