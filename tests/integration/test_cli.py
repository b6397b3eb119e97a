"""The operator's commands against a real broker: broker, topics, send, tail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from certflow.broker import free_port
from certflow.kafka import ensure_topics
from certflow.local import LocalBroker, LocalProcess
from certflow.topics import TopicNames

pytestmark = pytest.mark.integration


def certflow(*args: str, env: dict[str, str], stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "certflow", *args],
        env={**os.environ, **env}, input=stdin, capture_output=True, timeout=120,
    )


@pytest.fixture
def env(broker: LocalBroker) -> dict[str, str]:
    return {
        "CERTFLOW_BROKER": broker.url,
        "CERTFLOW_TOPIC_PREFIX": f"cli{uuid.uuid4().hex[:8]}",
        "CERTFLOW_PARTITIONS": "3",
    }


def test_broker_runs_kafka_in_the_foreground_on_loopback_until_stopped(tmp_path: Path) -> None:
    """`certflow broker` (Apache Kafka, one KRaft node): listens on loopback only,
    describes itself in cluster.json with the JVM's pid, and SIGTERM stops the JVM too."""
    port = free_port()
    data = tmp_path / "data"
    process = LocalProcess(
        [sys.executable, "-m", "certflow", "broker", "--port", str(port), "--data-dir", str(data)],
        log_path=tmp_path / "broker.log",
    )
    process.start()
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not (data / "cluster.json").exists():
            assert process.alive(), process.log_tail()
            assert time.monotonic() < deadline, process.log_tail()
            time.sleep(0.2)
        cluster = json.loads((data / "cluster.json").read_text())
        assert cluster["bootstrap"] == f"127.0.0.1:{port}"
        [node] = cluster["nodes"]
        assert node["id"] == 1 and node["port"] == port and node["role"] == "broker,controller"
        pids = [node["pid"]]
        assert "kafka.Kafka" in Path(f"/proc/{node['pid']}/cmdline").read_bytes().decode()
        for listening_port in (port, node["controllerPort"]):
            listening = subprocess.run(
                ["ss", "-ltnH", f"sport = :{listening_port}"], capture_output=True, text=True,
            ).stdout
            assert f"127.0.0.1:{listening_port}" in listening and "*:" + str(listening_port) not in listening
    finally:
        assert process.stop(grace=30) is not None
    assert not process.alive()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"JVM {pid} outlived certflow broker"


def test_topics_creates_every_topic_once_with_its_partitions(env: dict[str, str]) -> None:
    first = certflow("topics", env=env)
    second = certflow("topics", env=env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    names = TopicNames(env["CERTFLOW_TOPIC_PREFIX"]).all()
    for name in names:
        assert f"created  {name} (3 partitions, 1 replicas, min.insync.replicas 1)" in first.stderr.decode()
        assert f"exists   {name} (3 partitions)" in second.stderr.decode()


def test_send_then_tail_round_trips_files_and_stdin(env: dict[str, str], broker: LocalBroker, tmp_path: Path) -> None:
    topic = f"{env['CERTFLOW_TOPIC_PREFIX']}.roundtrip"
    import asyncio

    asyncio.run(ensure_topics(broker.url, [topic], partitions=1))
    document = tmp_path / "one.json"
    document.write_text(json.dumps({"a": {"b": [1, 2]}}, indent=2))
    lines = tmp_path / "lines.jsonl"
    lines.write_text('{"n": 1}\n\n{"n": 2}\n')

    sent_files = certflow("send", topic, str(document), str(lines), env=env)
    sent_stdin = certflow("send", topic, env=env, stdin=b'{"n": 3}\n')
    assert sent_files.returncode == 0 and "sent 3 event(s)" in sent_files.stderr.decode()
    assert sent_stdin.returncode == 0 and "sent 1 event(s)" in sent_stdin.stderr.decode()

    tailed = certflow("tail", topic, "--count", "4", "--timeout", "10", env=env)
    assert tailed.returncode == 0, tailed.stderr
    events = [json.loads(line) for line in tailed.stdout.decode().splitlines()]
    assert events == [{"a": {"b": [1, 2]}}, {"n": 1}, {"n": 2}, {"n": 3}]

    with_meta = certflow("tail", topic, "--count", "1", "--meta", env=env)
    first = json.loads(with_meta.stdout)
    assert (first["topic"], first["partition"], first["offset"]) == (topic, 0, 0)
