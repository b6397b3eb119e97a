"""The worker's event loop is the one ``CERTFLOW_EVENT_LOOP`` names.

Each case runs in a fresh interpreter: the loop policy is process-wide, and this
test process's own loop (pytest-asyncio's) must stay the standard library's.
Every integration test's worker then runs on the default, uvloop.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from certflow.settings import Settings

PROBE = (
    "import asyncio; from certflow.settings import Settings; from certflow.worker import event_loop; "
    "loop = event_loop(Settings()); "
    "print(type(loop).__module__ + '.' + type(loop).__qualname__, "
    "loop.run_until_complete(asyncio.sleep(0, result='runs')))"
)


@pytest.mark.parametrize(
    ("setting", "loop_class"),
    [(None, "uvloop.Loop"), ("uvloop", "uvloop.Loop"), ("asyncio", "asyncio.unix_events._UnixSelectorEventLoop")],
)
def test_the_worker_runs_on_the_loop_its_settings_name(setting: str | None, loop_class: str) -> None:
    env = {name: value for name, value in os.environ.items() if name != "CERTFLOW_EVENT_LOOP"}
    if setting is not None:
        env["CERTFLOW_EVENT_LOOP"] = setting
    probe = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [loop_class, "runs"]


def test_an_unknown_loop_is_refused() -> None:
    with pytest.raises(ValueError, match="event_loop"):
        Settings(event_loop="trio")  # type: ignore[arg-type]
