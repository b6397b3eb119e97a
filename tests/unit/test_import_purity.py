"""Importing any certflow module reads no settings and writes nothing (issue 12).

Every module under ``certflow`` is imported in a fresh interpreter whose
``CERTFLOW_*`` environment is bogus (a setting read at import would fail to parse)
and whose ``Settings`` refuses to be created, in an empty working directory that
must stay empty (a data directory or signing-key file made at import would show).
Apps are built by :func:`certflow.app.create_app` from explicit settings only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Run as a script: imports every module, reports what failed.
PROBE = r"""
import importlib, json, pkgutil, sys
import certflow.settings

def refuse(*args, **kwargs):
    raise AssertionError("Settings() was created at import")

certflow.settings.Settings.__init__ = refuse
import certflow

failures = {}
imported = []
for module in pkgutil.walk_packages(certflow.__path__, "certflow."):
    # __main__ is `python -m certflow`: running the command is what importing it means.
    if module.name == "certflow.__main__":
        continue
    try:
        importlib.import_module(module.name)
        imported.append(module.name)
    except BaseException as exc:
        failures[module.name] = repr(exc)
print(json.dumps({"imported": imported, "failures": failures}))
"""


def test_importing_every_module_reads_no_settings_and_writes_nothing(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    bogus = {
        "CERTFLOW_PARTITIONS": "not-a-number",
        "CERTFLOW_DATA_DIR": str(tmp_path / "data"),
        "CERTFLOW_SIGNING_KEYS_FILE": str(tmp_path / "keys.json"),
        "CERTFLOW_BROKER": "kafka://bogus:1",
    }
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root), "HOME": str(tmp_path), **bogus}
    work = tmp_path / "cwd"
    work.mkdir()

    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["failures"] == {}
    assert {"certflow.app", "certflow.worker", "certflow.cli", "certflow.registry.views"} <= set(report["imported"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cwd"]
    assert list(work.iterdir()) == []


def test_the_faust_entry_point_builds_its_app_on_first_access(monkeypatch: pytest.MonkeyPatch) -> None:
    """``faust -A certflow.worker worker``: the app of the environment, built once, when asked for."""
    import certflow.worker

    monkeypatch.setattr(certflow.worker, "_built", {})
    monkeypatch.setenv("CERTFLOW_APP_ID", "certflow-lazy")

    app = certflow.worker.app

    assert app.conf.id == "certflow-lazy"
    assert certflow.worker.app is app
    assert "certflow.generate.issue" in app.agents
