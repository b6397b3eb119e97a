"""Reference data into the learner state: one agent per reference topic.

``certflow.batches`` (small, read by every partition) is replicated to every worker
by its :class:`~certflow.faust_fixes.global_table.BatchDirectory`; its agent here
only validates each batch once for the whole deployment, dead-lettering the bad
ones. The learner-keyed topics fill the tables of :class:`LearnerState`.

Upserts replace a record; a tombstone (null value) deletes what the key names: a
batch, or all of a learner's records in that table. Records that fail validation go
to ``issue.certificate.failed`` (``stage: reference``): they are inputs of the issue
flow, and operators watch one failed topic per flow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from faust.types import EventT, TableT
from pydantic import BaseModel, ValidationError

from certflow.accounting import Outcome
from certflow.errors import CertflowError, ErrorCode
from certflow.events.models import decode_json_object
from certflow.events.settle import Settler
from certflow.reference.models import (
    BatchRecord,
    EnrolmentRow,
    LearnerProfile,
    ScoreRow,
)
from certflow.reference.state import LearnerState
from certflow.services import CertflowServices
from certflow.settings import Settings

#: Stores a validated record (and the partition it was read from) in the state.
Store = Callable[[Any, int], None]


class ReferenceIngestion:
    """Validates each reference record and stores it, or dead-letters it."""

    def __init__(self, settings: Settings, settle: Settler, state: LearnerState) -> None:
        self.settings = settings
        self.settle = settle
        self.state = state
        topics = settings.topics
        #: Topic → (the model its records must match, where they are stored, the table a
        #: tombstone deletes from: none for batches, which every BatchDirectory applies).
        self.routes: dict[str, tuple[type[BaseModel], Store, TableT | None]] = {
            topics.batches: (BatchRecord, _store_nothing, None),
            topics.enrolments: (EnrolmentRow, state.store_enrolment, state.enrolments),
            topics.scores: (ScoreRow, state.store_scores, state.scores),
            topics.learners: (LearnerProfile, state.store_learner, state.learners),
        }

    async def apply(self, event: EventT) -> None:
        """Validate one reference record and store it; a bad record is dead-lettered."""
        await self.settle.settle(
            event,
            lambda: self._apply(event),
            failed_topic=self.settings.topics.issue_failed,
            stage="reference",
        )

    async def _apply(self, event: EventT) -> Outcome:
        model, store, table = self.routes[event.message.topic]
        key = event.key.decode() if isinstance(event.key, bytes) else event.key
        if event.value is None:
            if not key:
                raise CertflowError(ErrorCode.MANDATORY_PARAMETER_MISSING, "a tombstone needs a key")
            if table is not None:
                table.pop(key.encode(), None)
            return Outcome.SUCCESS
        document = decode_json_object(event.value, max_bytes=self.settings.max_event_bytes)
        try:
            record = model.model_validate(document)
        except ValidationError as exc:
            raise CertflowError(ErrorCode.INVALID_PARAM_VALUE, _summary(exc)) from None
        store(record, event.message.partition)
        return Outcome.SUCCESS


def _summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'record'}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )


def _store_nothing(record: BatchRecord, partition: int) -> None:
    """Batches are stored by each worker's BatchDirectory; this agent only validates
    them once for the whole deployment, dead-lettering the bad ones."""


def register(app: faust.App, services: CertflowServices, settle: Settler) -> ReferenceIngestion:
    """The learner state's tables and one ingestion agent per reference topic; the
    state is ``.state`` of what this returns."""
    settings = services.settings
    state = LearnerState(app, settings, services.accounting)
    ingestion = ReferenceIngestion(settings, settle, state)
    topics = settings.topics
    for name, topic in (
        ("batches", topics.batches),
        ("enrolments", topics.enrolments),
        ("scores", topics.scores),
        ("learners", topics.learners),
    ):

        async def update(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                await ingestion.apply(event)

        update.__name__ = update.__qualname__ = f"update_{name}"
        app.agent(app.topic(topic), name=f"certflow.reference.{name}")(update)
    return ingestion
