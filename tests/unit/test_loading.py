"""Reading reference-data files for ``certflow load``: formats, keys, values, rejections."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from certflow.loading import (
    MAX_ROW_BYTES,
    LoadedRow,
    ReferenceKind,
    RejectedRow,
    count_lines,
    read_rows,
)
from certflow.reference.models import BatchRecord, EnrolmentRow, LearnerProfile, ScoreRow
from certflow.topics import TopicNames

COURSE = "do_11309999837886054415"
BATCH = "0131000245281587206"


def load(tmp_path: Path, name: str, content: str | bytes, kind: ReferenceKind, **options: Any) -> list:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return list(read_rows(path, kind, **options))


def json_lines(*documents: Any) -> str:
    return "".join(json.dumps(document) + "\n" for document in documents)


def csv_text(header: list[str], *rows: list[Any]) -> str:
    """CSV as an export writes it: JSON for structured cells, "" for nulls."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if cell is None else cell if isinstance(cell, str) else json.dumps(cell) for cell in row])
    return out.getvalue()


def value_of(row: LoadedRow) -> dict[str, Any]:
    assert row.value is not None
    return orjson.loads(row.value)


def sunbird_template(sunbird_fixture) -> dict[str, str]:
    """One value of course_batch.cert_templates: nested values are JSON strings."""
    return json.loads(sunbird_fixture("preproc_TEMPLATE_1_cert_template.json"))


def sunbird_learner(sunbird_fixture, user_id: str) -> dict[str, Any]:
    """Sunbird's user-read response, with the user id its mock leaves out."""
    response = json.loads(sunbird_fixture("preproc_USER_1_user_read_response.json"))
    response["result"]["response"]["id"] = user_id
    return response


# --- Kinds ---------------------------------------------------------------------------------


def test_each_kind_validates_with_the_model_its_consumer_uses() -> None:
    assert ReferenceKind("batches").model is BatchRecord
    assert ReferenceKind("enrolments").model is EnrolmentRow
    assert ReferenceKind("scores").model is ScoreRow
    assert ReferenceKind("learners").model is LearnerProfile


def test_each_kind_has_its_topic_with_the_deployment_prefix() -> None:
    topics = TopicNames("sunbirddev")
    assert [kind.topic(topics) for kind in ReferenceKind] == [
        "sunbirddev.certflow.batches",
        "sunbirddev.certflow.enrolments",
        "sunbirddev.certflow.scores",
        "sunbirddev.certflow.learners",
    ]


def test_everything_about_a_learner_is_keyed_by_the_bare_user_id(tmp_path: Path, sunbird_fixture) -> None:
    enrolment, = load(tmp_path, "e.jsonl", json_lines(
        {"userid": "user001", "courseid": COURSE, "batchid": BATCH}), ReferenceKind.ENROLMENTS)
    score, = load(tmp_path, "s.jsonl", json_lines(
        {"user_id": "user001", "activity_id": COURSE, "context_id": f"cb:{BATCH}"}), ReferenceKind.SCORES)
    learner, = load(tmp_path, "l.jsonl", json_lines(sunbird_learner(sunbird_fixture, "user001")),
                    ReferenceKind.LEARNERS)

    assert enrolment.key == score.key == learner.key == b"user001"


# --- JSON lines --------------------------------------------------------------------------


def test_a_sunbird_batch_row_is_keyed_by_batch_id_with_its_templates_decoded(
    tmp_path: Path, sunbird_fixture
) -> None:
    template = sunbird_template(sunbird_fixture)
    row = {"courseid": COURSE, "batchid": BATCH, "name": "Batch 1",
           "cert_templates": {template["identifier"]: template}}

    loaded, = load(tmp_path, "batches.jsonl", json_lines(row), ReferenceKind.BATCHES)

    assert loaded == LoadedRow(1, BATCH.encode(), loaded.value)
    value = value_of(loaded)
    assert value["batchId"] == BATCH and value["courseId"] == COURSE
    decoded = value["certTemplates"]["template_svg_04-prad"]
    assert decoded["criteria"] == {"enrollment": {"status": 2}, "assessment": {"score": {">=": 50}}}
    assert decoded["signatoryList"][0]["name"] == "CEO Gujarat"


