"""The embedded Kafka-protocol broker for development, demos and tests.

``noida-db`` (a PyPI package shipping one binary) speaks the Kafka protocol with
transactions and correct offsets, so certflow runs against a real broker with no
JVM. It only ever listens on loopback here: it has no authentication.
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


def broker_command(*, port: int, data_dir: Path) -> list[str]:
    """The command line that runs the broker in the foreground on loopback."""
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
