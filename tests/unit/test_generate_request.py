"""Generate-certificate requests: Sunbird's schema, Sunbird's rules, Sunbird's codes."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from certflow.errors import CertflowError, ErrorCode
from certflow.events.models import parse_event
from certflow.generate.models import GenerateCertificateRequest, validation_context

EVENT_3 = "certgen_EVENT_3_generate_certificate_no_oldId.json"


def parse(document: dict[str, Any] | bytes, *, suppress: bool = True) -> GenerateCertificateRequest:
    raw = document if isinstance(document, bytes) else orjson.dumps(document)
    return parse_event(
        GenerateCertificateRequest,
        raw,
        max_bytes=1_000_000,
        context=validation_context(suppress_signatory_errors=suppress),
    )


def rejected(document: dict[str, Any] | bytes, *, suppress: bool = True) -> CertflowError:
    with pytest.raises(CertflowError) as caught:
        parse(document, suppress=suppress)
    return caught.value


@pytest.fixture
def event(sunbird_fixture) -> dict[str, Any]:
    return orjson.loads(sunbird_fixture(EVENT_3))


@pytest.mark.parametrize(
    "name",
    [
        "certgen_EVENT_1_generate_certificate_reissue_oldId.json",
        "certgen_EVENT_3_generate_certificate_no_oldId.json",
        "certgen_EVENT_4_generate_certificate_blank_signatory.json",
    ],
)
def test_sunbird_generate_fixtures_parse(sunbird_fixture, name: str) -> None:
    request = parse(sunbird_fixture(name))
    assert request.eid == "BE_JOB_REQUEST"
    assert request.edata.related.courseId == "do_11309999837886054415"
    assert request.edata.data[0].recipientId == "user001"


def test_reissue_fixture_carries_old_id(sunbird_fixture) -> None:
    request = parse(sunbird_fixture("certgen_EVENT_1_generate_certificate_reissue_oldId.json"))
    assert request.edata.oldId == "certificateId"


def test_empty_svg_template_is_mandatory_parameter_missing(sunbird_fixture) -> None:
    error = rejected(sunbird_fixture("certgen_EVENT_2_generate_certificate_empty_svgTemplate.json"))
    assert error.code is ErrorCode.MANDATORY_PARAMETER_MISSING
    assert error.message == "Mandatory parameter svgTemplate is missing."


def test_blank_signatories_are_accepted_only_when_suppressed(sunbird_fixture) -> None:
    raw = sunbird_fixture("certgen_EVENT_4_generate_certificate_blank_signatory.json")
    assert parse(raw, suppress=True).edata.signatories == []
    error = rejected(raw, suppress=False)
    assert error.code is ErrorCode.MANDATORY_PARAMETER_MISSING
    assert "signatoryList[0].image" in error.message


@pytest.mark.parametrize(
    ("path", "value", "parameter"),
    [
        (("name",), "", "name"),
        (("data",), [], "data"),
        (("issuer", "name"), "", "issuer.name"),
        (("issuer", "url"), " ", "issuer.url"),
        (("criteria", "narrative"), "", "criteria.narrative"),
    ],
)
def test_each_required_field_is_reported_by_name(event, path, value, parameter) -> None:
    target = event["edata"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    error = rejected(event)
    assert error.code is ErrorCode.MANDATORY_PARAMETER_MISSING
    assert f"Mandatory parameter {parameter} is missing." in error.message


def test_every_problem_is_reported_at_once_first_code_wins(event) -> None:
    event["edata"]["name"] = ""
    event["edata"]["tag"] = "bad tag!"
    error = rejected(event)
    assert error.code is ErrorCode.MANDATORY_PARAMETER_MISSING
    assert "name" in error.message and "'bad tag!'" in error.message


def test_recipients_need_a_name_and_an_id(event) -> None:
    event["edata"]["data"] = [{"recipientName": "Asha", "recipientId": ""}, {"recipientId": "u2"}]
    error = rejected(event)
    assert "data[0].recipientId" in error.message
    assert "data[1].recipientName" in error.message


@pytest.mark.parametrize("tag", ["with space", "a-b", "a.b", "a/b", "x{y}"])
def test_tags_with_sunbird_forbidden_characters_are_invalid(event, tag: str) -> None:
    event["edata"]["tag"] = tag
    error = rejected(event)
    assert error.code is ErrorCode.INVALID_PARAM_VALUE
    assert "tag" in error.message


@pytest.mark.parametrize("base_path", ["not a url", "ftp://example.org/certs"])
def test_base_path_must_be_a_web_url(event, base_path: str) -> None:
    event["edata"]["basePath"] = base_path
    assert rejected(event).code is ErrorCode.INVALID_PARAM_VALUE


def test_keys_need_an_id_when_present(event) -> None:
    event["edata"]["keys"] = {}
    assert "keys.id" in rejected(event).message


@pytest.mark.parametrize("issued", ["2019-01-20", "2019-02-12T10:11:11Z"])
def test_sunbird_issued_date_formats_are_accepted(event, issued: str) -> None:
    event["edata"]["issuedDate"] = issued
    assert parse(event).edata.issuedDate == issued


@pytest.mark.parametrize("issued", ["2019-02", "20/01/2019", "2019-13-01"])
def test_other_issued_dates_are_invalid(event, issued: str) -> None:
    event["edata"]["issuedDate"] = issued
    error = rejected(event)
    assert error.code is ErrorCode.INVALID_PARAM_VALUE
    assert "issuedDate" in error.message


@pytest.mark.parametrize("image", ["javascript:alert(1)", "file:///etc/passwd", "data:text/html,<b>"])
def test_signatory_images_must_be_web_or_inline_images(event, image: str) -> None:
    event["edata"]["signatoryList"][0]["image"] = image
    error = rejected(event)
    assert error.code is ErrorCode.INVALID_PARAM_VALUE
    assert "signatoryList[0].image" in error.message


def test_names_are_nfc_normalised_and_trimmed(event) -> None:
    event["edata"]["data"][0]["recipientName"] = "  Zoe\u0308 "  # e + combining diaeresis
    assert parse(event).edata.data[0].recipientName == "Zo\u00eb"


@pytest.mark.parametrize(
    "name",
    ["Asha\u0007", "Asha\nKumar", "\u202eahsA", "Asha\u2066x\u2069", "\ue000"],
)
def test_control_bidi_override_and_private_characters_are_rejected(event, name: str) -> None:
    event["edata"]["data"][0]["recipientName"] = name
    error = rejected(event)
    assert error.code is ErrorCode.INVALID_PARAM_VALUE
    assert "data.0.recipientName" in error.message


@pytest.mark.parametrize("name", ["क्षत्रिय", "ന്‍", "می‌خواهم", "👩‍💻 Dev", "עברית\u200f"])
def test_joiners_and_direction_marks_that_names_need_are_kept(event, name: str) -> None:
    event["edata"]["data"][0]["recipientName"] = name
    assert parse(event).edata.data[0].recipientName == name


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not json", ErrorCode.MALFORMED_JSON),
        (b'{"eid": "BE_JOB_REQUEST", "edata": ', ErrorCode.MALFORMED_JSON),
        (b"[1, 2]", ErrorCode.MALFORMED_JSON),
        (b"\xff\xfe", ErrorCode.MALFORMED_JSON),
        (b"{}", ErrorCode.MANDATORY_PARAMETER_MISSING),
        (b'{"edata": {"data": "not a list"}}', ErrorCode.INVALID_PARAM_VALUE),
        (b'{"edata": {"issuer": 7}}', ErrorCode.INVALID_PARAM_VALUE),
    ],
)
def test_malformed_events_get_a_precise_code(raw: bytes, code: ErrorCode) -> None:
    assert rejected(raw).code is code


def test_oversized_events_are_refused_before_parsing() -> None:
    with pytest.raises(CertflowError) as caught:
        parse_event(GenerateCertificateRequest, b"{" + b" " * 2000 + b"}", max_bytes=1024)
    assert caught.value.code is ErrorCode.EVENT_TOO_LARGE


def test_split_gives_one_valid_request_per_recipient_keeping_unknown_fields(event) -> None:
    event["edata"]["data"] = [
        {"recipientName": "Asha", "recipientId": "u1"},
        {"recipientName": "Bilal", "recipientId": "u2", "recipientEmail": "b@example.org"},
    ]
    event["edata"]["notifyTemplate"] = {"subject": "kept"}
    original = copy.deepcopy(event)
    singles = list(parse(event).per_recipient())

    assert [single.recipient.recipientId for single in singles] == ["u1", "u2"]
    for single in singles:
        again = parse(single.to_json())
        assert again.edata.data == [single.recipient]
        assert orjson.loads(single.to_json())["edata"]["notifyTemplate"] == {"subject": "kept"}
        assert again.mid == original["mid"]


def test_names_longer_than_the_limit_are_refused_whole(event) -> None:
    event["edata"]["data"][0]["recipientName"] = "ஆ" * 5000
    error = rejected(event)
    assert error.code is ErrorCode.INVALID_PARAM_VALUE
    assert "5000 characters" in error.message
