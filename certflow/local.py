"""A broker and workers as local processes: what the demo, the tests and the benchmark run.

Each process is started with its own log file and stopped by its PID (SIGTERM, then
SIGKILL after a grace period), so nothing is left behind and nothing else on the
machine is touched. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import orjson

from certflow.broker import (
    DEFAULT_ENGINE,
    ENGINES,
    free_port,
    noida_command,
    wait_until_listening,
)
from certflow.kafka import wait_until_consumed
from certflow.kafka_client import KafkaConnection
from certflow.kafka_cluster import KafkaCluster
from certflow.kafka_node import KafkaNode
from certflow.topics import TopicNames


class LocalProcess:
    """A child process with a log file, stopped by PID."""

    def __init__(self, command: list[str], *, log_path: Path, env: Mapping[str, str] | None = None) -> None:
        self.command = command
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(self.env or {})},
            start_new_session=True,
        )
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        """SIGTERM without waiting: stop several processes at once, then :meth:`stop` each.

        The signal goes to the process group (each child starts its own), so a
        launcher that runs the real program as its child (noida-db does) stops too.
        """
        self._signal(signal.SIGTERM)

    def _signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def stop(self, *, grace: float = 15.0) -> int | None:
        """SIGTERM, wait ``grace`` seconds, then SIGKILL. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(5)
        # Anything the process left in its group (a launcher's child) goes with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, to the whole process group: a crash, for fault tests."""
        if self.process is not None and self.process.poll() is None:
            self._signal(signal.SIGKILL)
            self.process.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


class LocalBroker:
    """A local broker on loopback: Apache Kafka (``engine="kafka"``, the default) with
    ``nodes`` KRaft nodes, or noida-db (``engine="noida"``, one process, no Java).

    :meth:`stop` and :meth:`start` again keep the data; with Kafka, :attr:`cluster`
    reaches single nodes (kill, pause, restart one, find a partition's leader).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        engine: str | None = None,
        nodes: int = 1,
    ) -> None:
        self.engine = engine or os.environ.get("CERTFLOW_BROKER_ENGINE") or DEFAULT_ENGINE
        if self.engine not in ENGINES:
            raise ValueError(f"unknown broker engine {self.engine!r}; one of {ENGINES}")
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.cluster: KafkaCluster | None = None
        self.process: LocalProcess | None = None
        if self.engine == "kafka":
            self.cluster = KafkaCluster(data_dir, nodes=nodes, port=port)
            self.port = self.cluster.nodes[0].port
        else:
            if nodes != 1:
                raise ValueError("noida-db runs a single broker")
            self.port = port or free_port()
            self.process = LocalProcess(
                noida_command(port=self.port, data_dir=data_dir), log_path=data_dir / "broker.log",
            )

    @property
    def url(self) -> str:
        """Faust's form of the bootstrap list (``kafka://host:port;kafka://…``)."""
        if self.cluster is not None:
            return self.cluster.url
        return f"kafka://127.0.0.1:{self.port}"

    def client_settings(self) -> dict[str, str]:
        """The ``CERTFLOW_*`` settings of a worker on this broker: its address, and
        PLAINTEXT (it has no authentication), overriding any Kafka security settings
        a worker would otherwise inherit from the environment, which are meant for a
        real cluster."""
        return {"CERTFLOW_BROKER": self.url, "CERTFLOW_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
                "CERTFLOW_KAFKA_SASL_USERNAME": "", "CERTFLOW_KAFKA_SASL_PASSWORD": "",
                "CERTFLOW_KAFKA_SSL_CAFILE": "", "CERTFLOW_KAFKA_SSL_CERTFILE": "",
                "CERTFLOW_KAFKA_SSL_KEYFILE": ""}

    @property
    def nodes(self) -> list[KafkaNode]:
        return self.cluster.nodes if self.cluster is not None else []

    @property
    def pid(self) -> int:
        """The first node's pid (the JVM's, with Kafka)."""
        return self.pids[0]

    @property
    def pids(self) -> list[int]:
        if self.cluster is not None:
            return [node.pid for node in self.cluster.nodes if node.pid is not None]
        return [self.process.pid] if self.process is not None and self.process.process is not None else []

    def kill_leader(self, topic: str, partition: int = 0) -> int:
        """SIGKILL the Kafka node leading ``topic``'s ``partition``; returns its id
        (``cluster.restart_node(id)`` starts it again with its data)."""
        assert self.cluster is not None, "only a Kafka cluster has nodes"
        leader = self.cluster.leader_of(topic, partition)
        self.cluster.kill_node(leader)
        return leader

    def kill_busiest_leader(self, topics: Sequence[str]) -> int:
        """SIGKILL the Kafka node leading the most partitions of ``topics``; returns its id."""
        assert self.cluster is not None, "only a Kafka cluster has nodes"
        leader = self.cluster.busiest_leader(topics)
        self.cluster.kill_node(leader)
        return leader

    def start(self) -> None:
        if self.cluster is not None:
            try:
                self.cluster.start()
            except BaseException:
                self.cluster.stop(grace=5)
                raise
        else:
            assert self.process is not None
            self.process.start()
            wait_until_listening(self.port)

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        elif self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        """SIGKILL every node."""
        if self.cluster is not None:
            for node in self.cluster.nodes:
                self.cluster.kill_node(node.id)
        elif self.process is not None:
            self.process.kill()

    def alive(self) -> bool:
        if self.cluster is not None:
            return self.cluster.alive()
        return self.process is not None and self.process.alive()

    def log_tail(self, lines: int = 40) -> str:
        if self.cluster is not None:
            return "\n".join(f"--- node {n.id}\n{n.log_tail(lines)}" for n in self.cluster.nodes)
        return self.process.log_tail(lines) if self.process is not None else ""

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: The admin token of local workers started without one: random, and one per
#: process, so the workers a test, the demo or the bench starts share it (a request
#: one forwards to another carries it) and their ``get`` sends it.
LOCAL_ADMIN_TOKEN = secrets.token_urlsafe(32)


