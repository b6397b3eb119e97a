"""`certflow bench` runs end to end on a small scale and reports every figure.

Nothing here judges a figure (a timed assertion on a shared machine measures the
machine): the run proves that each part of the bench still works on Apache Kafka,
that every learner's certificate is counted, and that the plot and the sizing table
are made, so the README's figures can always be measured again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration


def test_the_bench_measures_every_figure_on_kafka(tmp_path: Path) -> None:
    figures_path, plot_path, graph_path = tmp_path / "bench.json", tmp_path / "scaling.png", tmp_path / "flame.svg"
    finished = subprocess.run(
        [sys.executable, "-m", "certflow", "bench", "--learners", "60", "--workers", "1,2",
         "--ceiling-count", "20", "--pdf-samples", "4", "--json-output", str(figures_path),
         "--flame-graph", str(graph_path),
         "--sweep", str(plot_path), "--sweep-workers", "1", "--sweep-partitions", "4", "--sweep-learners", "20"],
        env={**os.environ, "TMPDIR": str(tmp_path)}, capture_output=True, text=True, timeout=900,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    figures = orjson.loads(figures_path.read_bytes())

    assert figures["ceiling_per_core"] > 0
    # Measured first, then just before and after each of the two runs.
    assert len(figures["ceiling_samples_ms"]) == 5 and min(figures["ceiling_samples_ms"]) > 0
    for run in ("1 workers", "2 workers"):
        assert len(figures[run]["ceiling_ms_around"]) == 2
        assert figures[run]["certificates"] == 60
        assert figures[run]["cpu_ms_per_certificate"] >= figures[run]["cpu_ms_per_certificate_to_sink"] > 0
        assert 0 < figures[run]["registered_per_second"] <= figures[run]["per_second"]
        assert figures[run]["broker_cpu_ms_per_certificate"] > 0
        assert all(mb > 0 for mb in figures[run]["peak_rss_mb"])
    one = figures["1 workers"]
    assert one["state_mb_per_million"] > 0 and one["restart_ready_seconds"] > 0
    assert one["changelog_records"] >= 60 and one["replay_records_per_second"] > 0
    assert one["replay_peak_rss_mb"] > 0
    assert one["pdf_cold_p50_ms"] > 0 and one["export_pdfs"] == 60
    assert figures["pdf_in_process"]["stages"]
    [swept] = figures["sweep"]
    assert (swept["workers"], swept["partitions"], swept["certificates"]) == (1, 4, 20)

    assert plot_path.read_bytes().startswith(b"\x89PNG")
    assert graph_path.read_bytes().lstrip().startswith(b"<?xml")
    for line in ("× the ceiling", "per million certificates", "PDFs/s", "| certificates a month |"):
        assert line in finished.stdout, finished.stdout
    # Every process the bench started is gone (its broker and workers die with it).
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_ours(p, tmp_path)]


def _is_ours(proc: Path, tmp_path: Path) -> bool:
    try:
        return str(tmp_path).encode() in (proc / "environ").read_bytes() + (proc / "cmdline").read_bytes()
    except OSError:
        return False
