"""Group membership and the watchdog's verdicts, on stand-ins for aiokafka's and Faust's objects."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from certflow.faust_fixes.app import RebalanceStep
from certflow.faust_fixes.liveness import fatal_problem, holds_membership


def app_with(
    coordinator: Any = None, recovery: Any = None, stopping: bool = False, step: RebalanceStep | None = None
) -> Any:
    consumer = SimpleNamespace(_thread=SimpleNamespace(_consumer=SimpleNamespace(_coordinator=coordinator)))
    return SimpleNamespace(
        _consumer=consumer if coordinator is not None else None,
        _tables=SimpleNamespace(_recovery=recovery),
        should_stop=stopping,
        rebalance_step=step,
        conf=SimpleNamespace(broker_rebalance_timeout=60.0),
    )


def coordinator(task: asyncio.Future, *, member_id: str = "m-1", generation: int = 3, closing: bool = False) -> Any:
    closed: asyncio.Future = asyncio.get_running_loop().create_future()
    if closing:
        closed.set_result(None)
    return SimpleNamespace(_coordination_task=task, member_id=member_id, generation=generation, _closing=closed)


async def test_a_joined_member_with_running_coordination_holds_membership() -> None:
    running = asyncio.get_running_loop().create_future()
    app = app_with(coordinator(running))
    assert holds_membership(app)
    assert fatal_problem(app) is None


async def test_no_member_id_no_generation_or_no_consumer_is_no_membership() -> None:
    running = asyncio.get_running_loop().create_future()
    assert not holds_membership(app_with(coordinator(running, member_id="")))
    assert not holds_membership(app_with(coordinator(running, generation=-1)))
    assert not holds_membership(app_with(None))


async def test_coordination_that_ended_with_an_error_is_fatal() -> None:
    ended = asyncio.get_running_loop().create_future()
    ended.set_exception(RuntimeError("boom"))
    app = app_with(coordinator(ended))
    assert not holds_membership(app)
    assert "coordination ended: RuntimeError('boom')" in (fatal_problem(app) or "")


async def test_coordination_ended_by_closing_or_a_stopping_worker_is_not() -> None:
    ended = asyncio.get_running_loop().create_future()
    ended.set_result(None)
    assert fatal_problem(app_with(coordinator(ended, closing=True))) is None
    assert fatal_problem(app_with(coordinator(ended), stopping=True)) is None


async def test_crashed_table_recovery_is_fatal() -> None:
    running = asyncio.get_running_loop().create_future()
    recovery = SimpleNamespace(crashed=True, crash_reason=RuntimeError("no offsets"))
    assert "table recovery crashed" in (fatal_problem(app_with(coordinator(running), recovery)) or "")
    healthy = SimpleNamespace(crashed=False, crash_reason=None)
    assert fatal_problem(app_with(coordinator(running), healthy)) is None


async def test_a_rebalance_step_past_the_rebalance_timeout_is_fatal_with_where_it_waits() -> None:
    running = asyncio.get_running_loop().create_future()
    delivered = asyncio.Event()

    async def flush_that_never_ends() -> None:
        await delivered.wait()

    task = asyncio.ensure_future(flush_that_never_ends())
    await asyncio.sleep(0)
    try:
        now = time.monotonic()
        recent = RebalanceStep("partitions revoked", now - 59, task)
        assert fatal_problem(app_with(coordinator(running), step=recent)) is None
        stuck = RebalanceStep("partitions revoked", now - 61, task)
        problem = fatal_problem(app_with(coordinator(running), step=stuck)) or ""
        assert "rebalance step 'partitions revoked' has run 61 s" in problem
        assert "flush_that_never_ends" in problem  # the stuck task's stack, for whoever reads the log
    finally:
        task.cancel()


def test_a_stop_that_does_not_finish_in_time_ends_the_process(monkeypatch: Any) -> None:
    import threading

    from certflow.faust_fixes import liveness

    stopped = threading.Event()
    reasons: list[str] = []

    def stop_process(reason: str) -> None:
        reasons.append(reason)
        stopped.set()

    monkeypatch.setattr(liveness, "stop_process", stop_process)
    monkeypatch.setattr(liveness, "SHUTDOWN_GRACE_SECONDS", 0.05)
    worker = liveness.Worker.__new__(liveness.Worker)  # only the deadline is exercised
    worker._arm_stop_deadline("stopping on SIGTERM")
    worker._arm_stop_deadline("stopping")  # armed once: the first cause is the one reported
    assert stopped.wait(5)
    assert reasons == ["stopping on SIGTERM: the graceful stop did not finish in 0 s"]
