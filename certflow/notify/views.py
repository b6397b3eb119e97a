"""``GET /learners/{userId}?token=…``: the learner's page, opened from the signed,
expiring link in their email (:func:`certflow.notify.links.learner_link`).

Public, guarded by the token: a missing, forged or expired token is a 404 page
(nothing tells a guesser whether the learner exists). Answered by the worker that
owns the learner (their ``issued`` state); each certificate's record is read from
its own owner, at most :data:`MAX_CERTIFICATES` of them.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import TYPE_CHECKING, Any

from faust.web import Request, Response

from certflow.faust_fixes.routing import is_this_worker, owner_of, owner_route
from certflow.notify.agents import profile_contact
from certflow.notify.links import derive_link_secret, verify_learner_token
from certflow.pages import learner_page
from certflow.pages.layout import document
from certflow.web.base import CertflowView

if TYPE_CHECKING:
    from certflow.app import CertflowApp

log = logging.getLogger(__name__)

#: The most certificates one learner's page lists (bounded work per request).
MAX_CERTIFICATES = 100


class LearnerPageView(CertflowView):
    """Every certificate of one learner, for the holder of their signed link."""

    @owner_route("issued", "userId")
    async def get(self, request: Request, userId: str) -> Response:  # noqa: N803 - route name
        app = self.app
        secret = derive_link_secret(app.services.keys.current.private_key_multibase,
                                    app.settings.learner_link_secret)
        if not verify_learner_token(userId, request.query.get("token", ""), secret):
            page = document("Link expired or not valid", (
                "<h1>This link has expired or is not valid</h1>"
                "<p>Links to your certificates are valid for a limited time. The newest email "
                "about a certificate has a fresh link.</p>"), header="<strong>Your certificates</strong>")
            return self.html(page, status=404)
        state = app.flows.state
        ids = [entry.id for slot in state.learner_issued(userId).values() for entry in slot.values()
               if entry.status == "issued"][:MAX_CERTIFICATES]
        records: list[dict[str, Any]] = []
        revocations: dict[str, Any] = {}
        for certificate_id in ids:
            stored = await certificate_of(app, certificate_id)
            if stored and stored.get("record"):
                records.append(stored["record"])
                if stored.get("revocation"):
                    revocations[certificate_id] = stored["revocation"]
        records.sort(key=lambda r: str(r.get("issuedOn") or r.get("issuedDate") or ""), reverse=True)
        profile = state.learners.get(userId.encode()) or {}
        name = " ".join(str(profile.get(k) or "") for k in ("firstName", "lastName")).strip()
        if not name and records:
            name = str(records[0]["recipient"]["name"])
        _, language = profile_contact(profile)
        lang = language if 2 <= len(language) <= 3 and language.isalpha() else None
        token = urllib.parse.quote(request.query.get("token", ""), safe="")
        return self.html(learner_page(
            name or userId, records, revocations=revocations, learner_lang=lang,
            wallet_url_for=lambda record: f"/certs/{record['id']}/exchanges?token={token}",
        ))


async def certificate_of(app: CertflowApp, certificate_id: str) -> dict[str, Any] | None:
    """The registry's entry (record and revocation) of a certificate, from its owner;
    None if unknown or unreachable."""
    registry = app.flows.registry
    try:
        owner = await owner_of(app, registry.certificates, certificate_id.encode())
    except KeyError:
        return None
    if is_this_worker(app, owner):
        return registry.certificate(certificate_id)
    try:
        async with app.http_client.get(owner.with_path(f"/certs/{certificate_id}")) as response:
            if response.status != 200:
                return None
            answer = await response.json()
    except Exception as exc:  # noqa: BLE001 - an unreachable owner leaves the certificate out
        log.warning("certificate %s could not be read from %s: %r", certificate_id, owner, exc)
        return None
    return {"record": record_from_answer(certificate_id, answer), "revocation": answer.get("revocation")}


def record_from_answer(certificate_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    """What the learner's page shows of a certificate, from its public JSON answer
    (``GET /certs/{id}``: the credential and its links)."""
    credential = answer.get("credential") or {}
    evidence = (credential.get("evidence") or [{}])[0]
    names = [i.get("identityHash") for i in (credential.get("credentialSubject") or {}).get("identifier", [])
             if i.get("identityType") == "name"]
    return {
        "id": certificate_id,
        "verifyUrl": str(credential.get("id") or ""),
        "certificateName": credential.get("name") or "",
        "course": {"name": evidence.get("name") or ""},
        "recipient": {"name": names[0] if names else ""},
        "issuedDate": str(credential.get("validFrom") or "")[:10],
        "certificate": credential,
    }


def register(app: CertflowApp) -> None:
    app.page("/learners/{userId}")(LearnerPageView)
