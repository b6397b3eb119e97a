"""``certflow bench``: certflow measured against this machine's own ceiling, in one run.

1. The in-process ceiling: making certificates (template fill, QR code, credential,
   Ed25519 signature, the published record) in a loop on one core, no Kafka.
2. End to end through a local Apache Kafka broker (one KRaft node, on the same
   cores): reference data for N learners, one issue request for all of them, and the time until every certificate is on
   ``certificate.issued``; with one worker, with two, and with two that each keep a
   standby copy of the other's tables. Certificates/s, latency
   from request to certificate (p50, p99), worker CPU seconds per certificate (from
   /proc, all workers together) and worker RSS.
3. PDF on demand from a worker: p50 and p99, cold (first render) and cached; and in
   process, each stage of a cold ``render_pdf`` (:mod:`certflow.render.perf`), and
   ``render_png``.
4. With ``--rocksdb-learners N``: one worker on the RocksDB store holding N learners'
   reference data (profile and enrolment each), its RSS once the tables are loaded,
   and again after issuing certificates to a sample of them. Loading a million
   learners takes a while, so this part only runs when asked for.

Every end-to-end figure is also given as a ratio of the ceiling measured in the same
run, so results from different machines compare.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from certflow.credentials.keys import KeyRing, SigningKey
from certflow.events.models import parse_event
from certflow.generate.factory import build_certificate_factory
from certflow.generate.models import GenerateCertificateRequest, validation_context
from certflow.kafka import ensure_topics, produce, read_topic
from certflow.local import LocalBroker, LocalWorker, shared_signing_keys, wait_for_reference
from certflow.render.fetch import FetchPolicy, SafeFetcher
from certflow.render.perf import measure_pdf, measure_png
from certflow.settings import Settings
from certflow.synthetic import issue_requests, load_batch
from certflow.topics import TopicNames

COURSE, BATCH = "do_bench_course", "bench_batch"
PARTITIONS = 4


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str = "") -> None:
        self.lines.append(text)
        print(text, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- 1. the ceiling ------------------------------------------------------------------


def generate_requests(count: int) -> list[GenerateCertificateRequest]:
    requests = []
    for i in range(count):
        event = {
            "eid": "BE_JOB_REQUEST", "ets": 0, "mid": f"bench-{i}",
            "edata": {
                "userId": f"bench-{i:06d}", "svgTemplate": "course-completion.svg", "templateId": "tmpl_bench",
                "courseName": "डेटा विज्ञान की बुनियाद", "name": "Course Completion Certificate", "tag": BATCH,
                "data": [{"recipientName": f"शिक्षार्थी {i}", "recipientId": f"bench-{i:06d}"}],
                "issuer": {"name": "NCERT", "url": "https://ncert.nic.in/"},
                "signatoryList": [{"name": "D", "id": "D", "designation": "Director", "image": "https://ncert.nic.in/d.png"}],
                "criteria": {"narrative": "Completed"}, "basePath": "https://certs.example.org/certs",
                "related": {"batchId": BATCH, "courseId": COURSE, "type": "course"},
            },
        }
        requests.append(parse_event(
            GenerateCertificateRequest, orjson.dumps(event), max_bytes=10**6,
            context=validation_context(suppress_signatory_errors=True),
        ))
    return requests


async def ceiling(count: int) -> float:
    """Certificates per second on one core: issue + serialise, nothing else."""
    settings = Settings()
    requests = generate_requests(count)
    async with SafeFetcher(FetchPolicy.from_settings(settings)) as fetcher:
        factory = build_certificate_factory(settings, fetcher, KeyRing((SigningKey.generate(),)))
        now = datetime.now(UTC)
        await factory.issue(requests[0], now=now, status_list_url="https://x/status/0-0")  # warm up
        started = time.process_time()
        for index, request in enumerate(requests):
            certificate = await factory.issue(
                request, now=now, status_list_url="https://x/status/0-0", status_index=index
            )
            certificate.to_json()
        return count / (time.process_time() - started)


# --- 2. end to end ------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def certificate_times(broker_url: str, topic: str, count: int) -> list[float]:
    """Broker timestamps (seconds) of the first ``count`` records of ``topic``."""

    async def run() -> list[float]:
        return [r.timestamp / 1000 async for r in read_topic(broker_url, topic, timeout=30, count=count)]

    return asyncio.run(run())


@contextmanager
def bench_broker(workdir: Path) -> Iterator[tuple[LocalBroker, TopicNames, dict[str, str]]]:
    """A fresh local broker (Apache Kafka) with every topic, and the settings of workers on it."""
    with LocalBroker(workdir / "broker") as broker:
        topics = TopicNames("")
        asyncio.run(ensure_topics(broker.url, topics.all(), partitions=PARTITIONS))
        # One key ring for the deployment, shared by all its workers.
        yield broker, topics, {
            "CERTFLOW_BROKER": broker.url, "CERTFLOW_PARTITIONS": str(PARTITIONS),
            "CERTFLOW_LOG_LEVEL": "warn", **shared_signing_keys(workdir / "signing-keys.json"),
        }


def end_to_end(
    workdir: Path, learners: int, workers: int, pdf_samples: int, extra_settings: dict[str, str]
) -> dict[str, Any]:
    with bench_broker(workdir) as (broker, topics, settings):
        settings.update(extra_settings)
        running: list[LocalWorker] = []
        try:
            for n in range(workers):
                worker = LocalWorker(settings, workdir=workdir, name=f"worker{n}")
                worker.start()
                running.append(worker)
            for worker in running:
                worker.wait_ready()
            ids = load_batch(broker.url, topics, course=COURSE, batch=BATCH, learners=learners, prefix="bench")
            wait_for_reference(broker.url, Settings().app_id, topics, running, timeout=3600)
            [request] = issue_requests(COURSE, BATCH, ids, chunk=len(ids), mid="LP.bench")
            cpu_before = sum(cpu_seconds(w.pid) for w in running)
            sent = time.time()
            asyncio.run(produce(broker.url, topics.issue_request, [(None, request)]))
            times = certificate_times(broker.url, topics.certificate_issued, learners)
            finished = max(times)
            cpu = sum(cpu_seconds(w.pid) for w in running) - cpu_before
            latencies = [t - sent for t in times]
            figures: dict[str, Any] = {
                "certificates": len(times),
                "per_second": len(times) / (finished - sent),
                "latency_p50": percentile(latencies, 0.5),
                "latency_p99": percentile(latencies, 0.99),
                "cpu_ms_per_certificate": 1000 * cpu / len(times),
                "rss_mb": [round(rss_mb(w.pid)) for w in running],
            }
            if pdf_samples:
                figures.update(pdf_timings(running[0], broker.url, topics, pdf_samples))
            return figures
        finally:
            for worker in running:
                worker.terminate()
            for worker in running:
                worker.stop()


def pdf_timings(worker: LocalWorker, broker_url: str, topics: TopicNames, samples: int) -> dict[str, float]:
    async def ids() -> list[str]:
        return [orjson.loads(r.value or b"{}")["id"]
                async for r in read_topic(broker_url, topics.certificate_issued, timeout=10, count=samples)]

    certificate_ids = asyncio.run(ids())
    worker.get(f"/certs/{certificate_ids[0]}.pdf")  # start the render process

    def timed(certificate_id: str) -> float:
        started = time.perf_counter()
        with urllib.request.urlopen(f"{worker.web_url}/certs/{certificate_id}.pdf", timeout=60) as response:
            response.read()
        return time.perf_counter() - started

    cold = [timed(cid) for cid in certificate_ids[1:]]
    cached = [timed(cid) for cid in certificate_ids[1:]]
    return {
        "pdf_cold_p50_ms": 1000 * statistics.median(cold), "pdf_cold_p99_ms": 1000 * percentile(cold, 0.99),
        "pdf_cached_p50_ms": 1000 * statistics.median(cached), "pdf_cached_p99_ms": 1000 * percentile(cached, 0.99),
    }


#: Learners loaded at a time by the RocksDB measurement.
ROCKSDB_LOAD_STEP = 50_000


def rocksdb_footprint(workdir: Path, learners: int, sample: int) -> dict[str, Any]:
    """RSS of one worker whose RocksDB tables hold ``learners`` learners' reference data."""
    with bench_broker(workdir) as (broker, topics, settings):
        settings["CERTFLOW_STORE"] = "rocksdb://"
        with LocalWorker(settings, workdir=workdir, name="rocksdb-worker") as worker:
            started = time.monotonic()
            ids: list[str] = []
            # In steps, as reference data arrives in production, rather than a
            # backlog of a million records at once.
            for first in range(0, learners, ROCKSDB_LOAD_STEP):
                step = min(ROCKSDB_LOAD_STEP, learners - first)
                ids += load_batch(broker.url, topics, course=COURSE, batch=BATCH, learners=step,
                                  prefix="rss", first=first)
                wait_for_reference(broker.url, Settings().app_id, topics, [worker], timeout=3600)
            loaded_in = time.monotonic() - started
            loaded_rss = rss_mb(worker.pid)
            requests = issue_requests(COURSE, BATCH, ids[:sample], chunk=sample, mid="LP.rss")
            asyncio.run(produce(broker.url, topics.issue_request, [(None, r) for r in requests]))
            issued = len(certificate_times(broker.url, topics.certificate_issued, sample))
            return {
                "learners": learners, "load_seconds": loaded_in, "rss_loaded_mb": loaded_rss,
                "certificates": issued, "rss_after_issuing_mb": rss_mb(worker.pid),
            }


