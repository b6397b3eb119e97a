"""A real broker and real worker processes for integration tests.

One Apache Kafka broker (a single KRaft node) serves the whole session; each test
module gets its own topic prefix and consumer group, so modules never see each
other's events. ``CERTFLOW_TEST_BROKERS=3`` runs the session on a three-node cluster.
Processes are started and stopped by PID and listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from certflow.broker import free_port
from certflow.kafka import collect_json, ensure_topics, produce
from certflow.local import LocalBroker, LocalProcess, LocalWorker, shared_signing_keys, wait_for_reference
from certflow.topics import TopicNames

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent.parent / "fixtures"
PARTITIONS = 4


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    nodes = int(os.environ.get("CERTFLOW_TEST_BROKERS", "1"))
    with LocalBroker(tmp_path_factory.mktemp("broker"), nodes=nodes) as running:
        yield running


@pytest.fixture(scope="session")
def template_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A plain HTTP server on loopback serving tests/fixtures/templates."""
    port = free_port()
    server = LocalProcess(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(FIXTURES / "templates")],
        log_path=tmp_path_factory.mktemp("http") / "http.log",
    )
    server.start()
    from certflow.broker import wait_until_listening

    wait_until_listening(port)
    yield f"http://127.0.0.1:{port}/"
    server.stop()


class Deployment:
    """One isolated certflow deployment on the shared broker: topics and workers."""

    def __init__(self, broker: LocalBroker, workdir: Path, settings: dict[str, str]) -> None:
        prefix = f"t{uuid.uuid4().hex[:8]}"
        self.broker = broker
        self.workdir = workdir
        self.topics = TopicNames(prefix)
        self.settings = {
            **broker.client_settings(),
            "CERTFLOW_APP_ID": f"certflow-{prefix}",
            "CERTFLOW_TOPIC_PREFIX": prefix,
            "CERTFLOW_PARTITIONS": str(PARTITIONS),
            # One key ring per deployment, shared by all its workers (a test may
            # bring its own file instead).
            **shared_signing_keys(workdir / "signing-keys.json"),
            **settings,
        }
        self.workers: list[LocalWorker] = []
        asyncio.run(ensure_topics(broker.url, self.topics.all(), partitions=PARTITIONS))

    def start_worker(self, **settings: str) -> LocalWorker:
        """One more worker; ``settings`` (``CERTFLOW_*``) apply to this one only."""
        worker = LocalWorker(
            {**self.settings, **settings}, workdir=self.workdir, name=f"worker{len(self.workers)}"
        )
        self.workers.append(worker)
        worker.start()
        worker.wait_ready()
        return worker

    def send(self, topic: str, events: list[bytes], *, key: bytes | None = None) -> None:
        self.send_keyed(topic, [(key, event) for event in events])

    def send_keyed(self, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
        asyncio.run(produce(self.broker.url, topic, records))

    def wait_for_reference(self, *, batches: int = 1, timeout: float = 120.0) -> None:
        """Until the workers have applied every reference record (see certflow.local)."""
        wait_for_reference(
            self.broker.url, self.settings["CERTFLOW_APP_ID"], self.topics, self.workers,
            batches=batches, timeout=timeout,
        )

    def collect(
        self,
        topic: str,
        count: int,
        where: Callable[[dict], bool] = lambda record: True,
        *,
        timeout: float = 60.0,
    ) -> list[dict]:
        """The first ``count`` JSON records of ``topic`` matching ``where`` (see collect_json)."""
        return asyncio.run(collect_json(self.broker.url, topic, count, where, timeout=timeout))

    def stop(self) -> None:
        # All at once: a worker stopping alone waits for the group to rebalance.
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.stop()
