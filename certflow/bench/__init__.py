"""``certflow bench``: certflow measured against this machine's own ceiling, in one run.

1. The in-process ceiling (:mod:`certflow.bench.ceiling`): making certificates in a
   loop on one core, no Kafka; measured again just before and after each end-to-end
   run, whose ratios divide by the mean of the two (:class:`CeilingSamples`).
2. End to end on a local Apache Kafka broker (one KRaft node, on the same cores):
   N learners' reference data loaded, one issue request for all of them, timed until
   every certificate is on ``certificate.issued``; with one worker and with two
   (:mod:`certflow.bench.deployment`). Load rate, certificates/s, latency, worker CPU
   per certificate and peak RSS, every figure also a ratio of the ceiling.
3. The one worker's state: disk per million certificates (its RocksDB volume and the
   broker's logs), the time to be ready again when restarted on its volume, and on
   an empty one (every table replayed from its changelog: taking over a partition).
4. PDFs (:mod:`certflow.bench.documents`): on demand from the worker, cold and
   cached, and in process stage by stage.
5. With ``--sweep``: 1–3 workers × 4–32 partitions, and their plots
   (:mod:`certflow.bench.sweep`).

``--learners 1000000`` is the scale test (a million generated learners, the worker on
RocksDB, as by default); its two-worker comparison is left out unless asked for.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from certflow.bench.ceiling import BATCH, ceiling
from certflow.bench.deployment import BenchDeployment
from certflow.bench.documents import bulk_export, in_process, on_demand

#: Partitions of the main runs (the sweep varies them).
PARTITIONS = 4
#: Certificates of the one-worker run exported in bulk (a sample of a large batch).
EXPORT_SAMPLES = 300


@dataclass(frozen=True)
class BenchOptions:
    learners: int = 3000
    ceiling_count: int = 2000
    pdf_samples: int = 41
    #: Worker counts of the end-to-end runs (1 is always run: the others compare to it).
    workers: tuple[int, ...] = (1, 2)
    #: Where py-spy's flame graph of the one-worker run goes (none: not sampled).
    flame_graph: Path | None = None
    #: (learners, worker counts, partition counts, plot path) of the sweep, or None.
    sweep: tuple[int, tuple[int, ...], tuple[int, ...], Path] | None = None


@dataclass
class CeilingSamples:
    """The ceiling, measured again around every end-to-end run.

    One measurement takes a few seconds, and this machine's speed drifts over minutes
    (a shared 2-core VM: one night's ceilings ranged over 1.4–2.5 ms within a quarter of
    an hour, while the worker's CPU per certificate moved by 6 %). A run's ratios
    divide by the mean of the measurements just before and just after it, so that
    they describe certflow, not the moment the ceiling was taken.
    """

    count: int
    #: Every measurement, in CPU milliseconds per certificate, in order.
    ms: list[float] = field(default_factory=list)

    def measure(self) -> float:
        self.ms.append(1000 / asyncio.run(ceiling(self.count)))
        return self.ms[-1]


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str = "") -> None:
        self.lines.append(text)
        print(text, flush=True)


def run(options: BenchOptions) -> Report:
    report = Report()
    cpu = platform.processor() or platform.machine()
    report.say(f"certflow bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({cpu}), "
               f"Python {platform.python_version()}, Apache Kafka (one KRaft node on the same cores)")
    samples = CeilingSamples(options.ceiling_count)
    first_ms = samples.measure()
    report.say(f"1. ceiling, in process, one core: {1000 / first_ms:,.0f} certificates/s "
               f"({first_ms:.2f} ms of CPU each: fill + QR + credential + Ed25519 + record); measured "
               "again just before and after each end-to-end run, which is compared with their mean")
    with tempfile.TemporaryDirectory(prefix="certflow-bench-") as scratch:
        for count in sorted({1, *options.workers}):
            workdir = Path(scratch) / f"{count}-workers"
            with BenchDeployment.started(workdir, partitions=PARTITIONS) as deployment:
                deployment.start_workers(count)
                before_ms = samples.measure()
                figures = deployment.issue_all(
                    options.learners, flame_graph=options.flame_graph if count == 1 else None
                )
                after_ms = samples.measure()
                figures["ceiling_ms_around"] = [before_ms, after_ms]
                report.figures[f"{count} workers"] = figures
                _say_end_to_end(report, count, figures, 1000 / statistics.fmean(figures["ceiling_ms_around"]))
                if count == 1:
                    if options.pdf_samples:
                        figures.update(on_demand(deployment.workers[0], deployment.broker.url,
                                                 deployment.topics, options.pdf_samples))
                        figures.update(bulk_export(deployment.broker.url, PARTITIONS, BATCH,
                                                   min(options.learners, EXPORT_SAMPLES)))
                    figures.update(deployment.restart_times(figures["certificates"]))
                    _say_state(report, figures)
        per_core = 1000 / statistics.fmean(samples.ms)
        report.figures["ceiling_per_core"] = per_core
        report.figures["ceiling_samples_ms"] = samples.ms
        _say_comparison(report)
        report.say(f"   the ceiling, measured {len(samples.ms)} times: {min(samples.ms):.2f}–{max(samples.ms):.2f} ms "
                   f"of CPU per certificate, {per_core:,.0f} certificates/s on their mean")
        if options.pdf_samples:
            one = report.figures["1 workers"]
            report.say(
                f"4. PDF on demand ({options.pdf_samples - 1} certificates): cold p50 {one['pdf_cold_p50_ms']:.0f} ms, "
                f"p99 {one['pdf_cold_p99_ms']:.0f} ms; cached p50 {one['pdf_cached_p50_ms']:.1f} ms, "
                f"p99 {one['pdf_cached_p99_ms']:.1f} ms; bulk export of {one['export_pdfs']} "
                f"(certflow export, {one['export_processes']} processes): {one['export_pdfs_per_second']:,.0f} PDFs/s"
            )
            documents, line = in_process(options.pdf_samples)
            report.figures.update(documents)
            report.say(line)
        if options.sweep is not None:
            from certflow.bench.sweep import PLANNED_LOAD, plot, sizing_table, sweep

            learners, workers, partitions, plot_path = options.sweep
            report.say(f"5. sweep, {learners} learners a run:")
            results = sweep(Path(scratch), learners=learners, workers=workers, partitions=partitions)
            report.figures["sweep"] = results
            plot(results, per_core, plot_path, title=report.lines[0])
            report.say(f"   plotted: {plot_path}")
            per_worker = max(r["per_second"] for r in results if r["workers"] == 1)
            report.say(f"6. sizing, from one worker's best {per_worker:,.0f} certificates/s, planned at "
                       f"{PLANNED_LOAD:.0%} of it:")
            for row in sizing_table(per_worker):
                report.say(row)
    return report


def _say_end_to_end(report: Report, workers: int, figures: dict[str, Any], per_core: float) -> None:
    ceiling_ms = 1000 / per_core
    report.say(
        f"2. end to end, {workers} worker{'s' if workers > 1 else ''}, {figures['certificates']:,} learners "
        f"(loaded at {figures['load_per_second']:,.0f} learners/s): "
        f"{figures['per_second']:,.0f} certificates/s = {figures['per_second'] / per_core:.2f} × the ceiling "
        f"({ceiling_ms:.2f} ms, the mean of {' and '.join(f'{ms:.2f}' for ms in figures['ceiling_ms_around'])} "
        f"just before and after; all in the registry at {figures['registered_per_second']:,.0f}/s); "
        f"latency p50 {figures['latency_p50']:.1f} s, p99 {figures['latency_p99']:.1f} s; worker CPU "
        f"{figures['cpu_ms_per_certificate']:.2f} ms per certificate = "
        f"{figures['cpu_ms_per_certificate'] / ceiling_ms:.2f} × the ceiling's "
        f"({figures['cpu_ms_per_certificate_to_sink']:.2f} ms until the last was published); peak RSS "
        + ", ".join(f"{mb} MB" for mb in figures["peak_rss_mb"])
    )
    # Worker and broker share this machine's cores: together their CPU per certificate
    # bounds the rate, whatever the worker's own ratio to the ceiling.
    cores = os.cpu_count() or 1
    both_ms = figures["cpu_ms_per_certificate"] + figures["broker_cpu_ms_per_certificate"]
    bound = cores * 1000 / both_ms
    report.say(
        f"   broker CPU {figures['broker_cpu_ms_per_certificate']:.2f} ms per certificate (same cores): "
        f"worker + broker {both_ms:.2f} ms bound {cores} cores to {bound:,.0f} certificates/s "
        f"= {bound / per_core:.2f} × the ceiling"
    )


def _say_state(report: Report, figures: dict[str, Any]) -> None:
    report.say(
        f"3. state per million certificates: worker volume {figures['state_mb_per_million']:,.0f} MB, "
        f"broker logs {figures['broker_mb_per_million']:,.0f} MB; a restarted worker ready in "
        f"{figures['restart_ready_seconds']:.1f} s on its volume, {figures['replay_ready_seconds']:.1f} s on an "
        f"empty one ({figures['changelog_records']:,} changelog records replayed, "
        f"{figures['replay_records_per_second']:,.0f}/s, peak RSS {figures['replay_peak_rss_mb']:,} MB)"
    )


def _say_comparison(report: Report) -> None:
    one = report.figures["1 workers"]
    for name, two in report.figures.items():
        if name.endswith(" workers") and name != "1 workers":
            report.say(
                f"   {name} vs 1: {two['per_second'] / one['per_second']:.2f}× the throughput, "
                f"{two['cpu_ms_per_certificate'] / one['cpu_ms_per_certificate']:.2f}× the CPU per certificate "
                "(the broker shares these cores)"
            )
