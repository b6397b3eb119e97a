"""Workers and their signing keys, on a real broker (security issue 10, hole 8).

* A worker given its keys (here inline, as from a Kubernetes Secret) starts even
  when its data directory does not exist yet: Faust created it without its
  parents, so a fresh working directory died with FileNotFoundError('.certflow/worker').
* The workers of one deployment sign with one key, so each accepts the others'
  certificates (before, each made up a key of its own: half the certificates failed
  verification on the other worker).

The refusal of a worker without keys needs no broker: ``tests/unit/test_worker_keys.py``.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest

from certflow.credentials.keys import KeyRing, SigningKey
from tests.integration.conftest import FIXTURES, Deployment

pytestmark = pytest.mark.integration


def test_a_worker_with_inline_keys_starts_in_a_data_dir_not_made_yet(broker, tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "state" / "worker"
    deployment = Deployment(broker, tmp_path, {
        "CERTFLOW_SIGNING_KEYS": KeyRing((SigningKey.generate(),)).to_json(),
        "CERTFLOW_SIGNING_KEYS_FILE": "",  # inline keys only
        "CERTFLOW_DATA_DIR": str(data_dir),
        "CERTFLOW_LOG_LEVEL": "warn",
    })
    try:
        worker = deployment.start_worker()
        assert worker.get("/health")[0] == 200
        assert data_dir.is_dir()
    finally:
        deployment.stop()


def _event(batch: str, recipient: str) -> bytes:
    event = orjson.loads((FIXTURES / "sunbird" / "certgen_EVENT_3_generate_certificate_no_oldId.json").read_bytes())
    event["edata"].update(
        svgTemplate="course-completion.svg",
        data=[{"recipientId": recipient, "recipientName": f"Learner {recipient}"}],
    )
    event["edata"]["related"]["batchId"] = batch
    return orjson.dumps(event)


def _verify(worker, credential: dict) -> dict:
    request = urllib.request.Request(
        worker.web_url + "/verify", data=json.dumps(credential).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_two_workers_of_one_deployment_sign_with_the_same_key(broker, tmp_path: Path) -> None:
    deployment = Deployment(broker, tmp_path, {"CERTFLOW_LOG_LEVEL": "warn"})
    try:
        deployment.start_worker()
        deployment.start_worker()
        batch = f"keys-{uuid.uuid4().hex[:8]}"
        recipients = [f"keys-learner-{n}" for n in range(12)]  # spread over all partitions
        deployment.send(deployment.topics.generate_request, [_event(batch, r) for r in recipients])

        records = deployment.collect(
            deployment.topics.certificate_issued, len(recipients), lambda r: r["batchId"] == batch
        )

        methods = {record["certificate"]["proof"]["verificationMethod"] for record in records}
        assert len(methods) == 1, f"the workers signed with {len(methods)} different keys"
        for record in records:
            for worker in deployment.workers:
                result = _verify(worker, record["certificate"])
                assert result["verified"], (worker.web_url, result)
        ring = KeyRing.load(Path(deployment.settings["CERTFLOW_SIGNING_KEYS_FILE"]))
        assert methods == {ring.current.verification_method}
    finally:
        deployment.stop()
