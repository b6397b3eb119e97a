"""Run the fault matrix N times in a row: ``python tests/chaos/matrix.py 10``.

Each round runs the five cases of ``tests/chaos/test_faults.py`` ((a) … (e)), one at a
time, each in its own pytest process (a case starts and stops its own Kafka cluster
and workers). Prints a pass count per case and writes ``.certflow/fault-matrix.json``
after every case, so an interrupted run still leaves what it measured; each
failure's pytest output tail and the case's chaos-report entry are kept there.

Options: ``--cases a,c`` runs only those; ``--until 21:40`` (UTC) starts no case
after that time. Not collected by pytest (its name does not start with ``test_``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".certflow" / "fault-matrix.json"
KEPT = ROOT / ".certflow" / "fault-matrix-runs"
CHAOS_REPORT = ROOT / ".certflow" / "chaos-report.json"
CASES = {
    "a": ("test_a_worker_sigkilled_a_replacement_joins", "a_worker_sigkilled",
          "SIGKILL one of three workers, a replacement joins"),
    "b": ("test_b_busiest_broker_sigkilled_restarted_later", "b_busiest_broker_sigkilled",
          "SIGKILL the broker leading most partitions, restart it later"),
    "c": ("test_c_rolling_restart_of_all_brokers", "c_rolling_restart",
          "rolling restart of all three brokers"),
    "d": ("test_d_exactly_once_worker_sigkilled_a_replacement_joins", "d_exactly_once_worker_sigkilled",
          "exactly-once: SIGKILL one of three workers, a replacement joins"),
    "e": ("test_e_broker_paused_past_the_session_timeout", "e_broker_paused",
          "a broker SIGSTOPped past the session timeout, then SIGCONTed"),
}


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_case(test: str, basetemp: Path) -> tuple[bool, float, str]:
    """One case in its own pytest; its workers' and brokers' logs stay in ``basetemp``
    when it fails (removed when it passes)."""
    started = time.monotonic()
    result = subprocess.run(
        # ``-m ""``: every case, whatever markers the default run leaves out.
        [sys.executable, "-m", "pytest", f"tests/chaos/test_faults.py::{test}", "-q", "-x", "-m", "",
         "-p", "no:cacheprovider",
         f"--basetemp={basetemp}"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=False,
    )
    output = result.stdout + result.stderr
    # The assertion or exception (pytest's "E " lines) first, then the end of the output.
    errors = [line for line in output.splitlines() if line.startswith(("E ", "_____", "tests/", "certflow/"))]
    return result.returncode == 0, time.monotonic() - started, "\n".join(errors[:80]) + "\n…\n" + output[-2500:]


def report_entry(name: str) -> object:
    try:
        return json.loads(CHAOS_REPORT.read_text()).get(name)
    except (OSError, ValueError):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", type=int, nargs="?", default=10)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--until", help="HH:MM UTC: start no case after it")
    args = parser.parse_args()
    chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
    stop_at = None
    if args.until:
        hour, minute = map(int, args.until.split(":"))
        stop_at = dt.datetime.now(dt.UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)

    matrix: dict[str, dict[str, object]] = {
        c: {"case": CASES[c][2], "test": CASES[c][0], "runs": 0, "passed": 0, "seconds": [], "failures": []}
        for c in chosen
    }
    summary = {"started": now(), "rounds_asked": args.rounds, "rounds_done": 0, "cases": matrix}
    KEPT.mkdir(parents=True, exist_ok=True)
    stopped = False
    for round_number in range(1, args.rounds + 1):
        for case in chosen:
            if stop_at is not None and dt.datetime.now(dt.UTC) >= stop_at:
                stopped = True
                break
            test, name, _ = CASES[case]
            basetemp = KEPT / f"{case}-round{round_number}"
            passed, seconds, tail = run_case(test, basetemp)
            if passed:
                shutil.rmtree(basetemp, ignore_errors=True)
            entry = matrix[case]
            entry["runs"] = int(entry["runs"]) + 1  # type: ignore[call-overload]
            entry["passed"] = int(entry["passed"]) + passed  # type: ignore[call-overload]
            entry["seconds"].append(round(seconds))  # type: ignore[attr-defined]
            if not passed:
                entry["failures"].append({  # type: ignore[attr-defined]
                    "round": round_number, "at": now(), "logs": str(basetemp), "output_tail": tail,
                    "counts": report_entry(name),
                })
            print(f"round {round_number} ({case}) {'pass' if passed else 'FAIL'} in {seconds:.0f}s", flush=True)
            summary["finished"] = now()
            OUT.write_text(json.dumps(summary, indent=2))
        if stopped:
            break
        summary["rounds_done"] = round_number
        OUT.write_text(json.dumps(summary, indent=2))

    print(f"\nfault matrix, {summary['rounds_done']} full round(s) ({OUT}):")
    for case, entry in matrix.items():
        print(f"  ({case}) {entry['passed']}/{entry['runs']}  {entry['case']}")
    return 0 if all(entry["passed"] == entry["runs"] for entry in matrix.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
