"""The watchdog: a worker whose group coordination or table recovery died stops
(see :mod:`certflow.liveness`)."""

from __future__ import annotations

from certflow.app import app
from certflow.liveness import fatal_problem, stop_process

#: Seconds between two checks.
CHECK_INTERVAL = 2.0


@app.timer(CHECK_INTERVAL)
async def watchdog() -> None:
    problem = fatal_problem(app)
    if problem is not None:
        stop_process(problem)
