"""What a worker tells operators and orchestrators over HTTP.

``/health`` answers while the process is alive (Kubernetes liveness), ``/ready`` only
once the worker has joined its group, recovered its tables and read every batch
(readiness: send no traffic before), ``/stats`` the per-topic event accounting and template cache counts.
``/health`` and ``/ready`` are public; ``/stats`` and ``/metrics`` need the metrics or
the admin token, a learner's decisions the admin token (:mod:`certflow.web.auth`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web as aiohttp_web
from faust.web import Request, Response, View

from certflow.agents import reference
from certflow.app import app, services, settings
from certflow.liveness import holds_membership
from certflow.web.auth import Access, requires_token
from certflow.web.routing import owner_route, tables_recovered

log = logging.getLogger(__name__)


@app.page("/health")
class Health(View):
    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok"})


@app.page("/ready")
class Ready(View):
    async def get(self, request: Request) -> Response:
        assignment = app.consumer.assignment() if app.consumer else set()
        # No partitions is fine: with more workers than partitions some stand by;
        # no group membership is not (see certflow.liveness).
        ready = holds_membership(app) and tables_recovered() and reference.batches.caught_up.is_set()
        body = {"ready": ready, "partitions": len(assignment)}
        return self.json(body, status=200 if ready else 503)


@app.page("/stats")
class Stats(View):
    @requires_token(Access.METRICS)
    async def get(self, request: Request) -> Response:
        return self.json(
            {
                "topics": services.accounting.snapshot(),
                "templateCache": services.templates.stats.as_dict(),
                # Keys held by this worker (active and standby partitions). Counting
                # a RocksDB table reads every key, seconds for a million with the
                # event loop stopped: only in-memory tables are counted.
                "tables": {
                    "batches": len(reference.batches),
                    **{
                        name: len(table)
                        for name, table in app.tables.items()
                        if settings.store.startswith("memory")
                    },
                },
            }
        )


@app.page("/learners/{userId}/decisions")
class LearnerDecisions(View):
    """A learner's most recent decisions, from the worker that owns the learner.

    Any worker answers: the request is forwarded to the worker whose partitions
    hold the learner. A learner's scores are personal data: admin token only,
    checked before the request is forwarded.
    """

    @requires_token(Access.ADMIN)
    @owner_route(reference.decisions, "userId")
    async def get(self, request: Request, userId: str) -> Response:  # noqa: N803 - route name
        recent = reference.decisions.get(userId.encode()) or []
        # The issued state next to the decisions, from the same partition: what the
        # learner holds should always agree with the decisions that issued it.
        issued = reference.issued.get(userId.encode()) or {}
        return self.json({"userId": userId, "decisions": recent, "issued": issued})


# --- every error is JSON ----------------------------------------------------------------

#: Codes of the errors aiohttp raises itself: no route, wrong method, a body over
#: aiohttp's own limit, a malformed request.
_HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "TOO_LARGE",
    414: "TOO_LARGE",
    431: "TOO_LARGE",
}
#: Faust's built-in debugging pages. ``/table/{name}/{key}/`` answers any table's
#: value for any key (learner profiles, enrolments, issued certificates) to whoever
#: can reach the port, ``/router/`` lists the cluster's hosts and partitions; none
#: of it is certflow's API, so none of it is served.
_FAUST_PAGES = ("/table", "/router")

Handler = Callable[[aiohttp_web.Request], Awaitable[aiohttp_web.StreamResponse]]


def _json_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> aiohttp_web.Response:
    return aiohttp_web.Response(
        status=status,
        body=orjson.dumps({"error": {"code": code, "message": message}}),
        content_type="application/json",
        headers=headers,
    )


@aiohttp_web.middleware
async def json_errors(request: aiohttp_web.Request, handler: Handler) -> aiohttp_web.StreamResponse:
    """Answer unknown routes, wrong methods, oversized bodies and crashes in JSON.

    Faust only lets views answer for themselves; what aiohttp decides before a view
    runs (404, 405, 413) would otherwise be ``text/plain``, and an exception in a
    view a bare 500 page, unlike the ``{"error": {"code", "message"}}`` every
    client of this API parses.
    """
    if request.path.startswith(_FAUST_PAGES):
        return _json_error(404, "NOT_FOUND", f"no such resource: {request.path}")
    try:
        return await handler(request)
    except aiohttp_web.HTTPException as exc:
        if exc.status < 400:
            raise
        kept = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        code = _HTTP_CODES.get(exc.status, "HTTP_ERROR")
        return _json_error(exc.status, code, exc.reason, headers=kept)
    except Exception:  # noqa: BLE001 - a request must never get an HTML traceback page
        log.exception("unexpected failure answering %s %s", request.method, request.path)
        return _json_error(500, "INTERNAL_ERROR", "the request could not be answered")


# Pages register on ``app.web`` as their modules are imported, before the server
# starts (aiohttp freezes its middleware list then).
app.web.web_app.middlewares.append(json_errors)


@app.page("/metrics")
class Metrics(View):
    """Prometheus exposition: Sunbird's counters, latency histograms, caches, lag."""

    @requires_token(Access.METRICS)
    async def get(self, request: Request) -> Response:
        consumer = app.consumer
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
