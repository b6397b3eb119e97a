"""Who gets a certificate: Sunbird's pre-processor rules, one specification per rule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from certflow.events.models import parse_event
from certflow.generate.models import GenerateCertificateRequest, validation_context
from certflow.issue.rules import (
    IssuedEntry,
    LearnerFacts,
    SkipReason,
    already_issued,
    decide,
    generate_request,
    request_again,
)
from certflow.reference.models import BatchRecord, CertTemplate, EnrolmentRow, LearnerProfile, ScoreRow

COURSE, BATCH, USER = "do_11309999837886054415", "0131000245281587206", "user001"
SELF_ASSESS = frozenset({"SelfAssess"})
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
COMPLETED_ON = 1764000000000  # 2025-11-24T16:00:00Z


@pytest.fixture
def template_1(sunbird_fixture) -> dict[str, Any]:
    """Sunbird's TEMPLATE_1: enrolment status 2 and an assessment score ≥ 50."""
    return orjson.loads(sunbird_fixture("preproc_TEMPLATE_1_cert_template.json"))


def batch_with(template: dict[str, Any], **extra: Any) -> BatchRecord:
    return BatchRecord.model_validate({
        "batchid": BATCH, "courseid": COURSE, "courseName": "test Course",
        "cert_templates": {template.get("identifier", "t1"): template},
        "contentTypes": {"content_001": "selfAssess", "content_002": "Resource"},
        **extra,
    })


def profile(sunbird_fixture=None, name: str = "preproc_USER_1_user_read_response.json", **fields: Any) -> LearnerProfile:
    document = orjson.loads(sunbird_fixture(name)) if sunbird_fixture else {"result": {"response": {}}}
    document["result"]["response"].update({"id": USER, **fields})
    return LearnerProfile.model_validate(document)


def enrolment(**fields: Any) -> EnrolmentRow:
    return EnrolmentRow.model_validate({
        "userid": USER, "courseid": COURSE, "batchid": BATCH, "active": True, "status": 2,
        "completedon": COMPLETED_ON, "issued_certificates": [], **fields,
    })


def scores(**aggregates: float) -> ScoreRow:
    return ScoreRow.model_validate({
        "user_id": USER, "activity_id": COURSE, "context_id": f"cb:{BATCH}", "activity_type": "Course",
        "aggregates": aggregates,
    })


def facts(sunbird_fixture, **overrides: Any) -> LearnerFacts:
    values: dict[str, Any] = {
        "user_id": USER,
        "enrolment": enrolment(),
        "scores": scores(**{"score:content_001": 1, "max_score:content_001": 1}),
        "profile": profile(sunbird_fixture),
        "issued": {},
    }
    values.update(overrides)
    return LearnerFacts(**values)


def decide_one(batch: BatchRecord, learner: LearnerFacts, *, reissue: bool = False, types=SELF_ASSESS):
    [template] = batch.certTemplates.values()
    return decide(batch, template, learner, reissue=reissue, content_types=types, partitions=8)


def generate_for(batch: BatchRecord, learner: LearnerFacts, *, cloud_base_path: str = "") -> dict[str, Any]:
    """The generate event for the batch's only template, as the eligibility agent makes it."""
    [template] = batch.certTemplates.values()
    return generate_request(
        decide_one(batch, learner), batch, template, learner,
        base_path="https://dev.sunbirded.org/certs", cloud_base_path=cloud_base_path,
        content_types=SELF_ASSESS, request_mid="LP.1", now=NOW,
    )


# --- Sunbird's own fixtures -----------------------------------------------------------


def test_template_1_issues_to_a_completed_learner_with_a_full_score(sunbird_fixture, template_1) -> None:
    decision = decide_one(batch_with(template_1), facts(sunbird_fixture))
    assert decision.issue
    assert decision.score == 100.0
    assert decision.template_id == "template_svg_04-prad"
    assert decision.certificate_id


@pytest.mark.parametrize(
    ("fixture", "name"),
    [
        ("preproc_USER_1_user_read_response.json", "user name"),
        ("preproc_USER_2_EMPTY_LASTNAME_user_read_response.json", "Rajesh"),
        ("preproc_USER_3_NULL_VALUE_LASTNAME_user_read_response.json", "Suresh"),
        ("preproc_USER_4_NULL_STRING_VALUE_LASTNAME_user_read_response.json", "Manju"),
    ],
)
def test_recipient_names_drop_a_missing_empty_or_null_last_name(sunbird_fixture, fixture, name) -> None:
    assert profile(sunbird_fixture, fixture).recipient_name == name


