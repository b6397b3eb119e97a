"""Whether a worker still takes part in the work, and a watchdog that stops one that can't.

Three ways a worker could go on running while doing nothing at all, all inside the
libraries, all silent:

* aiokafka's consumer-group coordination is one task; if it ends with an error
  (anything it does not expect), the consumer never joins, heartbeats or is given
  partitions again, while the process, its web server and ``/health`` carry on.
* Faust's table recovery is a service task; if it raises, the service is marked
  crashed and the partitions it was recovering are never processed. Faust's worker
  stops itself then (status 1, tested); the watchdog covers a crash that does not
  reach the worker.
* A rebalance callback (partitions revoked or assigned) that never returns: it waits
  for the agents' current events and for every buffered record to be delivered,
  and Faust gives the producer 20 minutes per request. Once it has run past the
  group's rebalance timeout the broker has put the worker out of the group, which
  goes on without it; the worker, still inside the callback, never rejoins. Faust's
  flight recorder only warns ("Task timed out!"). Once in ~20 runs of the fault
  matrix's case (e) a worker warned so after a broker paused for 20 s, and answered
  503 for over a minute; where it waited was not logged then (the flight recorder's
  replay is at INFO: :func:`certflow.faust_fixes.app.restore_root_log_level` keeps
  it now).

The watchdog (:func:`fatal_problem`, checked every couple of seconds by
:func:`register`) logs the cause and ends the process with exit status
:data:`EXIT_STATUS`, so Kubernetes (or whoever started it) starts it again: a fresh
process joins the group and recovers its tables, and the events it held are
processed again from the last commit. ``/ready`` says false whenever the worker holds
no group membership (:func:`holds_membership`). And a worker that is stopping ends
within :data:`SHUTDOWN_GRACE_SECONDS` however its graceful stop fares (:class:`Worker`).

Upstream: aiokafka 0.14.0's ``GroupCoordinator._coordination_routine`` ending on an
unexpected error, and faust-streaming 0.15.3's ``Recovery`` service crashing; no
upstream issue is known, both reproduced by ``tests/integration/test_liveness.py``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any

import faust
from mode.utils.tracebacks import format_task_stack

log = logging.getLogger(__name__)

#: The exit status of a worker stopped by the watchdog (EX_SOFTWARE).
EXIT_STATUS = 70


def group_coordinator(app: Any) -> Any | None:
    """aiokafka's group coordinator of the worker's consumer, if it has one yet."""
    consumer = getattr(app, "_consumer", None)
    thread = getattr(consumer, "_thread", None)
    client = getattr(thread, "_consumer", None)
    return getattr(client, "_coordinator", None)


def holds_membership(app: Any) -> bool:
    """Whether the worker is a member of its consumer group right now: joined (a
    member id and a generation) and its coordination still running."""
    coordinator = group_coordinator(app)
    if coordinator is None:
        return False
    task = getattr(coordinator, "_coordination_task", None)
    if task is None or task.done():
        return False
    return bool(coordinator.member_id) and coordinator.generation >= 0


def fatal_problem(app: Any) -> str | None:
    """Why this worker can no longer do its work, or None while it can."""
    if getattr(app, "should_stop", False):
        return None
    coordinator = group_coordinator(app)
    if coordinator is not None:
        task = coordinator._coordination_task  # noqa: SLF001 - no public way
        closing = getattr(coordinator, "_closing", None)
        if task.done() and not (closing is not None and closing.done()):
            cause = "cancelled" if task.cancelled() else repr(task.exception())
            return f"consumer-group coordination ended: {cause}"
    tables = getattr(app, "_tables", None)
    recovery = getattr(tables, "_recovery", None)
    if recovery is not None and recovery.crashed:
        return f"table recovery crashed: {recovery.crash_reason!r}"
    step = getattr(app, "rebalance_step", None)
    if step is not None and step.seconds() > app.conf.broker_rebalance_timeout:
        stack = format_task_stack(step.task) if step.task is not None else "(no task)"
        return (
            f"rebalance step '{step.name}' has run {step.seconds():.0f} s, past the group's "
            f"rebalance timeout ({app.conf.broker_rebalance_timeout:.0f} s): it waits on\n{stack}"
        )
    return None


def stop_process(reason: str) -> None:
    """Log ``reason`` and end the process at once with :data:`EXIT_STATUS`.

    At once, not through Faust's shutdown: what is broken may be what a graceful stop
    waits for. Nothing is lost: offsets are committed only after what the events
    wrote was delivered, so whatever was in flight is processed again."""
    log.critical("worker stopping: %s", reason)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):  # stopping anyway: a handler that cannot flush loses its tail
            handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_STATUS)


#: Seconds between two checks of the watchdog.
CHECK_INTERVAL = 2.0


def register(app: Any) -> None:
    """The watchdog: every :data:`CHECK_INTERVAL` seconds, stop a worker that cannot work."""

    async def watchdog() -> None:
        problem = fatal_problem(app)
        if problem is not None:
            stop_process(problem)

    app.timer(CHECK_INTERVAL, name="certflow.watchdog")(watchdog)


#: Seconds a stopping worker has to finish its graceful stop before it ends at once.
SHUTDOWN_GRACE_SECONDS = 60.0


class Worker(faust.Worker):
    """Faust's worker, whose stop cannot hang.

    A graceful stop commits, flushes and leaves the group; when what it waits for is
    what is broken, it can wait for ever. Seen on Apache Kafka (three workers, sixteen
    partitions, a rebalance storm on two busy cores): a worker in ``stop_and_shutdown``
    for minutes, its event loop busy with metadata requests, still heartbeating, so
    the group could not finish rebalancing without it and nobody issued anything. A
    stop that has not finished after :data:`SHUTDOWN_GRACE_SECONDS` ends the process
    (:func:`stop_process`): nothing is lost, what was in flight is processed again by
    whoever takes the partitions.
    """

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        self._arm_stop_deadline(f"stopping on {signal.name}")
        super()._schedule_shutdown(signal)

    def on_worker_shutdown(self) -> None:
        self._arm_stop_deadline("stopping")
        super().on_worker_shutdown()

    def _arm_stop_deadline(self, why: str) -> None:
        if getattr(self, "_stop_deadline", None) is None:
            self._stop_deadline = threading.Timer(
                SHUTDOWN_GRACE_SECONDS, stop_process,
                (f"{why}: the graceful stop did not finish in {SHUTDOWN_GRACE_SECONDS:.0f} s",),
            )
            self._stop_deadline.daemon = True
            self._stop_deadline.start()
