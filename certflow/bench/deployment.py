"""End to end on a local Apache Kafka: load learners, issue, measure, restart.

One :class:`BenchDeployment` is a fresh one-node KRaft broker with certflow's topics
and a key ring, and the workers started on it. :meth:`BenchDeployment.issue_all`
loads N learners' reference data (a batch, profiles, enrolments: generated), sends
one issue request for all of them and times every certificate's arrival on
``certificate.issued``; worker CPU and memory come from /proc.
:meth:`BenchDeployment.restart_times` then stops the worker and measures what
operators plan around: how long a worker restarted on its own volume takes to be
ready, and how long one with an empty volume takes (every table partition replayed
from its changelog: what taking over a moved partition costs).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certflow.bench.ceiling import BATCH, COURSE
from certflow.bench.measure import directory_bytes, peak_rss_mb, percentile, total_cpu_seconds
from certflow.kafka import ensure_topics, produce, read_topic, record_counts, wait_until_consumed
from certflow.local import LocalBroker, LocalWorker, shared_signing_keys, wait_for_reference
from certflow.settings import Settings
from certflow.synthetic import issue_requests, load_batch
from certflow.topics import TopicNames

#: Learners loaded at a time: reference data arrives in steps in production, not as
#: a backlog of a million records at once.
LOAD_STEP = 50_000
#: Learners named by one issue request.
ISSUE_CHUNK = 20_000
#: How long the bench waits for one stage (a million learners take a while).
STAGE_TIMEOUT = 6 * 3600.0


@contextmanager
def sampled(pid: int, flame_graph: Path | None) -> Iterator[None]:
    """py-spy sampling ``pid`` (100 Hz, without stopping it) into the SVG flame graph
    ``flame_graph`` for as long as the block runs; nothing without a path. A ``.txt``
    path gets py-spy's collapsed stacks instead, one line per stack with its sample
    count, which add up by function where a picture does not."""
    if flame_graph is None:
        yield
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    flame_graph.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--rate", "100", "--nonblocking", "--output", str(flame_graph),
         *(["--format", "raw"] if flame_graph.suffix == ".txt" else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)  # py-spy attaches
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes the graph on SIGINT
        spy.wait(timeout=60)


@dataclass
class BenchDeployment:
    """A broker with certflow's topics, and the workers of one measurement."""

    workdir: Path
    broker: LocalBroker
    topics: TopicNames
    settings: dict[str, str]
    workers: list[LocalWorker] = field(default_factory=list)

    @classmethod
    @contextmanager
    def started(
        cls, workdir: Path, *, partitions: int, extra: dict[str, str] | None = None
    ) -> Iterator[BenchDeployment]:
        with LocalBroker(workdir / "broker") as broker:
            topics = TopicNames("")
            asyncio.run(ensure_topics(broker.url, topics.all(), partitions=partitions))
            settings = {
                **broker.client_settings(), "CERTFLOW_PARTITIONS": str(partitions),
                "CERTFLOW_LOG_LEVEL": "warn", **shared_signing_keys(workdir / "signing-keys.json"),
                **(extra or {}),
            }
            deployment = cls(workdir, broker, topics, settings)
            try:
                yield deployment
            finally:
                deployment.stop_workers()

    def start_workers(self, count: int, *, prefix: str = "worker",
                      ready_within: float = 600.0) -> list[LocalWorker]:
        """Start ``count`` workers and wait until each is ready. ``ready_within`` is
        raised where a restart is what is measured: replaying a million certificates'
        changelogs takes longer than ten minutes."""
        started = [LocalWorker(self.settings, workdir=self.workdir, name=f"{prefix}{n}") for n in range(count)]
        for worker in started:
            worker.start()
        self.workers += started
        for worker in started:
            worker.wait_ready(timeout=ready_within)
        return started

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.stop(grace=60)
        self.workers = []

    def load(self, learners: int) -> tuple[list[str], float]:
        """Load ``learners`` learners' reference data; (their ids, seconds until every
        worker has applied it)."""
        started = time.monotonic()
        ids: list[str] = []
        for first in range(0, learners, LOAD_STEP):
            ids += load_batch(self.broker.url, self.topics, course=COURSE, batch=BATCH,
                              learners=min(LOAD_STEP, learners - first), prefix="bench", first=first)
            wait_for_reference(self.broker.url, Settings().app_id, self.topics, self.workers,
                               timeout=STAGE_TIMEOUT)
        return ids, time.monotonic() - started

    def issue_all(self, learners: int, *, flame_graph: Path | None = None) -> dict[str, Any]:
        """Load ``learners`` learners, issue all their certificates in one request, and
        measure: load and issue rates, latency, worker CPU per certificate, peak RSS.
        With ``flame_graph``, the first worker is sampled by py-spy while it issues."""
        ids, load_seconds = self.load(learners)
        # One request per ISSUE_CHUNK learners: a request naming 100,000 is 1.5 MB, over
        # the 1 MB a Kafka record may be (a platform splits a large batch the same way).
        requests = issue_requests(COURSE, BATCH, ids, chunk=ISSUE_CHUNK, mid="LP.bench")
        with sampled(self.workers[0].pid, flame_graph):
            worker_pids = [w.pid for w in self.workers]
            cpu_before = total_cpu_seconds(worker_pids)
            broker_before = total_cpu_seconds(self.broker.pids)
            sent = time.time()
            asyncio.run(produce(self.broker.url, self.topics.issue_request, [(None, r) for r in requests]))
            times = self._arrivals(learners)
            cpu_to_sink = total_cpu_seconds(worker_pids) - cpu_before
            registered = self._registered()
            cpu = total_cpu_seconds(worker_pids) - cpu_before
            broker_cpu = total_cpu_seconds(self.broker.pids) - broker_before
        latencies = [t - sent for t in times]
        return {
            "learners": learners,
            "load_seconds": load_seconds,
            "load_per_second": learners / load_seconds,
            "certificates": len(times),
            "per_second": len(times) / (max(times) - sent),
            "latency_p50": percentile(latencies, 0.5),
            "latency_p99": percentile(latencies, 0.99),
            "registered_per_second": len(times) / (registered - sent),
            "cpu_ms_per_certificate": 1000 * cpu / len(times),
            "cpu_ms_per_certificate_to_sink": 1000 * cpu_to_sink / len(times),
            # The broker's share (it runs on the same cores here): what it costs bounds
            # what any worker could reach end to end on this machine.
            "broker_cpu_ms_per_certificate": 1000 * broker_cpu / len(times),
            "peak_rss_mb": [round(peak_rss_mb(w.pid)) for w in self.workers],
        }

    def _arrivals(self, count: int) -> list[float]:
        """Broker timestamps (seconds) of the first ``count`` certificates."""

        async def run() -> list[float]:
            return [r.timestamp / 1000 async for r in read_topic(
                self.broker.url, self.topics.certificate_issued, timeout=STAGE_TIMEOUT, count=count)]

        return asyncio.run(run())

    def _registered(self) -> float:
        """When the workers have read every record the request caused: each
        certificate in the registry and its access code indexed. They are kept in
        the step that makes them, so this is when every generate request (and any
        forwarded to a recipient's partition) is committed, a little after the last
        certificate was published (the registry's work is part of what a
        certificate costs)."""
        topics = [self.topics.generate_request, self.topics.generate_recipients]
        asyncio.run(wait_until_consumed(self.broker.url, Settings().app_id, topics, timeout=STAGE_TIMEOUT))
        return time.time()

    def restart_times(self, certificates: int) -> dict[str, Any]:
        """The one worker stopped, then (a) started again on its volume and (b) started
        on an empty one; disk per million certificates, both times to ready, and the
        peak memory of the worker that replayed: what a pod's memory limit must allow
        for a worker taking over partitions, not only for one at work."""
        [worker] = self.workers
        self.stop_workers()
        data = self.workdir / "worker0" / "data"
        state_bytes = directory_bytes(data)
        broker_bytes = directory_bytes(self.broker.data_dir)
        changelog_records = sum(asyncio.run(record_counts(self.broker.url, suffix="-changelog")).values())
        started = time.monotonic()
        self.start_workers(1, ready_within=STAGE_TIMEOUT)
        restart_seconds = time.monotonic() - started
        self.stop_workers()
        shutil.rmtree(data)
        started = time.monotonic()
        [replaying] = self.start_workers(1, ready_within=STAGE_TIMEOUT)
        replay_seconds = time.monotonic() - started
        del worker
        return {
            "state_mb_per_million": state_bytes / 2**20 * 1e6 / certificates,
            "broker_mb_per_million": broker_bytes / 2**20 * 1e6 / certificates,
            "restart_ready_seconds": restart_seconds,
            "replay_ready_seconds": replay_seconds,
            "changelog_records": changelog_records,
            "replay_records_per_second": changelog_records / replay_seconds,
            # Measured apart from the working worker's: what a replaying worker holds
            # differs (at a million certificates it once peaked at twice the RSS at
            # work, from changelog offsets kept and unbounded polls, both since fixed).
            "replay_peak_rss_mb": round(peak_rss_mb(replaying.pid)),
        }
