"""Nothing lost, nothing doubled: the fault matrix, and a whole-broker restart.

The matrix (issue 11), each case on its own three-node Apache Kafka cluster (topics
replicated 3 times, ``min.insync.replicas`` 2, acks=all) with thousands of learners
in flight, all judged by :func:`judge`:

(a) one of three workers SIGKILLed, a replacement joins;
(b) the broker leading most of the flow's partitions SIGKILLed, restarted later;
(c) a rolling restart of all three brokers;
(d) exactly-once: one of three workers SIGKILLed, a replacement joins;
(e) a broker paused (SIGSTOP) past the session timeouts, then resumed (SIGCONT).

``tests/chaos/matrix.py N`` runs the five N times in a row. Counts of every run are
written to ``.certflow/chaos-report.json`` for the record.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from certflow import synthetic
from certflow.kafka import read_topic
from certflow.local import LocalBroker, LocalWorker
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
    REPORT.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


def assert_exactly_one_each(counts: dict[str, Any]) -> None:
    assert counts["lost"] == 0, counts
    assert counts["issued_to_ineligible"] == 0, counts
    assert counts["learners_with_several_ids"] == 0, counts
    assert counts["redelivered_different"] == 0, counts
    assert counts["certificates"] == counts["eligible"], counts


def skips_without_decision(deployment: Deployment, ids: list[str], *, committed_only: bool) -> list[str]:
    """Learners not eligible (the independent count) without a ``skipped`` decision
    on ``certificate.decisions``."""
    skipped = {
        record.get("userId") for record in read_all(deployment, deployment.topics.decisions,
                                                      committed_only=committed_only)
        if record.get("decision") == "skipped"
    }
    return sorted(uid for uid in set(ids) - eligible_learners(ids) if uid not in skipped)


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


def assert_registry_agrees(deployment: Deployment, sample: list[dict[str, Any]]) -> None:
    """Each sampled certificate is in the registry and found on paper by its access
    code, asked of any worker: both entries are written in the step that makes the
    certificate, whichever worker made it first or again after the fault."""
    worker = next(w for w in deployment.workers if w.alive())
    for record in sample:
        code_check = urlencode({"code": record["accessCode"], "who": record["id"][:8]})
        for path, found_in in ((f"/certs/{record['id']}", record["id"]),
                               (f"/verify?{code_check}", f"certs/{record['id']}")):
            deadline = time.monotonic() + 60
            # 503 while a worker's tables are read back after the fault.
            while (answer := worker.get(path))[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.5)
            status, body = answer
            assert status == 200 and found_in.encode() in body, (path, status, body[:300])


def judge(
    name: str,
    deployment: Deployment,
    ids: list[str],
    *,
    killed: tuple[LocalWorker, ...] = (),
    committed_only: bool = False,
    timeout: float = 240,
    **facts: Any,
) -> dict[str, Any]:
    """The verdict every fault case gets, against the independent count of who is
    eligible (:func:`eligible`): waits for the certificates, then checks 0 lost,
    0 certificate ids doubled (no learner with two ids), none issued to the
    ineligible, every skip with its decision, every redelivered copy byte-identical,
    every worker not SIGKILLed by the test alive (so each killed one was replaced),
    and the recovered tables and the registry agreeing with the sink. Counts go to
    the chaos report."""
    records = wait_for_certificates(deployment, len(eligible_learners(ids)), timeout=timeout,
                                    committed_only=committed_only)
    counts = account(records, ids)
    unexplained = skips_without_decision(deployment, ids, committed_only=committed_only)
    dead = [w.pid for w in deployment.workers if w not in killed and not w.alive()]
    lost = trace_lost(deployment, lost_learners(records, ids))
    report = {**facts, **counts, "killed_worker_pids": [w.pid for w in killed],
              "skips_without_decision": len(unexplained), "skips_without_decision_sample": unexplained[:5],
              "workers_dead": dead, "lost_traces": lost}
    save(name, report)
    if lost or unexplained or dead:
        for worker in deployment.workers:
            print(f"--- {worker.log_path}\n{worker.log_tail(60)}")
    assert_exactly_one_each(counts)
    assert not unexplained, report
    assert not dead, report
    if committed_only:
        assert counts["redelivered"] == 0, counts  # read_committed sees each once
    assert_decisions_agree(deployment, records, ids[:200:7])
    assert_registry_agrees(deployment, records[::100])
    return report


#: Learners per matrix case: thousands in flight, and the five cases within a few
#: minutes on two busy cores.
LEARNERS = 2000


@contextmanager
def three_nodes(tmp_path: Path, *, workers: int, session_timeout: float = 6,
                **settings: str) -> Iterator[tuple[LocalBroker, Deployment, list[str]]]:
    """A three-node cluster, ``workers`` workers sharing a signing key, and
    :data:`LEARNERS` learners' issue requests sent; stops everything it started."""
    with LocalBroker(tmp_path / "broker", nodes=3) as broker:
        deployment = Deployment(broker, tmp_path, {
            **shared_signing_keys(tmp_path),
            "CERTFLOW_LOG_LEVEL": "warn",
            "CERTFLOW_SESSION_TIMEOUT_SECONDS": str(session_timeout),
            "CERTFLOW_HEARTBEAT_INTERVAL_SECONDS": "1",
            **settings,
        })
        try:
            for _ in range(workers):
                deployment.start_worker()
            ids = load_batch(deployment, LEARNERS)
            deployment.send(deployment.topics.issue_request, issue_requests(ids, 125))
            yield broker, deployment, ids
        finally:
            deployment.stop()


