"""What a worker tells operators and orchestrators over HTTP.

``/health`` answers while the process is alive (Kubernetes liveness), ``/ready`` only
once the worker has joined its group, recovered its tables and read every batch
(readiness: send no traffic before), ``/stats`` the per-topic event accounting and template cache counts.
``/health`` and ``/ready`` are public; ``/stats`` and ``/metrics`` need the metrics or
the admin token, a learner's decisions the admin token (:mod:`certflow.web.auth`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from faust.web import Request, Response

from certflow.faust_fixes.liveness import holds_membership
from certflow.faust_fixes.routing import owner_route, tables_recovered
from certflow.faust_fixes.web import hide_faust_pages, middlewares
from certflow.web import headers
from certflow.web.auth import Access, requires_token
from certflow.web.base import CertflowView
from certflow.web.errors import json_errors

if TYPE_CHECKING:
    from certflow.app import CertflowApp

log = logging.getLogger(__name__)


class Health(CertflowView):
    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok"})


class Ready(CertflowView):
    async def get(self, request: Request) -> Response:
        app = self.app
        state = app.flows.state
        assignment = app.consumer.assignment() if app.consumer else set()
        # No partitions is fine: with more workers than partitions some stand by;
        # no group membership is not (see certflow.faust_fixes.liveness).
        ready = holds_membership(app) and tables_recovered(app) and state.batches.caught_up.is_set()
        body = {"ready": ready, "partitions": len(assignment)}
        return self.json(body, status=200 if ready else 503)


class Stats(CertflowView):
    @requires_token(Access.METRICS)
    async def get(self, request: Request) -> Response:
        app = self.app
        services, settings = app.services, app.settings
        return self.json(
            {
                "topics": services.accounting.snapshot(),
                "templateCache": services.templates.stats.as_dict(),
                # Keys held by this worker (active and standby partitions). Counting
                # a RocksDB table reads every key, seconds for a million with the
                # event loop stopped: only in-memory tables are counted.
                "tables": {
                    "batches": len(app.flows.state.batches),
                    **{
                        name: len(table)
                        for name, table in app.tables.items()
                        if settings.store.startswith("memory")
                    },
                },
            }
        )


class LearnerDecisions(CertflowView):
    """A learner's most recent decisions, from the worker that owns the learner.

    Any worker answers: the request is forwarded to the worker whose partitions
    hold the learner. A learner's scores are personal data: admin token only,
    checked before the request is forwarded.
    """

    @requires_token(Access.ADMIN)
    @owner_route("decisions", "userId")
    async def get(self, request: Request, userId: str) -> Response:  # noqa: N803 - route name
        state = self.app.flows.state
        recent = state.decisions.get(userId.encode()) or []
        # The issued state next to the decisions, from the same partition: what the
        # learner holds should always agree with the decisions that issued it.
        issued = state.issued.get(userId.encode()) or {}
        return self.json({"userId": userId, "decisions": recent, "issued": issued})


class Metrics(CertflowView):
    """Prometheus exposition: Sunbird's counters, latency histograms, caches, lag."""

    @requires_token(Access.METRICS)
    async def get(self, request: Request) -> Response:
        services = self.app.services
        consumer = self.app.consumer
        lag: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            position = await consumer.position(tp)
            highwater = consumer.highwater(tp)
            # Apache Kafka reports a partition's high watermark with its first
            # fetch: none yet for a partition nothing was fetched from.
            if position is not None and highwater is not None:
                lag[(tp.topic, tp.partition)] = max(0, highwater - position)
        services.metrics.lag = lag
        return self.bytes(services.metrics.exposition(), content_type="text/plain")


def register(app: CertflowApp) -> None:
    """The operational views, and the middlewares every answer goes through.

    Middlewares are added before the server starts (aiohttp freezes its list then):
    security headers outermost, so they are also on the JSON error answers.
    """
    middlewares(app).append(hide_faust_pages)
    middlewares(app).append(json_errors)
    headers.register(app)
    app.page("/health")(Health)
    app.page("/ready")(Ready)
    app.page("/stats")(Stats)
    app.page("/learners/{userId}/decisions")(LearnerDecisions)
    app.page("/metrics")(Metrics)
