"""The bad-input matrix end to end: a real worker, both input topics, one partition each.

Every bad event goes to its topic with the same key, so all of them land on one
partition, in order, followed by a good event with that key. The good event coming
out the other end proves no bad one blocked the partition; the failed records prove
each bad one got its code; ``/stats`` proves every event was accounted for
(``total == success + skipped + failed``) and the worker never stopped.

A 5 MB event needs a broker that takes it: Kafka refuses records over
a topic's ``max.message.bytes`` (1,048,588 by default), and aiokafka's producer
refuses requests over its ``max_request_size`` (1 MiB) before sending. The module
raises the limit of both request topics (as an operator would to let big events
reach certflow at all) and sends everything with a producer allowing 16 MiB. The
worker's consumer keeps Faust's 1 MiB ``consumer_max_fetch_size``: brokers return
the first record of a partition whatever its size (Kafka's KIP-74), so the 5 MB
record is fetched, rejected with ``EVENT_TOO_LARGE`` and the partition moves on.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError
from lxml import etree

from certflow.kafka import bootstrap_servers, ensure_topics
from certflow.local import LocalBroker
from certflow.partitioning import key_partition
from certflow.settings import Settings
from tests.integration.conftest import FIXTURES, PARTITIONS, Deployment

pytestmark = pytest.mark.integration

FIVE_MB = 5 * 1024 * 1024
TOPIC_LIMIT = 8 * 1024 * 1024
#: A failed record must be publishable by the worker's producer (Faust's default).
PRODUCER_LIMIT = 1_000_000
MYSTERY_TEMPLATE = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 842 595">'
    '<text id="name">${recipientName}</text>'
    '<text id="mystery">[${noSuchPlaceholder}][${certificateDescription}]</text>'
    '<image href="${qrCodeImage}"/></svg>'
)


@pytest.fixture(scope="module")
def deployment(broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    templates = tmp_path_factory.mktemp("bad-input-templates")
    shutil.copy(Settings().template_root / "course-completion.svg", templates)
    (templates / "mystery.svg").write_text(MYSTERY_TEMPLATE)
    running = Deployment(broker, tmp_path_factory.mktemp("bad-input"), {
        "CERTFLOW_TEMPLATE_ROOT": str(templates), "CERTFLOW_LOG_LEVEL": "warn",
    })
    asyncio.run(allow_large_records(broker.url, [running.topics.generate_request, running.topics.issue_request]))
    running.start_worker()
    yield running
    running.stop()


async def allow_large_records(broker_url: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker_url))
    await admin.start()
    try:
        await admin.alter_configs([
            ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": str(TOPIC_LIMIT)})
            for topic in topics
        ])
    finally:
        await admin.close()


async def produce_in_order(broker_url: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """One producer, one record at a time: the partition gets them in this order."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(broker_url), max_request_size=2 * TOPIC_LIMIT, acks="all"
    )
    await producer.start()
    try:
        for key, value in records:
            await (await producer.send(topic, key=key, value=value))
    finally:
        await producer.stop()


def generate_event(batch: str, recipients: list[tuple[str, str]], **edata: Any) -> dict[str, Any]:
    event = orjson.loads((FIXTURES / "sunbird" / "certgen_EVENT_3_generate_certificate_no_oldId.json").read_bytes())
    event["edata"].update({"svgTemplate": "course-completion.svg", **edata})
    event["edata"]["related"]["batchId"] = batch
    event["edata"]["data"] = [{"recipientId": rid, "recipientName": name} for rid, name in recipients]
    return event


def issue_event(batch: str, course: str, user_ids: list[str] | None, **edata: Any) -> dict[str, Any]:
    event = orjson.loads((FIXTURES / "sunbird" / "preproc_EVENT_1_issue_certificate.json").read_bytes())
    event["mid"] = f"LP.{uuid.uuid4()}"
    event["edata"].update(batchId=batch, courseId=course, reIssue=False, **edata)
    if user_ids is None:
        del event["edata"]["userIds"]
    else:
        event["edata"]["userIds"] = user_ids
    return event


