"""A worker refuses to start on faust-streaming or aiokafka versions its workarounds
were not written for (certflow.faust_fixes.versions)."""

from __future__ import annotations

from importlib import metadata

import pytest
from click.testing import CliRunner

from certflow.cli import cli
from certflow.faust_fixes import versions
from certflow.faust_fixes.versions import PATCHED, UnpatchedVersion, check_versions, version_mismatches


def test_the_installed_versions_are_the_patched_ones() -> None:
    assert version_mismatches() == {}
    check_versions()


def test_another_version_is_refused_naming_it() -> None:
    def installed(name: str) -> str:
        return "0.99.0" if name == "aiokafka" else PATCHED[name]

    with pytest.raises(UnpatchedVersion, match=r"aiokafka 0\.99\.0 \(patched: 0\.14\.0\)"):
        check_versions(installed)


def test_a_missing_library_is_a_mismatch() -> None:
    def installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    assert set(version_mismatches(installed)) == set(PATCHED)


def test_certflow_worker_stops_before_touching_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(versions.metadata, "version", lambda name: "0.0.1")

    result = CliRunner().invoke(cli, ["worker"])

    assert result.exit_code == 1
    assert "workarounds were written for other versions" in result.output
