"""One registry of criteria, read by template validation and by the decision."""

from __future__ import annotations

from typing import Any

import pytest

from certflow.issue import criteria
from certflow.issue.criteria import COMPLETED, CRITERIA, CRITERIA_KEYS, Criterion, Phase, SkipReason, Verdict
from certflow.reference.models import CertTemplate


def template(criteria_: dict[str, Any]) -> CertTemplate:
    return CertTemplate.model_validate({
        "identifier": "t1", "name": "Completion", "url": "https://x.example/t.svg",
        "criteria": criteria_, "issuer": {"name": "Org", "url": "https://x.example"},
        "signatoryList": [{"name": "A", "id": "a", "designation": "CEO", "image": "https://x.example/a.png"}],
    })


def test_every_sunbird_key_is_known_and_the_default_status_is_completed() -> None:
    assert {"enrollment", "assessment", "user", "users"} == CRITERIA_KEYS
    assert COMPLETED == 2
    assert [c.phase for c in CRITERIA] == sorted(c.phase for c in CRITERIA)


def test_a_template_naming_no_criterion_is_refused_with_the_registry_names() -> None:
    assert template({"other": {}}).problem() == "template 't1' criteria name none of enrollment, assessment, user"


@pytest.mark.parametrize(
    ("criteria_", "problem"),
    [
        ({"enrollment": {"status": "x"}}, "enrollment.status 'x' is not a whole number"),
        ({"assessment": {"score": {"~": 1}}}, "assessment.score operator '~' is not one of"),
        ({"users": ["a"]}, "users criteria must be an object of profile field → value"),
    ],
)
def test_template_validation_asks_each_criterion(criteria_: dict[str, Any], problem: str) -> None:
    assert (template(criteria_).problem() or "").startswith(problem)


def test_a_new_criterion_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation and evaluation both pick up an entry added to the registry."""
    from certflow.issue.rules import LearnerFacts, decide
    from certflow.reference.models import BatchRecord

    never = Criterion(
        keys=("never",), phase=Phase.RESULTS, reasons=(SkipReason.SCORE_BELOW,),
        validate=lambda key, value: None if value is True else f"{key} must be true",
        evaluate=lambda value, evaluation: Verdict(SkipReason.SCORE_BELOW, "never issued"),
    )
    monkeypatch.setattr(criteria, "CRITERIA", (*CRITERIA, never))
    monkeypatch.setattr(criteria, "CRITERIA_KEYS", CRITERIA_KEYS | {"never"})
    import certflow.issue.rules as rules

    monkeypatch.setattr(rules, "CRITERIA", (*CRITERIA, never))
    assert template({"never": 1}).problem() == "never must be true"
    usable = template({"never": True})
    batch = BatchRecord.model_validate({"batchid": "b", "courseid": "c", "cert_templates": {}})
    learner = LearnerFacts(user_id="u", enrolment=None, scores=None, profile=None)

    decision = decide(batch, usable, learner, reissue=False, content_types=frozenset(), partitions=8)

    assert (decision.reason, decision.detail) == (SkipReason.SCORE_BELOW, "never issued")