def five_megabytes(event: dict[str, Any]) -> bytes:
    return orjson.dumps({**event, "attachment": "x" * FIVE_MB})


def nested(event: dict[str, Any], depth: int) -> bytes:
    """``event`` with one more field nested ``depth`` levels deep (orjson reads 1024)."""
    return orjson.dumps(event)[:-1] + b',"deep":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def stats(deployment: Deployment) -> dict[str, Any]:
    status, body = deployment.workers[0].get("/stats")
    assert status == 200
    return orjson.loads(body)


def settled_counts(deployment: Deployment, topic: str, total: int, timeout: float = 30.0) -> dict[str, int]:
    """The topic's counters once ``total`` events were read and every topic balances."""
    deadline = time.monotonic() + timeout
    while True:
        topics = stats(deployment)["topics"]
        counts = topics.get(topic, {})
        balanced = all(
            c["total-events-count"]
            == c["success-events-count"] + c["skipped-event-count"] + c["failed-events-count"]
            for c in topics.values()
        )
        if balanced and counts.get("total-events-count", 0) >= total:
            return counts
        assert time.monotonic() < deadline, f"accounting never settled: {topics}"
        time.sleep(0.2)


def text_of(svg: str, element_id: str) -> str:
    (element,) = etree.fromstring(svg.encode()).xpath("//*[@id=$id]", id=element_id)
    return "".join(element.itertext())


def texts(svg: str) -> list[str]:
    root = etree.fromstring(svg.encode())
    return ["".join(node.itertext()) for node in root.iter("{http://www.w3.org/2000/svg}text")]


# --- the broker's own limit --------------------------------------------------------------


def test_a_5mb_event_is_refused_by_producer_and_broker_unless_the_topic_allows_it(
    deployment: Deployment,
) -> None:
    """What stands between a 5 MB event and certflow, before certflow sees it."""
    topic = f"{deployment.topics.generate_request}.size-probe"
    url = deployment.broker.url

    async def attempt(max_request_size: int) -> str:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(url), max_request_size=max_request_size)
        await producer.start()
        try:
            await (await producer.send(topic, b"x" * FIVE_MB))
            return "stored"
        except MessageSizeTooLargeError as error:
            return "refused by the producer" if "max_request_size" in str(error) else "refused by the broker"
        finally:
            await producer.stop()

    async def probe() -> list[str]:
        await ensure_topics(url, [topic], partitions=1)
        outcomes = [await attempt(1_048_576), await attempt(2 * TOPIC_LIMIT)]
        await allow_large_records(url, [topic])
        return [*outcomes, await attempt(2 * TOPIC_LIMIT)]

    assert asyncio.run(probe()) == ["refused by the producer", "refused by the broker", "stored"]


# --- generate.certificate.request --------------------------------------------------------