def test_a_sunbird_enrolment_row_keeps_its_issued_certificates(tmp_path: Path) -> None:
    row = {"userid": "user001", "courseid": COURSE, "batchid": BATCH, "status": 2, "active": True,
           "completedon": "2021-05-27 10:25:05.836000+0000",
           "issued_certificates": [{"identifier": "certificateId", "lastIssuedOn": "2019-08-21",
                                    "name": "Course Completion Certificate", "token": "P4L3Y9"}]}

    loaded, = load(tmp_path, "enrolments.jsonl", json_lines(row), ReferenceKind.ENROLMENTS)

    value = value_of(loaded)
    assert loaded.key == b"user001"
    assert value["issued_certificates"][0]["token"] == "P4L3Y9"
    assert value["completedon"].startswith("2021-05-27T10:25:05.836")


def test_a_sunbird_user_activity_agg_row_is_keyed_by_its_learner(tmp_path: Path) -> None:
    row = {"activity_id": COURSE, "user_id": "user001", "activity_type": "Course",
           "context_id": f"cb:{BATCH}", "aggregates": {"score:content_001": 1, "max_score:content_001": 1}}

    loaded, = load(tmp_path, "scores.jsonl", json_lines(row), ReferenceKind.SCORES)

    assert loaded.key == b"user001"
    assert ScoreRow.model_validate(value_of(loaded)).attempts() == {"content_001": (1.0, 1.0)}


def test_a_sunbird_user_read_response_is_unwrapped_into_a_learner(tmp_path: Path, sunbird_fixture) -> None:
    loaded, = load(tmp_path, "learners.jsonl", json_lines(sunbird_learner(sunbird_fixture, "user001")),
                   ReferenceKind.LEARNERS)

    value = value_of(loaded)
    assert loaded.key == b"user001"
    assert value["userId"] == "user001" and value["firstName"] == "user"
    assert value["rootOrg"] == {"keys": {}}  # extra fields are kept


def test_blank_lines_are_skipped_and_line_numbers_stay_physical(tmp_path: Path) -> None:
    content = "\n" + json_lines({"batchId": "b1", "courseId": "c"}) + "  \n\n" + json_lines({"courseId": "c"})

    rows = load(tmp_path, "batches.ndjson", content, ReferenceKind.BATCHES)

    assert [(type(row), row.line) for row in rows] == [(LoadedRow, 2), (RejectedRow, 5)]


def test_a_delete_line_is_a_tombstone_with_no_value(tmp_path: Path) -> None:
    content = json_lines({"delete": "user001"}, {"delete": " "}, {"delete": "b1", "courseId": "c"})

    rows = load(tmp_path, "enrolments.jsonl", content, ReferenceKind.ENROLMENTS)

    assert rows[0] == LoadedRow(1, b"user001", None)
    assert rows[1] == RejectedRow(2, "delete: the key must be a non-blank string")
    # Only a line with `delete` alone is a tombstone; anything else is a record.
    assert isinstance(rows[2], RejectedRow) and rows[2].line == 3


# --- CSV -------------------------------------------------------------------------------------


def test_a_csv_header_is_line_one_and_empty_cells_are_left_out(tmp_path: Path) -> None:
    content = "userid,courseid,batchid,status,active,completedon\nuser001,c1,b1,2,true,\nuser002,c1,b1,,,\n"

    rows = load(tmp_path, "enrolments.csv", content, ReferenceKind.ENROLMENTS)

    assert [row.line for row in rows] == [2, 3]
    first, second = (value_of(row) for row in rows)
    assert (first["status"], first["active"], first["completedon"]) == (2, True, None)
    assert (second["status"], second["active"]) == (None, None)


def test_csv_cells_holding_json_are_parsed_as_cassandra_map_and_list_columns(
    tmp_path: Path, sunbird_fixture
) -> None:
    template = sunbird_template(sunbird_fixture)
    batches = csv_text(["courseid", "batchid", "cert_templates", "mentors", "description"],
                       [COURSE, BATCH, {template["identifier"]: template}, ["m1"], "[draft] batch"])
    enrolments = csv_text(["userid", "courseid", "batchid", "issued_certificates"],
                          ["user001", COURSE, BATCH, [{"identifier": "cert1", "token": "P4L3Y9"}]])
    scores = csv_text(["activity_id", "user_id", "activity_type", "context_id", "agg"],
                      ["course_003", "user003", "Course", "cb:batch_003",
                       {"score:content_001": 1, "max_score:content_001": 1}])
    response = sunbird_learner(sunbird_fixture, "user001")["result"]["response"]
    learners = csv_text(["id", "firstName", "lastName", "userLocations"],
                        ["user001", response["firstName"], response["lastName"], response["userLocations"]])

    batch, = load(tmp_path, "batches.csv", batches, ReferenceKind.BATCHES)
    enrolment, = load(tmp_path, "enrolments.csv", enrolments, ReferenceKind.ENROLMENTS)
    score, = load(tmp_path, "scores.csv", scores, ReferenceKind.SCORES)
    learner, = load(tmp_path, "learners.csv", learners, ReferenceKind.LEARNERS)

    assert batch.key == BATCH.encode()
    assert value_of(batch)["certTemplates"]["template_svg_04-prad"]["issuer"]["url"] == "https://gcert.gujarat.gov.in/gcert/"
    assert value_of(batch)["mentors"] == ["m1"]
    assert value_of(batch)["description"] == "[draft] batch"  # not JSON: stays text
    assert (enrolment.key, value_of(enrolment)["issued_certificates"][0]["token"]) == (b"user001", "P4L3Y9")
    assert (score.key, value_of(score)["agg"]) == (b"user003", {"score:content_001": 1.0, "max_score:content_001": 1.0})
    assert learner.key == b"user001"
    assert LearnerProfile.model_validate(value_of(learner)).locations() == {
        "state": "Karnataka", "district": "BENGALURU URBAN SOUTH"}


