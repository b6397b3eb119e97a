"""How every agent settles an event: success, skipped, or dead-lettered.

One function for all agents (:func:`settle`), so every input event is counted the
same way, every failed topic carries the same record shape (``FailedEvent``), and
every failure is logged the same way.

A failure of the *event* (bad input, a template that cannot be had, a bug that this
event triggers) is dead-lettered and the partition moves on: a poison message never
blocks it. A failure of the *infrastructure* (Kafka unreachable, a producer that
cannot send, a lost transaction) is not the event's fault: dead-lettering it would
throw a good event away (and the dead letter could not be sent either), so it is
raised, the worker stops before committing, and the event is processed again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime

from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from faust.types import AppT, EventT

from certflow.accounting import Accounting, Outcome
from certflow.errors import CertflowError, ErrorCode
from certflow.events.records import EventSource, FailedEvent
from certflow.faust_fixes.exactly_once import event_in_progress
from certflow.metrics import WorkerMetrics

log = logging.getLogger(__name__)

#: Kafka header carrying where a derived event (a per-recipient request, an
#: eligibility job) came from, so its failures point at the event a producer sent.
SOURCE_HEADER = "certflow-source"
#: Kafka header with the error code of a failed record, for filtering without parsing.
ERROR_CODE_HEADER = "certflow-error-code"


#: Failures that are not the event's fault: raised, never dead-lettered.
INFRASTRUCTURE_FAILURES: tuple[type[BaseException], ...] = (KafkaError, ProducerSendError)


#: Attribute naming the stage a failure happened in, when not the settling agent's.
_STAGE_ATTRIBUTE = "certflow_stage"


@contextmanager
def failures_at(stage: str) -> Iterator[None]:
    """Report failures raised inside as happening at ``stage``: for an agent that
    does a later stage's work itself (a generate request made where it was read)."""
    try:
        yield
    except Exception as exc:
        with suppress(AttributeError):  # an exception type with __slots__ keeps its stage
            setattr(exc, _STAGE_ATTRIBUTE, stage)
        raise


def event_source(event: EventT) -> EventSource:
    """The input event's position; for a derived event, that of its origin."""
    header = (event.headers or {}).get(SOURCE_HEADER)
    if header:
        return EventSource.model_validate_json(header)
    message = event.message
    return EventSource(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=_printable_key(message.key),
        timestamp=message.timestamp,
    )


#: Longest key copied onto failed records and derived events' headers.
MAX_KEY_CHARS = 256


def _printable_key(key: bytes | str | None) -> str | None:
    """The key as text, a long one cut and marked with its hash: a megabyte key must
    not make the failed record (or every derived event's header) too big to send."""
    if key is None:
        return None
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    if len(text) <= MAX_KEY_CHARS:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{text[:200]}…sha256:{digest}"


def source_headers(source: EventSource) -> dict[str, bytes]:
    """Headers to put on an event derived from ``source``."""
    return {SOURCE_HEADER: source.model_dump_json().encode()}


class Settler:
    """Ends every input event as exactly one of success, skipped or failed.

    One per app: it counts outcomes in the app's accounting and metrics, and
    publishes dead letters with the app's producer.
    """

    def __init__(self, app: AppT, accounting: Accounting, metrics: WorkerMetrics) -> None:
        self.app = app
        self.accounting = accounting
        self.metrics = metrics

    async def settle(
        self,
        event: EventT,
        work: Callable[[], Awaitable[Outcome]],
        *,
        failed_topic: str,
        stage: str,
    ) -> None:
        """Run ``work`` for ``event`` and account for how it ended.

        Under exactly-once, all of it (a dead letter too) runs between two commits
        (:func:`certflow.faust_fixes.exactly_once.event_in_progress`): a commit in
        the middle would commit the records sent so far without the event's offset.
        """
        topic = event.message.topic
        async with event_in_progress(self.app):
            self.accounting.received(topic)
            started = time.perf_counter()
            try:
                outcome = await work()
            except INFRASTRUCTURE_FAILURES as exc:
                if not isinstance(exc, MessageSizeTooLargeError):  # a record too big is the event's fault
                    log.exception("infrastructure failure on %s event; it will be processed again", stage)
                    raise
                await self._reject(event, exc, failed_topic, stage)
            except Exception as exc:  # noqa: BLE001 - every event failure is dead-lettered
                await self._reject(event, exc, failed_topic, stage)
            else:
                self.accounting.ended(topic, outcome)
            finally:
                self.metrics.processing.labels(stage).observe(time.perf_counter() - started)


    async def _reject(self, event: EventT, exc: Exception, failed_topic: str, stage: str) -> None:
        stage = getattr(exc, _STAGE_ATTRIBUTE, stage)
        await self.dead_letter(failed_topic, event.value or b"", exc, stage=stage, source=event_source(event))
        self.accounting.ended(event.message.topic, Outcome.FAILED)

    async def dead_letter(
        self, failed_topic: str, raw: bytes, exc: Exception, *, stage: str, source: EventSource
    ) -> None:
        """Publish ``raw`` with the reason it was rejected; never raises for a bad event."""
        where = {"topic": source.topic, "partition": source.partition, "offset": source.offset,
                 "stage": stage}
        if isinstance(exc, CertflowError):
            code, message = exc.code, exc.message
            log.warning("rejected %s event: %s %s", stage, code.value, message,
                        extra={**where, "errorCode": code.value})
        else:
            code, message = ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"
            log.exception("unexpected failure on %s event", stage,
                          extra={**where, "errorCode": code.value})
        record = FailedEvent.of(
            raw=raw, code=code.value, message=message, stage=stage, source=source, now=datetime.now(UTC)
        )
        await self.app.topic(failed_topic).send(
            key=source.key.encode() if source.key else None,
            value=record.to_json(),
            headers={ERROR_CODE_HEADER: code.value.encode()},
        )
