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
