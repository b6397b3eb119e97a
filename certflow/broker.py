"""Local Kafka-protocol brokers for development, demos, tests and the benchmark.

Two engines:

* ``kafka`` (the default): Apache Kafka itself, in KRaft mode, one JVM per node, each
  node both broker and controller (:mod:`certflow.kafka_cluster`). Its jars come from
  Maven Central through Maven (:mod:`certflow.kafka_dist` and its ``pom.xml``) into a
  cache outside the repository, ``~/.cache/certflow/kafka-<version>/libs`` (``make
  kafka`` fetches them ahead of time; the first start does it too). One node or a
  cluster of three.
* ``noida`` (``noida-db`` from PyPI): one process, no Java needed; for a machine
  without a JRE. It has known defects (a group whose member was SIGKILLed is never
  rebalanced, acknowledged writes can be lost across its restart, fetches are never
  held), so nothing but a smoke test runs on it.

Both only ever listen on loopback here: they have no authentication. This module
holds the noida-db engine and the loopback helpers both share.
"""

from __future__ import annotations

import shutil
import socket
import sys
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"
ENGINES = ("kafka", "noida")
DEFAULT_ENGINE = "kafka"


# --- noida-db ----------------------------------------------------------------------------


def noida_executable() -> str:
    """The ``noida-db`` launcher installed beside this Python, else on ``PATH``."""
    beside = Path(sys.executable).parent / "noida-db"
    if beside.exists():
        return str(beside)
    found = shutil.which("noida-db")
    if found is None:
        raise FileNotFoundError("noida-db is not installed (pip install noida-db)")
    return found


def noida_command(*, port: int, data_dir: Path) -> list[str]:
    """The command line that runs noida-db in the foreground on loopback."""
    return [
        noida_executable(), "start", "--only", "kafka", "--host", LOOPBACK,
        "--kafka-port", str(port), "--data-dir", str(data_dir),
    ]


# --- shared ------------------------------------------------------------------------------


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


def free_port(avoid: set[int] | None = None) -> int:
    """A TCP port on loopback that nothing listens on right now (and not in ``avoid``)."""
    while True:
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            port = int(probe.getsockname()[1])
        if not avoid or port not in avoid:
            return port


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True



def accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False
