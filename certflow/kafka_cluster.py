"""A local Apache Kafka cluster in KRaft mode: its nodes' configuration, storage,
JVMs, ``cluster.json``, and the faults tests inflict on it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from certflow.broker import LOOPBACK, accepts, free_port, port_free
from certflow.kafka_client import KafkaConnection
from certflow.kafka_dist import fetch_kafka, java_executable, kafka_libs, kafka_version
from certflow.kafka_node import (
    ADMIN_USER,
    DEFAULT_HEAP,
    KAFKA_MAIN,
    LOG4J2,
    STORAGE_TOOL,
    KafkaNode,
    die_with_parent,
    heap_from_env,
    partition_leader,
    partition_leaders,
    random_cluster_id,
    run_async,
    sasl_listener_config,
    scram_format_arguments,
    wait_for_brokers,
    with_admin_user,
)


def _free_ports(count: int, taken: set[int]) -> list[int]:
    """``count`` free ports on loopback, none of ``taken`` (to which they are added)."""
    ports = []
    for _ in range(count):
        ports.append(free_port(taken))
        taken.add(ports[-1])
    return ports


class KafkaCluster:
    """``nodes`` Apache Kafka nodes in KRaft mode on loopback, every node broker and
    controller, the controller quorum made of all of them.

    Data of node ``i`` lives in ``data_dir/node-i`` (kept across :meth:`stop` and
    :meth:`start`, and across :meth:`restart_node`); ``data_dir/cluster.json`` says
    where each node listens and its JVM's pid. Settings fit a test machine: small
    heaps, no initial rebalance delay, internal topics replicated ``min(3, nodes)``
    times with ``min(2, nodes)`` in sync.

    ``sasl_users`` (user → password) secure it as production clusters are, to test
    certflow's client security: the client listener is SASL_PLAINTEXT with PLAIN and
    SCRAM-SHA-512 logins, and Kafka's StandardAuthorizer allows nothing without an ACL
    but to the super user :data:`ADMIN_USER` (:attr:`connection`); the controller
    listener stays PLAINTEXT (see :func:`~certflow.kafka_node.sasl_listener_config`).
    ``tls_keystore`` (PEM: the brokers' key and certificate chain) adds a SASL_SSL
    listener on other ports (:attr:`tls_url`), as Strimzi's TLS listener.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        nodes: int = 1,
        port: int | None = None,
        heap: tuple[str, str] | None = None,
        version: str | None = None,
        sasl_users: Mapping[str, str] | None = None,
        tls_keystore: Path | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster has at least one node")
        if tls_keystore is not None and not sasl_users:
            raise ValueError("a TLS listener takes SASL logins: give sasl_users too")
        self.tls_keystore = tls_keystore
        #: user → password, the cluster's own super user included; None: no SASL.
        self.sasl_users = with_admin_user(sasl_users) if sasl_users else None
        self.data_dir = Path(data_dir)
        self.version = version or kafka_version()
        self.heap = heap or heap_from_env() or DEFAULT_HEAP
        self.data_dir.mkdir(parents=True, exist_ok=True)
        #: (node id, file) of the class-data archive one node records as it exits.
        self._recording: tuple[int, Path] | None = None
        first = port or free_port()
        ports = [first]
        taken = {first}
        for i in range(1, nodes):
            wanted = first + i
            ports.append(wanted if port and wanted not in taken and port_free(wanted) else free_port(taken))
            taken.add(ports[-1])
        controller_ports = _free_ports(nodes, taken)
        tls_ports: list[int | None] = [*_free_ports(nodes, taken)] if tls_keystore is not None else [None] * nodes
        self.nodes = [
            KafkaNode(i + 1, ports[i], controller_ports[i], self.data_dir / f"node-{i + 1}", tls_port=tls_ports[i])
            for i in range(nodes)
        ]

    # -- addresses ---------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{LOOPBACK}:{node.port}" for node in self.nodes)

    @property
    def url(self) -> str:
        """Faust's form: ``kafka://127.0.0.1:p1;kafka://127.0.0.1:p2``."""
        return ";".join(f"kafka://{LOOPBACK}:{node.port}" for node in self.nodes)

    @property
    def tls_url(self) -> str:
        """The SASL_SSL listeners, in Faust's form (a cluster with ``tls_keystore`` only)."""
        if self.tls_keystore is None:
            raise ValueError("the cluster has no TLS listener")
        return ";".join(f"kafka://{LOOPBACK}:{node.tls_port}" for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        return next(node for node in self.nodes if node.id == node_id)

    @property
    def listener(self) -> str:
        """The client listener's name and security protocol."""
        return "SASL_PLAINTEXT" if self.sasl_users is not None else "PLAINTEXT"

    @property
    def connection(self) -> KafkaConnection:
        """How the cluster's helpers reach it: PLAINTEXT, or with SASL as :data:`ADMIN_USER`."""
        return self._connection(self.url)

    def _connection(self, url: str) -> KafkaConnection:
        if self.sasl_users is None:
            return KafkaConnection(url)
        return KafkaConnection(
            url, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
            sasl_username=ADMIN_USER, sasl_password=self.sasl_users[ADMIN_USER],
        )

    # -- configuration -----------------------------------------------------------------

    def _write_config(self, node: KafkaNode) -> None:
        n = len(self.nodes)
        replicas, in_sync = min(3, n), min(2, n)
        voters = ",".join(f"{other.id}@{LOOPBACK}:{other.controller_port}" for other in self.nodes)
        listener = self.listener
        clients = [(listener, node.port)]
        if node.tls_port is not None:
            clients.append(("SASL_SSL", node.tls_port))
        advertised = ",".join(f"{name}://{LOOPBACK}:{port}" for name, port in clients)
        settings: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": node.id,
            "controller.quorum.voters": voters,
            "listeners": f"{advertised},CONTROLLER://{LOOPBACK}:{node.controller_port}",
            "advertised.listeners": advertised,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": listener,
            "listener.security.protocol.map": ",".join(f"{name}:{name}" for name, _ in clients)
            + ",CONTROLLER:PLAINTEXT",
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
        if self.sasl_users is not None:
            settings.update(sasl_listener_config(
                [name for name, _ in clients], self.sasl_users, keystore=self.tls_keystore,
            ))
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
                "--ignore-formatted", *scram_format_arguments(self.sasl_users or {}), heap=("64m", "256m"),
                options=self._shared_classes(),
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
                start_new_session=True, preexec_fn=die_with_parent(),  # noqa: PLW1509 - see above: prctl only
            )
        finally:
            log.close()

    def wait_ready(self, *, timeout: float = 120.0, nodes: Sequence[KafkaNode] | None = None) -> None:
        """Until ``nodes`` (all) listen and the cluster lists every live node as a broker."""
        waiting = list(nodes or self.nodes)
        deadline = time.monotonic() + timeout
        for node in waiting:
            while not accepts(node.port):
                if not node.alive():
                    raise RuntimeError(f"Kafka node {node.id} exited:\n{node.log_tail()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Kafka node {node.id} not listening after {timeout}s:\n{node.log_tail()}")
                time.sleep(0.1)
        live = {node.id for node in self.nodes if node.alive()}
        remaining = max(1.0, deadline - time.monotonic())
        run_async(wait_for_brokers(
            self._connection(",".join(f"{LOOPBACK}:{n.port}" for n in waiting)), live, timeout=remaining,
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
        return run_async(partition_leader(self.connection, topic, partition))

    def partition_leaders(self, topics: Sequence[str]) -> dict[int, int]:
        """How many partitions of ``topics`` each node leads right now (node id → count,
        every node listed, a node leading none with 0)."""
        counts = dict.fromkeys((node.id for node in self.nodes), 0)
        for leader in run_async(partition_leaders(self.connection, list(topics))):
            counts[leader] = counts.get(leader, 0) + 1
        return counts

    def busiest_leader(self, topics: Sequence[str]) -> int:
        """The node leading the most partitions of ``topics`` (the lowest id on a tie)."""
        counts = self.partition_leaders(topics)
        return max(sorted(counts), key=lambda node_id: counts[node_id])

