"""The learner state: every learner-keyed table, and what the flows read and write in it.

One :class:`LearnerState` per app, created by :func:`certflow.reference.agents.register`
and handed to the other flows. Tables are keyed by the raw id bytes of their source
topic (a user id, UTF-8), so a table key hashes to the same partition as the records
it came from, and every learner-keyed table shares ``CERTFLOW_PARTITIONS``: the
eligibility and generate agents find a learner's enrolments, scores, profile and
issued certificates on their own worker. Values are plain JSON (dicts), exactly
what a changelog recovery gives back, so a worker behaves the same before and after
a restart. Batches, read by every partition, are a full copy on every worker
(:class:`~certflow.faust_fixes.global_table.BatchDirectory`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from faust.types import TableT

from certflow.accounting import Accounting
from certflow.events.records import Decision
from certflow.faust_fixes.global_table import BatchDirectory
from certflow.issue.rules import IssuedEntry, LearnerFacts
from certflow.partitioning import key_partition
from certflow.reference.models import (
    BatchRecord,
    EnrolmentRow,
    LearnerProfile,
    ScoreRow,
    enrolment_slot,
)
from certflow.settings import Settings

#: Decisions kept per learner for ``GET /learners/{userId}/decisions``.
DECISIONS_KEPT = 100
#: Where a learner's enrolments were written from, so a batch sweep on partition p
#: visits exactly the learners whose data lives in p (and not a standby copy).
PARTITION_FIELD = "_partition"


def keyed_table(app: faust.App, settings: Settings, name: str, description: str) -> TableT:
    """A table keyed by raw id bytes, with this deployment's partition count.

    (Faust picks a table's key codec from ``key_type``: ``bytes`` means raw; values
    are JSON.) RocksDB's memory per table partition is bounded by the settings
    (ignored by the memory store).
    """
    options = {
        "write_buffer_size": settings.rocksdb_write_buffer_mb * 2**20,
        "max_write_buffer_number": 2,
        "block_cache_size": settings.rocksdb_block_cache_mb * 2**20,
    }
    return app.Table(
        name, key_type=bytes, partitions=settings.partitions, help=description, options=options
    )


class LearnerState:
    """The learner-keyed tables, the batch directory, and the decision log."""

    def __init__(self, app: faust.App, settings: Settings, accounting: Accounting) -> None:
        self.settings = settings
        self.accounting = accounting
        #: batchId → BatchRecord, on every worker.
        self.batches = BatchDirectory(settings.kafka, settings.topics.batches)
        app.add_dependency(self.batches)

        def table(name: str, description: str) -> TableT:
            return keyed_table(app, settings, name, description)

        self.enrolments = table("enrolments", "userId → {courseId|batchId: enrolment row, _partition}")
        self.scores = table("scores", "userId → {courseId|batchId: activity aggregates}")
        self.learners = table("learners", "userId → profile")
        self.issued = table("issued", "userId → {courseId|batchId: {certificate name: issued entry}}")
        self.decisions = table("decisions", "userId → the learner's most recent decisions")
        self.decision_log = app.topic(settings.topics.decisions)

    def learner_partition(self, user_id: str) -> int:
        """The partition that holds ``user_id`` in every learner-keyed topic and table.

        It is where Kafka's default partitioner sends a record keyed by the id, so work
        addressed to a partition rather than a key (a batch of eligibility jobs, a
        generate request made in place) finds the learner's tables on the worker that
        reads it.
        """
        return key_partition(user_id.encode(), self.settings.partitions)

    def batch_record(self, batch_id: str) -> BatchRecord | None:
        return self.batches.get(batch_id)

    # --- reference data, as ingested --------------------------------------------------

    def store_enrolment(self, record: EnrolmentRow, partition: int) -> None:
        key = record.userid.encode()
        rows = dict(self.enrolments.get(key) or {})
        rows[record.slot] = record.model_dump(mode="json")
        rows[PARTITION_FIELD] = partition
        self.enrolments[key] = rows

    def store_scores(self, record: ScoreRow, partition: int) -> None:
        key = record.user_id.encode()
        rows = dict(self.scores.get(key) or {})
        rows[record.slot] = record.model_dump(mode="json")
        self.scores[key] = rows

    def store_learner(self, record: LearnerProfile, partition: int) -> None:
        self.learners[record.userId.encode()] = record.model_dump(mode="json")

    # --- what the issue and generate flows read -------------------------------------

    def learner_facts(self, user_id: str, course_id: str, batch_id: str) -> LearnerFacts:
        """Everything this worker knows about a learner in a course batch."""
        key = user_id.encode()
        slot = enrolment_slot(course_id, batch_id)
        enrolment = (self.enrolments.get(key) or {}).get(slot)
        score = (self.scores.get(key) or {}).get(slot)
        profile = self.learners.get(key)
        return LearnerFacts(
            user_id=user_id,
            enrolment=EnrolmentRow.model_validate(enrolment) if enrolment else None,
            scores=ScoreRow.model_validate(score) if score else None,
            profile=LearnerProfile.model_validate(profile) if profile else None,
            issued=self.issued_entries(user_id, slot),
        )

    def enrolled_learners(self, course_id: str, batch_id: str, partition: int) -> Iterator[str]:
        """Learners enrolled in the batch whose data lives in ``partition`` (a local scan)."""
        slot = enrolment_slot(course_id, batch_id)
        for key, rows in self.enrolments.items():
            if rows.get(PARTITION_FIELD) == partition and slot in rows:
                yield key.decode() if isinstance(key, bytes) else key

    def issued_entries(self, user_id: str, slot: str) -> dict[str, IssuedEntry]:
        stored = (self.issued.get(user_id.encode()) or {}).get(slot) or {}
        return {name: IssuedEntry.from_dict(entry) for name, entry in stored.items()}

    def learner_issued(self, user_id: str) -> dict[str, dict[str, IssuedEntry]]:
        """The learner's whole issued state: course batch slot → lower-cased name → entry."""
        stored = self.issued.get(user_id.encode()) or {}
        return {
            slot: {name: IssuedEntry.from_dict(entry) for name, entry in names.items()}
            for slot, names in stored.items()
        }

    def sunbird_issued(self, user_id: str, slot: str) -> list[dict[str, Any]]:
        """Certificates Sunbird issued the learner in a course batch (the enrolment's
        ``issued_certificates``), before certflow."""
        enrolment = (self.enrolments.get(user_id.encode()) or {}).get(slot)
        return EnrolmentRow.model_validate(enrolment).issued_certificates if enrolment else []

    # --- what they write -----------------------------------------------------------------

    def record_issued(self, user_id: str, slot: str, entry: IssuedEntry) -> None:
        key = user_id.encode()
        slots = dict(self.issued.get(key) or {})
        names = dict(slots.get(slot) or {})
        names[entry.name.lower()] = entry.to_dict()
        slots[slot] = names
        self.issued[key] = slots

    def forget_issued(self, user_id: str, slot: str, name: str, certificate_id: str) -> None:
        """Drop a pending entry whose certificate could not be made, so a retry may issue it."""
        key = user_id.encode()
        slots = dict(self.issued.get(key) or {})
        names = dict(slots.get(slot) or {})
        entry = names.get(name.lower())
        if entry and entry["id"] == certificate_id and entry["status"] == "pending":
            del names[name.lower()]
            slots[slot] = names
            self.issued[key] = slots

    async def publish_decision(self, record: Decision, *, counted_under: str) -> None:
        """Publish a decision, keep it in the learner's recent decisions, and count it
        under the input topic whose event it decided."""
        document = record.model_dump(mode="json")
        key = record.userId.encode()
        recent = list(self.decisions.get(key) or [])
        recent.append(document)
        self.decisions[key] = recent[-DECISIONS_KEPT:]
        await self.decision_log.send(key=key, value=orjson.dumps(document))
        self.accounting.add(counted_under, f"decisions-{record.decision}-count")


def now() -> datetime:
    return datetime.now(UTC)