def test_a_quoted_csv_cell_may_span_lines_and_the_row_keeps_its_first_line(tmp_path: Path) -> None:
    content = 'batchid,courseid,description\nb1,c1,"two\nlines"\nb2,c1,one\n'

    rows = load(tmp_path, "batches.csv", content, ReferenceKind.BATCHES)

    assert [(row.line, row.key) for row in rows] == [(2, b"b1"), (4, b"b2")]
    assert value_of(rows[0])["description"] == "two\nlines"


def test_a_csv_row_with_more_cells_than_columns_is_rejected(tmp_path: Path) -> None:
    rows = load(tmp_path, "batches.csv", "batchid,courseid\nb1,c1,surprise\n\n,,\nb2,c1\n", ReferenceKind.BATCHES)

    assert rows[0] == RejectedRow(2, "3 cells, but the header names 2 columns")
    assert [(row.line, row.key) for row in rows[1:]] == [(5, b"b2")]  # blank and empty rows skipped


def test_malformed_csv_is_rejected_and_reading_goes_on(tmp_path: Path) -> None:
    rows = load(tmp_path, "batches.csv", 'batchid,courseid\nb1,"c1"x\nb2,c1\n', ReferenceKind.BATCHES)

    assert isinstance(rows[0], RejectedRow) and rows[0].line == 2
    assert rows[0].reason.startswith("not valid CSV:")
    assert (rows[1].line, rows[1].key) == (3, b"b2")


def test_a_byte_order_mark_before_the_csv_header_is_ignored(tmp_path: Path) -> None:
    rows = load(tmp_path, "batches.csv", "\ufeffbatchid,courseid\nb1,c1\n".encode("utf-8"), ReferenceKind.BATCHES)

    assert [row.key for row in rows] == [b"b1"]


# --- Rejections ----------------------------------------------------------------------------


def test_rejections_name_the_line_and_the_fields(tmp_path: Path) -> None:
    content = (
        json_lines({"courseid": "c1"})                                             # 1: no batch id
        + '{"batchId": "b2", "courseId": \n'                                       # 2: not JSON
        + json_lines(["b3"], {"batchId": " ", "courseId": "c"}, {"batchId": 4, "courseId": "c"})
    )

    rows = load(tmp_path, "batches.jsonl", content, ReferenceKind.BATCHES)

    assert rows[0] == RejectedRow(1, "batchId: Field required")
    assert rows[1].line == 2 and rows[1].reason.startswith("not JSON:")
    assert rows[2] == RejectedRow(3, "not a JSON object but an array")
    assert rows[3] == RejectedRow(4, "batchId: must not be blank")
    assert rows[4] == RejectedRow(5, "batchId: Input should be a valid string")


def test_wrong_types_in_a_csv_row_are_named(tmp_path: Path) -> None:
    rows = load(tmp_path, "enrolments.csv", "userid,courseid,batchid,status,issued_certificates\n"
                "u1,c1,b1,done,not-a-list\n", ReferenceKind.ENROLMENTS)

    reason = rows[0].reason
    assert rows[0].line == 2
    assert reason.startswith("status: Input should be a valid integer")
    assert "issued_certificates: " in reason