def shared_signing_keys(path: Path) -> dict[str, str]:
    """The settings that give workers the key ring in ``path``, made (one fresh key)
    if it does not exist yet: call it once per deployment and hand the result to
    every worker of it, so they all sign with the same key."""
    from certflow.credentials.keys import KeyRing, SigningKey

    if not path.exists():
        KeyRing((SigningKey.generate(),)).save(path)
    return {"CERTFLOW_SIGNING_KEYS_FILE": str(path)}


class LocalWorker(LocalProcess):
    """``certflow worker`` with the given ``CERTFLOW_*`` settings.

    The settings must name the deployment's signing keys (``CERTFLOW_SIGNING_KEYS_FILE``
    or ``CERTFLOW_SIGNING_KEYS``, e.g. from :func:`shared_signing_keys`), the same for
    every worker of one deployment; ``keys=False`` is only for testing the refusal
    of a worker without them.
    """

    def __init__(
        self, settings: Mapping[str, str], *, workdir: Path, name: str = "worker", keys: bool = True
    ) -> None:
        if keys and not (settings.get("CERTFLOW_SIGNING_KEYS_FILE") or settings.get("CERTFLOW_SIGNING_KEYS")):
            raise ValueError(
                "a worker needs the deployment's signing keys: pass "
                "CERTFLOW_SIGNING_KEYS_FILE (see shared_signing_keys) or CERTFLOW_SIGNING_KEYS"
            )
        self.web_port = int(settings.get("CERTFLOW_WEB_PORT") or free_port())
        self.admin_token = settings.get("CERTFLOW_ADMIN_TOKEN", LOCAL_ADMIN_TOKEN)
        env = {
            "CERTFLOW_DATA_DIR": str(workdir / name / "data"),
            **settings,
            "CERTFLOW_ADMIN_TOKEN": self.admin_token,
            "CERTFLOW_WEB_PORT": str(self.web_port),
            "PYTHONUNBUFFERED": "1",
        }
        super().__init__(
            [sys.executable, "-m", "certflow", "worker"],
            log_path=workdir / name / "worker.log",
            env=env,
        )

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def get(self, path: str, *, token: str | None = "") -> tuple[int, bytes]:
        """GET a path of the worker's web server: (status, body).

        Sent with the worker's admin token, or ``token`` if given; ``None``: none.
        """
        token = self.admin_token if token == "" else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(self.web_url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until ``/ready`` says the worker has partitions and recovered tables."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker exited:\n{self.log_tail()}")
            try:
                status, _ = self.get("/ready")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log_tail()}")

    def __enter__(self) -> LocalWorker:
        self.start()
        self.wait_ready()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def wait_for_reference(
    kafka: KafkaConnection | str,
    group_id: str,
    topics: TopicNames,
    workers: Sequence[LocalWorker],
    *,
    batches: int = 1,
    timeout: float = 120.0,
) -> None:
    """Until the workers' group has applied every learner-keyed reference record
    (committed, so in its tables) and every live worker knows ``batches`` batches."""
    asyncio.run(wait_until_consumed(
        kafka, group_id, [topics.learners, topics.enrolments, topics.scores], timeout=timeout,
    ))
    deadline = time.monotonic() + timeout
    while True:
        known = [orjson.loads(w.get("/stats")[1])["tables"]["batches"] for w in workers if w.alive()]
        if all(count >= batches for count in known):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"batches never reached every worker: {known}")
        time.sleep(0.2)
