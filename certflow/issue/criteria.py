"""Every eligibility criterion a certificate template can name, in one registry.

A criterion is what a template's ``criteria`` object names (Sunbird's
``enrollment``, ``assessment``, ``user``): how it is validated when a batch's
template is checked (:meth:`certflow.reference.models.CertTemplate.problem`), how it
is evaluated for a learner (:func:`certflow.issue.rules.decide`), and the skip
reasons it gives. Both iterate :data:`CRITERIA`, so a new criterion is one entry
here (and a line in the README's table).

Sunbird's order is kept through phases: the enrolment criterion, then the
already-issued check, then the assessment, then (once the learner's profile is
known to exist) the profile criteria.

Data in, data out: nothing here knows about Faust or the tables.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from certflow.issue.rules import LearnerFacts
    from certflow.reference.models import BatchRecord, LearnerProfile, ScoreRow

#: Sunbird's default enrolment status criterion: 2 = completed.
COMPLETED = 2
#: In ``CERTFLOW_ASSESSMENT_CONTENT_TYPES``, counts every content whatever its type.
ANY_CONTENT_TYPE = "*"
#: Sunbird's assessment operators; a bare number means equality.
COMPARISONS: Mapping[str, Callable[[float, float], bool]] = {
    "EQ": operator.eq, "eq": operator.eq, "=": operator.eq,
    ">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le,
    "ne": operator.ne, "!=": operator.ne,
}


class SkipReason(StrEnum):
    """Why a learner was not issued a template's certificate (``certificate.decisions``)."""

    NO_TEMPLATE = "no_template"
    INVALID_TEMPLATE = "invalid_template"
    NOT_ENROLLED = "not_enrolled"
    INACTIVE = "inactive"
    STATUS_MISMATCH = "status_mismatch"
    ALREADY_ISSUED = "already_issued"
    SCORE_BELOW = "score_below"
    UNKNOWN_LEARNER = "unknown_learner"
    USER_CRITERIA = "user_criteria"


class Phase(IntEnum):
    """When a criterion is evaluated, in Sunbird's order."""

    #: Before the already-issued check.
    ENROLMENT = 1
    #: After it, before the learner's profile is looked at.
    RESULTS = 2
    #: Once the learner is known to have a profile (``unknown_learner`` otherwise).
    PROFILE = 3


@dataclass(frozen=True)
class Evaluation:
    """What a criterion is evaluated against: one learner in one course batch."""

    learner: LearnerFacts
    batch: BatchRecord
    #: ``CERTFLOW_ASSESSMENT_CONTENT_TYPES``.
    content_types: frozenset[str]


@dataclass(frozen=True)
class Verdict:
    """A criterion's outcome: pass (no reason), or skip with a reason and a detail."""

    reason: SkipReason | None = None
    detail: str = ""
    #: The learner's score, when the criterion worked one out (kept on later decisions).
    score: float | None = None


PASS = Verdict()


@dataclass(frozen=True)
class Criterion:
    """One criterion: the keys naming it, its validation, its evaluation, its reasons."""

    #: The template criteria keys that name it; the first is its canonical name.
    keys: tuple[str, ...]
    phase: Phase
    #: The skip reasons :attr:`evaluate` may give (documentation, and a test checks it).
    reasons: tuple[SkipReason, ...]
    #: (the key, its value) → why it cannot be evaluated, or None.
    validate: Callable[[str, Any], str | None]
    #: The (valid) value → the verdict for one learner.
    evaluate: Callable[[Any, Evaluation], Verdict]

    def value(self, criteria: Mapping[str, Any]) -> Any | None:
        """The template's value for this criterion, or None if the template does not name it."""
        present = [criteria[key] for key in self.keys if criteria.get(key) is not None]
        return next((value for value in present if value), present[0] if present else None)

    def problem(self, criteria: Mapping[str, Any]) -> str | None:
        """Why the template's value (under any of the keys) cannot be evaluated, or None."""
        for key in self.keys:
            if key in criteria:
                problem = self.validate(key, criteria[key])
                if problem is not None:
                    return problem
        return None


# --- enrolment -------------------------------------------------------------------------


def _validate_enrolment(key: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, dict):
        return "enrollment criteria must be an object"
    status = value.get("status", COMPLETED) if isinstance(value, dict) else COMPLETED
    if not is_whole(status):
        return f"enrollment.status {status!r} is not a whole number"
    return None


def _evaluate_enrolment(value: dict[str, Any], evaluation: Evaluation) -> Verdict:
    wanted_status = int(value.get("status", COMPLETED))
    enrolment = evaluation.learner.enrolment
    if enrolment is None:
        return Verdict(SkipReason.NOT_ENROLLED)
    if not enrolment.active:
        return Verdict(SkipReason.INACTIVE)
    if (enrolment.status or 0) != wanted_status:
        detail = f"enrolment status {enrolment.status}, criterion {wanted_status}"
        return Verdict(SkipReason.STATUS_MISMATCH, detail)
    return PASS


# --- assessment ------------------------------------------------------------------------