def test_every_bad_generate_event_is_dead_lettered_with_its_code_and_the_partition_moves_on(
    deployment: Deployment,
) -> None:
    topics = deployment.topics
    run = uuid.uuid4().hex[:8]
    key = f"bad-generate-{run}".encode()
    good = generate_event(f"{run}-good", [(f"{run}-good", "Deepa")])
    unnamed = generate_event(f"{run}-unnamed", [])
    unnamed["edata"]["data"] = [{"recipientId": f"{run}-{i}"} for i in range(10_000)]
    wrong_types = generate_event(f"{run}-t", [])
    wrong_types["edata"]["data"] = "Asha"
    cases: list[tuple[str, bytes, str | None]] = [
        ("non-JSON", b"a certificate for Asha, please", "MALFORMED_JSON"),
        ("truncated JSON", orjson.dumps(good)[:150], "MALFORMED_JSON"),
        ("wrong types", orjson.dumps(wrong_types), "INVALID_PARAM_VALUE"),
        ("missing fields", orjson.dumps({**good, "edata": {"data": good["edata"]["data"]}}),
         "MANDATORY_PARAMETER_MISSING"),
        ("an issue request (unknown action here)", orjson.dumps(issue_event("b", "c", ["u"])),
         "MANDATORY_PARAMETER_MISSING"),
        ("5 MB", five_megabytes(good), "EVENT_TOO_LARGE"),
        ("1,000 levels deep", nested(good, 1000), "MALFORMED_JSON"),
        ("100,000 levels deep", nested(good, 100_000), "MALFORMED_JSON"),
        ("1 MB: allowed, but too large to forward", orjson.dumps({**good, "attachment": "x" * 1_040_000}),
         "EVENT_TOO_LARGE"),
        ("10,000 recipients, none named", orjson.dumps(unnamed), "MANDATORY_PARAMETER_MISSING"),
        ("control characters", orjson.dumps(generate_event(f"{run}-c", [(f"{run}-c", "Asha\u0007\u001b[2J")])),
         "INVALID_PARAM_VALUE"),
        ("bidi override", orjson.dumps(generate_event(f"{run}-b", [(f"{run}-b", "\u202eahsA")])),
         "INVALID_PARAM_VALUE"),
        ("5,000 characters", orjson.dumps(generate_event(f"{run}-l", [(f"{run}-l", "A" * 5000)])),
         "INVALID_PARAM_VALUE"),
        ("date in the wrong format", orjson.dumps(generate_event(f"{run}-d", [(f"{run}-d", "Asha")],
                                                                 issuedDate="24/11/2025")), "INVALID_PARAM_VALUE"),
        ("emoji (accepted)", orjson.dumps(generate_event(f"{run}-emoji", [(f"{run}-emoji", "Asha 👩‍💻🎓")])), None),
        ("unknown placeholders (left empty)", orjson.dumps(generate_event(
            f"{run}-mystery", [(f"{run}-mystery", "Bilal")], svgTemplate="mystery.svg")), None),
        ("the good event after them all", orjson.dumps(good), None),
    ]
    before = stats(deployment)["topics"].get(topics.generate_request, {})

    asyncio.run(produce_in_order(deployment.broker.url, topics.generate_request, [(key, raw) for _, raw, _ in cases]))

    issued = deployment.collect(topics.certificate_issued, 3, lambda r: r["batchId"].startswith(f"{run}-"))
    by_batch = {r["batchId"]: r for r in issued}
    assert by_batch.keys() == {f"{run}-good", f"{run}-emoji", f"{run}-mystery"}
    assert by_batch[f"{run}-emoji"]["recipient"]["name"] == "Asha 👩‍💻🎓"
    assert "Asha 👩‍💻🎓" in texts(by_batch[f"{run}-emoji"]["svg"])
    assert text_of(by_batch[f"{run}-mystery"]["svg"], "mystery") == "[][]"
    assert "${" not in by_batch[f"{run}-mystery"]["svg"]

    expected = [(label, code) for label, _, code in cases if code]
    failed = deployment.collect(topics.generate_failed, len(expected), lambda r: r["source"]["key"] == key.decode())
    failed.sort(key=lambda r: r["source"]["offset"])
    assert [(label, r["errorCode"]) for (label, _), r in zip(expected, failed, strict=True)] == expected
    assert all("nested deeper than 64 levels" in r["errorMessage"]
               for (label, _), r in zip(expected, failed, strict=True) if "deep" in label)
    for record in failed:
        assert record["stage"] == "intake" and record["source"]["topic"] == topics.generate_request
        assert len(orjson.dumps(record)) < PRODUCER_LIMIT
        assert len(record["errorMessage"]) < 5_000
    too_large = next(r for r in failed if r["errorCode"] == "EVENT_TOO_LARGE")
    assert too_large["payloadTruncated"] and too_large["payloadBytes"] > FIVE_MB
    unnamed_record = failed[[label for label, _ in expected].index("10,000 recipients, none named")]
    assert "more problems" in unnamed_record["errorMessage"]
    small = failed[0]
    assert not small["payloadTruncated"] and small["payload"] == cases[0][1].decode()

    counts = settled_counts(deployment, topics.generate_request, before.get("total-events-count", 0) + len(cases))
    assert counts["total-events-count"] - before.get("total-events-count", 0) == len(cases)
    assert counts["failed-events-count"] - before.get("failed-events-count", 0) == len(expected)
    assert deployment.workers[0].alive()


