"""Bulk export against a real broker and worker: `certflow export` and GET /batches/{id}/certificates.zip.

Five learners of one batch get certificates through the generate flow, an admin
revokes one, and both ways of exporting give the other four, rendered, with a
manifest that says which one was left out and why.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.conftest import FIXTURES, Deployment
from tests.integration.polling import until

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "export-admin-token"
LEARNERS = [
    ("exp-learner-1", "प्रिया शर्मा"),
    ("exp-learner-2", "முருகன் செல்வம்"),
    ("exp-learner-3", "محمد علی"),
    ("exp-learner-4", "Asha Verma"),
    ("exp-learner-5", "../../etc/passwd"),
]
REVOKED = "exp-learner-2"


@pytest.fixture(scope="module")
def deployment(broker, tmp_path_factory) -> Iterator[Deployment]:
    running = Deployment(broker, tmp_path_factory.mktemp("export"), {
        "CERTFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
        "CERTFLOW_LOG_LEVEL": "warn",
    })
    running.start_worker()
    yield running
    running.stop()


def http(worker, path: str, *, method: str = "GET", body: bytes | None = None,
         token: str | None = ADMIN_TOKEN) -> tuple[int, bytes, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(worker.web_url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


@pytest.fixture(scope="module")
def batch(deployment: Deployment) -> dict[str, Any]:
    """Five certificates of one batch, issued through the generate flow; one revoked by an admin."""
    batch_id = f"export-{uuid.uuid4().hex[:8]}"
    event = orjson.loads((FIXTURES / "sunbird" / "certgen_EVENT_3_generate_certificate_no_oldId.json").read_bytes())
    event["edata"].update(
        svgTemplate="course-completion.svg", basePath=f"{deployment.workers[0].web_url}/certs",
        data=[{"recipientId": learner, "recipientName": name} for learner, name in LEARNERS],
    )
    event["edata"]["related"]["batchId"] = batch_id
    deployment.send(deployment.topics.generate_request, [orjson.dumps(event)])
    seen: set[str] = set()

    def first_of_each_learner(record: dict) -> bool:
        if record["batchId"] != batch_id or record["recipient"]["id"] in seen:
            return False
        seen.add(record["recipient"]["id"])
        return True

    records = deployment.collect(deployment.topics.certificate_issued, len(LEARNERS), first_of_each_learner)
    by_learner = {record["recipient"]["id"]: record for record in records}
    revoked = by_learner[REVOKED]["id"]
    worker = deployment.workers[0]
    # 404 until the registry holds the record.
    until(lambda: http(worker, f"/certs/{revoked}/revoke", method="POST",
                       body=orjson.dumps({"reason": "name misspelt"}))[0] == 202)
    until(lambda: orjson.loads(http(worker, f"/certs/{revoked}")[1])["status"] == "revoked")
    return {"id": batch_id, "records": by_learner, "revoked": revoked}


def in_force(batch: dict[str, Any]) -> dict[str, dict]:
    return {record["id"]: record for learner, record in batch["records"].items() if learner != REVOKED}


def check_export(files: dict[str, bytes], batch: dict[str, Any], fmt: str) -> None:
    """Four rendered certificates, each named after its learner, and the manifest."""
    manifest = orjson.loads(files.pop("manifest.json"))
    expected = in_force(batch)
    assert manifest["batchId"] == batch["id"] and manifest["format"] == fmt
    assert manifest["counts"] == {"exported": 4, "leftOut": 1, "failed": 0}
    assert {c["id"] for c in manifest["certificates"]} == set(expected)
    assert sorted(files) == sorted(c["file"] for c in manifest["certificates"])
    magic = b"%PDF-" if fmt == "pdf" else b"\x89PNG\r\n\x1a\n"
    for described in manifest["certificates"]:
        record = expected[described["id"]]
        assert files[described["file"]].startswith(magic)
        assert described["recipient"]["name"] == record["recipient"]["name"]
        assert described["file"].endswith(f"-{record['id'][:8]}.{fmt}")
        assert "/" not in described["file"]
    names = {c["recipient"]["name"]: c["file"] for c in manifest["certificates"]}
    assert names["प्रिया शर्मा"] == f"प्रिया शर्मा-{batch['records']['exp-learner-1']['id'][:8]}.{fmt}"
    assert names["../../etc/passwd"].startswith("etc passwd-")
    [left] = manifest["leftOut"]
    assert (left["id"], left["reason"], left["detail"]) == (batch["revoked"], "revoked", "name misspelt")
    assert left["recipient"]["name"] == "முருகன் செல்வம்"


def certflow_export(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "certflow", "export", *args],
        env={**os.environ, **deployment.settings}, capture_output=True, text=True, timeout=120,
    )


def test_certflow_export_zips_the_certificates_in_force_and_names_the_revoked_one(
    deployment: Deployment, batch: dict[str, Any], tmp_path: Path,
) -> None:
    out = tmp_path / "batch.zip"

    done = certflow_export(deployment, "--batch", batch["id"], "--format", "pdf", "-o", str(out))

    assert done.returncode == 0, done.stderr
    assert "4 certificates in" in done.stderr and "PDFs/s" in done.stderr
    assert f"left out {batch['revoked']}" in done.stderr
    with zipfile.ZipFile(out) as archive:
        assert archive.testzip() is None
        check_export({name: archive.read(name) for name in archive.namelist()}, batch, "pdf")
    assert not (tmp_path / "batch.zip.part").exists()


def test_certflow_export_writes_pngs_into_a_folder(deployment: Deployment, batch: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "printing"

    done = certflow_export(deployment, "--batch", batch["id"], "--format", "png", "--output-dir", str(folder))

    assert done.returncode == 0, done.stderr
    assert "PNGs/s" in done.stderr
    check_export({path.name: path.read_bytes() for path in folder.iterdir()}, batch, "png")


def test_certflow_export_of_a_batch_without_certificates_fails(deployment: Deployment, tmp_path: Path) -> None:
    done = certflow_export(deployment, "--batch", "no-such-batch", "-o", str(tmp_path / "x.zip"))

    assert done.returncode == 1
    assert "batch no-such-batch has no certificates" in done.stderr
    assert not (tmp_path / "x.zip").exists()


def test_the_zip_route_streams_the_batch_to_an_admin_only(deployment: Deployment, batch: dict[str, Any]) -> None:
    worker = deployment.workers[0]
    path = f"/batches/{batch['id']}/certificates.zip"

    for token in (None, "wrong"):
        status, body, headers = http(worker, path, token=token)
        assert status == 401 and orjson.loads(body)["error"]["code"] == "UNAUTHORIZED"
        assert headers["WWW-Authenticate"].startswith("Bearer")

    status, body, headers = http(worker, f"{path}?format=pdf")

    assert status == 200, body[:500]
    assert headers["Content-Type"] == "application/zip"
    assert headers["Content-Disposition"].startswith(f'attachment; filename="certificates-{batch["id"]}.zip"')
    # Streamed as rendered: no length known in advance.
    assert headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        check_export({name: archive.read(name) for name in archive.namelist()}, batch, "pdf")


def test_the_zip_route_refuses_an_unknown_batch_and_format(deployment: Deployment, batch: dict[str, Any]) -> None:
    worker = deployment.workers[0]

    status, body, _ = http(worker, "/batches/no-such-batch/certificates.zip")
    assert status == 404 and orjson.loads(body)["error"]["code"] == "BATCH_NOT_FOUND"

    status, body, _ = http(worker, f"/batches/{batch['id']}/certificates.zip?format=svg")
    assert status == 400 and orjson.loads(body)["error"]["code"] == "INVALID_PARAM_VALUE"
