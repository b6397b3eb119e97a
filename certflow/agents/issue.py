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
from certflow.agents import reference
from certflow.agents.dead_letters import (
    dead_letter,
    event_source,
    settle,
    source_headers,
)
from certflow.app import app, services, settings
from certflow.eligibility import (
    EligibilityDecision,
    IssuedEntry,
    SkipReason,
    decide,
    generate_request,
    request_again,
)
from certflow.errors import CertflowError, ErrorCode
from certflow.models.events import parse_event
from certflow.models.generate import GenerateCertificateRequest, validation_context
from certflow.render.images import ImageLimits
from certflow.models.issue import IssueCertificateRequest
from certflow.models.records import Decision, EventSource
from certflow.models.reference import BatchRecord, enrolment_slot

topics = settings.topics
issue_requests = app.topic(topics.issue_request)
eligibility_jobs = app.topic(topics.eligibility, partitions=settings.partitions)
generate_requests = app.topic(topics.generate_request)
decision_log = app.topic(topics.decisions)

_CONTENT_TYPES = frozenset(settings.assessment_content_types)
#: Learners per eligibility job. One event per learner would cost the stream's
#: per-event overhead on every learner (most of a worker's time, measured); a job
#: is retried whole, and learners it already decided are skipped as issued.
JOB_LEARNERS = 500
_VALIDATION = validation_context(
    suppress_signatory_errors=settings.suppress_signatory_errors,
    image_limits=ImageLimits.from_settings(settings),
)


@app.agent(issue_requests, name="certflow.issue.expand")
async def expand_issue_requests(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        await expand_request(event)


@app.agent(eligibility_jobs, name="certflow.issue.eligibility")
async def decide_eligibility(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        await run_job(event)


async def expand_request(event: EventT) -> None:
    """Validate an issue request; jobs for its learners by partition, or a sweep per partition."""
    await settle(event, lambda: _expand(event), failed_topic=topics.issue_failed, stage="intake")


async def _expand(event: EventT) -> Outcome:
    source = event_source(event)
    request = parse_event(IssueCertificateRequest, event.value, max_bytes=settings.max_event_bytes)
    edata = request.edata
    batch = reference.batch_record(edata.batchId)
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
        await dead_letter(
            topics.issue_failed, event.value,
            CertflowError(ErrorCode.TEMPLATE_INVALID, "; ".join(problems)),
            stage="intake", source=source,
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
        for partition, user_ids in _by_partition(edata.learner_ids)
    ] or [({**job, "sweep": True}, partition) for partition in range(settings.partitions)]
    for value, partition in jobs:
        await eligibility_jobs.send(value=orjson.dumps(value), partition=partition, headers=headers)
    services.accounting.add(event.message.topic, "eligibility-jobs-count", len(jobs))
    return Outcome.SUCCESS


def _by_partition(user_ids: list[str]) -> Iterator[tuple[int, list[str]]]:
    """Learners grouped by their partition, in jobs of at most ``JOB_LEARNERS``."""
    groups: dict[int, list[str]] = {}
    for user_id in user_ids:
        groups.setdefault(reference.learner_partition(user_id), []).append(user_id)
    for partition, members in sorted(groups.items()):
        for start in range(0, len(members), JOB_LEARNERS):
            yield partition, members[start:start + JOB_LEARNERS]


async def run_job(event: EventT) -> None:
    """Decide for one learner, or for every local learner of a batch (a sweep)."""
    await settle(event, lambda: _run_job(event), failed_topic=topics.issue_failed, stage="eligibility")


async def _run_job(event: EventT) -> Outcome:
    source = event_source(event)
    job: dict[str, Any] = orjson.loads(event.value)
    batch = reference.batch_record(job["batchId"])
    if batch is None:
        raise CertflowError(ErrorCode.UNKNOWN_BATCH, f"batch {job['batchId']!r} disappeared")
    if job.get("sweep"):
        learners = list(
            reference.enrolled_learners(batch.courseId, batch.batchId, event.message.partition)
        )
    else:
        learners = job["userIds"]
    for user_id in learners:
        await decide_for_learner(user_id, batch, job, source)
    services.accounting.add(event.message.topic, "learners-evaluated-count", len(learners))
    return Outcome.SUCCESS


async def decide_for_learner(
    user_id: str, batch: BatchRecord, job: dict[str, Any], source: EventSource
) -> None:
    """Every SVG template of the batch, one decision each."""
    slot = enrolment_slot(batch.courseId, batch.batchId)
    templates = [template for template in batch.certTemplates.values() if template.is_svg]
    if not templates:
        await _record(
            EligibilityDecision(user_id, batch.batchId, batch.courseId, "", "", reason=SkipReason.NO_TEMPLATE),
            job,
        )
        return
    for template in templates:
        # Looked up per template: issuing one template's certificate changes what
        # the next template with the same name sees.
        facts = reference.learner_facts(user_id, batch.courseId, batch.batchId)
        decision = decide(
            batch, template, facts, reissue=bool(job["reIssue"]), content_types=_CONTENT_TYPES
        )
        again = request_again(decision, facts)
        decision = again or decision
        if decision.issue:
            generate = orjson.dumps(generate_request(
                decision, batch, template, facts,
                base_path=settings.base_path,
                cloud_base_path=settings.cloud_base_path,
                content_types=_CONTENT_TYPES,
                request_mid=job["requestId"],
                now=reference.now(),
            ))
            refusal = _generate_refusal(generate)
            if refusal is not None:
                # The generate flow would refuse it: skip now, rather than record a
                # pending certificate that can never be made.
                await _record(
                    replace(decision, reason=SkipReason.INVALID_TEMPLATE, certificate_id="", detail=refusal),
                    job,
                )
                continue
            await generate_requests.send(key=user_id.encode(), value=generate, headers=source_headers(source))
            if again is None:
                # (A request made again leaves its entry alone: the generate flow
                # may have marked it issued meanwhile.)
                reference.record_issued(
                    user_id,
                    slot,
                    IssuedEntry(
                        id=decision.certificate_id, name=template.name,
                        template_id=template.identifier, old_id=decision.old_id,
                    ),
                )
        await _record(decision, job)


def parse_generate_request(raw: bytes) -> GenerateCertificateRequest:
    """A generate request as the generate flow accepts it: one rule for both flows,
    so the issue flow never records a certificate the generate flow would refuse."""
    return parse_event(
        GenerateCertificateRequest, raw, max_bytes=settings.max_event_bytes, context=_VALIDATION
    )


def _generate_refusal(event: bytes) -> str | None:
    """Why the generate flow would refuse this event, or None if it would accept it."""
    try:
        parse_generate_request(event)
    except CertflowError as exc:
        return f"the generate event would be refused: {exc.code.value}: {exc.message}"
    return None


async def _record(decision: EligibilityDecision, job: dict[str, Any]) -> None:
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
        decidedAt=reference.now().isoformat(),
    )
    await publish_decision(record, counted_under=topics.eligibility)


async def publish_decision(record: Decision, *, counted_under: str) -> None:
    """Publish a decision, keep it in the learner's recent decisions, and count it
    under the input topic whose event it decided."""
    document = record.model_dump(mode="json")
    reference.record_decision(record.userId, document)
    await decision_log.send(key=record.userId.encode(), value=orjson.dumps(document))
    services.accounting.add(counted_under, f"decisions-{record.decision}-count")
