"""Measuring throughput."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from certflow.cli.root import cli


@cli.command()
@click.option("--learners", default=3000, show_default=True, help="Learners in each end-to-end run.")
@click.option("--ceiling-count", default=2000, show_default=True, help="Certificates in the in-process run.")
@click.option("--pdf-samples", default=41, show_default=True, help="Certificates rendered to PDF.")
@click.option("--rocksdb-learners", default=0, show_default=True,
              help="Also measure a RocksDB-backed worker's RSS holding this many learners (slow).")
@click.option("--json-output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every figure as JSON.")
def bench(
    learners: int, ceiling_count: int, pdf_samples: int, rocksdb_learners: int, json_output: Path | None
) -> None:
    """Measure certflow against this machine's ceiling, in one run (a few minutes).

    Starts its own embedded broker and workers on 127.0.0.1 and stops them at the
    end. Prints the in-process ceiling, end-to-end throughput, latency, CPU and RSS
    with one and two workers (each as a ratio of the ceiling), and on-demand PDF
    timings.
    """
    from certflow.bench import run

    report = run(learners, ceiling_count, pdf_samples, rocksdb_learners)
    if json_output is not None:
        json_output.write_bytes(orjson.dumps(report.figures, option=orjson.OPT_INDENT_2))
