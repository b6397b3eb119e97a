"""One Apache Kafka KRaft node of a local cluster, and the helpers that start it and
ask the cluster about it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: JVM heap of each node: measured, a test node stays under 300 MB resident.
DEFAULT_HEAP = ("128m", "512m")
#: Main classes: the broker, and the storage formatter (``kafka-storage.sh`` in 4.x).
KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


def random_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as
    ``kafka-storage.sh random-uuid``; never starting with '-')."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text



LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
"""


@dataclass
class KafkaNode:
    """One KRaft node (broker and controller) of a local cluster."""

    id: int
    port: int
    controller_port: int
    home: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_dir(self) -> Path:
        return self.home / "data"

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.home / "broker.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signum)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def describe(self) -> dict[str, object]:
        return {
            "id": self.id, "port": self.port, "controllerPort": self.controller_port, "pid": self.pid,
            "role": "broker,controller", "logDir": str(self.log_dir),
        }



def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when the process that
    started it dies, however it dies (SIGKILL included): no JVM outlives its
    ``certflow broker`` or test run. None where ``prctl`` is not to be had."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def set_parent_death_signal() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return set_parent_death_signal


def heap_from_env() -> tuple[str, str] | None:
    """``CERTFLOW_KAFKA_HEAP=128m:512m`` (initial:maximum), or one size for both."""
    value = os.environ.get("CERTFLOW_KAFKA_HEAP")
    if not value:
        return None
    low, _, high = value.partition(":")
    return low, high or low


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion from synchronous code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def wait_for_brokers(bootstrap: str, node_ids: set[int], *, timeout: float) -> None:
    """Until the cluster's metadata lists every node of ``node_ids`` as a live broker."""
    from aiokafka import AIOKafkaClient

    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while True:
        client = AIOKafkaClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=5000)
        try:
            await client.bootstrap()
            await client.force_metadata_update()
            seen = {broker.nodeId for broker in client.cluster.brokers()}
            if node_ids <= seen:
                return
        except Exception:  # noqa: BLE001 - still starting: ask again
            pass
        finally:
            await client.close()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Kafka brokers {sorted(node_ids)} not all up after {timeout:.0f}s (seen {sorted(seen)})"
            )
        await asyncio.sleep(0.2)


async def partition_leader(bootstrap: str, topic: str, partition: int) -> int:
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap.split(","))
    try:
        await client.bootstrap()
        for _ in range(50):
            await client.force_metadata_update()
            leader = client.cluster.leader_for_partition(_tp(topic, partition))
            if leader is not None and leader >= 0:
                return int(leader)
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{topic}[{partition}] has no leader")
    finally:
        await client.close()


async def partition_leaders(bootstrap: str, topics: list[str]) -> list[int]:
    """The leader of every partition of ``topics`` (one entry per partition with one)."""
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap.split(","))
    try:
        await client.bootstrap()
        await client.set_topics(topics)
        leaders: list[int] = []
        for topic in topics:
            for partition in sorted(client.cluster.partitions_for_topic(topic) or ()):
                leader = client.cluster.leader_for_partition(_tp(topic, partition))
                if leader is not None and leader >= 0:
                    leaders.append(int(leader))
        return leaders
    finally:
        await client.close()


def _tp(topic: str, partition: int) -> Any:
    from aiokafka import TopicPartition

    return TopicPartition(topic, partition)

