"""What goes on ``certificate.notifications`` (key: the learner id)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict

NotificationKind = Literal["issued", "reissued", "revoked"]


class NotificationRequest(BaseModel):
    """One email to send to one learner about one certificate.

    Everything the email shows is here, so the notifier needs no table: it composes
    and sends. Field names are camelCase like certflow's other records.
    """

    model_config = ConfigDict(frozen=True)

    kind: NotificationKind
    learnerId: str
    name: str
    #: From the learner's profile (``email``) or the generate event's
    #: ``recipientEmail``; empty: the notification is skipped with a reason.
    email: str = ""
    #: The profile's language (``hi``, ``hi-IN``, ``Hindi`` …); empty: English.
    language: str = ""
    certificateId: str
    certificateName: str
    courseName: str = ""
    issuerName: str = ""
    #: The certificate's verification page (its verify URL).
    certificateUrl: str
    #: The learner's page: a signed, expiring link (certflow.notify.links).
    learnerPageUrl: str = ""
    #: Day of issue, ``yyyy-MM-dd``.
    issuedDate: str = ""
    #: ``yyyy-MM-dd`` of the credential's validUntil, if any.
    validUntil: str = ""
    #: For ``revoked``: the day and the reason.
    revokedOn: str = ""
    revocationReason: str = ""

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


def notification_for(
    record: Mapping[str, Any],
    kind: NotificationKind,
    *,
    email: str = "",
    language: str = "",
    learner_page_url: str = "",
    revoked_on: str = "",
    revocation_reason: str = "",
) -> NotificationRequest:
    """The notification about an :class:`~certflow.events.records.IssuedCertificate`
    (as a dict: ``record.model_dump()``), for the agent that publishes it."""
    credential = record.get("certificate") or {}
    issuer = credential.get("issuer") or {}
    valid_until = str(credential.get("validUntil") or "")[:10]
    return NotificationRequest(
        kind=kind,
        learnerId=record["recipient"]["id"],
        name=record["recipient"]["name"],
        email=email or "",
        language=language or "",
        certificateId=record["id"],
        certificateName=record.get("certificateName", ""),
        courseName=record["course"].get("name", "") if record.get("course") else "",
        issuerName=issuer.get("name", "") if isinstance(issuer, Mapping) else "",
        certificateUrl=record["verifyUrl"],
        learnerPageUrl=learner_page_url,
        issuedDate=record.get("issuedDate", ""),
        validUntil=valid_until,
        revokedOn=revoked_on,
        revocationReason=revocation_reason,
    )