def in_process(report: Report, samples: int) -> None:
    """Part 3 in process: where a cold PDF's time goes, stage by stage, and a PNG."""
    pdf = measure_pdf(max(samples, 2))
    png = measure_png(max(samples // 2, 2))
    report.figures["pdf_in_process"] = pdf
    report.figures["png_in_process"] = png
    stages = pdf["stages"]
    assert isinstance(stages, dict) and isinstance(pdf["render_pdf"], dict) and isinstance(png["render_png"], dict)
    report.say(
        f"   in process, {max(samples, 2)} cold certificates: render_pdf p50 {pdf['render_pdf']['wall']:.1f} ms "
        f"(CPU {pdf['render_pdf']['cpu']:.1f} ms; "
        + ", ".join(f"{stage} {ms:.1f}" for stage, ms in stages["wall"].items())
        + f"); first of a process {pdf['first_ms']:.0f} ms; render_png (scale 2) p50 {png['render_png']['wall']:.1f} ms"
    )


def run(learners: int, ceiling_count: int, pdf_samples: int, rocksdb_learners: int = 0) -> Report:
    report = Report()
    cpu = platform.processor() or platform.machine()
    report.say(f"certflow bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({cpu}), "
               f"Python {platform.python_version()}")
    per_core = asyncio.run(ceiling(ceiling_count))
    report.figures["ceiling_per_core"] = per_core
    report.say(f"1. ceiling, in process, one core: {per_core:,.0f} certificates/s "
               f"({1000 / per_core:.2f} ms each: fill + QR + credential + Ed25519 + record)")
    with tempfile.TemporaryDirectory(prefix="certflow-bench-") as scratch:
        #: (name, workers, extra settings): standby copies cost a second worker
        #: CPU, so two workers run without them (the default) and with one.
        runs = [
            ("1 worker", 1, {}),
            ("2 workers", 2, {}),
            ("2 workers, one standby copy", 2, {"CERTFLOW_STANDBY_REPLICAS": "1"}),
        ]
        for index, (name, workers, extra) in enumerate(runs):
            figures = end_to_end(Path(scratch) / f"run{index}", learners, workers,
                                 pdf_samples if index == 0 else 0, extra)
            report.figures[name] = figures
            report.say(
                f"2. end to end, {name}, {figures['certificates']} learners: "
                f"{figures['per_second']:,.0f} certificates/s = {figures['per_second'] / per_core:.0%} of the "
                f"one-core ceiling; latency p50 {figures['latency_p50']:.1f} s, p99 {figures['latency_p99']:.1f} s; "
                f"worker CPU {figures['cpu_ms_per_certificate']:.2f} ms per certificate "
                f"({1000 / per_core / figures['cpu_ms_per_certificate']:.0%} of it is the ceiling's work); "
                f"RSS {', '.join(f'{mb} MB' for mb in figures['rss_mb'])}"
            )
        one = report.figures["1 worker"]
        for name in ("2 workers", "2 workers, one standby copy"):
            two = report.figures[name]
            report.say(
                f"   {name} vs 1: {two['per_second'] / one['per_second']:.2f}× the throughput, "
                f"{two['cpu_ms_per_certificate'] / one['cpu_ms_per_certificate']:.2f}× the CPU per certificate "
                "(the broker shares these 2 cores)"
            )
        if pdf_samples:
            report.say(
                f"3. PDF on demand ({pdf_samples - 1} certificates): cold p50 {one['pdf_cold_p50_ms']:.0f} ms, "
                f"p99 {one['pdf_cold_p99_ms']:.0f} ms; cached p50 {one['pdf_cached_p50_ms']:.1f} ms, "
                f"p99 {one['pdf_cached_p99_ms']:.1f} ms"
            )
            in_process(report, pdf_samples)
        if rocksdb_learners:
            footprint = rocksdb_footprint(Path(scratch) / "rocksdb", rocksdb_learners, sample=1000)
            report.figures["rocksdb"] = footprint
            report.say(
                f"4. RocksDB store, {footprint['learners']:,} learners' reference data "
                f"(loaded in {footprint['load_seconds']:.0f} s): worker RSS {footprint['rss_loaded_mb']:.0f} MB; "
                f"{footprint['rss_after_issuing_mb']:.0f} MB after issuing {footprint['certificates']:,} certificates"
            )
    return report
