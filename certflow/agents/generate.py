"""The generate flow: ``generate.certificate.request`` → ``certificate.issued``.

Two agents, thin glue around :mod:`certflow.issuing`:

* ``split_generate_requests`` reads Sunbird generate requests (raw bytes, any key),
  validates them, and re-publishes one request per recipient keyed by recipient id,
  so every learner's certificates are made in that learner's partition.
* ``issue_certificates`` makes each recipient's certificate and publishes it, with
  Sunbird's AUDIT telemetry.

Nothing that is wrong with an event stops an agent: it is dead-lettered to
``generate.certificate.failed`` with its original bytes and an error code, and the
partition moves on.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import faust
import orjson
from faust.types import EventT

from certflow.accounting import Outcome
from certflow.app import app, services, settings
from certflow.errors import CertflowError, ErrorCode
from certflow.models.events import parse_event
from certflow.models.generate import GenerateCertificateRequest, validation_context
from certflow.models.records import AuditEvent, EventSource, FailedEvent

log = logging.getLogger(__name__)

#: Kafka header carrying where a per-recipient request was split from, so its
#: failures point at the event the producer actually sent.
SOURCE_HEADER = "certflow-source"

topics = settings.topics
generate_requests = app.topic(topics.generate_request)
recipient_requests = app.topic(topics.generate_recipients, partitions=settings.partitions)
issued_certificates = app.topic(topics.certificate_issued)
failed_requests = app.topic(topics.generate_failed)
telemetry = app.topic(topics.telemetry)

_VALIDATION = validation_context(suppress_signatory_errors=settings.suppress_signatory_errors)


@app.agent(generate_requests, name="certflow.generate.split")
async def split_generate_requests(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        await split_request(event)


@app.agent(recipient_requests, name="certflow.generate.issue")
async def issue_certificates(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        await issue_certificate(event)


async def split_request(event: EventT) -> None:
    """Validate one generate request and fan it out, one event per recipient."""
    topic = event.message.topic
    services.accounting.received(topic)
    source = _source_of(event)
    try:
        request = parse_event(
            GenerateCertificateRequest, event.value, max_bytes=settings.max_event_bytes,
            context=_VALIDATION,
        )
        headers = {SOURCE_HEADER: source.model_dump_json().encode()}
        for single in request.per_recipient():
            await recipient_requests.send(
                key=single.recipient.recipientId.encode(), value=single.to_json(), headers=headers
            )
        services.accounting.add(topic, "recipients-emitted-count", len(request.edata.data))
    except Exception as exc:  # noqa: BLE001 - every failure is dead-lettered, none is fatal
        await _dead_letter(event.value, exc, stage="intake", source=source)
        services.accounting.ended(topic, Outcome.FAILED)
    else:
        services.accounting.ended(topic, Outcome.SUCCESS)


async def issue_certificate(event: EventT) -> None:
    """Make one recipient's certificate and publish it with its AUDIT event."""
    topic = event.message.topic
    services.accounting.received(topic)
    source = _source_of(event)
    try:
        request = parse_event(
            GenerateCertificateRequest, event.value, max_bytes=settings.max_event_bytes,
            context=_VALIDATION,
        )
        now = datetime.now(UTC)
        certificate = await services.certificates.issue(request, now=now)
        await issued_certificates.send(key=certificate.id.encode(), value=certificate.to_json())
        audit = AuditEvent.certificate_issued(certificate, now=now)
        await telemetry.send(key=certificate.recipient.id.encode(), value=audit.to_json())
    except Exception as exc:  # noqa: BLE001 - every failure is dead-lettered, none is fatal
        await _dead_letter(event.value, exc, stage="recipient", source=source)
        services.accounting.ended(topic, Outcome.FAILED)
    else:
        services.accounting.ended(topic, Outcome.SUCCESS)


def _source_of(event: EventT) -> EventSource:
    """The input event's position; for a split request, that of the original."""
    header = (event.headers or {}).get(SOURCE_HEADER)
    if header:
        return EventSource.model_validate_json(header)
    message = event.message
    key = message.key
    return EventSource(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=key.decode("utf-8", "replace") if isinstance(key, bytes) else key,
    )


async def _dead_letter(raw: bytes, exc: Exception, *, stage: str, source: EventSource) -> None:
    if isinstance(exc, CertflowError):
        code, message = exc.code, exc.message
        log.warning("rejected %s event at %s: %s %s", stage, source, code.value, message)
    else:
        code, message = ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"
        log.exception("unexpected failure on %s event at %s", stage, source)
    record = FailedEvent.of(
        raw=raw if isinstance(raw, bytes) else orjson.dumps(raw),
        code=code.value,
        message=message,
        stage=stage,
        source=source,
        now=datetime.now(UTC),
    )
    await failed_requests.send(
        key=source.key.encode() if source.key else None,
        value=record.to_json(),
        headers={"certflow-error-code": code.value.encode()},
    )
