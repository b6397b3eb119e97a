"""Faust's ``App`` with the fixes certflow's worker needs at start-up.

* Its transport is :mod:`certflow.faust_fixes.transport` (producer flush, topic
  replication), with :mod:`certflow.faust_fixes.consumer` (commit holes, rebalances,
  changelog starts) and :mod:`certflow.faust_fixes.exactly_once` (transactions).
* Its data directory is created with its parents (Faust's ``mkdir`` has none).
* :func:`restore_root_log_level` undoes Faust's worker setting the root logger to
  DEBUG.
* It refuses to start on library versions the fixes were not written for
  (:mod:`certflow.faust_fixes.versions`).

Upstream: faust-streaming 0.15.3 ``App.on_first_start`` (``mkdir`` without parents)
and ``Worker._setup_spinner`` (root logger left at DEBUG); no upstream issue is known.
"""

from __future__ import annotations

import logging
from pathlib import Path

import faust
from faust.types import TransportT

from certflow.faust_fixes.transport import Transport
from certflow.faust_fixes.versions import check_versions


class FixedApp(faust.App):
    """Faust's app on certflow's transport."""

    #: Replication of the topics Faust creates: configured, or (None) from the cluster's size.
    replication_factor: int | None = None
    min_insync_replicas: int | None = None

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)

    async def on_first_start(self) -> None:
        check_versions()
        # Faust creates its data directory with mkdir() without parents: in a fresh
        # working directory the default, .certflow/worker, died with
        # FileNotFoundError('.certflow/worker'). The whole path is created first.
        Path(self.conf.datadir).mkdir(parents=True, exist_ok=True)
        await super().on_first_start()


def restore_root_log_level(level: str) -> None:
    """Set the root logger back to ``level`` once Faust's worker has started.

    Faust's worker sets the root logger to DEBUG when the level is WARN or above, so
    that its start-up spinner sees every record, and leaves it so: every debug line
    of aiokafka and Faust is then built and thrown away (a fifth of an idle worker's
    CPU, measured with py-spy).
    """
    logging.getLogger().setLevel(level)