# --- issue.certificate.request -----------------------------------------------------------


@pytest.fixture(scope="module")
def batch(deployment: Deployment) -> dict[str, Any]:
    """A batch with one template, learners good and bad, enrolled."""
    topics = deployment.topics
    run = uuid.uuid4().hex[:8]
    batch_id, course = f"{run}0001", f"do_{run}"
    names = {
        f"{run}-emoji": "Asha 👩‍💻",
        f"{run}-good": "Deepa",
        f"{run}-control": "Asha\u0007",
        f"{run}-bidi": "\u202eahsA",
        f"{run}-long": "A" * 5000,
    }
    template = {
        "identifier": "t1", "name": "Completion", "url": "course-completion.svg",
        "criteria": '{"enrollment": {"status": 2}}',
        "issuer": '{"name": "NCERT", "url": "https://ncert.nic.in/"}',
        "signatoryList": "[]",
    }
    deployment.send(topics.batches, [orjson.dumps({
        "batchid": batch_id, "courseid": course, "courseName": "Algebra", "name": "Batch",
        "cert_templates": {"t1": template},
    })], key=batch_id.encode())
    deployment.send_keyed(topics.learners, [
        (uid.encode(), orjson.dumps({"id": uid, "firstName": name})) for uid, name in names.items()
    ])
    enrolments = [(uid, 1764000000000) for uid in names] + [(f"{run}-baddate", "yesterday")]
    deployment.send_keyed(topics.enrolments, [
        (uid.encode(), orjson.dumps({"userid": uid, "courseid": course, "batchid": batch_id,
                                     "active": True, "status": 2, "completedon": completed}))
        for uid, completed in enrolments
    ])
    deployment.wait_for_reference()
    return {"run": run, "batch": batch_id, "course": course}


def test_bad_reference_records_are_dead_lettered_where_they_arrive(
    deployment: Deployment, batch: dict[str, Any]
) -> None:
    """Names a certificate cannot carry, and a date that is none, are refused on load."""
    run = batch["run"]
    failed = deployment.collect(
        deployment.topics.issue_failed, 4,
        lambda r: r["stage"] == "reference" and (r["source"]["key"] or "").startswith(f"{run}-"),
    )

    assert sorted((r["source"]["key"], r["errorCode"]) for r in failed) == [
        (f"{run}-baddate", "INVALID_PARAM_VALUE"),
        (f"{run}-bidi", "INVALID_PARAM_VALUE"),
        (f"{run}-control", "INVALID_PARAM_VALUE"),
        (f"{run}-long", "INVALID_PARAM_VALUE"),
    ]


