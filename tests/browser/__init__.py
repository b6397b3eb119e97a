"""Headless Chromium for tests: Debian's ``chromium``, driven by ``playwright-core``.

No browser is downloaded: ``npm ci`` installs only playwright-core (pinned in
``package-lock.json``), which launches ``/usr/bin/chromium`` (``make test`` installs
Debian's package). Each call runs one short Node process that opens the pages,
reports what they did as JSON and closes the browser, so nothing outlives a test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).parent
CHROMIUM = Path("/usr/bin/chromium")


class Browser:
    """Opens URLs in a fresh headless Chromium and says what each page tried to do."""

    def __init__(self, node: str) -> None:
        self.node = node

    @classmethod
    def installed(cls) -> Browser:
        """After ``npm ci`` here; raises RuntimeError with the reason when it cannot be had."""
        node, npm = shutil.which("node"), shutil.which("npm")
        if node is None or npm is None:
            raise RuntimeError("browser tests need node and npm on PATH")
        if not CHROMIUM.exists():
            raise RuntimeError(f"browser tests need Debian's chromium at {CHROMIUM} (make test installs it)")
        if not all((HERE / "node_modules" / package).exists() for package in ("playwright-core", "axe-core")):
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True, timeout=600
            )
            if done.returncode != 0:
                raise RuntimeError(f"npm ci failed in {HERE}:\n{done.stderr[-3000:]}")
        return cls(node)

    def open(self, urls: list[str], *, unprotected: bool = False, timeout: float = 180.0) -> list[dict[str, Any]]:
        """One report per URL (two with ``unprotected``): dialogs, errors, requests, headers."""
        done = subprocess.run(
            [self.node, str(HERE / "open_documents.mjs")],
            input=orjson.dumps({"urls": urls, "unprotected": unprotected}),
            capture_output=True,
            timeout=timeout,
            env={**os.environ, "CHROMIUM": str(CHROMIUM)},
        )
        if done.returncode != 0:
            raise RuntimeError(f"the browser run failed:\n{done.stderr.decode(errors='replace')[-3000:]}")
        reports: list[dict[str, Any]] = orjson.loads(done.stdout)
        return reports

    def pages(self, pages: list[dict[str, Any]], *, timeout: float = 180.0) -> list[dict[str, Any]]:
        """One report per page (see ``pages.mjs``): what a person sees, an axe-core
        scan when ``axe`` is set, a screenshot when ``screenshot`` names a file."""
        done = subprocess.run(
            [self.node, str(HERE / "pages.mjs")],
            input=orjson.dumps({"pages": pages}),
            capture_output=True,
            timeout=timeout,
            env={**os.environ, "CHROMIUM": str(CHROMIUM)},
        )
        if done.returncode != 0:
            raise RuntimeError(f"the browser run failed:\n{done.stderr.decode(errors='replace')[-3000:]}")
        reports: list[dict[str, Any]] = orjson.loads(done.stdout)
        return reports
