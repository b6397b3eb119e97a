"""Deeply nested JSON, on every path that parses JSON from outside (issue 10, hole 10).

orjson reads up to 1024 levels; what comes after (rfc8785, pydantic's serialiser,
orjson.dumps, repr) gives up far earlier, some with a RecursionError. Every path
bounds nesting when it parses, so a deep document is malformed input with a reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from certflow.errors import CertflowError, ErrorCode
from certflow.events.models import decode_json_object, parse_event
from certflow.generate.models import GenerateCertificateRequest, validation_context
from certflow.issue.models import IssueCertificateRequest
from certflow.loading import ReferenceKind, RejectedRow, read_rows
from certflow.reference.models import BatchRecord

#: The limit (``certflow.jsonlimits.MAX_JSON_DEPTH``); imported lazily by the tests
#: of the helper itself, so the tests of each path run against any version.
MAX_JSON_DEPTH = 64
DEPTHS = [MAX_JSON_DEPTH + 1, 300, 1000, 100_000]


def nested(depth: int) -> bytes:
    """``{"a":{"a":…1…}}``: ``depth`` objects inside each other."""
    return b'{"a":' * depth + b"1" + b"}" * depth


def with_deep_field(event: bytes, depth: int) -> bytes:
    """``event`` (a JSON object) with one more field, ``depth - 1`` levels deep inside it."""
    return event.rstrip()[:-1] + b',"deep":' + nested(depth - 1) + b"}"


def test_loads_bounded_accepts_the_limit_and_refuses_one_more() -> None:
    from certflow.jsonlimits import MAX_JSON_DEPTH as LIMIT
    from certflow.jsonlimits import JSONTooDeep, loads_bounded

    assert LIMIT == MAX_JSON_DEPTH
    assert loads_bounded(nested(MAX_JSON_DEPTH))["a"]["a"]
    assert loads_bounded(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) == loads_bounded(
        "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    )
    with pytest.raises(JSONTooDeep, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        loads_bounded(nested(MAX_JSON_DEPTH + 1))
    # Wide is not deep: many brackets side by side are fine.
    assert len(loads_bounded(orjson.dumps([[{"x": [1]}] for _ in range(10_000)]))) == 10_000


@pytest.mark.parametrize("depth", DEPTHS)
def test_too_deep_is_malformed_json_for_every_parser_of_outside_json(depth: int) -> None:
    from certflow.jsonlimits import JSONTooDeep, loads_bounded

    with pytest.raises(orjson.JSONDecodeError) as caught:  # what existing handlers catch
        loads_bounded(nested(depth))
    assert isinstance(caught.value, JSONTooDeep)
    assert str(caught.value) == f"JSON nested deeper than {MAX_JSON_DEPTH} levels (arrays and objects)"


@pytest.mark.parametrize("depth", DEPTHS)
def test_a_deep_kafka_event_is_dead_lettered_as_malformed_json(sunbird_fixture: Any, depth: int) -> None:
    """Issue and generate requests and reference records: one code, one reason."""
    generate = with_deep_field(sunbird_fixture("certgen_EVENT_3_generate_certificate_no_oldId.json"), depth)
    issue = with_deep_field(sunbird_fixture("preproc_EVENT_1_issue_certificate.json"), depth)
    parsers = {
        "generate": lambda: parse_event(GenerateCertificateRequest, generate, max_bytes=1 << 20,
                                        context=validation_context(suppress_signatory_errors=True)),
        "issue": lambda: parse_event(IssueCertificateRequest, issue, max_bytes=1 << 20),
        "reference": lambda: BatchRecord.model_validate(
            decode_json_object(with_deep_field(b'{"batchId":"b","courseId":"c"}', depth), max_bytes=1 << 20)
        ),
    }
    for name, parse in parsers.items():
        with pytest.raises(CertflowError) as caught:
            parse()
        assert caught.value.code is ErrorCode.MALFORMED_JSON, name
        assert f"nested deeper than {MAX_JSON_DEPTH} levels" in caught.value.message, name


def test_events_nested_as_deep_as_allowed_still_parse(sunbird_fixture: Any) -> None:
    event = with_deep_field(sunbird_fixture("preproc_EVENT_1_issue_certificate.json"), MAX_JSON_DEPTH - 1)
    request = parse_event(IssueCertificateRequest, event, max_bytes=1 << 20)
    assert request.to_json()  # and it can be written out again


def test_certflow_load_rejects_a_deep_row_by_line(tmp_path: Path) -> None:
    rows = tmp_path / "batches.jsonl"
    good = b'{"batchId":"b1","courseId":"c1"}'
    rows.write_bytes(good + b"\n" + with_deep_field(b'{"batchId":"b2","courseId":"c1"}', 1000) + b"\n")
    [*_, second] = read_rows(rows, ReferenceKind("batches"), max_row_bytes=1 << 20)
    assert isinstance(second, RejectedRow) and second.line == 2
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in second.reason
