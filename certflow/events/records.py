"""Records certflow publishes: the issued certificate, the rejected event, telemetry.

Field names are camelCase like Sunbird's events, because the same consumers read
both. They are a contract with those consumers: add fields, never rename them.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from certflow.errors import CertflowError, ErrorCode

#: Largest record certflow publishes. The worker's producer refuses anything over
#: 1,000,000 bytes (Faust's ``producer_max_request_size`` default; brokers refuse
#: over 1,048,588 by default), and a refused send is not the event's fault in the
#: agents' eyes: it would stop the agent instead of dead-lettering the event. Room is
#: left for the key, the headers, and a table's wrapper around a record it keeps.
MAX_PUBLISHED_BYTES = 960 * 1024


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


class PrintableFacts(BaseModel):
    """What a printable certificate is drawn from, so the registry keeps these facts
    rather than the drawing: the template (as the event named it, and the digest of
    the one used) and the placeholder values, the QR code aside (it is made again
    from ``verifyUrl`` and ``accessCode``). Filling is deterministic, so the SVG,
    PDF and PNG made from these later are the ones made at issue."""

    model_config = ConfigDict(frozen=True)

    template: str
    templateDigest: str
    values: dict[str, str]


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
    #: What ``svg`` was drawn from: the registry keeps this instead of the SVG.
    rendering: PrintableFacts | None = None
    #: The record as published, as JSON values and serialised, made once (it is
    #: checked for size when made, then sent and kept): the model is frozen, so
    #: neither can go stale.
    _document: dict[str, Any] | None = PrivateAttr(None)
    _json: bytes = PrivateAttr(b"")

    def to_json(self) -> bytes:
        return self._json or super().to_json()

    def to_document(self) -> dict[str, Any]:
        """The record as published, as JSON values: what :meth:`to_json` serialises,
        for the registry, which keeps it. A copy of the top level, the caller's to
        change. (Parsing the published bytes back cost a third as much as the
        registry's whole step: 0.9 against 2.7 % of a worker's CPU, profiled.)"""
        return dict(self._document) if self._document is not None else self.model_dump(mode="json")

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> IssuedCertificate:
        copy = super().model_copy(update=update, deep=deep)
        # The caches of a record of this class: another record, serialised anew.
        copy._document, copy._json = None, b""  # noqa: SLF001
        return copy

    @model_validator(mode="after")
    def _publishable(self) -> IssuedCertificate:
        """Refuse, as the request's fault, a certificate no broker would take.

        A template near the fetch limit, or signatures inlined as large ``data:``
        images (they appear in both the SVG and the credential), can make one. A
        ``CertflowError`` (not a validation error) so that it reaches the agent as is.
        """
        self._document = self.model_dump(mode="json")
        self._json = orjson.dumps(self._document)
        size = len(self._json)
        if size > MAX_PUBLISHED_BYTES:
            raise CertflowError(
                ErrorCode.CERTIFICATE_TOO_LARGE,
                f"the certificate would be {size} bytes (SVG {len(self.svg)} characters); "
                f"at most {MAX_PUBLISHED_BYTES} can be published",
            )
        return self


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


#: Most bytes the ``payload`` of a failed record takes once serialised. A failed
#: record must always be publishable, or the rejection itself fails and takes the
#: agent down with it: producers refuse records over about 1 MB (Faust's
#: ``producer_max_request_size`` is 1,000,000, the broker's ``max.message.bytes``
#: 1,048,588), and the event being rejected may be larger (``EVENT_TOO_LARGE``) or,
#: escaped as JSON text, become larger. This leaves room for the message, the
#: source and the record's framing; larger payloads keep their first bytes only.
MAX_FAILED_PAYLOAD_BYTES = 900_000
#: Most characters of ``errorMessage``; messages name the problems, not the data.
MAX_ERROR_MESSAGE_CHARS = 4096
#: Most characters of the source key repeated in a failed record.
MAX_SOURCE_KEY_CHARS = 1024


class FailedEvent(Record):
    """A rejected event on a ``*.failed`` topic: never silently dropped."""

    errorCode: str
    errorMessage: str
    #: Which step rejected it (``intake``: the request as a whole; ``recipient``: one
    #: recipient's certificate).
    stage: str
    source: EventSource
    #: The original bytes: as text when they are UTF-8, else base64; only their
    #: beginning when ``payloadTruncated``.
    payload: str
    payloadEncoding: str
    failedAt: str
    #: Size of the original event in bytes.
    payloadBytes: int = 0
    #: True when the event was too large to carry whole (see
    #: :data:`MAX_FAILED_PAYLOAD_BYTES`): ``payload`` is its beginning, for diagnosis,
    #: and the event cannot be replayed from this record.
    payloadTruncated: bool = False

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
        payload, encoding, truncated = _bounded_payload(raw, MAX_FAILED_PAYLOAD_BYTES)
        if source.key is not None and len(source.key) > MAX_SOURCE_KEY_CHARS:
            source = source.model_copy(update={"key": source.key[:MAX_SOURCE_KEY_CHARS]})
        return cls(
            errorCode=code,
            errorMessage=_bounded_message(message),
            stage=stage,
            source=source,
            payload=payload,
            payloadEncoding=encoding,
            failedAt=now.isoformat(),
            payloadBytes=len(raw),
            payloadTruncated=truncated,
        )

    def original_bytes(self) -> bytes:
        """The payload exactly as it arrived, for replay.

        Raises ``ValueError`` for a truncated payload: replaying the beginning of an
        event would be a different event.
        """
        if self.payloadTruncated:
            raise ValueError(
                f"the payload was truncated (the event was {self.payloadBytes} bytes); "
                "it cannot be replayed from this record"
            )
        if self.payloadEncoding == "base64":
            return base64.b64decode(self.payload)
        return self.payload.encode("utf-8")


def _bounded_payload(raw: bytes, budget: int) -> tuple[str, str, bool]:
    """``raw`` as (text, encoding, truncated), at most ``budget`` bytes once in JSON.

    Text is measured as orjson writes it, because escaping can make a string up to
    six times longer (a control character becomes ``\\u0007``); a prefix is cut at a
    character boundary and shortened until it fits.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        if len(raw) * 4 // 3 + 4 <= budget:
            return base64.b64encode(raw).decode("ascii"), "base64", False
        return base64.b64encode(raw[: budget * 3 // 4 - 4]).decode("ascii"), "base64", True
    if len(raw) <= budget and len(orjson.dumps(text)) <= budget:
        return text, "utf-8", False
    keep = budget
    while True:
        prefix = raw[:keep].decode("utf-8", "ignore")
        size = len(orjson.dumps(prefix))
        if size <= budget:
            return prefix, "utf-8", True
        keep = max(0, keep * budget // size - 8)  # shrink by how much it overshot


def _bounded_message(message: str) -> str:
    if len(message) <= MAX_ERROR_MESSAGE_CHARS:
        return message
    return f"{message[:MAX_ERROR_MESSAGE_CHARS]}… ({len(message)} characters in all)"


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
