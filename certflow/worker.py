"""Running a worker: ``certflow worker``, and Faust's own ``faust -A certflow.worker worker``.

:func:`run_worker` starts an app built from explicit settings the way Faust's
``faust worker`` command does (faust/cli/worker.py and faust/cli/base.py:
``App.main`` finalizes the app and runs the worker init hooks, then the command
hands the app to a :class:`faust.Worker`), without rewriting ``sys.argv`` or
``os.environ``.

For ``faust -A certflow.worker worker``, this module's ``app`` attribute is built
on first access (module ``__getattr__``) from the environment, so importing the
module reads nothing.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, NoReturn

import mode.loop
from mode.utils.loops import get_event_loop

from certflow.app import CertflowApp, create_app
from certflow.faust_fixes.liveness import Worker
from certflow.settings import Settings

if TYPE_CHECKING:
    app: CertflowApp

_built: dict[str, CertflowApp] = {}


def __getattr__(name: str) -> CertflowApp:
    """``certflow.worker.app``: the app of ``Settings()`` (the environment), built once."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if "app" not in _built:
        _built["app"] = create_app(Settings())
    return _built["app"]


def event_loop(settings: Settings) -> asyncio.AbstractEventLoop:
    """The worker's event loop, of the kind ``settings`` name.

    Chosen before anything makes a loop, as Faust's ``-L`` option does: libuv's
    (uvloop) does in C what the standard library's does in Python (handles, futures,
    socket writes), a tenth of a worker's CPU. On uvloop a worker spent about a tenth
    less CPU per certificate and loaded reference data faster (five paired runs of
    ``certflow bench``, README "Performance"). The standard library's stays a setting
    away, to rule the loop out when diagnosing.
    """
    if settings.event_loop == "uvloop":
        mode.loop.use("uvloop")
    return get_event_loop()


def run_worker(settings: Settings) -> NoReturn:
    """Run a worker for ``settings`` until it is stopped; exits the process."""
    loop = event_loop(settings)
    app = create_app(settings)
    app.finalize()
    app.worker_init()
    app.worker_init_post_autodiscover()
    worker = Worker(
        app,
        loglevel=settings.log_level,
        loop=loop,
        # As Faust's worker command: a daemon whose stray prints go to the log.
        daemon=True,
        redirect_stdouts=True,
    )
    raise worker.execute_from_commandline()
