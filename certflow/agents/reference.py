"""Reference data into tables: batches everywhere, everything per learner co-partitioned.

``certflow.batches`` (small, read by every partition) is replicated to every worker
(:class:`BatchDirectory`); the learner-keyed topics fill Tables whose changelogs
share the partition count of every other userId-keyed topic, so the eligibility
agent and the generate agent find a learner's enrolments, scores, profile and issued
certificates on their own worker.

Upserts replace a record; a tombstone (null value) deletes what the key names: a
batch, or all of a learner's records in that table. Table values are plain JSON
(dicts), exactly what a changelog recovery gives back, so a worker behaves the same
before and after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import EventT
from pydantic import BaseModel, ValidationError

from certflow.accounting import Outcome
from certflow.agents.batch_directory import BatchDirectory
from certflow.agents.dead_letters import settle
from certflow.app import app, settings
from certflow.eligibility import IssuedEntry, LearnerFacts
from certflow.errors import CertflowError, ErrorCode
from certflow.kafka import key_partition
from certflow.models.events import decode_json_object
from certflow.models.reference import (
    BatchRecord,
    EnrolmentRow,
    LearnerProfile,
    ScoreRow,
    enrolment_slot,
)

log = logging.getLogger(__name__)

topics = settings.topics
batch_updates = app.topic(topics.batches)
enrolment_updates = app.topic(topics.enrolments)
score_updates = app.topic(topics.scores)
learner_updates = app.topic(topics.learners)

#: Keys are the raw key bytes of the source topic (a batch or user id, UTF-8), so a
#: table key hashes to the same partition as the records it came from, and web
#: requests for a learner are routed to the right worker. (Faust picks a table's
#: key codec from ``key_type``: ``bytes`` means raw; values are JSON.)
_KEY_TYPE = bytes


#: Bounds on each table partition's RocksDB memory (ignored by the memory store).
_ROCKSDB_OPTIONS = {
    "write_buffer_size": settings.rocksdb_write_buffer_mb * 2**20,
    "max_write_buffer_number": 2,
    "block_cache_size": settings.rocksdb_block_cache_mb * 2**20,
}


def keyed_table(name: str, help: str) -> faust.Table:
    """A table keyed by raw id bytes, with this deployment's partition count."""
    return app.Table(
        name, key_type=_KEY_TYPE, partitions=settings.partitions, help=help,
        options=dict(_ROCKSDB_OPTIONS),
    )


#: batchId → BatchRecord, on every worker (see :class:`BatchDirectory`).
batches = BatchDirectory(settings.broker, topics.batches)
app.add_dependency(batches)
enrolments = keyed_table("enrolments", "userId → {courseId|batchId: enrolment row, _partition}")
scores = keyed_table("scores", "userId → {courseId|batchId: activity aggregates}")
learners = keyed_table("learners", "userId → profile")
issued = keyed_table("issued", "userId → {courseId|batchId: {certificate name: issued entry}}")
decisions = keyed_table("decisions", "userId → the learner's most recent decisions")

#: Decisions kept per learner for ``GET /learners/{userId}/decisions``.
DECISIONS_KEPT = 100
#: Where a learner's enrolments were written from, so a batch sweep on partition p
#: visits exactly the learners whose data lives in p (and not a standby copy).
PARTITION_FIELD = "_partition"


def _reference_agent(topic: faust.TopicT, model: type[BaseModel], store: Any, name: str) -> Any:
    """One agent per reference topic: validate each record, store it, or dead-letter it."""

    async def update(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await _apply(event, model, store)

    update.__name__ = update.__qualname__ = f"update_{name}"
    return app.agent(topic, name=f"certflow.reference.{name}")(update)


async def _apply(event: EventT, model: type[BaseModel], store: Any) -> None:
    """Validate one reference record and store it; a bad record is dead-lettered.

    Reference records that fail validation go to ``issue.certificate.failed``: they
    are inputs of the issue flow, and operators watch one failed topic per flow.
    """

    async def work() -> Outcome:
        key = event.key.decode() if isinstance(event.key, bytes) else event.key
        if event.value is None:
            if not key:
                raise CertflowError(ErrorCode.MANDATORY_PARAMETER_MISSING, "a tombstone needs a key")
            _delete(event.message.topic, key)
            return Outcome.SUCCESS
        document = decode_json_object(event.value, max_bytes=settings.max_event_bytes)
        try:
            record = model.model_validate(document)
        except ValidationError as exc:
            raise CertflowError(ErrorCode.INVALID_PARAM_VALUE, _summary(exc)) from None
        store(record, event.message.partition)
        return Outcome.SUCCESS

    await settle(event, work, failed_topic=topics.issue_failed, stage="reference")


def _summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'record'}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )


def _delete(topic: str, key: str) -> None:
    if topic == topics.batches:
        return  # every worker's BatchDirectory applies batch tombstones itself
    table = {
        topics.enrolments: enrolments,
        topics.scores: scores,
        topics.learners: learners,
    }[topic]
    table.pop(key.encode(), None)


