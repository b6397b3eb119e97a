"""Who gets a certificate: Sunbird's pre-processor rules as plain functions.

For one learner, one batch and one of its templates, :func:`decide` evaluates the
template's criteria (enrolment, assessment, user profile) and the already-issued
rule, and returns an :class:`EligibilityDecision`: issue, or skip with a reason code.
:func:`generate_request` then builds the generate-certificate event Sunbird's
pre-processor would have emitted (SUNBIRD.md §2.3), field for field.

Everything here is data in, data out: the eligibility agent looks the inputs up in
its co-partitioned tables and calls these.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from certflow.credentials.identity import CertifiedFacts
from certflow.errors import CertflowError, ErrorCode
from certflow.issue.criteria import (
    CRITERIA,
    Evaluation,
    Phase,
    SkipReason,
    profile_value,
    supported_percentages,
)
from certflow.reference.models import (
    BatchRecord,
    CertTemplate,
    EnrolmentRow,
    LearnerProfile,
    ScoreRow,
)


@dataclass(frozen=True)
class IssuedEntry:
    """A certificate certflow issued (or is issuing) to a learner in a course batch."""

    id: str
    name: str
    template_id: str
    old_id: str = ""
    #: ``pending`` from the moment eligibility emits it, ``issued`` once published.
    status: str = "pending"
    #: The message an issued certificate was made from (its status-list slot, one per
    #: message), so that the same message read again is told apart from a replay.
    made_from: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.id, "name": self.name, "templateId": self.template_id,
            "oldId": self.old_id, "status": self.status, "madeFrom": self.made_from,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IssuedEntry:
        return cls(
            id=data["id"], name=data["name"], template_id=data.get("templateId", ""),
            old_id=data.get("oldId", ""), status=data.get("status", "pending"),
            made_from=data.get("madeFrom", ""),
        )


def already_issued(
    existing: IssuedEntry | None, certificate_id: str, *, replaces: str, message: str = ""
) -> bool:
    """Sunbird's generator check (``isNotIssued``), for a request about to be made.

    Nothing of this name yet: make it. The same certificate (same id): make it only
    while it is still pending (eligibility decided, not yet published), so a replay
    of a published one is skipped; but the very ``message`` it was made from, read
    again after a crash, makes it again: its issued entry and the certificate are
    records on two partitions, and the entry may have reached the broker when the
    certificate did not (made again from the same message, it is byte-identical). A
    different certificate of the same name: skip, unless the request replaces one
    (``oldId``), as in Sunbird.
    """
    if existing is None:
        return False
    if existing.id == certificate_id:
        return existing.status == "issued" and not (message and existing.made_from == message)
    return not replaces


def authorise_reissue(
    old_id: str,
    *,
    name: str,
    slot: str,
    issued: Mapping[str, Mapping[str, IssuedEntry]],
    sunbird_issued: Sequence[Mapping[str, Any]] = (),
) -> bool:
    """May a generate request for this learner, in course batch ``slot``, of
    certificate ``name``, replace (and so revoke) ``old_id``? Raise if not.

    Certificate ids are deterministic and public, so ``oldId`` is an assertion to
    check, not to trust: it must be the certificate this learner currently holds
    under this name in this course batch, and it must be issued (a pending one does
    not exist yet). ``issued`` is the learner's issued state (course batch slot →
    lower-cased name → entry), held in the learner's partition, where the request is
    decided. Failing that, a certificate Sunbird issued before certflow (the
    enrolment's ``issued_certificates``, ``sunbird_issued``) may be replaced when
    certflow has issued none of this name: certflow holds no record of it to revoke.

    Returns whether the old certificate is certflow's, to revoke in its registry.
    Raises ``OLD_ID_NOT_FOUND`` (not this learner's, or not issued yet) or
    ``OLD_ID_MISMATCH`` (this learner's, but another course batch or name, or no
    longer the current one). Called only for a request whose certificate is not the
    entry itself (a replay, or the pending request the issue flow authorised).

    (One function, longer than most: each refusal is a case of one rule, read in
    order, and splitting them would scatter the rule.)
    """
    key = name.lower()
    current = issued.get(slot, {}).get(key)
    if current is not None and current.id == old_id:
        if current.status != "issued":
            raise CertflowError(
                ErrorCode.OLD_ID_NOT_FOUND,
                f"oldId {old_id} is not issued yet (its certificate was requested, not made); "
                "it can be replaced once issued",
            )
        return True
    for other_slot, names in issued.items():
        for entry in names.values():
            if entry.id == old_id:
                raise CertflowError(
                    ErrorCode.OLD_ID_MISMATCH,
                    f"oldId {old_id} is this learner's {entry.name!r} certificate in {other_slot}, "
                    f"not a {name!r} certificate in {slot}",
                )
            if entry.old_id == old_id:
                raise CertflowError(
                    ErrorCode.OLD_ID_MISMATCH,
                    f"oldId {old_id} was already replaced by {entry.id}, "
                    f"this learner's current {entry.name!r} certificate in {other_slot}",
                )
    for sunbird in sunbird_issued:
        if str(sunbird.get("identifier", "")) != old_id:
            continue
        if current is not None:
            raise CertflowError(
                ErrorCode.OLD_ID_MISMATCH,
                f"oldId {old_id} was replaced by {current.id}, this learner's current {name!r} certificate",
            )
        if str(sunbird.get("name", "")).lower() != key:
            raise CertflowError(
                ErrorCode.OLD_ID_MISMATCH,
                f"oldId {old_id} is this learner's {sunbird.get('name')!r} certificate, not a {name!r} one",
            )
        return False
    raise CertflowError(
        ErrorCode.OLD_ID_NOT_FOUND,
        f"oldId {old_id} is not a certificate issued to this learner in this course batch",
    )


@dataclass(frozen=True)
class LearnerFacts:
    """What the worker knows about one learner in one course batch."""

    user_id: str
    enrolment: EnrolmentRow | None
    scores: ScoreRow | None
    profile: LearnerProfile | None
    #: certflow's issued table for this course batch: lower-cased name → entry.
    issued: Mapping[str, IssuedEntry] = field(default_factory=dict)


@dataclass(frozen=True)
class EligibilityDecision:
    """The outcome for one (request, learner, template)."""

    user_id: str
    batch_id: str
    course_id: str
    template_id: str
    template_name: str
    reason: SkipReason | None = None
    certificate_id: str = ""
    old_id: str = ""
    score: float | None = None
    detail: str = ""

    @property
    def issue(self) -> bool:
        return self.reason is None


def decide(
    batch: BatchRecord,
    template: CertTemplate,
    learner: LearnerFacts,
    *,
    reissue: bool,
    content_types: frozenset[str],
    partitions: int,
) -> EligibilityDecision:
    """Sunbird's ``issueCertificate`` for one template, without its defects.

    Order as Sunbird: enrolment (active, status, already issued), assessment, then the
    learner's profile (exists, user criteria). A template without an enrolment
    criterion does not require an enrolment (Sunbird crashed on it).
    """

    def skip(
        reason: SkipReason, detail: str = "", score: float | None = None, certificate_id: str = ""
    ) -> EligibilityDecision:
        return EligibilityDecision(
            learner.user_id, batch.batchId, batch.courseId, template.identifier, template.name,
            reason=reason, detail=detail, score=score, certificate_id=certificate_id,
        )

    problem = template.problem()
    if problem is not None:
        return skip(SkipReason.INVALID_TEMPLATE, problem)
    evaluation = Evaluation(learner, batch, content_types)
    earlier = _earlier_certificate(template.name, learner)
    score: float | None = None
    for phase in Phase:
        if phase is Phase.RESULTS and earlier and not reissue:
            detail = "a certificate of this name was issued"
            return skip(SkipReason.ALREADY_ISSUED, detail, certificate_id=earlier)
        if phase is Phase.PROFILE and learner.profile is None:
            return skip(SkipReason.UNKNOWN_LEARNER, "no profile for this learner", score)
        for criterion in CRITERIA:
            value = criterion.value(template.criteria) if criterion.phase is phase else None
            if value is None:
                continue
            verdict = criterion.evaluate(value, evaluation)
            score = verdict.score if verdict.score is not None else score
            if verdict.reason is not None:
                return skip(verdict.reason, verdict.detail, score)
    return _issue(
        batch, template, learner, old_id=earlier if reissue and earlier else "", score=score,
        partitions=partitions,
    )


def _issue(
    batch: BatchRecord, template: CertTemplate, learner: LearnerFacts, *, old_id: str, score: float | None,
    partitions: int,
) -> EligibilityDecision:
    """The decision to issue: the certificate's id follows from its facts (and falls
    in the learner's partition of ``partitions``)."""
    certificate_id = CertifiedFacts(
        recipient_id=learner.user_id,
        course_id=batch.courseId,
        batch_id=batch.batchId,
        template_id=template.identifier,
        certificate_name=template.name,
        replaces=old_id,
    ).certificate_id(partitions)
    return EligibilityDecision(
        learner.user_id,
        batch.batchId,
        batch.courseId,
        template.identifier,
        template.name,
        certificate_id=certificate_id,
        old_id=old_id,
        score=score,
    )


def request_again(decision: EligibilityDecision, learner: LearnerFacts) -> EligibilityDecision | None:
    """The certificate to request again, when ``decision`` skipped the learner only
    because one of this name is *pending* (requested, never confirmed published).

    A pending entry and the generate request it stands for are two records on two
    partitions, and a producer does not order records across partitions: a worker
    that crashed between them can leave the entry without its request, and the
    learner would never get the certificate. Requesting it again is safe, because
    the generate flow, in the learner's partition, makes a certificate only once.
    """
    if decision.reason is not SkipReason.ALREADY_ISSUED:
        return None
    entry = learner.issued.get(decision.template_name.lower())
    if entry is None or entry.status != "pending" or entry.id != decision.certificate_id:
        return None
    return replace(
        decision,
        reason=None,
        old_id=entry.old_id,
        detail="requested again: its certificate was requested but never confirmed published",
    )


def _earlier_certificate(name: str, learner: LearnerFacts) -> str:
    """Id of a certificate of this name already issued in the batch, or ""."""
    entry = learner.issued.get(name.lower())
    if entry is not None:
        return entry.id
    if learner.enrolment is not None:
        for issued in learner.enrolment.issued_certificates:
            if str(issued.get("name", "")).lower() == name.lower():
                return str(issued.get("identifier", ""))
    return ""


def related_properties(
    batch: BatchRecord, template: CertTemplate, learner: LearnerFacts, *, content_types: frozenset[str]
) -> dict[str, Any]:
    """``edata.related``: the batch, plus what the template's ``additionalProps`` ask for."""
    related: dict[str, Any] = {
        "batchId": batch.batchId,
        "courseId": batch.courseId,
        "type": template.name,
    }
    props = template.additionalProps
    if props.get("location") and learner.profile is not None:
        locations = learner.profile.locations()
        related["location"] = {kind: locations[kind] for kind in props["location"] if kind in locations}
    if props.get("enrollment") and learner.enrolment is not None:
        row = learner.enrolment.model_dump()
        related["enrollment"] = {prop: _sunbird_json(row.get(prop.lower())) for prop in props["enrollment"]}
    if "score" in props.get("assessment", []) and learner.scores is not None:
        related["assessment"] = {
            "score": supported_percentages(learner.scores, batch.contentTypes, content_types)
        }
    if props.get("user") and learner.profile is not None:
        related["user"] = {prop: profile_value(learner.profile, prop) for prop in props["user"]}
    if props.get("course"):
        related["course"] = {"name": batch.courseName}
    return related


def _sunbird_json(value: Any) -> Any:
    """Timestamps as epoch milliseconds, as Sunbird's Jackson writes ``java.util.Date``."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return value


def generate_request(
    decision: EligibilityDecision,
    batch: BatchRecord,
    template: CertTemplate,
    learner: LearnerFacts,
    *,
    base_path: str,
    cloud_base_path: str,
    content_types: frozenset[str],
    request_mid: str,
    now: datetime,
) -> dict[str, Any]:
    """The generate-certificate event Sunbird's pre-processor emits (SUNBIRD.md §2.3).

    ``mid`` is derived from the request and the decision, so a redelivered issue
    request produces byte-for-byte the same generate event.
    """
    assert decision.issue, "only an issue decision has a generate request"
    profile = learner.profile
    assert profile is not None
    completed = learner.enrolment.completedon if learner.enrolment else None
    svg_template = template.url
    if cloud_base_path:
        svg_template = svg_template.replace("CLOUD_BASE_PATH", cloud_base_path)
    mid = uuid.uuid5(uuid.NAMESPACE_URL, f"{request_mid}|{decision.certificate_id}")
    return {
        "eid": "BE_JOB_REQUEST",
        "ets": int(now.timestamp() * 1000),
        "mid": f"LMS.{mid}",
        "actor": {"id": "Certificate Generator", "type": "System"},
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.learning.platform"}},
        "object": {"id": learner.user_id, "type": "GenerateCertificate"},
        "edata": {
            "issuedDate": (completed or now).strftime("%Y-%m-%d"),
            "data": [{"recipientName": profile.recipient_name, "recipientId": learner.user_id}],
            "criteria": {"narrative": template.name},
            "svgTemplate": svg_template,
            "oldId": decision.old_id,
            "templateId": template.identifier,
            "userId": learner.user_id,
            "orgId": profile.rootOrgId or "",
            "issuer": template.issuer,
            "signatoryList": template.signatoryList,
            "courseName": batch.courseName,
            "basePath": base_path,
            "related": related_properties(batch, template, learner, content_types=content_types),
            "name": template.name,
            "tag": batch.batchId,
        },
    }
