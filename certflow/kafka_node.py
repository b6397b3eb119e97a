"""One Apache Kafka KRaft node of a local cluster, and the helpers that start it and
ask the cluster about it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from certflow.kafka_client import KafkaConnection

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


#: The cluster's own SASL user (inter-broker traffic, and its helpers' clients): a
#: super user, as the operator's is in a real cluster.
ADMIN_USER = "admin"
#: User names and passwords a SASL cluster accepts: they go into JAAS and SCRAM
#: settings verbatim, where quotes, commas and brackets would break them.
SASL_TOKEN = re.compile(r"[A-Za-z0-9._-]+")


def with_admin_user(users: Mapping[str, str]) -> dict[str, str]:
    """``users`` (checked) and :data:`ADMIN_USER` with a fresh random password."""
    if ADMIN_USER in users:
        raise ValueError(f"{ADMIN_USER!r} is the cluster's own super user")
    for user, password in users.items():
        if not SASL_TOKEN.fullmatch(user) or not SASL_TOKEN.fullmatch(password):
            raise ValueError(f"SASL user {user!r}: names and passwords are letters, digits, '.', '_', '-'")
    return {**users, ADMIN_USER: secrets.token_urlsafe(18)}


def sasl_listener_config(
    listeners: Sequence[str], users: Mapping[str, str], *, keystore: Path | None = None,
) -> dict[str, object]:
    """``server.properties`` entries of SASL client listeners (their names: SASL_PLAINTEXT,
    SASL_SSL) that accept PLAIN and SCRAM-SHA-512 logins of ``users`` (SCRAM's are added
    when the storage is formatted: :func:`scram_format_arguments`), with Kafka's
    StandardAuthorizer: only :data:`ADMIN_USER` and the controller listener's anonymous
    principal are super users, anybody else needs ACLs. A SASL_SSL listener presents
    the key and certificate chain of ``keystore`` (one PEM file)."""
    plain_users = " ".join(f'user_{user}="{password}"' for user, password in users.items())
    config: dict[str, object] = {
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN_USER};User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "false",
    }
    for listener in listeners:
        prefix = f"listener.name.{listener.lower()}"
        # username/password: what this broker logs in to the others with.
        config[f"{prefix}.plain.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{ADMIN_USER}" password="{users[ADMIN_USER]}" {plain_users};'
        )
        config[f"{prefix}.scram-sha-512.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        )
        if listener.endswith("SSL"):
            if keystore is None:
                raise ValueError(f"listener {listener} needs a keystore")
            config[f"{prefix}.ssl.keystore.type"] = "PEM"
            config[f"{prefix}.ssl.keystore.location"] = keystore
    return config


def scram_format_arguments(users: Mapping[str, str]) -> list[str]:
    """``kafka-storage format`` arguments adding each user's SCRAM-SHA-512 credentials
    (KRaft keeps them in the cluster metadata, written when formatting: a node started
    again on its data keeps the SCRAM passwords of its first start, while PLAIN logins
    are those of its ``server.properties``, rewritten at every start)."""
    arguments: list[str] = []
    for user, password in users.items():
        arguments += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
    return arguments


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
    #: The SASL_SSL listener's port, on a cluster with TLS.
    tls_port: int | None = None

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
        described: dict[str, object] = {
            "id": self.id, "port": self.port, "controllerPort": self.controller_port, "pid": self.pid,
            "role": "broker,controller", "logDir": str(self.log_dir),
        }
        if self.tls_port is not None:
            described["tlsPort"] = self.tls_port
        return described



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


async def wait_for_brokers(kafka: KafkaConnection | str, node_ids: set[int], *, timeout: float) -> None:
    """Until the cluster's metadata lists every node of ``node_ids`` as a live broker."""
    from certflow.kafka_client import cluster_client

    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while True:
        client = cluster_client(kafka, request_timeout_ms=5000)
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


async def partition_leader(kafka: KafkaConnection | str, topic: str, partition: int) -> int:
    from certflow.kafka_client import cluster_client

    client = cluster_client(kafka)
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


async def partition_leaders(kafka: KafkaConnection | str, topics: list[str]) -> list[int]:
    """The leader of every partition of ``topics`` (one entry per partition with one)."""
    from certflow.kafka_client import cluster_client

    client = cluster_client(kafka)
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