def test_the_generate_request_has_sunbirds_exact_shape(sunbird_fixture, template_1) -> None:
    event = generate_for(batch_with(template_1), facts(sunbird_fixture))
    assert event["actor"] == {"id": "Certificate Generator", "type": "System"}
    assert event["object"] == {"id": USER, "type": "GenerateCertificate"}
    assert event["context"]["pdata"] == {"ver": "1.0", "id": "org.sunbird.learning.platform"}
    assert event["mid"].startswith("LMS.")
    edata = event["edata"]
    assert set(edata) == {
        "issuedDate", "data", "criteria", "svgTemplate", "oldId", "templateId", "userId", "orgId",
        "issuer", "signatoryList", "courseName", "basePath", "related", "name", "tag",
    }
    assert edata["issuedDate"] == "2025-11-24"
    assert edata["data"] == [{"recipientName": "user name", "recipientId": USER}]
    assert edata["criteria"] == {"narrative": "Course Completion Certificate"}
    assert edata["oldId"] == "" and edata["orgId"] == "Org001" and edata["tag"] == BATCH
    assert edata["issuer"]["name"] == "Gujarat Council of Educational Research and Training"
    assert edata["signatoryList"][0]["designation"] == "CEO"
    # SUNBIRD.md §2.3's derived example, additionalProps included:
    assert edata["related"] == {
        "batchId": BATCH, "courseId": COURSE, "type": "Course Completion Certificate",
        "location": {"state": "Karnataka", "district": "BENGALURU URBAN SOUTH"},
        "enrollment": {"completedOn": COMPLETED_ON},
        "assessment": {"score": {"content_001": 100.0}},
        "course": {"name": "test Course"},
    }


def test_the_generate_request_is_accepted_by_the_generate_flow(sunbird_fixture, template_1) -> None:
    batch, learner = batch_with(template_1), facts(sunbird_fixture)
    event = generate_for(batch, learner)
    request = parse_event(
        GenerateCertificateRequest, orjson.dumps(event), max_bytes=10**6,
        context=validation_context(suppress_signatory_errors=False),
    )
    # The same facts make the same certificate id on both sides.
    assert request.certified_facts().certificate_id(8) == decide_one(batch, learner).certificate_id


def test_the_generate_request_is_the_same_for_a_redelivered_request(sunbird_fixture, template_1) -> None:
    batch, learner = batch_with(template_1), facts(sunbird_fixture)
    assert generate_for(batch, learner) == generate_for(batch, learner)


def test_cloud_base_path_is_replaced_in_the_template_url(sunbird_fixture, template_1) -> None:
    template_1["url"] = "CLOUD_BASE_PATH/content/template.svg"
    event = generate_for(
        batch_with(template_1), facts(sunbird_fixture), cloud_base_path="https://cdn.example.org/container"
    )
    assert event["edata"]["svgTemplate"] == "https://cdn.example.org/container/content/template.svg"


# --- Enrolment ---------------------------------------------------------------------------


def test_no_enrolment_is_not_enrolled(sunbird_fixture, template_1) -> None:
    decision = decide_one(batch_with(template_1), facts(sunbird_fixture, enrolment=None))
    assert decision.reason is SkipReason.NOT_ENROLLED


def test_an_inactive_enrolment_is_inactive(sunbird_fixture, template_1) -> None:
    decision = decide_one(batch_with(template_1), facts(sunbird_fixture, enrolment=enrolment(active=False)))
    assert decision.reason is SkipReason.INACTIVE


@pytest.mark.parametrize(("criteria", "status", "reason"), [
    ({"enrollment": {"status": 2}}, 1, SkipReason.STATUS_MISMATCH),
    ({"enrollment": {}}, 1, SkipReason.STATUS_MISMATCH),  # status defaults to 2
    ({"enrollment": {}}, 2, None),
    ({"enrollment": {"status": 1}}, 1, None),
])
def test_enrolment_status_must_match_the_criterion(sunbird_fixture, template_1, criteria, status, reason) -> None:
    template_1["criteria"] = criteria
    decision = decide_one(batch_with(template_1), facts(sunbird_fixture, enrolment=enrolment(status=status)))
    assert decision.reason is reason


def test_a_template_without_an_enrolment_criterion_needs_no_enrolment(sunbird_fixture, template_1) -> None:
    template_1["criteria"] = {"user": {"rootOrgId": "Org001"}}
    decision = decide_one(batch_with(template_1), facts(sunbird_fixture, enrolment=None))
    assert decision.issue


# --- Already issued, re-issue ----------------------------------------------------------------


