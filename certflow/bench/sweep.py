"""The scaling sweep: certificates/s and CPU per certificate for 1–3 workers and
4–32 partitions, each on a fresh broker, and the two plots of the README.

A worker's share of the partitions, not the partition count itself, is what should
decide its work; the sweep shows whether it does (more partitions mean more
table databases, changelog partitions and produce batches per worker) and what a
second and third worker add on this machine, where the broker shares the cores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from certflow.bench.deployment import BenchDeployment


def sweep(
    workdir: Path, *, learners: int, workers: Sequence[int], partitions: Sequence[int]
) -> list[dict[str, Any]]:
    """One end-to-end run per (workers, partitions); its figures with both counts."""
    results = []
    for partition_count in partitions:
        for worker_count in workers:
            if worker_count > partition_count:
                continue  # a worker without a partition does nothing
            run = workdir / f"sweep-{worker_count}w-{partition_count}p"
            with BenchDeployment.started(run, partitions=partition_count) as deployment:
                deployment.start_workers(worker_count)
                figures = deployment.issue_all(learners)
            results.append({"workers": worker_count, "partitions": partition_count, **figures})
            print(f"   sweep: {worker_count} worker(s), {partition_count} partitions: "
                  f"{figures['per_second']:,.0f} certificates/s, "
                  f"{figures['cpu_ms_per_certificate']:.2f} ms CPU per certificate", flush=True)
    return results


def plot(results: list[dict[str, Any]], ceiling_per_core: float, path: Path, *, title: str) -> None:
    """Two panels: certificates/s and worker CPU per certificate against partitions,
    one line per worker count, the one-core ceiling drawn for scale."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file
    import matplotlib.pyplot as plt

    figure, (rate, cpu) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for worker_count in sorted({r["workers"] for r in results}):
        rows = sorted((r for r in results if r["workers"] == worker_count), key=lambda r: r["partitions"])
        xs = [r["partitions"] for r in rows]
        label = f"{worker_count} worker{'s' if worker_count > 1 else ''}"
        rate.plot(xs, [r["per_second"] for r in rows], marker="o", label=label)
        cpu.plot(xs, [r["cpu_ms_per_certificate"] for r in rows], marker="o", label=label)
    rate.axhline(ceiling_per_core, color="grey", linestyle="--", label="in-process ceiling, one core")
    cpu.axhline(1000 / ceiling_per_core, color="grey", linestyle="--", label="ceiling's CPU per certificate")
    for axes, ylabel in ((rate, "certificates/s, end to end"), (cpu, "worker CPU ms per certificate")):
        axes.set_xscale("log", base=2)
        axes.set_xticks(sorted({r["partitions"] for r in results}))
        axes.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes.set_xlabel("partitions")
        axes.set_ylabel(ylabel)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


#: Certificates a month the sizing table is made for.
MONTHLY_VOLUMES = (1_000_000, 10_000_000, 100_000_000)
#: How much busier the peak hour is than the month's average hour: course batches
#: end together, and a national platform's results day is far busier than a month's
#: average (a tenth of the month's certificates in one day, its peak hour 3× that day's
#: average, is 72×).
PEAK_FACTORS = (10, 72)
#: Share of a worker's measured rate planned for: room for a worker to fail (its
#: partitions move) and for reference data arriving at the same time.
PLANNED_LOAD = 0.5


def sizing_table(per_worker_rate: float) -> list[str]:
    """Markdown rows: workers and partitions for each monthly volume and peak factor,
    from one worker's measured certificates/s (the sweep's best one-worker run)."""
    rows = [
        "| certificates a month | peak hour (× average) | peak certificates/s | workers | partitions |",
        "|---|---|---|---|---|",
    ]
    for volume in MONTHLY_VOLUMES:
        for factor in PEAK_FACTORS:
            peak = volume / (30 * 24 * 3600) * factor
            workers = max(2, math.ceil(peak / (per_worker_rate * PLANNED_LOAD)))
            # Room to double the workers without re-keying every learner (partitions
            # fix the most workers a deployment can use).
            partitions = max(8, 2 ** math.ceil(math.log2(2 * workers)))
            rows.append(f"| {volume:,} | {factor}× | {peak:,.0f} | {workers} | {partitions} |")
    return rows