def _store_nothing(record: BatchRecord, partition: int) -> None:
    """Batches are stored by each worker's BatchDirectory; this agent only validates
    them once for the whole deployment, dead-lettering the bad ones."""


def _store_enrolment(record: EnrolmentRow, partition: int) -> None:
    key = record.userid.encode()
    rows = dict(enrolments.get(key) or {})
    rows[record.slot] = record.model_dump(mode="json")
    rows[PARTITION_FIELD] = partition
    enrolments[key] = rows


def _store_scores(record: ScoreRow, partition: int) -> None:
    key = record.user_id.encode()
    rows = dict(scores.get(key) or {})
    rows[record.slot] = record.model_dump(mode="json")
    scores[key] = rows


def _store_learner(record: LearnerProfile, partition: int) -> None:
    learners[record.userId.encode()] = record.model_dump(mode="json")


check_batches = _reference_agent(batch_updates, BatchRecord, _store_nothing, "batches")
update_enrolments = _reference_agent(enrolment_updates, EnrolmentRow, _store_enrolment, "enrolments")
update_scores = _reference_agent(score_updates, ScoreRow, _store_scores, "scores")
update_learners = _reference_agent(learner_updates, LearnerProfile, _store_learner, "learners")


# --- What the other agents read and write ------------------------------------------


def learner_partition(user_id: str) -> int:
    """The partition that holds ``user_id`` in every learner-keyed topic and table.

    It is where Kafka's default partitioner sends a record keyed by the id, so work
    addressed to a partition rather than a key (a batch of eligibility jobs, a
    generate request made in place) finds the learner's tables on the worker that
    reads it.
    """
    return key_partition(user_id.encode(), settings.partitions)


def batch_record(batch_id: str) -> BatchRecord | None:
    return batches.get(batch_id)


def learner_facts(user_id: str, course_id: str, batch_id: str) -> LearnerFacts:
    """Everything this worker knows about a learner in a course batch."""
    key = user_id.encode()
    slot = enrolment_slot(course_id, batch_id)
    enrolment = (enrolments.get(key) or {}).get(slot)
    score = (scores.get(key) or {}).get(slot)
    profile = learners.get(key)
    return LearnerFacts(
        user_id=user_id,
        enrolment=EnrolmentRow.model_validate(enrolment) if enrolment else None,
        scores=ScoreRow.model_validate(score) if score else None,
        profile=LearnerProfile.model_validate(profile) if profile else None,
        issued=issued_entries(user_id, slot),
    )


def enrolled_learners(course_id: str, batch_id: str, partition: int) -> Iterator[str]:
    """Learners enrolled in the batch whose data lives in ``partition`` (a local scan)."""
    slot = enrolment_slot(course_id, batch_id)
    for key, rows in enrolments.items():
        if rows.get(PARTITION_FIELD) == partition and slot in rows:
            yield key.decode() if isinstance(key, bytes) else key


def issued_entries(user_id: str, slot: str) -> dict[str, IssuedEntry]:
    stored = (issued.get(user_id.encode()) or {}).get(slot) or {}
    return {name: IssuedEntry.from_dict(entry) for name, entry in stored.items()}


def learner_issued(user_id: str) -> dict[str, dict[str, IssuedEntry]]:
    """The learner's whole issued state: course batch slot → lower-cased name → entry."""
    stored = issued.get(user_id.encode()) or {}
    return {
        slot: {name: IssuedEntry.from_dict(entry) for name, entry in names.items()}
        for slot, names in stored.items()
    }


def sunbird_issued(user_id: str, slot: str) -> list[dict[str, Any]]:
    """Certificates Sunbird issued the learner in a course batch (the enrolment's
    ``issued_certificates``), before certflow."""
    enrolment = (enrolments.get(user_id.encode()) or {}).get(slot)
    return EnrolmentRow.model_validate(enrolment).issued_certificates if enrolment else []


def record_issued(user_id: str, slot: str, entry: IssuedEntry) -> None:
    key = user_id.encode()
    slots = dict(issued.get(key) or {})
    names = dict(slots.get(slot) or {})
    names[entry.name.lower()] = entry.to_dict()
    slots[slot] = names
    issued[key] = slots


def forget_issued(user_id: str, slot: str, name: str, certificate_id: str) -> None:
    """Drop a pending entry whose certificate could not be made, so a retry may issue it."""
    key = user_id.encode()
    slots = dict(issued.get(key) or {})
    names = dict(slots.get(slot) or {})
    entry = names.get(name.lower())
    if entry and entry["id"] == certificate_id and entry["status"] == "pending":
        del names[name.lower()]
        slots[slot] = names
        issued[key] = slots


def record_decision(user_id: str, decision: dict[str, Any]) -> None:
    key = user_id.encode()
    recent = list(decisions.get(key) or [])
    recent.append(decision)
    decisions[key] = recent[-DECISIONS_KEPT:]


def now() -> datetime:
    return datetime.now(UTC)