def test_a_certificate_of_the_same_name_from_sunbird_is_already_issued(sunbird_fixture, template_1) -> None:
    earlier = [{"identifier": "certificateId", "name": "course completion certificate", "token": "P4L3Y9"}]
    learner = facts(sunbird_fixture, enrolment=enrolment(issued_certificates=earlier))
    decision = decide_one(batch_with(template_1), learner)
    assert decision.reason is SkipReason.ALREADY_ISSUED
    assert decision.certificate_id == "certificateId"


def test_a_certificate_certflow_issued_is_already_issued(sunbird_fixture, template_1) -> None:
    entry = IssuedEntry(id="c-1", name="Course Completion Certificate", template_id="template_svg_04-prad")
    learner = facts(sunbird_fixture, issued={"course completion certificate": entry})
    assert decide_one(batch_with(template_1), learner).reason is SkipReason.ALREADY_ISSUED


def test_a_pending_certificate_is_requested_again_as_it_was(sunbird_fixture, template_1) -> None:
    """Decided and requested, never confirmed published: a crash may have lost its
    request, so a later request for the learner sends it again, same id, same oldId."""
    batch = batch_with(template_1)
    first = decide_one(batch, facts(sunbird_fixture))
    entry = IssuedEntry(id=first.certificate_id, name="Course Completion Certificate", template_id="t",
                        old_id="replaced-earlier", status="pending")
    learner = facts(sunbird_fixture, issued={"course completion certificate": entry})
    decision = decide_one(batch, learner)

    again = request_again(decision, learner)

    assert decision.reason is SkipReason.ALREADY_ISSUED
    assert again is not None and again.issue
    assert (again.certificate_id, again.old_id) == (first.certificate_id, "replaced-earlier")


@pytest.mark.parametrize("issued", [
    {"course completion certificate": IssuedEntry(id="c-1", name="Course Completion Certificate",
                                                  template_id="t", status="issued")},
    {},  # only Sunbird's enrolment record names it
])
def test_a_published_certificate_is_not_requested_again(sunbird_fixture, template_1, issued) -> None:
    earlier = [{"identifier": "c-1", "name": "course completion certificate"}]
    learner = facts(sunbird_fixture, issued=issued, enrolment=enrolment(issued_certificates=earlier))
    decision = decide_one(batch_with(template_1), learner)
    assert decision.reason is SkipReason.ALREADY_ISSUED
    assert request_again(decision, learner) is None


def test_a_learner_skipped_for_another_reason_is_not_requested_again(sunbird_fixture, template_1) -> None:
    entry = IssuedEntry(id="c-1", name="Course Completion Certificate", template_id="t", status="pending")
    learner = facts(sunbird_fixture, issued={"course completion certificate": entry},
                    enrolment=enrolment(status=1))
    decision = decide_one(batch_with(template_1), learner)
    assert decision.reason is SkipReason.STATUS_MISMATCH
    assert request_again(decision, learner) is None


def test_a_reissue_replaces_the_earlier_certificate_with_a_new_id(sunbird_fixture, template_1) -> None:
    batch = batch_with(template_1)
    first = decide_one(batch, facts(sunbird_fixture))
    entry = IssuedEntry(id=first.certificate_id, name="Course Completion Certificate", template_id="t")
    again = decide_one(batch, facts(sunbird_fixture, issued={"course completion certificate": entry}), reissue=True)
    assert again.issue
    assert again.old_id == first.certificate_id
    assert again.certificate_id != first.certificate_id


def test_a_reissue_for_a_learner_without_a_certificate_is_a_first_issue(sunbird_fixture, template_1) -> None:
    decision = decide_one(batch_with(template_1), facts(sunbird_fixture), reissue=True)
    assert decision.issue and decision.old_id == ""


# --- Assessment ----------------------------------------------------------------------------


@pytest.mark.parametrize(("op", "threshold", "score", "passes"), [
    (">=", 50, 50, True), (">=", 50, 49, False),
    (">", 50, 50, False), (">", 50, 51, True),
    ("<", 50, 49, True), ("<", 50, 50, False),
    ("<=", 50, 50, True), ("<=", 50, 51, False),
    ("EQ", 80, 80, True), ("eq", 80, 79, False), ("=", 80, 80, True),
    ("ne", 80, 79, True), ("!=", 80, 80, False),
])
def test_every_sunbird_score_operator(sunbird_fixture, template_1, op, threshold, score, passes) -> None:
    template_1["criteria"] = {"enrollment": {}, "assessment": {"score": {op: threshold}}}
    learner = facts(sunbird_fixture, scores=scores(**{"score:content_001": score, "max_score:content_001": 100}))
    decision = decide_one(batch_with(template_1), learner)
    assert decision.issue is passes
    assert passes or decision.reason is SkipReason.SCORE_BELOW


