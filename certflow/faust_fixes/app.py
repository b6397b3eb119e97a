"""Faust's ``App`` with the fixes certflow's worker needs at start-up.

* Its transport is :mod:`certflow.faust_fixes.transport` (producer flush, topic
  replication), with :mod:`certflow.faust_fixes.consumer` (commit holes, rebalances,
  changelog starts) and :mod:`certflow.faust_fixes.exactly_once` (transactions).
* Its data directory is created with its parents (Faust's ``mkdir`` has none).
* :func:`restore_root_log_level` undoes Faust's worker setting the root logger to
  DEBUG.
* It refuses to start on library versions the fixes were not written for
  (:mod:`certflow.faust_fixes.versions`).
* It notes which rebalance step runs and since when (:class:`RebalanceStep`), so
  the watchdog (:mod:`certflow.faust_fixes.liveness`) can stop a worker stuck in one.

Upstream: faust-streaming 0.15.3 ``App.on_first_start`` (``mkdir`` without parents)
and ``Worker._setup_spinner`` (root logger left at DEBUG); no upstream issue is known.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.types import TP, TransportT

from certflow.faust_fixes.transport import Transport
from certflow.faust_fixes.versions import check_versions


@dataclass(frozen=True)
class RebalanceStep:
    """A rebalance callback in progress: which, since when (monotonic), in what task."""

    name: str
    started: float
    task: asyncio.Task[Any] | None

    def seconds(self) -> float:
        return time.monotonic() - self.started


class FixedApp(faust.App):
    """Faust's app on certflow's transport."""

    #: Replication of the topics Faust creates: configured, or (None) from the cluster's size.
    replication_factor: int | None = None
    min_insync_replicas: int | None = None
    #: The rebalance callback running now, if any.
    rebalance_step: RebalanceStep | None = None

    @contextmanager
    def _rebalance_step(self, name: str) -> Iterator[None]:
        self.rebalance_step = RebalanceStep(name, time.monotonic(), asyncio.current_task())
        try:
            yield
        finally:
            self.rebalance_step = None

    async def _on_partitions_revoked(self, revoked: set[TP]) -> None:
        with self._rebalance_step("partitions revoked"):
            await super()._on_partitions_revoked(revoked)

    async def _on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        with self._rebalance_step("partitions assigned"):
            await super()._on_partitions_assigned(assigned, generation_id)

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)

    async def on_first_start(self) -> None:
        check_versions()
        # Faust creates its data directory with mkdir() without parents: in a fresh
        # working directory the default, .certflow/worker, died with
        # FileNotFoundError('.certflow/worker'). The whole path is created first.
        Path(self.conf.datadir).mkdir(parents=True, exist_ok=True)
        await super().on_first_start()


def restore_root_log_level(level: str, app_logger: str | None = None) -> None:
    """Set the root logger back to ``level`` once Faust's worker has started, and
    let the app's flight recorder speak.

    Faust's worker sets the root logger to DEBUG when the level is WARN or above, so
    that its start-up spinner sees every record, and leaves it so: every debug line
    of aiokafka and Faust is then built and thrown away (a fifth of an idle worker's
    CPU, measured with py-spy).

    A rebalance step that outlasts the session timeout makes Faust's flight recorder
    warn "Task timed out!" and then replay, at INFO, the steps it had reached and
    the stuck task's stack: the only account of where a worker hangs. At WARN that
    account was thrown away and only the warning was left, so the app's own logger
    (``app_logger``, which logs nothing else at INFO) keeps INFO, and the root's
    handlers filter nothing themselves (Faust set the first to the worker's level;
    every other logger is still held to ``level`` by the root logger).
    """
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        handler.setLevel(logging.NOTSET)
    if app_logger is not None:
        app_log = logging.getLogger(app_logger)
        app_log.setLevel(min(app_log.getEffectiveLevel(), logging.INFO))
