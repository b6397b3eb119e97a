"""PDFs from a worker: on demand (cold and cached), in bulk (``certflow export``), and
in process stage by stage."""

from __future__ import annotations

import asyncio
import statistics
import time
import urllib.request
from typing import Any

import orjson

from certflow.bench.measure import percentile
from certflow.kafka import read_topic
from certflow.local import LocalWorker
from certflow.registry.export import measure_export
from certflow.render.perf import measure_pdf, measure_png
from certflow.settings import Settings
from certflow.topics import TopicNames


def on_demand(worker: LocalWorker, broker_url: str, topics: TopicNames, samples: int) -> dict[str, float]:
    """``GET /certs/{id}.pdf`` of ``samples`` certificates from ``worker``: each first
    (cold: drawn from the registry's facts and rendered) and again (cached).

    Called once the worker is idle (:meth:`BenchDeployment.issue_all` waits for its
    registry): while the registry still stores the certificates just issued, a
    request waits its turn on the event loop behind them."""

    async def ids() -> list[str]:
        return [orjson.loads(r.value or b"{}")["id"]
                async for r in read_topic(broker_url, topics.certificate_issued, timeout=10, count=samples)]

    certificate_ids = asyncio.run(ids())
    worker.get(f"/certs/{certificate_ids[0]}.pdf")  # starts the render process

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


def bulk_export(broker_url: str, partitions: int, batch_id: str, samples: int) -> dict[str, float]:
    """``certflow export`` of ``samples`` certificates of the batch, on every core: PDFs/s."""
    settings = Settings(broker=broker_url, partitions=partitions, kafka_security_protocol="PLAINTEXT")
    report = asyncio.run(measure_export(settings, batch_id, limit=samples))
    return {"export_pdfs": len(report.exported), "export_pdfs_per_second": report.per_second,
            "export_processes": report.processes}


def in_process(samples: int) -> tuple[dict[str, Any], str]:
    """Where a cold PDF's time goes, stage by stage, and a PNG; (figures, summary line)."""
    pdf = measure_pdf(max(samples, 2))
    png = measure_png(max(samples // 2, 2))
    stages = pdf["stages"]
    assert isinstance(stages, dict) and isinstance(pdf["render_pdf"], dict) and isinstance(png["render_png"], dict)
    line = (
        f"   in process, {max(samples, 2)} cold certificates: render_pdf p50 {pdf['render_pdf']['wall']:.1f} ms "
        f"(CPU {pdf['render_pdf']['cpu']:.1f} ms; "
        + ", ".join(f"{stage} {ms:.1f}" for stage, ms in stages["wall"].items())
        + f"); first of a process {pdf['first_ms']:.0f} ms; render_png (scale 2) p50 {png['render_png']['wall']:.1f} ms"
    )
    return {"pdf_in_process": pdf, "png_in_process": png}, line
