"""Nothing lost, nothing doubled: a worker killed mid-stream, exactly-once, a broker restart.

Each test runs its own Apache Kafka cluster (``certflow.local.LocalBroker``): three
KRaft nodes where the test needs replication (topics replicated 3 times,
``min.insync.replicas`` 2, acks=all), one where it does not. Counts of every run are
written to ``.certflow/chaos-report.json`` for the record.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from certflow import synthetic
from certflow.kafka import read_topic
from certflow.local import LocalBroker
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.chaos

REPORT = Path(__file__).resolve().parents[2] / ".certflow" / "chaos-report.json"
COURSE, BATCH = "do_chaos_course", "chaos_batch"


def eligible(i: int) -> bool:
    return i % 5 != 0  # the rest have not completed the course (status 1)


def load_batch(deployment: Deployment, learners: int) -> list[str]:
    """The synthetic batch, a fifth of its learners not yet completed; returns their ids."""
    ids = synthetic.load_batch(
        deployment.broker.url, deployment.topics, course=COURSE, batch=BATCH, learners=learners,
        prefix="chaos", completed=eligible,
    )
    deployment.wait_for_reference()
    return ids


def shared_signing_keys(workdir: Path) -> dict[str, str]:
    """One signing key file for all workers of a deployment, as production has.

    Without it each worker makes its own development key, and a certificate made
    again by another worker after a crash (at-least-once) carries another signature:
    a redelivered copy that differs, which the tests count as a defect."""
    path = workdir / "signing-keys.json"
    subprocess.run([sys.executable, "-m", "certflow", "keys", "generate", "--file", str(path)],
                   check=True, capture_output=True)
    return {"CERTFLOW_SIGNING_KEYS_FILE": str(path)}


def issue_requests(ids: list[str], chunk: int) -> list[bytes]:
    return synthetic.issue_requests(COURSE, BATCH, ids, chunk=chunk, mid="LP.chaos")


def read_all(deployment: Deployment, topic: str, *, committed_only: bool = False) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [
            orjson.loads(record.value)
            async for record in read_topic(deployment.broker.url, topic, timeout=3, committed_only=committed_only)
        ]

    return asyncio.run(run())


def wait_for_certificates(
    deployment: Deployment, wanted: int, *, timeout: float, committed_only: bool = False
) -> list[dict[str, Any]]:
    """Every record on certificate.issued once ``wanted`` distinct certificates are there."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_all(deployment, deployment.topics.certificate_issued, committed_only=committed_only)
        if len({r["id"] for r in records}) >= wanted or time.monotonic() > deadline:
            return records
        time.sleep(2)


def account(records: list[dict[str, Any]], ids: list[str]) -> dict[str, int]:
    """Sent, issued, duplicates, lost, wrongly issued: the numbers that matter."""
    by_learner: dict[str, set[str]] = defaultdict(set)
    copies: Counter[str] = Counter()
    first: dict[str, dict[str, Any]] = {}
    different = 0
    differences: list[dict[str, Any]] = []
    for record in records:
        by_learner[record["recipient"]["id"]].add(record["id"])
        copies[record["id"]] += 1
        if record["id"] in first and first[record["id"]] != record:
            different += 1
            if len(differences) < 3:
                differences.append(difference(first[record["id"]], record))
        first.setdefault(record["id"], record)
    wanted = eligible_learners(ids)
    return {
        "learners": len(ids),
        "eligible": len(wanted),
        "certificates": len(copies),
        "records": len(records),
        "redelivered": sum(n - 1 for n in copies.values()),
        "redelivered_different": different,
        "redelivered_different_sample": differences,  # type: ignore[dict-item]
        "learners_with_several_ids": sum(1 for certs in by_learner.values() if len(certs) > 1),
        "lost": len(lost_learners(records, ids)),
        "issued_to_ineligible": len(set(by_learner) - wanted),
    }


def difference(one: Any, other: Any, path: str = "") -> dict[str, Any]:
    """Where two copies of a record differ: path → (first, second), values cut short."""
    if isinstance(one, dict) and isinstance(other, dict):
        found: dict[str, Any] = {}
        for key in sorted(set(one) | set(other)):
            if one.get(key) != other.get(key):
                found.update(difference(one.get(key), other.get(key), f"{path}.{key}"))
        return found
    return {path or ".": [str(one)[:120], str(other)[:120]]}


def eligible_learners(ids: list[str]) -> set[str]:
    return {uid for i, uid in enumerate(ids) if eligible(i)}


