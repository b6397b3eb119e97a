"""Fixtures every test may use: where the fixture files are."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def sunbird_fixture():
    """Bytes of a Sunbird fixture file, by name (see tests/fixtures/README.md)."""

    def read(name: str) -> bytes:
        return (FIXTURES / "sunbird" / name).read_bytes()

    return read


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium through playwright-core (see tests/browser)."""
    from tests.browser import Browser

    try:
        return Browser.installed()
    except RuntimeError as exc:
        pytest.fail(str(exc))
