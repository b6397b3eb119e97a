"""Records certflow publishes: the issued certificate, the rejected event, telemetry.

Field names are camelCase like Sunbird's events, because the same consumers read
both. They are a contract with those consumers: add fields, never rename them.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    """Base of published records: frozen, serialised with orjson."""

    model_config = ConfigDict(frozen=True)

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


class Party(BaseModel):
    """Something named with an id: the recipient, the course."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str


class IssuedCertificate(Record):
    """One certificate, as published on ``certificate.issued`` (key: ``id``)."""

    #: UUIDv5 of what the certificate certifies; a replayed event gives the same id.
    id: str
    #: 6-character code printed under the QR code (letter-digit alternating).
    accessCode: str
    #: Where the certificate is verified: ``{basePath}/{id}``, the QR code's content.
    verifyUrl: str
    recipient: Party
    course: Party
    batchId: str
    templateId: str
    certificateName: str
    #: Day of issue, ``yyyy-MM-dd`` (Sunbird's ``issuedDate``).
    issuedDate: str
    #: Instant of issue, ISO 8601 UTC.
    issuedOn: str
    #: The certificate this one replaces (re-issue), or "".
    oldId: str
    #: Sunbird's ``edata.userId`` of the request (the learner the request was for).
    userId: str
    tag: str
    related: dict[str, Any]
    #: The filled SVG template: the printable certificate.
    svg: str
    #: The certificate as JSON: a W3C Verifiable Credential (Open Badges 3.0).
    certificate: dict[str, Any]


class EventSource(BaseModel):
    """Where a rejected event was read from, so an operator can find and replay it."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int
    key: str | None = None
    #: When the broker received it (epoch seconds): the moment a certificate made
    #: from it was issued, however often it is redelivered.
    timestamp: float | None = None


class FailedEvent(Record):
    """A rejected event on a ``*.failed`` topic: never silently dropped."""

    errorCode: str
    errorMessage: str
    #: Which step rejected it (``intake``: the request as a whole; ``recipient``: one
    #: recipient's certificate).
    stage: str
    source: EventSource
    #: The original bytes: as text when they are UTF-8, else base64.
    payload: str
    payloadEncoding: str
    failedAt: str

    @classmethod
    def of(
        cls,
        *,
        raw: bytes,
        code: str,
        message: str,
        stage: str,
        source: EventSource,
        now: datetime,
    ) -> FailedEvent:
        try:
            payload, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(raw).decode("ascii"), "base64"
        return cls(
            errorCode=code,
            errorMessage=message,
            stage=stage,
            source=source,
            payload=payload,
            payloadEncoding=encoding,
            failedAt=now.isoformat(),
        )

    def original_bytes(self) -> bytes:
        """The payload exactly as it arrived, for replay."""
        if self.payloadEncoding == "base64":
            return base64.b64decode(self.payload)
        return self.payload.encode("utf-8")


class Decision(Record):
    """Whether one learner gets one template's certificate, and why not
    (``certificate.decisions``, key userId; ``GET /learners/{userId}/decisions``)."""

    #: ``mid`` of the request that led to this decision.
    requestId: str
    #: ``eligibility`` (the issue flow) or ``generate`` (the generate flow's
    #: already-issued check).
    stage: str
    userId: str
    batchId: str
    courseId: str
    templateId: str
    certificateName: str
    #: ``issued`` or ``skipped``.
    decision: str
    #: A skip reason code (``not_enrolled``, ``already_issued`` …), None when issued.
    reason: str | None = None
    detail: str = ""
    #: The certificate issued, or the one already issued that caused a skip.
    certificateId: str = ""
    oldId: str = ""
    score: float | None = None
    decidedAt: str


class AuditEvent(Record):
    """Sunbird's ``AUDIT`` telemetry for an issued certificate (SUNBIRD.md §2.5)."""

    eid: str = "AUDIT"
    ets: int
    mid: str
    ver: str = "3.0"
    actor: dict[str, str]
    context: dict[str, Any]
    object: dict[str, Any]
    edata: dict[str, Any] = Field(
        default_factory=lambda: {"props": ["certificates"], "type": "certificate-issued-svg"}
    )

    @classmethod
    def certificate_issued(cls, certificate: IssuedCertificate, *, now: datetime) -> AuditEvent:
        ets = int(now.timestamp() * 1000)
        return cls(
            ets=ets,
            mid=f"LP.AUDIT.{ets}.{uuid.uuid4()}",
            actor={"id": certificate.userId or certificate.recipient.id, "type": "User"},
            context={
                "channel": "in.ekstep",
                "env": "Course",
                "sid": str(uuid.uuid4()),
                "did": str(uuid.uuid4()),
                "pdata": {
                    "ver": "1.0",
                    "id": "org.sunbird.learning.platform",
                    "pid": "course-certificate-generator",
                },
                "cdata": [{"type": "CourseBatch", "id": certificate.batchId}],
            },
            object={
                "id": certificate.id,
                "type": "Certificate",
                "rollup": {"l1": certificate.course.id},
            },
        )