def flow_topics(deployment: Deployment) -> list[str]:
    app_id = deployment.settings["CERTFLOW_APP_ID"]
    return [*deployment.topics.all(),
            *(f"{app_id}-{table}-changelog" for table in ("learners", "enrolments", "issued"))]


def test_a_worker_sigkilled_a_replacement_joins(tmp_path: Path) -> None:
    """(a) Three workers, one SIGKILLed mid-stream, a replacement started."""
    with three_nodes(tmp_path, workers=3) as (_, deployment, ids):
        wait_for_certificates(deployment, 300, timeout=120)
        victim = deployment.workers[1]
        victim.kill()
        deployment.start_worker()
        judge("a_worker_sigkilled", deployment, ids, killed=(victim,))


def test_b_busiest_broker_sigkilled_restarted_later(tmp_path: Path) -> None:
    """(b) The node leading most of the flow's partitions SIGKILLed mid-stream, started
    again later with its data; writes go on with two replicas of three in sync."""
    with three_nodes(tmp_path, workers=2, session_timeout=10) as (broker, deployment, ids):
        assert broker.cluster is not None
        wait_for_certificates(deployment, 300, timeout=120)
        leaders = broker.cluster.partition_leaders(flow_topics(deployment))
        victim = broker.kill_busiest_leader(flow_topics(deployment))
        wait_for_certificates(deployment, 900, timeout=180)
        broker.cluster.restart_node(victim)
        judge("b_busiest_broker_sigkilled", deployment, ids, killed_node=victim, leaders_before=leaders)


def test_c_rolling_restart_of_all_brokers(tmp_path: Path) -> None:
    """(c) Each of the three nodes stopped (SIGTERM) and started again, one after the
    other, the next once the last is back, while certificates are being made."""
    with three_nodes(tmp_path, workers=2, session_timeout=10) as (broker, deployment, ids):
        assert broker.cluster is not None
        wait_for_certificates(deployment, 300, timeout=120)
        for node in broker.cluster.nodes:
            broker.cluster.stop_node(node.id)
            time.sleep(2)
            broker.cluster.restart_node(node.id)
        judge("c_rolling_restart", deployment, ids)


def test_d_exactly_once_worker_sigkilled_a_replacement_joins(tmp_path: Path) -> None:
    """(d) ``CERTFLOW_PROCESSING_GUARANTEE=exactly_once``: three workers, one SIGKILLed
    mid-stream (inside its transactions), a replacement started. What a read_committed
    consumer reads is each certificate exactly once."""
    with three_nodes(tmp_path, workers=3, CERTFLOW_PROCESSING_GUARANTEE="exactly_once") as (_, deployment, ids):
        wait_for_certificates(deployment, 300, timeout=120, committed_only=True)
        victim = deployment.workers[1]
        victim.kill()
        deployment.start_worker()
        judge("d_exactly_once_worker_sigkilled", deployment, ids, killed=(victim,), committed_only=True)


def test_e_broker_paused_past_the_session_timeout(tmp_path: Path) -> None:
    """(e) The node leading most partitions SIGSTOPped for longer than the consumer
    session timeout and the broker's own session with the controllers, then SIGCONTed:
    its leaderships move away, the group rebalances, it comes back as a follower."""
    with three_nodes(tmp_path, workers=2) as (broker, deployment, ids):
        assert broker.cluster is not None
        wait_for_certificates(deployment, 300, timeout=120)
        victim = broker.cluster.busiest_leader(flow_topics(deployment))
        broker.cluster.pause_node(victim)
        try:
            time.sleep(20)  # > the workers' 6 s session and Kafka's 9 s broker session
        finally:
            broker.cluster.resume_node(victim)
        judge("e_broker_paused", deployment, ids, paused_node=victim, paused_seconds=20)


def test_workers_reconnect_after_a_broker_restart_and_finish(tmp_path: Path) -> None:
    """The whole (one-node) broker stopped and started again mid-run (its data kept):
    workers reconnect and every eligible learner gets exactly one certificate."""
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
        judge("broker_restart_kafka", deployment, ids, timeout=180)
    finally:
        deployment.stop()
        broker.stop()
