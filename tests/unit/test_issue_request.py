"""Issue-certificate requests: Sunbird's schema, all learners, not just the first."""

from __future__ import annotations

import orjson
import pytest

from certflow.errors import CertflowError, ErrorCode
from certflow.events.models import parse_event
from certflow.issue.models import IssueCertificateRequest


def parse(document: dict | bytes) -> IssueCertificateRequest:
    raw = document if isinstance(document, bytes) else orjson.dumps(document)
    return parse_event(IssueCertificateRequest, raw, max_bytes=1_000_000)


@pytest.mark.parametrize(
    "name", ["preproc_EVENT_1_issue_certificate.json", "legacy_kp_certpre_EVENT_1_issue_certificate.json"]
)
def test_sunbird_issue_fixtures_parse(sunbird_fixture, name: str) -> None:
    edata = parse(sunbird_fixture(name)).edata
    assert edata.action == "issue-certificate"
    assert edata.reIssue is True
    assert len(edata.learner_ids) == 1


def test_res_issue_is_accepted_as_an_alias_of_reissue(sunbird_fixture) -> None:
    event = orjson.loads(sunbird_fixture("preproc_EVENT_1_issue_certificate.json"))
    del event["edata"]["reIssue"]
    event["edata"]["resIssue"] = True
    assert parse(event).edata.reIssue is True


def test_every_learner_counts_once_in_order(sunbird_fixture) -> None:
    event = orjson.loads(sunbird_fixture("preproc_EVENT_1_issue_certificate.json"))
    event["edata"]["userIds"] = ["u2", "u1", " ", "u2", "u3"]
    assert parse(event).edata.learner_ids == ["u2", "u1", "u3"]


def test_no_user_ids_means_the_whole_batch(sunbird_fixture) -> None:
    event = orjson.loads(sunbird_fixture("preproc_EVENT_1_issue_certificate.json"))
    del event["edata"]["userIds"]
    assert parse(event).edata.learner_ids == []


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"action": "generate-certificate"}, ErrorCode.INVALID_PARAM_VALUE),
        ({"batchId": ""}, ErrorCode.MANDATORY_PARAMETER_MISSING),
        ({"courseId": "  "}, ErrorCode.MANDATORY_PARAMETER_MISSING),
        ({"userIds": "user001"}, ErrorCode.INVALID_PARAM_VALUE),
    ],
)
def test_invalid_requests_get_sunbird_codes(sunbird_fixture, change: dict, code: ErrorCode) -> None:
    event = orjson.loads(sunbird_fixture("preproc_EVENT_1_issue_certificate.json"))
    event["edata"].update(change)
    with pytest.raises(CertflowError) as caught:
        parse(event)
    assert caught.value.code is code


def test_action_is_case_insensitive_as_in_sunbird(sunbird_fixture) -> None:
    event = orjson.loads(sunbird_fixture("preproc_EVENT_1_issue_certificate.json"))
    event["edata"]["action"] = "Issue-Certificate"
    assert parse(event).edata.batchId == "0131000245281587206"
