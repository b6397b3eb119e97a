"""The library versions the workarounds in :mod:`certflow.faust_fixes` were written for.

Each workaround overrides a private method or attribute of faust-streaming or
aiokafka, checked against these exact releases' code (and pinned in
``pyproject.toml``). Another release may have fixed the defect, or moved what the
workaround patches, in which case the patch silently stops applying and a
guarantee it restores (nothing committed past an unprocessed record, table changes
delivered before a commit) is gone without a sign. So a worker refuses to start on
any other version: upgrading means re-reading each workaround against the new code
and then updating :data:`PATCHED`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import metadata

#: Distribution → the version every workaround was checked against.
PATCHED: Mapping[str, str] = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


class UnpatchedVersion(RuntimeError):
    """An installed library is not the version certflow's workarounds patch."""


def version_mismatches(installed: Callable[[str], str] | None = None) -> dict[str, tuple[str, str]]:
    """Distribution → (patched, installed) for every one that differs (or is missing).

    ``installed``: a distribution's version (default: :func:`importlib.metadata.version`).
    """
    installed = installed or metadata.version
    found: dict[str, tuple[str, str]] = {}
    for name, patched in PATCHED.items():
        try:
            version = installed(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        if version != patched:
            found[name] = (patched, version)
    return found


def check_versions(installed: Callable[[str], str] | None = None) -> None:
    """Raise :class:`UnpatchedVersion` unless the patched versions are installed."""
    mismatches = version_mismatches(installed)
    if mismatches:
        listed = ", ".join(f"{name} {got} (patched: {want})" for name, (want, got) in mismatches.items())
        raise UnpatchedVersion(
            f"certflow's Faust/aiokafka workarounds were written for other versions: {listed}; "
            "check each workaround in certflow/faust_fixes against the installed code, then update PATCHED"
        )
