"""What a worker tells operators and orchestrators over HTTP.

``/health`` answers while the process is alive (Kubernetes liveness), ``/ready`` only
once the worker has its partitions and its tables are recovered (readiness: send no
traffic before), ``/stats`` the per-topic event accounting and template cache counts.
"""

from __future__ import annotations

from faust.web import Request, Response, View

from certflow.agents import reference
from certflow.app import app, services
from certflow.web.routing import owner_route


@app.page("/health")
class Health(View):
    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok"})


@app.page("/ready")
class Ready(View):
    async def get(self, request: Request) -> Response:
        assignment = app.consumer.assignment() if app.consumer else set()
        ready = (
            bool(assignment)
            and not app.rebalancing
            and app.tables.recovery.completed.is_set()
            and reference.batches.caught_up.is_set()
        )
        body = {"ready": ready, "partitions": len(assignment)}
        return self.json(body, status=200 if ready else 503)


@app.page("/stats")
class Stats(View):
    async def get(self, request: Request) -> Response:
        return self.json(
            {
                "topics": services.accounting.snapshot(),
                "templateCache": services.templates.stats.as_dict(),
                # Keys held by this worker (active and standby partitions).
                "tables": {
                    "batches": len(reference.batches),
                    **{name: len(table) for name, table in app.tables.items()},
                },
            }
        )


@app.page("/learners/{userId}/decisions")
class LearnerDecisions(View):
    """A learner's most recent decisions, from the worker that owns the learner.

    Any worker answers: the request is forwarded to the worker whose partitions
    hold the learner.
    """

    @owner_route(reference.decisions, "userId")
    async def get(self, request: Request, userId: str) -> Response:  # noqa: N803 - route name
        recent = reference.decisions.get(userId.encode()) or []
        return self.json({"userId": userId, "decisions": recent})