def lost_learners(records: list[dict[str, Any]], ids: list[str]) -> set[str]:
    """Eligible learners without a certificate on the sink."""
    return eligible_learners(ids) - {r["recipient"]["id"] for r in records}


def trace_lost(deployment: Deployment, lost: set[str]) -> dict[str, list[str]]:
    """Where each lost learner's certificate stopped: every record about them on the
    flow's topics (topic, partition, offset, and what it says), for the report."""
    if not lost:
        return {}
    topics = deployment.topics
    app_id = deployment.settings["CERTFLOW_APP_ID"]
    changelogs = [f"{app_id}-{table}-changelog" for table in ("learners", "enrolments", "issued")]
    names = [
        topics.learners, topics.enrolments, *changelogs, topics.eligibility, topics.generate_request,
        topics.generate_recipients, topics.decisions, topics.issue_failed, topics.generate_failed, topics.telemetry,
    ]

    async def run() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {uid: [] for uid in sorted(lost)}
        for name in names:
            async for record in read_topic(deployment.broker.url, name, timeout=3):
                text = record.value.decode(errors="replace") if record.value else ""
                for uid in found:
                    if uid in text or (record.key or b"").decode(errors="replace") == uid:
                        brief = text if len(text) < 300 else text[:300] + "…"
                        found[uid].append(f"{name}[{record.partition}]@{record.offset} t={record.timestamp}: {brief}")
        return found

    return asyncio.run(run())


def save(name: str, counts: dict[str, Any]) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    report = orjson.loads(REPORT.read_bytes()) if REPORT.exists() else {}
    report[name] = counts
    REPORT.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


def assert_exactly_one_each(counts: dict[str, int]) -> None:
    assert counts["lost"] == 0, counts
    assert counts["issued_to_ineligible"] == 0, counts
    assert counts["learners_with_several_ids"] == 0, counts
    assert counts["redelivered_different"] == 0, counts
    assert counts["certificates"] == counts["eligible"], counts


def assert_decisions_agree(deployment: Deployment, records: list[dict[str, Any]], sample: list[str]) -> None:
    """Tables recovered on whichever worker owns each learner now agree with the sink."""
    certificate_of = {r["recipient"]["id"]: r["id"] for r in records}
    worker = next(w for w in deployment.workers if w.alive())
    for user_id in sample:
        deadline = time.monotonic() + 60
        while (answer := worker.get(f"/learners/{user_id}/decisions"))[0] == 503 and time.monotonic() < deadline:
            time.sleep(0.5)  # the owner is still reading its tables back: ask again
        status, body = answer
        assert status == 200, body
        answer = orjson.loads(body)
        issued_ids = {d["certificateId"] for d in answer["decisions"] if d["decision"] == "issued"}
        held = {entry["id"] for slot in answer["issued"].values() for entry in slot.values()}
        if user_id in certificate_of:
            assert issued_ids == held == {certificate_of[user_id]}, answer
        else:
            assert not issued_ids and not held
            assert {d["reason"] for d in answer["decisions"]} == {"status_mismatch"}


def test_a_worker_killed_mid_stream_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    """Three workers on a three-node Kafka cluster, 5,000 learners in flight, one
    worker SIGKILLed, a replacement started."""
    with LocalBroker(tmp_path / "broker", nodes=3) as broker:
        deployment = Deployment(broker, tmp_path, {
            **shared_signing_keys(tmp_path),
            "CERTFLOW_LOG_LEVEL": "warn",
            "CERTFLOW_SESSION_TIMEOUT_SECONDS": "6",
            "CERTFLOW_HEARTBEAT_INTERVAL_SECONDS": "1",
        })
        try:
            for _ in range(3):
                deployment.start_worker()
            ids = load_batch(deployment, 5000)
            deployment.send(deployment.topics.issue_request, issue_requests(ids, 250))

            wait_for_certificates(deployment, 600, timeout=120)
            victim = deployment.workers[1]
            victim.kill()
            killed_at = time.time()
            deployment.start_worker()

            eligible_count = len(eligible_learners(ids))
            records = wait_for_certificates(deployment, eligible_count, timeout=240)
            counts = account(records, ids)
            lost = trace_lost(deployment, lost_learners(records, ids))
            save("crash_kafka3_at_least_once", {
                "killed_worker_pid": victim.pid, "killed_at_ms": int(killed_at * 1000), **counts, "lost_traces": lost,
            })
            if lost:
                for worker in deployment.workers:
                    print(f"--- {worker.log_path}\n{worker.log_tail(60)}")
            assert_exactly_one_each(counts)
            assert_decisions_agree(deployment, records, ids[:200:7])
        finally:
            deployment.stop()