def test_every_bad_issue_event_is_dead_lettered_with_its_code_and_the_partition_moves_on(
    deployment: Deployment, batch: dict[str, Any]
) -> None:
    topics = deployment.topics
    run, batch_id, course = batch["run"], batch["batch"], batch["course"]
    key = f"bad-issue-{run}".encode()
    learners = [f"{run}-emoji", f"{run}-good", f"{run}-control"]
    good = issue_event(batch_id, course, learners)
    many = [f"{run}-many-{i:05d}" for i in range(10_000)]
    wrong_types = issue_event(batch_id, course, learners)
    wrong_types["edata"]["userIds"] = f"{run}-good"  # one id, not a list of them
    # 10,000 userIds reach a coded rejection (tests/unit/test_bad_input.py shows an
    # accepted request keeps all of them), and 1,000 are decided, in one eligibility
    # job per partition that holds some of them.
    cases: list[tuple[str, bytes, str | None]] = [
        ("non-JSON", b"issue everything", "MALFORMED_JSON"),
        ("truncated JSON", orjson.dumps(good)[:120], "MALFORMED_JSON"),
        ("wrong types", orjson.dumps(wrong_types), "INVALID_PARAM_VALUE"),
        ("missing fields", orjson.dumps(issue_event("", course, learners)), "MANDATORY_PARAMETER_MISSING"),
        ("unknown action", orjson.dumps(issue_event(batch_id, course, learners, action="revoke-all")),
         "INVALID_PARAM_VALUE"),
        ("unknown batch", orjson.dumps(issue_event(f"{run}-nope", course, learners)), "UNKNOWN_BATCH"),
        ("5 MB", five_megabytes(good), "EVENT_TOO_LARGE"),
        ("1,000 levels deep", nested(good, 1000), "MALFORMED_JSON"),
        ("100,000 levels deep", nested(good, 100_000), "MALFORMED_JSON"),
        ("10,000 userIds of an unknown batch", orjson.dumps(issue_event(f"{run}-nope", course, many)),
         "UNKNOWN_BATCH"),
        ("1,000 userIds (accepted)", orjson.dumps(issue_event(batch_id, course, many[:1000])), None),
        ("the good event after them all", orjson.dumps(good), None),
    ]
    before = stats(deployment)["topics"]

    asyncio.run(produce_in_order(deployment.broker.url, topics.issue_request, [(key, raw) for _, raw, _ in cases]))

    decided = deployment.collect(topics.decisions, 3, lambda d: d["requestId"] == good["mid"])
    assert {d["userId"]: (d["decision"], d["reason"]) for d in decided} == {
        f"{run}-emoji": ("issued", None),
        f"{run}-good": ("issued", None),
        f"{run}-control": ("skipped", "unknown_learner"),  # its profile was refused on load
    }
    issued = deployment.collect(topics.certificate_issued, 2, lambda r: r["batchId"] == batch_id)
    assert sorted(r["recipient"]["name"] for r in issued) == ["Asha 👩‍💻", "Deepa"]

    expected = [(label, code) for label, _, code in cases if code]
    failed = deployment.collect(topics.issue_failed, len(expected), lambda r: r["source"]["key"] == key.decode())
    failed.sort(key=lambda r: r["source"]["offset"])
    assert [(label, r["errorCode"]) for (label, _), r in zip(expected, failed, strict=True)] == expected
    assert all("nested deeper than 64 levels" in r["errorMessage"]
               for (label, _), r in zip(expected, failed, strict=True) if "deep" in label)
    assert all(len(orjson.dumps(r)) < PRODUCER_LIMIT for r in failed)

    earlier = lambda topic, counter: before.get(topic, {}).get(counter, 0)  # noqa: E731
    request_counts = stats(deployment)["topics"][topics.issue_request]
    read = request_counts["total-events-count"] - earlier(topics.issue_request, "total-events-count")
    assert read == len(cases)
    jobs = request_counts["eligibility-jobs-count"] - earlier(topics.issue_request, "eligibility-jobs-count")
    partitions = lambda ids: {key_partition(user_id.encode(), PARTITIONS) for user_id in ids}  # noqa: E731
    assert jobs == len(partitions(many[:1000])) + len(partitions(learners))
    counts = settled_counts(deployment, topics.eligibility, earlier(topics.eligibility, "total-events-count") + jobs)
    assert counts["learners-evaluated-count"] - earlier(topics.eligibility, "learners-evaluated-count") == (
        1_000 + len(learners)
    )
    assert counts["failed-events-count"] == earlier(topics.eligibility, "failed-events-count")
    many_decided = deployment.collect(topics.decisions, 1, lambda d: d["userId"] == f"{run}-many-00999")
    assert many_decided[0]["reason"] == "not_enrolled"
    assert deployment.workers[0].alive()