def _validate_assessment(key: str, value: Any) -> str | None:
    if not value:
        return None
    score = value.get("score") if isinstance(value, dict) else None
    if isinstance(score, dict):
        if not score:
            return "assessment.score has no operator"
        op, threshold = next(iter(score.items()))
        if op not in COMPARISONS:
            return f"assessment.score operator {op!r} is not one of {sorted(COMPARISONS)}"
        if not is_number(threshold):
            return f"assessment.score threshold {threshold!r} is not a number"
    elif not is_number(score):
        return "assessment.score must be a number or {operator: number}"
    return None


def _evaluate_assessment(value: Any, evaluation: Evaluation) -> Verdict:
    if not value:
        return PASS
    score = best_score(evaluation.learner.scores, evaluation.batch.contentTypes, evaluation.content_types)
    comparison, threshold = score_criterion(value["score"])
    if not comparison(score, threshold):
        return Verdict(SkipReason.SCORE_BELOW, f"best score {score:g}, criterion {threshold:g}", score)
    return Verdict(score=score)


def score_criterion(criterion: Any) -> tuple[Callable[[float, float], bool], float]:
    """``{">=": 50}`` → (≥, 50); a bare number means equality (Sunbird crashed on it)."""
    if isinstance(criterion, dict):
        op, threshold = next(iter(criterion.items()))
        return COMPARISONS[op], float(threshold)
    return operator.eq, float(criterion)


def supported_percentages(
    scores: ScoreRow | None, known_types: Mapping[str, str], supported: frozenset[str]
) -> dict[str, float]:
    """Content → percentage, over contents of a supported type.

    Types compare case-insensitively (Sunbird's case-sensitive match missed its own
    test's ``selfAssess``); a content of unknown type does not count, as in Sunbird
    with exceptions suppressed.
    """
    if scores is None:
        return {}
    wanted = {kind.lower() for kind in supported}
    return {
        content: score * 100 / max_score
        for content, (score, max_score) in scores.attempts().items()
        if ANY_CONTENT_TYPE in wanted or known_types.get(content, "").lower() in wanted
    }


def best_score(scores: ScoreRow | None, known_types: Mapping[str, str], supported: frozenset[str]) -> float:
    """The best percentage over contents of a supported type; 0 when there is none."""
    return max(supported_percentages(scores, known_types, supported).values(), default=0.0)


# --- the learner's profile ---------------------------------------------------------------


def _validate_user(key: str, value: Any) -> str | None:
    if value and not isinstance(value, dict):
        return f"{key} criteria must be an object of profile field → value"
    return None


def _evaluate_user(value: Any, evaluation: Evaluation) -> Verdict:
    profile = evaluation.learner.profile
    assert profile is not None  # Phase.PROFILE: checked before
    for name, wanted in (value or {}).items():
        actual = profile_value(profile, name)
        if actual != wanted:
            return Verdict(SkipReason.USER_CRITERIA, f"{name} is {actual!r}, criterion {wanted!r}")
    return PASS


def profile_value(profile: LearnerProfile, name: str) -> Any:
    """A profile field by name: a modelled one, or one the record carried besides."""
    if name in type(profile).model_fields:
        return getattr(profile, name)
    return (profile.model_extra or {}).get(name)


#: Every criterion, in the order they are checked within a phase.
CRITERIA: tuple[Criterion, ...] = (
    Criterion(
        keys=("enrollment",),
        phase=Phase.ENROLMENT,
        reasons=(SkipReason.NOT_ENROLLED, SkipReason.INACTIVE, SkipReason.STATUS_MISMATCH),
        validate=_validate_enrolment,
        evaluate=_evaluate_enrolment,
    ),
    Criterion(
        keys=("assessment",),
        phase=Phase.RESULTS,
        reasons=(SkipReason.SCORE_BELOW,),
        validate=_validate_assessment,
        evaluate=_evaluate_assessment,
    ),
    # Sunbird's validator checks ``users`` but its evaluator reads ``user`` (a
    # template with only user criteria was always rejected); both mean the same here.
    Criterion(
        keys=("user", "users"),
        phase=Phase.PROFILE,
        reasons=(SkipReason.USER_CRITERIA,),
        validate=_validate_user,
        evaluate=_evaluate_user,
    ),
)
#: Every template criteria key a criterion answers to.
CRITERIA_KEYS = frozenset(key for criterion in CRITERIA for key in criterion.keys)


def criteria_problem(criteria: Mapping[str, Any], *, template: str) -> str | None:
    """Why the criteria of ``template`` (its id or name) cannot be evaluated, or None."""
    if not CRITERIA_KEYS & set(criteria):
        names = ", ".join(criterion.keys[0] for criterion in CRITERIA)
        return f"template {template!r} criteria name none of {names}"
    for criterion in CRITERIA:
        problem = criterion.problem(criteria)
        if problem is not None:
            return problem
    return None


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_whole(value: Any) -> bool:
    """What ``int()`` turns into the intended status: 2, 2.0 or "2"."""
    if isinstance(value, str):
        return value.strip().isdecimal()
    if isinstance(value, float):
        return value.is_integer()  # False for inf and nan too
    return isinstance(value, int) and not isinstance(value, bool)
