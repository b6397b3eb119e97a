"""Measuring throughput, memory, state and PDFs against this machine's ceiling."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from certflow.cli.root import cli


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise click.BadParameter(f"{text!r}: comma-separated whole numbers, e.g. 1,2,3") from None
    if not counts or min(counts) < 1:
        raise click.BadParameter(f"{text!r}: at least one count, each 1 or more")
    return counts


@cli.command()
@click.option("--learners", default=3000, show_default=True,
              help="Learners (and so certificates) in each end-to-end run; 1000000 is the scale test.")
@click.option("--workers", default="1,2", show_default=True,
              help="Worker counts of the end-to-end runs, comma-separated (1 always runs).")
@click.option("--ceiling-count", default=2000, show_default=True, help="Certificates in the in-process run.")
@click.option("--pdf-samples", default=41, show_default=True, help="Certificates rendered to PDF (0: none).")
@click.option("--flame-graph", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Sample the one-worker run with py-spy into this SVG flame graph "
                   "(a .txt path: py-spy's collapsed stacks, to add up by function).")
@click.option("--sweep", "sweep_plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also run the scaling sweep and plot it into this PNG.")
@click.option("--sweep-workers", default="1,2,3", show_default=True, help="Worker counts of the sweep.")
@click.option("--sweep-partitions", default="4,8,16,32", show_default=True, help="Partition counts of the sweep.")
@click.option("--sweep-learners", default=3000, show_default=True, help="Learners in each run of the sweep.")
@click.option("--json-output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every figure as JSON.")
def bench(
    learners: int, workers: str, ceiling_count: int, pdf_samples: int, flame_graph: Path | None,
    sweep_plot: Path | None, sweep_workers: str, sweep_partitions: str, sweep_learners: int,
    json_output: Path | None,
) -> None:
    """Measure certflow against this machine's ceiling, in one run (a few minutes).

    Starts its own Apache Kafka broker and workers on 127.0.0.1 and stops them at
    the end. Prints the in-process ceiling; end to end with each worker count:
    load rate, certificates/s, latency, worker CPU per certificate and peak RSS,
    each as a ratio of the ceiling; the state a million certificates take and how
    long a restarted worker takes to be ready; and PDF timings.
    """
    from certflow.bench import BenchOptions, run

    sweep = None
    if sweep_plot is not None:
        sweep = (sweep_learners, _counts(sweep_workers), _counts(sweep_partitions), sweep_plot)
    report = run(BenchOptions(
        learners=learners, ceiling_count=ceiling_count, pdf_samples=pdf_samples,
        workers=_counts(workers), flame_graph=flame_graph, sweep=sweep,
    ))
    if json_output is not None:
        json_output.write_bytes(orjson.dumps(report.figures, option=orjson.OPT_INDENT_2))