def test_a_batch_whose_template_sunbird_would_refuse_is_rejected(tmp_path: Path, sunbird_fixture) -> None:
    template = sunbird_template(sunbird_fixture)
    bad_operator = {**template, "criteria": json.dumps({"assessment": {"score": {"about": 50}}})}
    no_criteria = {**template, "criteria": json.dumps({"grade": "A"})}
    content = json_lines(
        {"batchId": "b1", "courseId": "c", "cert_templates": {"t1": bad_operator}},
        {"batchId": "b2", "courseId": "c", "cert_templates": {"t2": no_criteria}},
        {"batchId": "b3", "courseId": "c", "cert_templates": {"t3": {**template, "criteria": "{not json"}}},
    )

    rows = load(tmp_path, "batches.jsonl", content, ReferenceKind.BATCHES)

    assert rows[0].line == 1 and rows[0].reason.startswith("assessment.score operator 'about' is not one of")
    assert rows[1] == RejectedRow(
        2, "template 'template_svg_04-prad' criteria name none of enrollment, assessment, user")
    assert rows[2].reason.startswith("cert_templates.t3.criteria: ")  # as the file spells it


def test_a_row_over_the_size_limit_is_rejected_without_losing_the_next(tmp_path: Path) -> None:
    huge = json.dumps({"batchId": "b1", "courseId": "c", "padding": "x" * (2 * MAX_ROW_BYTES)})
    content = huge + "\n" + json_lines({"batchId": "b2", "courseId": "c"})

    rows = load(tmp_path, "batches.jsonl", content, ReferenceKind.BATCHES)

    assert rows == [RejectedRow(1, "row is larger than 1 MiB"), rows[1]]
    assert (rows[1].line, rows[1].key) == (2, b"b2")


def test_a_csv_row_over_the_size_limit_is_rejected_without_losing_the_next(tmp_path: Path) -> None:
    content = "batchid,courseid,description\nb1,c1,\"" + "x\n" * 600 + "\"\nb2,c1,short\n"

    rows = load(tmp_path, "batches.csv", content, ReferenceKind.BATCHES, max_row_bytes=1024)

    assert rows[0] == RejectedRow(2, "row is larger than 1024 bytes")
    assert [(row.line, row.key) for row in rows[1:]] == [(603, b"b2")]


def test_a_line_that_is_not_utf8_is_rejected(tmp_path: Path) -> None:
    content = b'{"batchId": "b\xff", "courseId": "c"}\n' + json_lines({"batchId": "b2", "courseId": "c"}).encode()

    rows = load(tmp_path, "batches.jsonl", content, ReferenceKind.BATCHES)

    assert rows[0].line == 1 and rows[0].reason.startswith("not UTF-8")
    assert rows[1].key == b"b2"


def test_an_unknown_file_format_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown format '\.txt'"):
        read_rows(tmp_path / "batches.txt", ReferenceKind.BATCHES)


# --- Values --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, document", [
    (ReferenceKind.BATCHES, {"batchid": BATCH, "courseid": COURSE, "status": 1, "createdfor": ["org"],
                             "cert_templates": {"template_svg_04-prad": "TEMPLATE"}}),
    (ReferenceKind.ENROLMENTS, {"userId": "user001", "courseId": COURSE, "batchId": BATCH, "status": 2,
                                "completedon": 1622111105836, "contentstatus": {"do_1": 2},
                                "issued_certificates": [{"identifier": "c1", "token": "P4L3Y9"}]}),
    (ReferenceKind.SCORES, {"user_id": "user001", "activity_id": COURSE, "context_id": f"cb:{BATCH}",
                            "agg": {"score:content_001": 1}, "agg_last_updated": {"score": 1622111105836},
                            "aggregates": {"score:content_001": 0.5, "max_score:content_001": 1}}),
    (ReferenceKind.LEARNERS, "USER_1"),
])
def test_values_round_trip_through_the_consumers_model(
    tmp_path: Path, sunbird_fixture, kind: ReferenceKind, document: Any
) -> None:
    if document == "USER_1":
        document = sunbird_learner(sunbird_fixture, "user001")
    if kind is ReferenceKind.BATCHES:
        document["cert_templates"]["template_svg_04-prad"] = sunbird_template(sunbird_fixture)

    loaded, = load(tmp_path, "rows.jsonl", json_lines(document), kind)

    original = kind.model.model_validate(document)
    again = kind.model.model_validate(orjson.loads(loaded.value))
    assert again == original
    assert again.model_extra == original.model_extra and original.model_extra  # extra fields kept
    assert kind.key_of(again) == loaded.key
    assert b"\n" not in loaded.value and b": " not in loaded.value  # compact JSON


def test_count_lines_counts_physical_lines_with_or_without_a_final_newline(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"one\n\nthree\n")
    (tmp_path / "b").write_bytes(b"one\ntwo")
    (tmp_path / "c").write_bytes(b"")

    assert [count_lines(tmp_path / name) for name in "abc"] == [3, 2, 0]
