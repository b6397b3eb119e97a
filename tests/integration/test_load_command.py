"""``certflow load`` against a real broker: good rows are produced, bad rows reported."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from certflow.kafka import Consumed, ensure_topics, read_topic
from certflow.local import LocalBroker
from certflow.topics import TopicNames

pytestmark = pytest.mark.integration

PARTITIONS = 4
COURSE = "do_11309999837886054415"
BATCH = "0131000245281587206"


def certflow_load(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "certflow", "load", *args],
        env={**os.environ, **env}, capture_output=True, text=True, encoding="utf-8", timeout=120,
    )


def read_back(broker: LocalBroker, topic: str) -> list[Consumed]:
    """Everything on ``topic``, until it has been quiet for a few seconds."""

    async def collect() -> list[Consumed]:
        return [record async for record in read_topic(broker.url, topic, timeout=3.0)]

    return asyncio.run(collect())


@pytest.fixture
def prefix() -> str:
    return f"load{uuid.uuid4().hex[:8]}"


@pytest.fixture
def topics(broker: LocalBroker, prefix: str) -> TopicNames:
    names = TopicNames(prefix)
    asyncio.run(ensure_topics(broker.url, [names.enrolments, names.batches], partitions=PARTITIONS))
    return names


@pytest.fixture
def env(broker: LocalBroker, prefix: str) -> dict[str, str]:
    return {
        "CERTFLOW_BROKER": broker.url,
        "CERTFLOW_TOPIC_PREFIX": prefix,
        "CERTFLOW_PARTITIONS": str(PARTITIONS),
    }


def enrolment(user: str, batch: str, **fields: object) -> dict[str, object]:
    return {"userid": user, "courseid": COURSE, "batchid": batch, **fields}


def test_good_rows_are_loaded_keyed_by_learner_and_bad_rows_reported(
    broker: LocalBroker, topics: TopicNames, env: dict[str, str], tmp_path: Path
) -> None:
    file = tmp_path / "user_enrolments.jsonl"
    file.write_text("\n".join([
        json.dumps(enrolment("user001", BATCH, status=2, issued_certificates=[{"identifier": "c1"}])),
        json.dumps(enrolment("user002", BATCH, status=1)),
        json.dumps({"courseid": COURSE, "batchid": BATCH}),
        "",
        '{"userid": "user003", ',
        json.dumps(enrolment("user001", "batch_2", status=1)),
        json.dumps({"delete": "user002"}),
    ]) + "\n")

    result = certflow_load("enrolments", str(file), env=env)

    assert result.returncode == 1, result.stderr
    assert f"loaded 4 row(s) into {topics.enrolments}, rejected 2" in result.stderr
    assert "line 3: userid: Field required" in result.stderr
    assert "line 5: not JSON: " in result.stderr
    records = read_back(broker, topics.enrolments)
    assert sorted((record.key, record.value is None) for record in records) == [
        (b"user001", False), (b"user001", False), (b"user002", False), (b"user002", True)]
    by_user: dict[bytes, list[Consumed]] = {}
    for record in sorted(records, key=lambda record: record.offset):
        by_user.setdefault(record.key, []).append(record)
    # A learner's rows share one partition and keep the file's order, so the
    # tombstone comes after the row it deletes.
    assert all(len({record.partition for record in rows}) == 1 for rows in by_user.values())
    assert [orjson.loads(record.value)["batchid"] for record in by_user[b"user001"]] == [BATCH, "batch_2"]
    assert by_user[b"user002"][-1].value is None
    first = orjson.loads(by_user[b"user001"][0].value)
    assert (first["userid"], first["status"], first["issued_certificates"]) == ("user001", 2, [{"identifier": "c1"}])


def test_a_clean_csv_of_batches_loads_with_exit_code_zero(
    broker: LocalBroker, topics: TopicNames, env: dict[str, str], tmp_path: Path, sunbird_fixture
) -> None:
    template = json.loads(sunbird_fixture("preproc_TEMPLATE_1_cert_template.json"))
    cell = json.dumps({template["identifier"]: template}).replace('"', '""')
    file = tmp_path / "course_batch.csv"
    file.write_text(f'courseid,batchid,name,cert_templates\n{COURSE},{BATCH},Batch 1,"{cell}"\n')

    result = certflow_load("batches", str(file), env=env)

    assert result.returncode == 0, result.stderr
    assert f"loaded 1 row(s) into {topics.batches}, rejected 0" in result.stderr
    record, = read_back(broker, topics.batches)
    assert record.key == BATCH.encode()
    assert orjson.loads(record.value)["certTemplates"]["template_svg_04-prad"]["criteria"] == {
        "enrollment": {"status": 2}, "assessment": {"score": {">=": 50}}}


def test_a_file_of_several_chunks_is_loaded_whole(
    broker: LocalBroker, topics: TopicNames, env: dict[str, str], tmp_path: Path
) -> None:
    file = tmp_path / "user_enrolments.jsonl"
    with file.open("w") as out:
        for n in range(12_001):
            out.write(json.dumps(enrolment(f"user{n:05}", BATCH)) + "\n")

    result = certflow_load("enrolments", str(file), env=env)

    assert result.returncode == 0, result.stderr
    assert f"loaded 12001 row(s) into {topics.enrolments}, rejected 0" in result.stderr
    keys = {record.key for record in read_back(broker, topics.enrolments)}
    assert keys == {f"user{n:05}".encode() for n in range(12_001)}


def test_dry_run_validates_and_produces_nothing(
    broker: LocalBroker, topics: TopicNames, env: dict[str, str], tmp_path: Path
) -> None:
    file = tmp_path / "user_enrolments.jsonl"
    bad = [json.dumps({"courseid": COURSE}) for _ in range(60)]
    file.write_text("\n".join([json.dumps(enrolment("user001", BATCH)), *bad]) + "\n")

    result = certflow_load("enrolments", str(file), "--dry-run", env=env)

    assert result.returncode == 1, result.stderr
    assert f"dry run: would load 1 row(s) into {topics.enrolments}, rejected 60" in result.stderr
    reported = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert len(reported) == 50 and reported[0].startswith("line 2: userid: Field required")
    assert "… and 10 more" in result.stderr
    assert read_back(broker, topics.enrolments) == []


def test_an_unknown_kind_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    file = tmp_path / "rows.jsonl"
    file.write_text("{}\n")

    result = certflow_load("courses", str(file), env=env)

    assert result.returncode == 2
    assert "'courses' is not one of 'batches', 'enrolments', 'scores', 'learners'" in result.stderr