def test_a_bare_number_means_equality(sunbird_fixture, template_1) -> None:
    template_1["criteria"] = {"enrollment": {}, "assessment": {"score": 80}}
    at = facts(sunbird_fixture, scores=scores(**{"score:content_001": 8, "max_score:content_001": 10}))
    above = facts(sunbird_fixture, scores=scores(**{"score:content_001": 9, "max_score:content_001": 10}))
    assert decide_one(batch_with(template_1), at).issue
    assert decide_one(batch_with(template_1), above).reason is SkipReason.SCORE_BELOW


def test_the_best_score_over_supported_content_types_counts(sunbird_fixture, template_1) -> None:
    learner = facts(sunbird_fixture, scores=scores(**{
        "score:content_001": 4, "max_score:content_001": 10,   # SelfAssess (any case): 40 %
        "score:content_002": 10, "max_score:content_002": 10,  # Resource: does not count
        "score:content_003": 9, "max_score:content_003": 10,   # unknown type: does not count
    }))
    decision = decide_one(batch_with(template_1), learner)
    assert decision.reason is SkipReason.SCORE_BELOW
    assert decision.score == 40.0
    assert decide_one(batch_with(template_1), learner, types=frozenset({"*"})).score == 100.0


def test_max_score_defaults_to_one_and_no_scores_is_zero(sunbird_fixture, template_1) -> None:
    assert decide_one(batch_with(template_1), facts(sunbird_fixture, scores=scores(**{"score:content_001": 1}))).score == 100.0
    assert decide_one(batch_with(template_1), facts(sunbird_fixture, scores=None)).score == 0.0


# --- The learner ----------------------------------------------------------------------------


def test_a_learner_without_a_profile_is_unknown(sunbird_fixture, template_1) -> None:
    assert decide_one(batch_with(template_1), facts(sunbird_fixture, profile=None)).reason is SkipReason.UNKNOWN_LEARNER


@pytest.mark.parametrize("key", ["user", "users"])
def test_user_criteria_compare_profile_fields(sunbird_fixture, template_1, key) -> None:
    template_1["criteria"] = {"enrollment": {}, key: {"rootOrgId": "Org001"}}
    assert decide_one(batch_with(template_1), facts(sunbird_fixture)).issue
    template_1["criteria"] = {"enrollment": {}, key: {"rootOrgId": "Org002"}}
    decision = decide_one(batch_with(template_1), facts(sunbird_fixture))
    assert decision.reason is SkipReason.USER_CRITERIA
    assert "rootOrgId" in decision.detail


# --- Templates ------------------------------------------------------------------------------


@pytest.mark.parametrize("change", [
    {"url": ""},
    {"criteria": "{}"},
    {"criteria": '{"other": {}}'},
    {"criteria": '{"assessment": {"score": {"~": 5}}}'},
    {"criteria": '{"assessment": {"score": {">=": "high"}}}'},
])
def test_an_invalid_template_is_reported_not_crashed_on(sunbird_fixture, template_1, change) -> None:
    template_1.update(change)
    decision = decide_one(batch_with(template_1), facts(sunbird_fixture))
    assert decision.reason is SkipReason.INVALID_TEMPLATE
    assert decision.detail


def test_only_svg_templates_are_issued_from() -> None:
    assert CertTemplate(url="https://x/a.svg").is_svg
    assert not CertTemplate(url="https://x/a.pdf").is_svg


# --- The generate flow's already-issued check ---------------------------------------------


@pytest.mark.parametrize(("existing", "replaces", "skip"), [
    (None, "", False),
    (IssuedEntry(id="X", name="n", template_id="t", status="pending"), "", False),  # eligibility's own
    (IssuedEntry(id="X", name="n", template_id="t", status="issued"), "", True),    # a replay
    (IssuedEntry(id="X", name="n", template_id="t", status="issued"), "Y", True),   # a replayed re-issue
    (IssuedEntry(id="Y", name="n", template_id="t", status="issued"), "", True),    # same name, no oldId
    (IssuedEntry(id="Y", name="n", template_id="t", status="issued"), "Y", False),  # a re-issue of Y
])
def test_the_generate_flow_makes_each_certificate_once(existing, replaces, skip) -> None:
    assert already_issued(existing, "X", replaces=replaces) is skip


@pytest.mark.parametrize(("message", "skip"), [
    ("g2-0#17", False),  # the message it was made from, read again after a crash
    ("g2-0#18", True),   # another message asking for it: a replay
])
def test_the_message_a_certificate_was_made_from_makes_it_again(message, skip) -> None:
    """Its issued entry may have reached the broker when the certificate did not."""
    entry = IssuedEntry(id="X", name="n", template_id="t", status="issued", made_from="g2-0#17")
    assert already_issued(entry, "X", replaces="", message=message) is skip