def test_exactly_once_issues_every_certificate_once_in_committed_transactions(tmp_path: Path) -> None:
    """``CERTFLOW_PROCESSING_GUARANTEE=exactly_once`` on Kafka: the whole issue flow
    runs in transactions, and what a consumer reads (read_committed) is each
    certificate exactly once, with no redelivered copy."""
    with LocalBroker(tmp_path / "broker") as broker:
        deployment = Deployment(broker, tmp_path, {
            "CERTFLOW_LOG_LEVEL": "warn",
            "CERTFLOW_PROCESSING_GUARANTEE": "exactly_once",
        })
        try:
            deployment.start_worker()
            ids = load_batch(deployment, 1000)
            deployment.send(deployment.topics.issue_request, issue_requests(ids, 100))

            eligible_count = len(eligible_learners(ids))
            records = wait_for_certificates(deployment, eligible_count, timeout=240, committed_only=True)
            counts = account(records, ids)
            save("exactly_once_kafka", counts)
            assert_exactly_one_each(counts)
            assert counts["redelivered"] == 0, counts
        finally:
            deployment.stop()


def test_workers_reconnect_after_a_broker_restart_and_finish(tmp_path: Path) -> None:
    """The broker stopped and started again mid-run (its data kept): workers reconnect
    and every eligible learner gets exactly one certificate."""
    broker = LocalBroker(tmp_path / "broker")
    broker.start()
    deployment = Deployment(broker, tmp_path, {**shared_signing_keys(tmp_path), "CERTFLOW_LOG_LEVEL": "warn"})
    try:
        deployment.start_worker()
        deployment.start_worker()
        ids = load_batch(deployment, 2000)
        requests = issue_requests(ids, 200)
        deployment.send(deployment.topics.issue_request, requests[: len(requests) // 2])
        wait_for_certificates(deployment, 200, timeout=120)

        broker.stop()
        time.sleep(2)
        broker.start()
        deployment.send(deployment.topics.issue_request, requests[len(requests) // 2:])

        eligible_count = len(eligible_learners(ids))
        records = wait_for_certificates(deployment, eligible_count, timeout=180)
        counts = account(records, ids)
        counts["lost_traces"] = trace_lost(deployment, lost_learners(records, ids))
        save("broker_restart_kafka", counts)
        assert all(worker.alive() for worker in deployment.workers)
        assert_exactly_one_each(counts)
    finally:
        deployment.stop()
        broker.stop()


def test_a_broker_node_killed_mid_stream_loses_nothing(tmp_path: Path) -> None:
    """Two workers on a three-node Kafka cluster; the node leading a partition of
    ``certificate.issued`` is SIGKILLed mid-stream and started again later with its
    data. Writes go on with two replicas of three in sync (acks=all,
    min.insync.replicas 2); every eligible learner gets exactly one certificate."""
    with LocalBroker(tmp_path / "broker", nodes=3) as broker:
        assert broker.cluster is not None
        deployment = Deployment(broker, tmp_path, {
            **shared_signing_keys(tmp_path),
            "CERTFLOW_LOG_LEVEL": "warn",
            "CERTFLOW_SESSION_TIMEOUT_SECONDS": "10",
            "CERTFLOW_HEARTBEAT_INTERVAL_SECONDS": "1",
        })
        try:
            deployment.start_worker()
            deployment.start_worker()
            ids = load_batch(deployment, 2000)
            deployment.send(deployment.topics.issue_request, issue_requests(ids, 200))

            wait_for_certificates(deployment, 300, timeout=120)
            victim = broker.cluster.leader_of(deployment.topics.certificate_issued, 0)
            victim_pid = broker.cluster.node(victim).pid
            broker.cluster.kill_node(victim)
            wait_for_certificates(deployment, 900, timeout=180)
            broker.cluster.restart_node(victim)

            eligible_count = len(eligible_learners(ids))
            records = wait_for_certificates(deployment, eligible_count, timeout=240)
            counts = account(records, ids)
            lost = trace_lost(deployment, lost_learners(records, ids))
            save("broker_node_killed_kafka3", {"killed_node": victim, "killed_pid": victim_pid, **counts,
                                               "lost_traces": lost})
            if lost:
                for worker in deployment.workers:
                    print(f"--- {worker.log_path}\n{worker.log_tail(60)}")
            assert all(worker.alive() for worker in deployment.workers)
            assert_exactly_one_each(counts)
        finally:
            deployment.stop()
