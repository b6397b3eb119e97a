"""A worker that can no longer do its work stops, rather than run on doing nothing.

Faults are injected into real worker processes (``tests/integration/faults``): the
consumer's group coordination dying (the worker would otherwise run on with no
partitions: certflow's watchdog stops it with status 70, see
certflow.faust_fixes.liveness), table recovery crashing (Faust's worker stops itself
with status 1; the watchdog is there should it not), and a rebalance step that never
ends (the group goes on without the worker; the watchdog stops it, saying where it
waited). Either way the worker exits non-zero, so whoever runs it starts it again.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from certflow.faust_fixes.liveness import EXIT_STATUS
from certflow.local import LocalBroker, LocalWorker
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.integration

FAULTS = Path(__file__).parent / "faults"


def with_fault(fault: str, trigger: Path) -> dict[str, str]:
    return {
        "CERTFLOW_TEST_FAULT": fault,
        "CERTFLOW_TEST_FAULT_TRIGGER": str(trigger),
        "PYTHONPATH": os.pathsep.join(p for p in (str(FAULTS), os.environ.get("PYTHONPATH", "")) if p),
        "CERTFLOW_LOG_LEVEL": "warn",
    }


def exit_status(worker: LocalWorker, timeout: float) -> int | None:
    assert worker.process is not None
    try:
        return worker.process.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def test_a_worker_whose_group_coordination_dies_exits(broker: LocalBroker, tmp_path: Path) -> None:
    deployment = Deployment(broker, tmp_path, {})
    trigger = tmp_path / "trigger"
    worker = LocalWorker({**deployment.settings, **with_fault("coordination", trigger)}, workdir=tmp_path)
    try:
        worker.start()
        worker.wait_ready()
        trigger.touch()
        started = time.monotonic()
        status = exit_status(worker, 30)
        assert status == EXIT_STATUS, worker.log_tail()
        assert time.monotonic() - started < 15
        assert "consumer-group coordination ended" in worker.log_path.read_text()
    finally:
        worker.stop()


def test_a_worker_whose_table_recovery_crashes_exits(broker: LocalBroker, tmp_path: Path) -> None:
    deployment = Deployment(broker, tmp_path, {})
    worker = LocalWorker({**deployment.settings, **with_fault("recovery", tmp_path / "unused")}, workdir=tmp_path)
    try:
        worker.start()
        status = exit_status(worker, 90)
        assert status is not None and status != 0, worker.log_tail()
        assert "table recovery crashed" in worker.log_path.read_text()
    finally:
        worker.stop()


def test_a_worker_stuck_in_a_rebalance_step_exits_saying_where(broker: LocalBroker, tmp_path: Path) -> None:
    group = {"CERTFLOW_SESSION_TIMEOUT_SECONDS": "6", "CERTFLOW_HEARTBEAT_INTERVAL_SECONDS": "1",
             "CERTFLOW_REBALANCE_TIMEOUT_SECONDS": "10"}
    deployment = Deployment(broker, tmp_path, group)
    trigger = tmp_path / "trigger"
    stuck = LocalWorker({**deployment.settings, **with_fault("flush", trigger)}, workdir=tmp_path, name="stuck")
    try:
        stuck.start()
        stuck.wait_ready()
        trigger.touch()
        # A second worker joins: the group rebalances, and the first worker's
        # "partitions revoked" step flushes its producer, which never returns.
        # The group goes on without it after the rebalance timeout.
        joined = time.monotonic()
        deployment.start_worker()
        status = exit_status(stuck, 60)
        assert status == EXIT_STATUS, stuck.log_tail()
        assert time.monotonic() - joined < 30
        log = stuck.log_path.read_text()
        assert "rebalance step 'partitions revoked' has run" in log
        assert "flush_never_delivered" in log  # the stuck task's stack
        # Faust's flight recorder, past the session timeout, replayed the steps it
        # reached: kept at a warn-level worker's log (it used to be thrown away).
        assert "Task timed out!" in log and "Flush producer buffer" in log
    finally:
        stuck.stop()
        deployment.stop()
