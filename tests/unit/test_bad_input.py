"""The bad-input matrix, model side: every kind of bad event gets a code, and the
record that carries it to a ``*.failed`` topic can always be published.

``tests/unit/test_generate_request.py`` and ``test_issue_request.py`` cover Sunbird's
own rules; this file covers what a hostile or broken producer sends to either input
topic, and what certflow then has to write back out. The end-to-end version (a real
worker, every case on one partition, then a good event) is
``tests/integration/test_bad_input.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from certflow.errors import CertflowError, ErrorCode
from certflow.events.models import MAX_REPORTED_PROBLEMS, parse_event
from certflow.events.records import (
    MAX_ERROR_MESSAGE_CHARS,
    EventSource,
    FailedEvent,
)
from certflow.generate.models import (
    MAX_FORWARDED_BYTES,
    MAX_SPLIT_BYTES,
    GenerateCertificateRequest,
    validation_context,
)
from certflow.issue.models import IssueCertificateRequest
from certflow.reference.models import BatchRecord, EnrolmentRow, LearnerProfile
from certflow.settings import Settings

#: The deployment default (``CERTFLOW_MAX_EVENT_BYTES``).
MAX_EVENT_BYTES = Settings().max_event_bytes
#: What a failed record must stay under to be publishable at all: Faust's default
#: ``producer_max_request_size`` (the broker's ``max.message.bytes`` is 1,048,588).
PRODUCER_LIMIT = 1_000_000
GENERATE = "certgen_EVENT_3_generate_certificate_no_oldId.json"
ISSUE = "preproc_EVENT_1_issue_certificate.json"
FIVE_MB = 5 * 1024 * 1024


def parse_generate(raw: bytes, *, max_bytes: int = MAX_EVENT_BYTES) -> GenerateCertificateRequest:
    return parse_event(
        GenerateCertificateRequest,
        raw,
        max_bytes=max_bytes,
        context=validation_context(suppress_signatory_errors=True),
    )


def parse_issue(raw: bytes, *, max_bytes: int = MAX_EVENT_BYTES) -> IssueCertificateRequest:
    return parse_event(IssueCertificateRequest, raw, max_bytes=max_bytes)


def rejected(parse: Callable[[bytes], object], raw: bytes) -> CertflowError:
    with pytest.raises(CertflowError) as caught:
        parse(raw)
    return caught.value


@pytest.fixture
def generate_event(sunbird_fixture) -> dict[str, Any]:
    return orjson.loads(sunbird_fixture(GENERATE))


@pytest.fixture
def issue_event(sunbird_fixture) -> dict[str, Any]:
    return orjson.loads(sunbird_fixture(ISSUE))


def failed_record(raw: bytes, error: CertflowError) -> FailedEvent:
    """The record dead-lettering writes for ``raw`` (agents/dead_letters.py)."""
    return FailedEvent.of(
        raw=raw,
        code=error.code.value,
        message=error.message,
        stage="intake",
        source=EventSource(topic="generate.certificate.request", partition=0, offset=7, key="k"),
        now=datetime.now(UTC),
    )


def padded(event: dict[str, Any], size: int) -> bytes:
    """``event`` grown to ``size`` bytes by an unknown field (kept, so it counts)."""
    base = orjson.dumps({**event, "padding": ""})
    return orjson.dumps({**event, "padding": "x" * (size - len(base))})


# --- both topics: what arrives instead of an event ----------------------------------

MALFORMED = [
    pytest.param(b"", id="empty"),
    pytest.param(b"certificate please", id="not-json"),
    pytest.param(b'{"eid": "BE_JOB_REQUEST", "edata": {"action": "issue-', id="truncated"),
    pytest.param(b'"BE_JOB_REQUEST"', id="a-json-string"),
    pytest.param(b"null", id="json-null"),
    pytest.param(b"\xef\xbb\xbf{}", id="utf8-bom"),
    pytest.param('{"edata": "é"}'.encode("latin-1"), id="latin-1"),
    pytest.param(b'{"ets": 1e999999}', id="number-overflow"),
    pytest.param(b"[" * 10_000 + b"]" * 10_000, id="nested-10000-deep"),
]


@pytest.mark.parametrize("raw", MALFORMED)
@pytest.mark.parametrize("parse", [parse_generate, parse_issue], ids=["generate", "issue"])
def test_what_is_not_a_json_object_is_malformed_on_both_topics(
    parse: Callable[[bytes], object], raw: bytes
) -> None:
    assert rejected(parse, raw).code is ErrorCode.MALFORMED_JSON


@pytest.mark.parametrize("parse", [parse_generate, parse_issue], ids=["generate", "issue"])
def test_a_five_megabyte_event_is_too_large_on_both_topics_before_it_is_parsed(
    parse: Callable[[bytes], object], generate_event: dict[str, Any]
) -> None:
    raw = padded(generate_event, FIVE_MB)
    started = time.perf_counter()

    error = rejected(parse, raw)

    assert error.code is ErrorCode.EVENT_TOO_LARGE
    assert f"{len(raw)} bytes" in error.message and str(MAX_EVENT_BYTES) in error.message
    assert time.perf_counter() - started < 0.05  # refused by its size, not parsed


# --- the generate topic ------------------------------------------------------------------


def set_path(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target = event
    *parents, last = path.split(".")
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return event


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "code", "named"),
    [
        # wrong types
        ("edata", [], ErrorCode.INVALID_PARAM_VALUE, "edata"),
        ("edata", None, ErrorCode.INVALID_PARAM_VALUE, "edata"),
        ("ets", "yesterday", ErrorCode.INVALID_PARAM_VALUE, "ets"),
        ("edata.data", [{"recipientName": "Asha", "recipientId": 7}], ErrorCode.INVALID_PARAM_VALUE, "recipientId"),
        ("edata.data", ["Asha"], ErrorCode.INVALID_PARAM_VALUE, "data"),
        ("edata.signatoryList", {"name": "CEO"}, ErrorCode.INVALID_PARAM_VALUE, "signatoryList"),
        ("edata.related", "do_1130", ErrorCode.INVALID_PARAM_VALUE, "related"),
        ("edata.issuedDate", 20190120, ErrorCode.INVALID_PARAM_VALUE, "issuedDate"),
        # orjson reads this as a float, pydantic as an int no JSON writer can write
        ("ets", 1.2345678901234568e29, ErrorCode.INVALID_PARAM_VALUE, "ets"),
        # missing fields
        ("edata", DELETE, ErrorCode.MANDATORY_PARAMETER_MISSING, "edata"),
        ("edata.svgTemplate", DELETE, ErrorCode.MANDATORY_PARAMETER_MISSING, "svgTemplate"),
        ("edata.issuer", DELETE, ErrorCode.MANDATORY_PARAMETER_MISSING, "issuer.name"),
        ("edata.data.0.recipientId", DELETE, ErrorCode.MANDATORY_PARAMETER_MISSING, "recipientId"),
        # dates in the wrong format
        ("edata.issuedDate", "2019-02-30", ErrorCode.INVALID_PARAM_VALUE, "issuedDate"),
        ("edata.issuedDate", "2019-01-20T10:00:00+05:30", ErrorCode.INVALID_PARAM_VALUE, "issuedDate"),
        ("edata.issuedDate", "Jan 20, 2019", ErrorCode.INVALID_PARAM_VALUE, "issuedDate"),
        ("edata.expiry", "forever", ErrorCode.INVALID_PARAM_VALUE, "expiry"),
        # control characters, bidi overrides and oversized text in every display field
        ("edata.data.0.recipientName", "Asha\u0000", ErrorCode.INVALID_PARAM_VALUE, "recipientName"),
        ("edata.data.0.recipientName", "\u202eahsA", ErrorCode.INVALID_PARAM_VALUE, "recipientName"),
        ("edata.data.0.recipientName", "A" * 5000, ErrorCode.INVALID_PARAM_VALUE, "recipientName"),
        ("edata.courseName", "Algebra\u2067I\u2069", ErrorCode.INVALID_PARAM_VALUE, "courseName"),
        ("edata.name", "Merit\u001b[31m", ErrorCode.INVALID_PARAM_VALUE, "name"),
        ("edata.issuer.name", "NCERT\u200b", ErrorCode.INVALID_PARAM_VALUE, "issuer.name"),
        ("edata.criteria.narrative", "done\u2028well", ErrorCode.INVALID_PARAM_VALUE, "narrative"),
        ("edata.signatoryList.0.designation", "CEO\u202d", ErrorCode.INVALID_PARAM_VALUE, "designation"),
        ("edata.description", "x" * 5000, ErrorCode.INVALID_PARAM_VALUE, "description"),
    ],
)
def test_a_bad_generate_event_gets_a_code_naming_the_field(
    generate_event: dict[str, Any], path: str, value: Any, code: ErrorCode, named: str
) -> None:
    error = rejected(parse_generate, orjson.dumps(set_path(generate_event, path, value)))

    assert error.code is code, error
    assert named in error.message


def test_an_issue_request_sent_to_the_generate_topic_is_missing_what_generating_needs(
    issue_event: dict[str, Any],
) -> None:
    """The generate topic has no ``action``; the wrong kind of event fails validation."""
    error = rejected(parse_generate, orjson.dumps(issue_event))

    assert error.code is ErrorCode.MANDATORY_PARAMETER_MISSING
    assert "svgTemplate" in error.message and "data" in error.message


@pytest.mark.parametrize(
    "name", ["Asha 👩‍💻", "🎓", "Zoë 🇮🇳 Kumar", "Li Na 李娜 ❤️"], ids=["zwj", "alone", "flag", "mixed"]
)
def test_emoji_in_names_are_accepted_as_written(generate_event: dict[str, Any], name: str) -> None:
    generate_event["edata"]["data"][0]["recipientName"] = name

    assert parse_generate(orjson.dumps(generate_event)).recipient.recipientName == name


def test_ten_thousand_recipients_are_accepted_and_split_one_request_each(
    generate_event: dict[str, Any],
) -> None:
    generate_event["edata"]["data"] = [
        {"recipientName": f"Learner {i}", "recipientId": f"user-{i:05d}"} for i in range(10_000)
    ]
    raw = orjson.dumps(generate_event)
    assert len(raw) < MAX_EVENT_BYTES

    singles = [single.to_json() for single in parse_generate(raw).per_recipient()]

    assert len(singles) == 10_000
    assert parse_generate(singles[-1]).recipient.recipientId == "user-09999"


def test_ten_thousand_unnamed_recipients_get_one_short_message(generate_event: dict[str, Any]) -> None:
    generate_event["edata"]["data"] = [{"recipientId": f"user-{i:05d}"} for i in range(10_000)]
    raw = orjson.dumps(generate_event)

    error = rejected(parse_generate, raw)

    assert error.code is ErrorCode.MANDATORY_PARAMETER_MISSING
    assert "data[0].recipientName" in error.message
    assert f"and {10_000 - MAX_REPORTED_PROBLEMS} more problems" in error.message
    assert len(error.message) < 2_000
    assert len(failed_record(raw, error).to_json()) < PRODUCER_LIMIT


def test_a_split_that_would_multiply_a_large_event_into_gigabytes_is_refused(
    generate_event: dict[str, Any],
) -> None:
    """Each single-recipient copy repeats the shared part: 600 KB × 9,000 is 5 GB."""
    generate_event["edata"]["data"] = [
        {"recipientName": "L", "recipientId": f"u{i:04d}"} for i in range(9_000)
    ]
    generate_event["edata"]["notes"] = "x" * 600_000  # an unknown field: kept on every copy
    raw = orjson.dumps(generate_event)
    assert len(raw) < MAX_EVENT_BYTES

    error = rejected(parse_generate, raw)

    assert error.code is ErrorCode.EVENT_TOO_LARGE
    assert "9000 single-recipient requests" in error.message
    assert str(MAX_SPLIT_BYTES) in error.message


def test_an_allowed_size_event_too_large_to_forward_is_refused_as_too_large(
    generate_event: dict[str, Any],
) -> None:
    """Under ``CERTFLOW_MAX_EVENT_BYTES`` (1 MiB), over what the worker's producer takes
    (1,000,000 bytes): refused up front, not an INTERNAL_ERROR when forwarding fails."""
    raw = padded(generate_event, 1_040_000)
    assert len(raw) < MAX_EVENT_BYTES

    error = rejected(parse_generate, raw)

    assert error.code is ErrorCode.EVENT_TOO_LARGE
    assert str(MAX_FORWARDED_BYTES) in error.message and "forwarded" in error.message


def test_recipients_sharing_a_part_too_large_to_forward_are_refused_as_too_large(
    generate_event: dict[str, Any],
) -> None:
    generate_event["edata"]["data"] = [{"recipientName": "A", "recipientId": "a"},
                                       {"recipientName": "B", "recipientId": "b"}]

    error = rejected(parse_generate, padded(generate_event, 1_000_000))

    assert error.code is ErrorCode.EVENT_TOO_LARGE and "forwarded" in error.message


def test_a_large_event_that_can_be_forwarded_is_accepted(generate_event: dict[str, Any]) -> None:
    single = next(parse_generate(padded(generate_event, 900_000)).per_recipient())

    assert len(single.to_json()) < MAX_FORWARDED_BYTES


def test_a_huge_invalid_value_is_quoted_only_briefly(generate_event: dict[str, Any]) -> None:
    generate_event["edata"]["tag"] = "bad tag " * 100_000

    error = rejected(parse_generate, orjson.dumps(generate_event))

    assert error.code is ErrorCode.INVALID_PARAM_VALUE
    assert "tag" in error.message and len(error.message) < 500


# --- the issue topic -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code", "named"),
    [
        ({"action": "revoke-everything"}, ErrorCode.INVALID_PARAM_VALUE, "action"),
        ({"action": ""}, ErrorCode.INVALID_PARAM_VALUE, "action"),
        ({"action": None}, ErrorCode.INVALID_PARAM_VALUE, "action"),
        ({"batchId": None}, ErrorCode.INVALID_PARAM_VALUE, "batchId"),
        ({"userIds": [1, 2, 3]}, ErrorCode.INVALID_PARAM_VALUE, "userIds"),
        ({"userIds": {"user001": True}}, ErrorCode.INVALID_PARAM_VALUE, "userIds"),
        ({"reIssue": "maybe"}, ErrorCode.INVALID_PARAM_VALUE, "reIssue"),
        ({"iteration": "first"}, ErrorCode.INVALID_PARAM_VALUE, "iteration"),
        ({"iteration": 1e30}, ErrorCode.INVALID_PARAM_VALUE, "iteration"),
        ({"batchId": DELETE}, ErrorCode.MANDATORY_PARAMETER_MISSING, "batchId"),
        ({"courseId": DELETE}, ErrorCode.MANDATORY_PARAMETER_MISSING, "courseId"),
        ({"action": DELETE}, ErrorCode.INVALID_PARAM_VALUE, "action"),
    ],
)
def test_a_bad_issue_event_gets_a_code_naming_the_field(
    issue_event: dict[str, Any], change: dict[str, Any], code: ErrorCode, named: str
) -> None:
    for key, value in change.items():
        set_path(issue_event, f"edata.{key}", value)

    error = rejected(parse_issue, orjson.dumps(issue_event))

    assert error.code is code, error
    assert named in error.message


@pytest.mark.parametrize(("key", "value"), [("edata", DELETE), ("edata", "issue-certificate"), ("edata", [])])
def test_an_issue_event_without_an_edata_object_is_rejected(
    issue_event: dict[str, Any], key: str, value: Any
) -> None:
    error = rejected(parse_issue, orjson.dumps(set_path(issue_event, key, value)))

    assert error.code in (ErrorCode.MANDATORY_PARAMETER_MISSING, ErrorCode.INVALID_PARAM_VALUE)
    assert "edata" in error.message


def test_ten_thousand_user_ids_are_all_kept(issue_event: dict[str, Any]) -> None:
    issue_event["edata"]["userIds"] = [f"user-{i:05d}" for i in range(10_000)]

    learners = parse_issue(orjson.dumps(issue_event)).edata.learner_ids

    assert learners == [f"user-{i:05d}" for i in range(10_000)]


def test_ten_thousand_bad_user_ids_get_one_short_message(issue_event: dict[str, Any]) -> None:
    issue_event["edata"]["userIds"] = list(range(10_000))
    raw = orjson.dumps(issue_event)

    error = rejected(parse_issue, raw)

    assert error.code is ErrorCode.INVALID_PARAM_VALUE
    assert "more problems" in error.message and len(error.message) < 3_000


# --- reference data the issue flow decides from ----------------------------------------


@pytest.mark.parametrize(
    "profile",
    [
        {"id": "u1", "firstName": "Asha\u0007"},
        {"id": "u1", "firstName": "Asha", "lastName": "\u202eramuK"},
        {"id": "u1", "firstName": "A" * 5000},
        {"id": "u1", "firstName": "A" * 300, "lastName": "B" * 300},  # each fine, together too long
    ],
    ids=["control", "bidi-override", "5000-characters", "601-characters-together"],
)
def test_a_learner_whose_name_cannot_go_on_a_certificate_is_refused_on_load(profile: dict) -> None:
    """Refused where the profile arrives, with a reason, rather than later, in the
    generate flow, after the learner was already recorded as being issued."""
    with pytest.raises(ValidationError) as caught:
        LearnerProfile.model_validate(profile)
    assert ErrorCode.INVALID_PARAM_VALUE.value in {error["type"] for error in caught.value.errors()}


def test_a_learner_profile_name_is_normalised_like_every_printed_name() -> None:
    profile = LearnerProfile.model_validate({"id": "u1", "firstName": " Zoe\u0308 ", "lastName": "👩‍💻"})

    assert profile.recipient_name == "Zo\u00eb 👩‍💻"


def test_a_learner_without_a_name_is_refused_on_load() -> None:
    with pytest.raises(ValidationError) as caught:
        LearnerProfile.model_validate({"id": "u1", "firstName": " ", "lastName": "null"})
    assert "no name" in str(caught.value)


def batch_with(template: dict[str, Any], **batch: Any) -> BatchRecord:
    return BatchRecord.model_validate({
        "batchid": "0131000245281587206", "courseid": "do_1", "courseName": "Algebra",
        "cert_templates": {"t1": template}, **batch,
    })


USABLE = {
    "name": "Completion", "url": "course-completion.svg", "criteria": {"enrollment": {"status": 2}},
    "issuer": {"name": "NCERT", "url": "https://ncert.nic.in/"},
    "signatoryList": [{"name": "Director", "id": "D", "designation": "Director", "image": "https://x.org/s.png"}],
}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"name": ""}, "Mandatory parameter name is missing"),
        ({"name": "Merit\u202e"}, "name"),
        ({"issuer": {}}, "issuer.name"),
        ({"issuer": {"name": "NCERT"}}, "issuer.url"),
        ({"signatoryList": [{"name": "D", "image": "file:///etc/passwd"}]}, "signatoryList[0].image"),
        ({"criteria": {"enrollment": {"status": "completed"}}}, "enrollment.status"),
        ({"criteria": {"enrollment": {"status": None}}}, "enrollment.status"),
        ({"criteria": {"user": ["rootOrgId"]}}, "user criteria"),
    ],
)
def test_a_template_whose_certificates_the_generate_flow_would_refuse_is_invalid(
    change: dict[str, Any], why: str
) -> None:
    """Refused up front (``invalid_template``, TEMPLATE_INVALID on issue.certificate.failed):
    otherwise each eligible learner would be recorded as being issued a certificate
    that never comes, and skipped as already issued from then on."""
    [template] = batch_with({**USABLE, **change}).certTemplates.values()

    problem = template.problem()

    assert problem is not None and why in problem


def test_a_usable_template_has_no_problem() -> None:
    [template] = batch_with(USABLE).certTemplates.values()

    assert template.problem() is None


@pytest.mark.parametrize(
    "batch",
    [{"batchid": "batch-7"}, {"batchid": "batch 7"}, {"courseName": "Algebra\u202e"}, {"courseName": "A" * 600}],
    ids=["dash-in-batch-id", "space-in-batch-id", "bidi-course-name", "600-character-course-name"],
)
def test_a_batch_whose_certificates_could_not_be_made_is_refused_on_load(batch: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        batch_with(USABLE, **batch)


@pytest.mark.parametrize("completed", ["yesterday", "24/11/2025", 10**20, -(10**20), float("nan")])
def test_an_enrolment_completed_on_an_impossible_date_fails_validation(completed: object) -> None:
    row = {"userid": "u1", "courseid": "c1", "batchid": "b1", "completedon": completed}

    with pytest.raises(ValidationError):
        EnrolmentRow.model_validate(row)


# --- what goes to the failed topics is always publishable ------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"x" * FIVE_MB, id="5MB-text"),
        pytest.param(b"\x07" * 900_000, id="900KB-of-controls"),  # each escapes to 6 bytes
        pytest.param(b"\xff" * FIVE_MB, id="5MB-binary"),
        pytest.param("ஆ".encode() * 400_000, id="1.2MB-tamil"),
    ],
)
def test_a_failed_record_of_a_huge_event_fits_the_producer_and_says_it_was_cut(raw: bytes) -> None:
    error = CertflowError(ErrorCode.EVENT_TOO_LARGE, "m" * 100_000)

    record = failed_record(raw, error)
    published = record.to_json()

    assert len(published) < PRODUCER_LIMIT
    assert record.payloadTruncated and record.payloadBytes == len(raw)
    assert len(record.errorMessage) <= MAX_ERROR_MESSAGE_CHARS + 40
    back = FailedEvent.model_validate_json(published)
    if back.payloadEncoding == "utf-8":
        assert raw.startswith(back.payload.encode())
    with pytest.raises(ValueError, match="truncated"):
        back.original_bytes()


def test_a_failed_record_of_a_large_but_allowed_event_keeps_it_whole_for_replay(
    generate_event: dict[str, Any],
) -> None:
    raw = padded(generate_event, 500_000)
    error = CertflowError(ErrorCode.INVALID_PARAM_VALUE, "bad")

    back = FailedEvent.model_validate_json(failed_record(raw, error).to_json())

    assert not back.payloadTruncated and back.payloadBytes == len(raw)
    assert back.original_bytes() == raw


def test_a_source_key_of_any_length_is_cut_in_the_record() -> None:
    source = EventSource(topic="t", partition=0, offset=0, key="k" * 900_000)
    record = FailedEvent.of(
        raw=b"{}", code="MALFORMED_JSON", message="m", stage="intake", source=source, now=datetime.now(UTC)
    )

    assert len(record.to_json()) < 10_000
