"""The issue flow: ``issue.certificate.request`` → decisions and generate requests.

* ``expand_issue_requests`` validates a Sunbird issue request and turns it into
  eligibility jobs: the named learners, grouped by the partition that holds their
  tables, each group sent to that partition. A request that names no learners
  means the whole batch: a *sweep* goes to every partition, where each worker scans
  only its local enrolments.
* ``decide_eligibility`` runs in the learner's partition, next to the learner's
  tables: it evaluates every SVG template of the batch, records each decision, and
  emits Sunbird's generate-certificate request for the learners who qualify. Because
  a learner's jobs are handled in order in one partition, and the decision to issue
  is recorded before the next job is read, two racing requests cannot both issue.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import faust
import orjson
from faust.types import EventT

from certflow.accounting import Outcome
from certflow.errors import CertflowError, ErrorCode
from certflow.events.models import parse_event
from certflow.events.records import Decision, EventSource
from certflow.events.settle import Settler, event_source, source_headers
from certflow.generate.models import generate_request_parser
from certflow.issue.models import IssueCertificateRequest
from certflow.issue.rules import (
    EligibilityDecision,
    IssuedEntry,
    SkipReason,
    decide,
    generate_request,
    request_again,
)
from certflow.reference.models import BatchRecord, enrolment_slot
from certflow.reference.state import LearnerState, now
from certflow.services import CertflowServices

#: Learners per eligibility job. One event per learner would cost the stream's
#: per-event overhead on every learner (most of a worker's time, measured); a job
#: is retried whole, and learners it already decided are skipped as issued.
JOB_LEARNERS = 500


class IssueFlow:
    """The issue flow's handlers; its agents call :meth:`expand_request` and :meth:`run_job`."""

    def __init__(
        self, app: faust.App, services: CertflowServices, settle: Settler, state: LearnerState
    ) -> None:
        settings = services.settings
        self.settings = settings
        self.accounting = services.accounting
        self.settle = settle
        self.state = state
        self.eligibility_jobs = app.topic(settings.topics.eligibility, partitions=settings.partitions)
        self.generate_requests = app.topic(settings.topics.generate_request)
        self.content_types = frozenset(settings.assessment_content_types)
        self.parse_generate_request = generate_request_parser(settings)

    async def expand_request(self, event: EventT) -> None:
        """Validate an issue request; jobs for its learners by partition, or a sweep per partition."""
        await self.settle.settle(
            event, lambda: self._expand(event), failed_topic=self.settings.topics.issue_failed, stage="intake"
        )

    async def _expand(self, event: EventT) -> Outcome:
        settings = self.settings
        source = event_source(event)
        request = parse_event(IssueCertificateRequest, event.value, max_bytes=settings.max_event_bytes)
        edata = request.edata
        batch = self.state.batch_record(edata.batchId)
        if batch is None or batch.courseId != edata.courseId:
            raise CertflowError(
                ErrorCode.UNKNOWN_BATCH,
                f"no batch {edata.batchId!r} of course {edata.courseId!r} in certflow.batches",
            )
        problems = [
            f"{template_id}: {template.problem()}"
            for template_id, template in batch.certTemplates.items()
            if template.is_svg and template.problem()
        ]
        if problems:
            # The valid templates are still issued; the invalid ones are reported.
            await self.settle.dead_letter(
                settings.topics.issue_failed,
                event.value,
                CertflowError(ErrorCode.TEMPLATE_INVALID, "; ".join(problems)),
                stage="intake",
                source=source,
            )
        job = {
            "batchId": edata.batchId,
            "courseId": edata.courseId,
            "reIssue": edata.reIssue,
            "requestId": request.mid,
        }
        headers = source_headers(source)
        jobs = [
            ({**job, "userIds": user_ids}, partition)
            for partition, user_ids in self._by_partition(edata.learner_ids)
        ] or [({**job, "sweep": True}, partition) for partition in range(settings.partitions)]
        for value, partition in jobs:
            await self.eligibility_jobs.send(value=orjson.dumps(value), partition=partition, headers=headers)
        self.accounting.add(event.message.topic, "eligibility-jobs-count", len(jobs))
        return Outcome.SUCCESS

    def _by_partition(self, user_ids: list[str]) -> Iterator[tuple[int, list[str]]]:
        """Learners grouped by their partition, in jobs of at most ``JOB_LEARNERS``."""
        groups: dict[int, list[str]] = {}
        for user_id in user_ids:
            groups.setdefault(self.state.learner_partition(user_id), []).append(user_id)
        for partition, members in sorted(groups.items()):
            for start in range(0, len(members), JOB_LEARNERS):
                yield partition, members[start : start + JOB_LEARNERS]

    async def run_job(self, event: EventT) -> None:
        """Decide for one learner, or for every local learner of a batch (a sweep)."""
        await self.settle.settle(
            event,
            lambda: self._run_job(event),
            failed_topic=self.settings.topics.issue_failed,
            stage="eligibility",
        )

    async def _run_job(self, event: EventT) -> Outcome:
        source = event_source(event)
        job: dict[str, Any] = orjson.loads(event.value)
        batch = self.state.batch_record(job["batchId"])
        if batch is None:
            raise CertflowError(ErrorCode.UNKNOWN_BATCH, f"batch {job['batchId']!r} disappeared")
        if job.get("sweep"):
            learners = list(
                self.state.enrolled_learners(batch.courseId, batch.batchId, event.message.partition)
            )
        else:
            learners = job["userIds"]
        for user_id in learners:
            await self.decide_for_learner(user_id, batch, job, source)
        self.accounting.add(event.message.topic, "learners-evaluated-count", len(learners))
        return Outcome.SUCCESS

    async def decide_for_learner(
        self, user_id: str, batch: BatchRecord, job: dict[str, Any], source: EventSource
    ) -> None:
        """Every SVG template of the batch, one decision each."""
        templates = [template for template in batch.certTemplates.values() if template.is_svg]
        if not templates:
            await self._record(
                EligibilityDecision(
                    user_id, batch.batchId, batch.courseId, "", "", reason=SkipReason.NO_TEMPLATE
                ),
                job,
            )
            return
        for template in templates:
            await self._decide_template(user_id, batch, template, job, source)

    async def _decide_template(
        self, user_id: str, batch: BatchRecord, template: Any, job: dict[str, Any], source: EventSource
    ) -> None:
        settings = self.settings
        # Looked up per template: issuing one template's certificate changes what
        # the next template with the same name sees.
        facts = self.state.learner_facts(user_id, batch.courseId, batch.batchId)
        decision = decide(
            batch, template, facts, reissue=bool(job["reIssue"]), content_types=self.content_types,
            partitions=settings.partitions,
        )
        again = request_again(decision, facts)
        decision = again or decision
        if decision.issue:
            generate = orjson.dumps(
                generate_request(
                    decision,
                    batch,
                    template,
                    facts,
                    base_path=settings.base_path,
                    cloud_base_path=settings.cloud_base_path,
                    content_types=self.content_types,
                    request_mid=job["requestId"],
                    now=now(),
                )
            )
            refusal = self._generate_refusal(generate)
            if refusal is not None:
                # The generate flow would refuse it: skip now, rather than record a
                # pending certificate that can never be made.
                await self._record(
                    replace(decision, reason=SkipReason.INVALID_TEMPLATE, certificate_id="", detail=refusal),
                    job,
                )
                return
            await self.generate_requests.send(
                key=user_id.encode(), value=generate, headers=source_headers(source)
            )
            if again is None:
                # (A request made again leaves its entry alone: the generate flow
                # may have marked it issued meanwhile.)
                self.state.record_issued(
                    user_id,
                    enrolment_slot(batch.courseId, batch.batchId),
                    IssuedEntry(
                        id=decision.certificate_id,
                        name=template.name,
                        template_id=template.identifier,
                        old_id=decision.old_id,
                    ),
                )
        await self._record(decision, job)

    def _generate_refusal(self, event: bytes) -> str | None:
        """Why the generate flow would refuse this event, or None if it would accept it
        (one rule for both flows: the issue flow never records a certificate the
        generate flow would refuse)."""
        try:
            self.parse_generate_request(event)
        except CertflowError as exc:
            return f"the generate event would be refused: {exc.code.value}: {exc.message}"
        return None

    async def _record(self, decision: EligibilityDecision, job: dict[str, Any]) -> None:
        record = Decision(
            requestId=job["requestId"],
            stage="eligibility",
            userId=decision.user_id,
            batchId=decision.batch_id,
            courseId=decision.course_id,
            templateId=decision.template_id,
            certificateName=decision.template_name,
            decision="issued" if decision.issue else "skipped",
            reason=decision.reason.value if decision.reason else None,
            detail=decision.detail,
            certificateId=decision.certificate_id,
            oldId=decision.old_id,
            score=decision.score,
            decidedAt=now().isoformat(),
        )
        await self.state.publish_decision(record, counted_under=self.settings.topics.eligibility)


def register(app: faust.App, services: CertflowServices, settle: Settler, state: LearnerState) -> IssueFlow:
    """The issue flow's two agents: expand requests into jobs, decide each job."""
    flow = IssueFlow(app, services, settle, state)
    topics = services.settings.topics

    async def expand_issue_requests(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await flow.expand_request(event)

    async def decide_eligibility(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await flow.run_job(event)

    app.agent(app.topic(topics.issue_request), name="certflow.issue.expand")(expand_issue_requests)
    app.agent(flow.eligibility_jobs, name="certflow.issue.eligibility")(decide_eligibility)
    return flow
