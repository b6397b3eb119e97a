"""A worker without configured signing keys refuses to start (security issue 10, hole 8).

Before, each worker wrote a development key of its own into its data directory, so
two workers signed with different keys and half the certificates failed
verification on the other worker. Now a worker needs the deployment's keys and,
without them, stops at once, before it touches the broker, saying how to make them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from certflow.local import LocalWorker, shared_signing_keys

ROOT = Path(__file__).parents[2]


@pytest.fixture
def listener() -> tuple[int, list[object]]:
    """A TCP port that records every connection made to it (a stand-in broker)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            accepted.append(connection)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(2)
    server.close()


def _worker(cwd: Path, port: int, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith("CERTFLOW_")
    }
    env.update({
        "PYTHONPATH": str(ROOT),
        "CERTFLOW_BROKER": f"kafka://127.0.0.1:{port}",
        **settings,
    })
    return subprocess.run(
        [sys.executable, "-m", "certflow", "worker"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )


def test_a_worker_without_keys_exits_non_zero_saying_how_before_touching_the_broker(
    tmp_path: Path, listener: tuple[int, list[object]]
) -> None:
    port, connections = listener

    done = _worker(tmp_path, port)

    assert done.returncode != 0
    assert "certflow keys generate --file keys.json" in done.stderr
    assert "CERTFLOW_SIGNING_KEYS_FILE=keys.json" in done.stderr
    assert "CERTFLOW_SIGNING_KEYS" in done.stderr
    assert connections == []  # it never tried the broker
    assert list(tmp_path.iterdir()) == []  # and wrote no key, no data directory


def test_a_worker_whose_key_file_is_missing_exits_saying_so(
    tmp_path: Path, listener: tuple[int, list[object]]
) -> None:
    port, connections = listener

    done = _worker(tmp_path, port, CERTFLOW_SIGNING_KEYS_FILE=str(tmp_path / "keys.json"))

    assert done.returncode != 0
    assert "keys.json does not exist" in done.stderr
    assert connections == []


def test_workers_of_one_deployment_are_given_one_key_ring(tmp_path: Path) -> None:
    keys = shared_signing_keys(tmp_path / "signing-keys.json")
    before = (tmp_path / "signing-keys.json").read_bytes()

    assert shared_signing_keys(tmp_path / "signing-keys.json") == keys  # made once, then reused
    assert (tmp_path / "signing-keys.json").read_bytes() == before
    first = LocalWorker({**keys}, workdir=tmp_path, name="w0")
    second = LocalWorker({**keys}, workdir=tmp_path, name="w1")
    assert first.env["CERTFLOW_SIGNING_KEYS_FILE"] == second.env["CERTFLOW_SIGNING_KEYS_FILE"]
    with pytest.raises(ValueError, match="signing keys"):
        LocalWorker({}, workdir=tmp_path, name="w2")
