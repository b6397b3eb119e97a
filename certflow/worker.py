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

from typing import TYPE_CHECKING, NoReturn

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


def run_worker(settings: Settings) -> NoReturn:
    """Run a worker for ``settings`` until it is stopped; exits the process."""
    app = create_app(settings)
    app.finalize()
    app.worker_init()
    app.worker_init_post_autodiscover()
    worker = Worker(
        app,
        loglevel=settings.log_level,
        loop=get_event_loop(),
        # As Faust's worker command: a daemon whose stray prints go to the log.
        daemon=True,
        redirect_stdouts=True,
    )
    raise worker.execute_from_commandline()
