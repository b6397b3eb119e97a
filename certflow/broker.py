"""Local Kafka-protocol brokers for development, demos, tests and the benchmark.

Two engines:

* ``kafka`` (the default): Apache Kafka itself, in KRaft mode, one JVM per node, each
  node both broker and controller. Its jars come from Maven Central through Maven
  (the ``pom.xml`` in ``certflow/kafka_dist``) into a cache outside the repository,
  ``~/.cache/certflow/kafka-<version>/libs`` (``make kafka`` fetches them ahead of
  time; the first start does it too). One node or a cluster of three.
* ``noida`` (``noida-db`` from PyPI): one process, no Java needed; for a machine
  without a JRE. It has known defects (a group whose member was SIGKILLed is never
  rebalanced, acknowledged writes can be lost across its restart, fetches are never
  held), so nothing but a smoke test runs on it.

Both only ever listen on loopback here: they have no authentication.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
ENGINES = ("kafka", "noida")
DEFAULT_ENGINE = "kafka"

#: The Apache Kafka release the ``kafka`` engine runs (``CERTFLOW_KAFKA_VERSION`` overrides).
KAFKA_VERSION = "4.1.1"
#: The pom naming the jars the broker needs; Maven resolves the rest.
POM = Path(__file__).parent / "kafka_dist" / "pom.xml"
#: JVM heap of each node: measured, a test node stays under 300 MB resident.
DEFAULT_HEAP = ("128m", "512m")
#: Main classes: the broker, and the storage formatter (``kafka-storage.sh`` in 4.x).
KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


# --- noida-db ----------------------------------------------------------------------------


def noida_executable() -> str:
    """The ``noida-db`` launcher installed beside this Python, else on ``PATH``."""
    beside = Path(sys.executable).parent / "noida-db"
    if beside.exists():
        return str(beside)
    found = shutil.which("noida-db")
    if found is None:
        raise FileNotFoundError("noida-db is not installed (pip install noida-db)")
    return found


def noida_command(*, port: int, data_dir: Path) -> list[str]:
    """The command line that runs noida-db in the foreground on loopback."""
    return [
        noida_executable(), "start", "--only", "kafka", "--host", LOOPBACK,
        "--kafka-port", str(port), "--data-dir", str(data_dir),
    ]


# --- Apache Kafka: fetching it -----------------------------------------------------------


def kafka_version() -> str:
    return os.environ.get("CERTFLOW_KAFKA_VERSION") or KAFKA_VERSION


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "certflow"


def kafka_libs(version: str | None = None) -> Path:
    """Where the jars of Kafka ``version`` are kept (fetched or not)."""
    return cache_dir() / f"kafka-{version or kafka_version()}" / "libs"


def fetch_kafka(version: str | None = None, *, quiet: bool = True) -> Path:
    """The directory of Kafka's jars, fetched with Maven first if they are not there yet.

    ``mvn dependency:copy-dependencies`` on ``certflow/kafka_dist/pom.xml`` copies
    ``org.apache.kafka:kafka_2.13`` and everything it needs at run time (plus a
    logging backend) into a staging directory, renamed into place once complete;
    a lock keeps two first starts from fetching at once.
    """
    version = version or kafka_version()
    libs = kafka_libs(version)
    done = libs / ".complete"
    if done.exists():
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    with (libs.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise FileNotFoundError(
                "Maven (mvn) fetches Apache Kafka's jars: install it (apt-get install maven, "
                "or `make kafka` as root), or use --engine noida"
            )
        staging = libs.with_name("libs.partial")
        shutil.rmtree(staging, ignore_errors=True)
        command = [
            mvn, "-B", *(["-q"] if quiet else []), "-f", str(POM), f"-Dkafka.version={version}",
            "dependency:copy-dependencies", f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        ]
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=quiet, text=True, check=False)
        if result.returncode != 0:
            detail = (result.stdout or "")[-3000:] if quiet else ""
            raise RuntimeError(f"Maven could not fetch Apache Kafka {version}:\n{detail}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        done.write_text(version + "\n")
    return libs


def java_executable() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise FileNotFoundError(
            "Apache Kafka needs Java 17 or newer: install a JRE (apt-get install "
            "default-jre-headless, or `make kafka` as root), or use --engine noida"
        )
    return found


def random_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as
    ``kafka-storage.sh random-uuid``; never starting with '-')."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


# --- Apache Kafka: a node and a cluster ---------------------------------------------------

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


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


class KafkaCluster:
    """``nodes`` Apache Kafka nodes in KRaft mode on loopback, every node broker and
    controller, the controller quorum made of all of them.

    Data of node ``i`` lives in ``data_dir/node-i`` (kept across :meth:`stop` and
    :meth:`start`, and across :meth:`restart_node`); ``data_dir/cluster.json`` says
    where each node listens and its JVM's pid. Settings fit a test machine: small
    heaps, no initial rebalance delay, internal topics replicated ``min(3, nodes)``
    times with ``min(2, nodes)`` in sync.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        nodes: int = 1,
        port: int | None = None,
        heap: tuple[str, str] | None = None,
        version: str | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster has at least one node")
        self.data_dir = Path(data_dir)
        self.version = version or kafka_version()
        self.heap = heap or _heap_from_env() or DEFAULT_HEAP
        self.data_dir.mkdir(parents=True, exist_ok=True)
        #: (node id, file) of the class-data archive one node records as it exits.
        self._recording: tuple[int, Path] | None = None
        first = port or free_port()
        ports = [first]
        taken = {first}
        for i in range(1, nodes):
            wanted = first + i
            ports.append(wanted if port and wanted not in taken and _port_free(wanted) else free_port(taken))
            taken.add(ports[-1])
        controller_ports = []
        for _ in range(nodes):
            controller_ports.append(free_port(taken))
            taken.add(controller_ports[-1])
        self.nodes = [
            KafkaNode(i + 1, ports[i], controller_ports[i], self.data_dir / f"node-{i + 1}") for i in range(nodes)
        ]

    # -- addresses ---------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{LOOPBACK}:{node.port}" for node in self.nodes)

    @property
    def url(self) -> str:
        """Faust's form: ``kafka://127.0.0.1:p1;kafka://127.0.0.1:p2``."""
        return ";".join(f"kafka://{LOOPBACK}:{node.port}" for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        return next(node for node in self.nodes if node.id == node_id)

    # -- configuration -----------------------------------------------------------------

    def _write_config(self, node: KafkaNode) -> None:
        n = len(self.nodes)
        replicas, in_sync = min(3, n), min(2, n)
        voters = ",".join(f"{other.id}@{LOOPBACK}:{other.controller_port}" for other in self.nodes)
        settings = {
            "process.roles": "broker,controller",
            "node.id": node.id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{LOOPBACK}:{node.port},CONTROLLER://{LOOPBACK}:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": node.log_dir,
            # certflow creates every topic it uses with its partition count
            # (certflow topics, Faust for its own): a topic made up by the broker on
            # first use would silently get another count.
            "auto.create.topics.enable": "false",
            "num.partitions": 1,
            "default.replication.factor": replicas,
            "min.insync.replicas": in_sync,
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": in_sync,
            "transaction.state.log.num.partitions": 10,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": in_sync,
            # Tests start groups all the time: no three-second wait for more members.
            "group.initial.rebalance.delay.ms": 0,
            # A killed follower leaves the in-sync set after 10 s instead of 30, so
            # acks=all writes resume sooner in fault tests.
            "replica.lag.time.max.ms": 10000,
            "unclean.leader.election.enable": "false",
            # Two cores: few threads.
            "num.network.threads": 2,
            "num.io.threads": 4,
            "background.threads": 4,
            "num.recovery.threads.per.data.dir": 1,
            "log.cleaner.threads": 1,
            "log.cleaner.dedupe.buffer.size": 8 * 1024 * 1024,
        }
        node.home.mkdir(parents=True, exist_ok=True)
        node.properties.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        (node.home / "log4j2.properties").write_text(LOG4J2)

    def _cluster_id(self) -> str:
        path = self.data_dir / "cluster.id"
        if not path.exists():
            path.write_text(random_cluster_id() + "\n")
        return path.read_text().strip()

    def _classpath(self) -> str:
        return str(fetch_kafka(self.version) / "*")

    def _java(
        self, node: KafkaNode, main: str, *args: str,
        heap: tuple[str, str] | None = None, options: Sequence[str] = (),
    ) -> list[str]:
        low, high = heap or self.heap
        return [
            java_executable(), *options, f"-Xms{low}", f"-Xmx{high}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j2.configurationFile={node.home / 'log4j2.properties'}",
            "-cp", self._classpath(), main, *args,
        ]

    def _format(self, nodes: Sequence[KafkaNode]) -> None:
        """Format the storage of every node that has none yet (all at once)."""
        cluster_id = self._cluster_id()
        pending = []
        for node in nodes:
            if (node.log_dir / "meta.properties").exists():
                continue
            command = self._java(
                node, STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(node.properties),
                "--ignore-formatted", heap=("64m", "256m"), options=self._shared_classes(),
            )
            pending.append((node, subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )))
        for node, process in pending:
            output, _ = process.communicate(timeout=120)
            if process.returncode != 0:
                raise RuntimeError(f"formatting node {node.id} failed:\n{output.decode(errors='replace')}")

    # -- running -----------------------------------------------------------------------

    def start(self, *, timeout: float = 120.0) -> None:
        """Start every node (formatting new ones first) and wait until all brokers
        are registered and unfenced; then write ``cluster.json``."""
        for node in self.nodes:
            self._write_config(node)
        self._format(self.nodes)
        for node in self.nodes:
            self._launch(node)
        self.wait_ready(timeout=timeout)
        self.write_cluster_json()

    def _class_archive(self) -> Path:
        """Where the JVM's class-data archive of the broker is kept: one per Kafka
        version and Java runtime, recorded by the first node ever started."""
        runtime = hashlib.sha1(os.path.realpath(java_executable()).encode()).hexdigest()[:10]
        return kafka_libs(self.version).parent / f"classes-{runtime}.jsa"

    def _sharing(self, node: KafkaNode) -> list[str]:
        """JVM options that share loaded classes (AppCDS): three JVMs start in about
        two thirds of the time on two cores. The first node without an archive
        records one as it exits (:meth:`_keep_archive`); a stale or foreign archive
        is ignored by the JVM, silently."""
        archive = self._class_archive()
        if archive.exists():
            return [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds*=off"]
        if self._recording is None:
            staging = archive.with_name(f"{archive.name}.{os.getpid()}-{node.id}.partial")
            self._recording = (node.id, staging)
            return [f"-XX:ArchiveClassesAtExit={staging}", "-Xlog:cds*=off"]
        return []

    def _shared_classes(self) -> list[str]:
        archive = self._class_archive()
        return [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds*=off"] if archive.exists() else []

    def _keep_archive(self, node: KafkaNode) -> None:
        if self._recording is None or self._recording[0] != node.id:
            return
        _, staging = self._recording
        self._recording = None
        exited_cleanly = node.process is not None and (node.process.returncode or 0) >= 0
        if exited_cleanly and staging.exists() and staging.stat().st_size:
            staging.replace(self._class_archive())
        else:
            staging.unlink(missing_ok=True)

    def _launch(self, node: KafkaNode) -> None:
        log = node.log_path.open("ab")
        try:
            node.process = subprocess.Popen(
                self._java(node, KAFKA_MAIN, str(node.properties), options=self._sharing(node)),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                # The JVM is started before any thread of ours could hold a lock the
                # child needs: the preexec_fn only calls prctl.
                start_new_session=True, preexec_fn=_die_with_parent(),  # noqa: PLW1509
            )
        finally:
            log.close()

    def wait_ready(self, *, timeout: float = 120.0, nodes: Sequence[KafkaNode] | None = None) -> None:
        """Until ``nodes`` (all) listen and the cluster lists every live node as a broker."""
        waiting = list(nodes or self.nodes)
        deadline = time.monotonic() + timeout
        for node in waiting:
            while not _accepts(node.port):
                if not node.alive():
                    raise RuntimeError(f"Kafka node {node.id} exited:\n{node.log_tail()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Kafka node {node.id} not listening after {timeout}s:\n{node.log_tail()}")
                time.sleep(0.1)
        live = {node.id for node in self.nodes if node.alive()}
        remaining = max(1.0, deadline - time.monotonic())
        _run_async(wait_for_brokers(
            ",".join(f"{LOOPBACK}:{n.port}" for n in waiting), live, timeout=remaining,
        ))

    def write_cluster_json(self) -> Path:
        path = self.data_dir / "cluster.json"
        description = {
            "engine": "kafka",
            "version": self.version,
            "bootstrap": self.bootstrap,
            "nodes": [node.describe() for node in self.nodes],
        }
        staging = path.with_suffix(".json.tmp")
        staging.write_text(json.dumps(description, indent=2) + "\n")
        staging.replace(path)
        return path

    def stop(self, *, grace: float = 20.0) -> None:
        """SIGTERM every node at once, SIGKILL whatever is left after ``grace`` seconds."""
        for node in self.nodes:
            node.signal(signal.SIGCONT)  # a paused node cannot stop
            node.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.signal(signal.SIGKILL)
                node.process.wait(10)
            self._keep_archive(node)

    def alive(self) -> bool:
        return any(node.alive() for node in self.nodes)

    # -- faults (for tests) ------------------------------------------------------------

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node: a crash, its data left as it was."""
        node = self.node(node_id)
        node.signal(signal.SIGKILL)
        if node.process is not None:
            node.process.wait(10)
        self._keep_archive(node)

    def pause_node(self, node_id: int) -> None:
        """SIGSTOP one node: it stops answering without closing its connections."""
        self.node(node_id).signal(signal.SIGSTOP)

    def resume_node(self, node_id: int) -> None:
        self.node(node_id).signal(signal.SIGCONT)

    def stop_node(self, node_id: int, *, grace: float = 20.0) -> None:
        node = self.node(node_id)
        node.signal(signal.SIGCONT)
        node.signal(signal.SIGTERM)
        if node.process is not None:
            try:
                node.process.wait(grace)
            except subprocess.TimeoutExpired:
                node.signal(signal.SIGKILL)
                node.process.wait(10)
            self._keep_archive(node)

    def restart_node(self, node_id: int, *, timeout: float = 120.0) -> None:
        """Start a stopped or killed node again on its ports, with its data."""
        node = self.node(node_id)
        if node.alive():
            self.stop_node(node_id)
        self._launch(node)
        self.wait_ready(timeout=timeout, nodes=[node])
        self.write_cluster_json()

    def leader_of(self, topic: str, partition: int = 0) -> int:
        """The id of the node leading ``topic``'s ``partition`` right now."""
        return _run_async(_leader_of(self.bootstrap, topic, partition))

    def partition_leaders(self, topics: Sequence[str]) -> dict[int, int]:
        """How many partitions of ``topics`` each node leads right now (node id → count,
        every node listed, a node leading none with 0)."""
        counts = dict.fromkeys((node.id for node in self.nodes), 0)
        for leader in _run_async(_leaders(self.bootstrap, list(topics))):
            counts[leader] = counts.get(leader, 0) + 1
        return counts

    def busiest_leader(self, topics: Sequence[str]) -> int:
        """The node leading the most partitions of ``topics`` (the lowest id on a tie)."""
        counts = self.partition_leaders(topics)
        return max(sorted(counts), key=lambda node_id: counts[node_id])


def _die_with_parent() -> Callable[[], None] | None:
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


def _heap_from_env() -> tuple[str, str] | None:
    """``CERTFLOW_KAFKA_HEAP=128m:512m`` (initial:maximum), or one size for both."""
    value = os.environ.get("CERTFLOW_KAFKA_HEAP")
    if not value:
        return None
    low, _, high = value.partition(":")
    return low, high or low


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def _run_async(coroutine: Coroutine[Any, Any, T]) -> T:
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


async def _leader_of(bootstrap: str, topic: str, partition: int) -> int:
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


async def _leaders(bootstrap: str, topics: list[str]) -> list[int]:
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


# --- shared ------------------------------------------------------------------------------


def wait_until_listening(port: int, *, host: str = LOOPBACK, timeout: float = 30.0) -> None:
    """Block until something accepts TCP connections on ``host:port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.1)


def free_port(avoid: set[int] | None = None) -> int:
    """A TCP port on loopback that nothing listens on right now (and not in ``avoid``)."""
    while True:
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            port = int(probe.getsockname()[1])
        if not avoid or port not in avoid:
            return port
