"""Certificates as verifiable credentials, served, verified and revoked by two workers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from PIL import Image

from certflow.broker import free_port
from certflow.credentials.keys import KeyRing
from certflow.credentials.proof import resolve_did_key, verify_proof
from certflow.credentials.status_list import StatusList
from certflow.events.models import parse_event
from certflow.generate.models import GenerateCertificateRequest, validation_context
from tests.integration.conftest import FIXTURES, PARTITIONS, Deployment
from tests.integration.polling import until

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "signing-keys.json"
    made = subprocess.run(
        [sys.executable, "-m", "certflow", "keys", "generate", "--file", str(path)],
        capture_output=True, text=True, check=True,
    )
    assert made.stdout.strip().startswith("did:key:z6Mk")
    return path


@pytest.fixture(scope="module")
def deployment(broker, keys_file, tmp_path_factory) -> Iterator[Deployment]:
    # Status lists are published under the public URL: here, worker 0's address.
    public_port = free_port()
    running = Deployment(broker, tmp_path_factory.mktemp("credentials"), {
        "CERTFLOW_SIGNING_KEYS_FILE": str(keys_file),
        "CERTFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
        "CERTFLOW_LOG_LEVEL": "warn",
        "CERTFLOW_PUBLIC_URL": f"http://127.0.0.1:{public_port}",
    })
    running.start_worker(CERTFLOW_WEB_PORT=str(public_port))
    running.start_worker()
    yield running
    running.stop()


def generate_event(batch: str, recipient: tuple[str, str], *, base_path: str, old_id: str = "") -> bytes:
    event = orjson.loads((FIXTURES / "sunbird" / "certgen_EVENT_3_generate_certificate_no_oldId.json").read_bytes())
    event["edata"].update(
        svgTemplate="course-completion.svg", basePath=base_path, oldId=old_id, expiry="1y",
        data=[{"recipientId": recipient[0], "recipientName": recipient[1]}],
    )
    event["edata"]["related"]["batchId"] = batch
    return orjson.dumps(event)


def request(worker, path: str, *, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(worker.web_url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


def first_of_each_learner(batch: str):
    """A `collect` filter: one record per learner of ``batch`` (a certificate published
    again, when a rebalance makes a worker redo an event, is the same record)."""
    seen: set[str] = set()

    def where(record: dict) -> bool:
        if record["batchId"] != batch or record["recipient"]["id"] in seen:
            return False
        seen.add(record["recipient"]["id"])
        return True

    return where


@pytest.fixture(scope="module")
def issued(deployment: Deployment) -> dict:
    """Three learners' certificates, issued through the generate flow."""
    batch = f"vc-{uuid.uuid4().hex[:8]}"
    base_path = f"{deployment.workers[0].web_url}/certs"
    names = [("vc-learner-1", "प्रिया शर्मा"), ("vc-learner-2", "முருகன் செல்வம்"), ("vc-learner-3", "محمد علی")]
    deployment.send(deployment.topics.generate_request,
                    [generate_event(batch, name, base_path=base_path) for name in names])
    records = deployment.collect(deployment.topics.certificate_issued, 3, first_of_each_learner(batch))
    # Every certificate is in the registry before the tests ask for it.
    for record in records:
        path = f"/certs/{record['id']}"
        until(lambda path=path: request(deployment.workers[0], path)[0] == 200)
    return {"batch": batch, "base_path": base_path, "records": {r["recipient"]["id"]: r for r in records}}


def test_every_certificate_is_a_signed_open_badge_credential(issued, keys_file) -> None:
    ring = KeyRing.load(keys_file)
    for record in issued["records"].values():
        credential = record["certificate"]
        assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
        assert credential["issuer"]["id"] == ring.current.did
        assert credential["proof"]["cryptosuite"] == "eddsa-jcs-2022"
        assert verify_proof(credential, ring.find).ok
        assert credential["credentialStatus"]["type"] == "BitstringStatusListEntry"
        assert credential["validUntil"] > credential["validFrom"]


def test_any_worker_serves_any_certificate_and_its_files(deployment, issued) -> None:
    for record in issued["records"].values():
        for worker in deployment.workers:
            status, body, _ = request(worker, f"/certs/{record['id']}")
            answer = orjson.loads(body)
            assert status == 200
            assert answer["status"] == "active"
            assert answer["verification"]["verified"], answer["verification"]
            # Its status list too, whichever worker owns it (lists of either topic's shape).
            status_list = record["certificate"]["credentialStatus"]["statusListCredential"].rsplit("/", 1)[-1]
            assert request(worker, f"/status/{status_list}")[0] == 200
    record = issued["records"]["vc-learner-1"]
    worker = deployment.workers[1]
    status, svg, kind = request(worker, f"/certs/{record['id']}.svg")
    assert (status, kind.split(";")[0]) == (200, "image/svg+xml") and "प्रिया शर्मा".encode() in svg
    for worker in deployment.workers:  # the owner renders; the other forwards the bytes intact
        status, pdf, kind = request(worker, f"/certs/{record['id']}.pdf")
        assert (status, kind) == (200, "application/pdf") and pdf.startswith(b"%PDF")
        status, png, kind = request(worker, f"/certs/{record['id']}.png")
        assert (status, kind) == (200, "image/png")
        assert Image.open(io.BytesIO(png)).size == (1684, 1190)
    assert request(worker, "/certs/no-such-certificate")[0] == 404


def test_the_qr_code_url_lands_on_a_human_readable_verification_page(deployment, issued) -> None:
    record = issued["records"]["vc-learner-2"]
    assert record["verifyUrl"] == f"{issued['base_path']}/{record['id']}"
    status, page, kind = request(deployment.workers[1], f"/certs/{record['id']}",
                                 headers={"Accept": "text/html"})
    text = page.decode()
    assert status == 200 and kind.startswith("text/html")
    assert "Valid certificate" in text and record["id"] in text and "<h1>" in text
    assert 'lang="ta"' in text and "முருகன் செல்வம்" in text  # the name's script marks its language
    assert "The digital signature is intact" in text and "Valid until" in text
    assert "https://www.linkedin.com/profile/add?" in text
    # An unknown id: an HTML page for a browser, JSON for a program.
    status, page, kind = request(deployment.workers[0], "/certs/no-such-certificate",
                                 headers={"Accept": "text/html"})
    assert (status, kind.split(";")[0]) == (404, "text/html") and "Certificate not found" in page.decode()
    status, body, kind = request(deployment.workers[0], "/certs/no-such-certificate")
    assert (status, kind.split(";")[0]) == (404, "application/json")
    assert orjson.loads(body)["error"]["code"] == "CERTIFICATE_NOT_FOUND"


def test_a_paper_certificate_is_found_by_its_access_code(deployment, issued) -> None:
    """GET /verify: the form, then the code with the learner's name or the short id."""
    from urllib.parse import urlencode

    record = issued["records"]["vc-learner-3"]
    html = {"Accept": "text/html"}
    status, form, kind = request(deployment.workers[0], "/verify", headers=html)
    assert status == 200 and kind.startswith("text/html") and "Check a paper certificate" in form.decode()

    def check(worker, who: str) -> str:
        query = urlencode({"code": record["accessCode"].lower(), "who": who})
        status, page, _ = request(worker, f"/verify?{query}", headers=html)
        assert status == 200, page
        return page.decode()

    for worker in deployment.workers:  # whichever worker owns the code's index entry
        until(lambda w=worker: "Found: this access code belongs to" in check(w, "محمد علی"))
        assert f"certs/{record['id']}" in check(worker, record["id"][:8])
        assert "No certificate matches" in check(worker, "Someone Else")
    status, page, _ = request(deployment.workers[1], "/verify?code=%3Cx%3E&who=a", headers=html)
    assert status == 400 and "<x>" not in page.decode()


def test_the_pdf_has_a_text_layer_with_the_name_and_course(deployment, issued, tmp_path) -> None:
    """`pdftotext` finds the learner's name and the course, Latin and Devanagari."""
    for learner, name in (("vc-learner-1", "प्रिया शर्मा"),):
        record = issued["records"][learner]
        status, pdf, _ = request(deployment.workers[0], f"/certs/{record['id']}.pdf")
        assert status == 200
        path = tmp_path / f"{learner}.pdf"
        path.write_bytes(pdf)
        text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"],
                              capture_output=True, text=True, check=True).stdout
        squashed = " ".join(text.split())
        assert name in squashed, squashed
        course = record["course"]["name"]
        assert course and " ".join(course.split()) in squashed, (course, squashed)


def test_verify_accepts_a_presented_credential_and_explains_a_forged_one(deployment, issued) -> None:
    credential = issued["records"]["vc-learner-3"]["certificate"]
    status, body, _ = request(deployment.workers[0], "/verify", method="POST", body=orjson.dumps(credential),
                              headers={"Content-Type": "application/json"})
    assert status == 200 and orjson.loads(body)["verified"], body

    forged = json.loads(json.dumps(credential))
    forged["credentialSubject"]["achievement"]["name"] = "Doctorate"
    result = orjson.loads(request(deployment.workers[1], "/verify", method="POST", body=orjson.dumps(forged))[1])
    assert not result["verified"]
    assert next(c["check"] for c in result["checks"] if not c["ok"]) == "signature"

    too_big = request(deployment.workers[0], "/verify", method="POST", body=b"{" + b" " * 300_000 + b"}")
    assert too_big[0] == 413 and orjson.loads(too_big[1])["error"]["code"] == "TOO_LARGE"


def test_a_reissue_revokes_the_old_certificate_everywhere(deployment, issued, tmp_path) -> None:
    old = issued["records"]["vc-learner-1"]
    deployment.send(deployment.topics.generate_request, [
        generate_event(issued["batch"], ("vc-learner-1", "प्रिया शर्मा"), base_path=issued["base_path"], old_id=old["id"])
    ])
    [new] = deployment.collect(deployment.topics.certificate_issued, 1, lambda r: r["oldId"] == old["id"])
    assert new["id"] != old["id"]

    revoked = until(lambda: orjson.loads(request(deployment.workers[1], f"/certs/{old['id']}")[1])["status"] == "revoked")
    assert revoked
    answer = orjson.loads(request(deployment.workers[0], f"/certs/{old['id']}")[1])
    assert answer["revocation"]["replacedBy"] == new["id"]
    # A browser is told when it was revoked, why, and by what it was replaced.
    page = request(deployment.workers[1], f"/certs/{old['id']}", headers={"Accept": "text/html"})[1].decode()
    assert "Revoked on" in page and "Replaced by" in page and new["id"] in page
    assert "linkedin.com" not in page
    # Its downloads carry a visible REVOKED mark: they differ from the clean rendering.
    status, revoked_png, _ = request(deployment.workers[0], f"/certs/{old['id']}.png")
    assert status == 200 and revoked_png.startswith(b"\x89PNG")
    # The status list says so too, signed by the issuer, for verifiers outside.
    entry = old["certificate"]["credentialStatus"]
    list_path = "/status/" + entry["statusListCredential"].rsplit("/", 1)[-1]

    def bit_set() -> bool:
        status_list = orjson.loads(request(deployment.workers[1], list_path)[1])
        assert verify_proof(status_list, resolve_did_key).ok
        return StatusList.decode(status_list["credentialSubject"]["encodedList"]).get(int(entry["statusListIndex"]))

    until(bit_set)
    result = orjson.loads(request(deployment.workers[1], "/verify", method="POST",
                                  body=orjson.dumps(old["certificate"]))[1])
    assert not result["verified"]
    assert any(c["check"] == "status" and "revoked" in c["reason"] for c in result["checks"])

    # `certflow verify` reaches the same verdict from a file, fetching the status list,
    # as the operator of this deployment: its keys are the trusted issuers, and its
    # status lists are on its public URL's host, which is loopback here.
    env = {**os.environ, **{name: deployment.settings[name] for name in
                            ("CERTFLOW_SIGNING_KEYS_FILE", "CERTFLOW_PUBLIC_URL")},
           "CERTFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "true"}
    path = tmp_path / "old.json"
    path.write_bytes(orjson.dumps(old["certificate"]))
    verify = [sys.executable, "-m", "certflow", "verify"]
    cli = subprocess.run([*verify, str(path)], capture_output=True, text=True, env=env)
    assert cli.returncode == 1 and "revoked" in cli.stdout
    path.write_bytes(orjson.dumps(new["certificate"]))
    cli = subprocess.run([*verify, str(path)], capture_output=True, text=True, env=env)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    by_url = subprocess.run([*verify, new["verifyUrl"]], capture_output=True, text=True, env=env)
    assert by_url.returncode == 0, by_url.stdout + by_url.stderr
    # Without the operator's opt-in, a status list on a private address is not fetched.
    private = {**env, "CERTFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "false"}
    cli = subprocess.run([*verify, str(path)], capture_output=True, text=True, env=private)
    assert cli.returncode == 1 and "is not a public address" in cli.stdout + cli.stderr
    # Without the deployment's keys, its certificates are an untrusted issuer's.
    stranger = {name: value for name, value in env.items() if name != "CERTFLOW_SIGNING_KEYS_FILE"}
    cli = subprocess.run([*verify, str(path), "--no-status"], capture_output=True, text=True,
                         env={**stranger, "CERTFLOW_DATA_DIR": str(tmp_path / "no-keys")})
    assert cli.returncode == 1 and "untrusted issuer" in cli.stdout


def test_revoking_needs_the_admin_token(deployment, issued) -> None:
    record = issued["records"]["vc-learner-2"]
    path = f"/certs/{record['id']}/revoke"
    status, body, _ = request(deployment.workers[0], path, method="POST", body=b"{}")
    assert status == 401 and orjson.loads(body)["error"]["code"] == "UNAUTHORIZED"
    status, _, _ = request(deployment.workers[0], path, method="POST", body=b"{}",
                           headers={"Authorization": "Bearer wrong"})
    assert status == 401
    status, _, _ = request(deployment.workers[1], path, method="POST",
                           body=orjson.dumps({"reason": "issued in error"}),
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"})
    assert status == 202
    answer = until(lambda: (a := orjson.loads(request(deployment.workers[0], f"/certs/{record['id']}")[1]))["status"] == "revoked" and a)
    assert answer["revocation"]["reason"] == "issued in error"
    assert not answer["verification"]["verified"] or answer["status"] == "revoked"


# --- security issue 10: who may revoke, who may read (placed last: they add learners) ------


def certificate_id_of(event: bytes) -> str:
    """The deterministic id the certificate of a one-recipient generate event will have:
    anyone can compute it, before it is issued."""
    request = parse_event(GenerateCertificateRequest, event, max_bytes=1 << 20,
                          context=validation_context(suppress_signatory_errors=True))
    return request.certified_facts().certificate_id(PARTITIONS)


def failure_of(deployment: Deployment, where, *, timeout: float = 30.0) -> dict:
    [failed] = deployment.collect(deployment.topics.generate_failed, 1, where, timeout=timeout)
    return failed


def status_of(deployment: Deployment, certificate_id: str) -> str:
    answer = until(lambda: (a := request(deployment.workers[1], f"/certs/{certificate_id}"))[0] == 200 and a)
    return orjson.loads(answer[1])["status"]


def test_a_reissue_for_another_learner_revokes_nothing_and_issues_nothing(deployment, issued) -> None:
    """Hole 2: learner B's generate request naming learner A's certificate as oldId."""
    victim = issued["records"]["vc-learner-3"]
    attack = generate_event(issued["batch"], ("vc-mallory", "Mallory"), base_path=issued["base_path"],
                            old_id=victim["id"])
    deployment.send(deployment.topics.generate_request, [attack])

    failed = failure_of(deployment, lambda r: victim["id"] in r["payload"] and "vc-mallory" in r["payload"])
    assert failed["errorCode"] == "OLD_ID_NOT_FOUND", failed
    assert deployment.collect(deployment.topics.certificate_issued, 1,
                              lambda r: r["recipient"]["id"] == "vc-mallory", timeout=3) == []
    assert status_of(deployment, victim["id"]) == "active"


def test_a_certificate_not_issued_yet_cannot_be_revoked_in_advance(deployment, issued) -> None:
    """Hole 2: ids are predictable, so nothing may be recorded against one before its
    certificate exists: not by a re-issue, not by the admin endpoint, not on the topic."""
    legitimate = generate_event(issued["batch"], ("vc-future", "Future Learner"), base_path=issued["base_path"])
    future_id = certificate_id_of(legitimate)

    # A re-issue naming it (by another learner, and by the learner it will belong to).
    deployment.send(deployment.topics.generate_request, [
        generate_event(issued["batch"], (learner, "Mallory"), base_path=issued["base_path"], old_id=future_id)
        for learner in ("vc-mallory", "vc-future")
    ])
    failures = deployment.collect(deployment.topics.generate_failed, 2, lambda r: future_id in r["payload"])
    assert [f["errorCode"] for f in failures] == ["OLD_ID_NOT_FOUND"] * 2, failures
    # The admin endpoint, on either worker (one of them forwards to the owner).
    for worker in deployment.workers:
        status, body, _ = request(worker, f"/certs/{future_id}/revoke", method="POST", body=b"{}",
                                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert (status, orjson.loads(body)["error"]["code"]) == (404, "CERTIFICATE_NOT_FOUND")
    # The revocations topic: an admin's revocation of an unknown id is refused; a forged
    # re-issue's is held against the facts it names, which are not the certificate's.
    revocation = {"certificateId": future_id, "reason": "pre-revoked", "replacedBy": "", "requestedAt": "2026-01-01"}
    forged = {**revocation, "origin": "reissue", "replacedBy": "x", "certifies": {
        "recipientId": "vc-mallory", "courseId": "c", "batchId": issued["batch"], "certificateName": "x"}}
    deployment.send_keyed(deployment.topics.revocations, [
        (future_id.encode(), orjson.dumps({**revocation, "origin": "admin"})),
        (future_id.encode(), orjson.dumps(forged)),
    ])
    refused = failure_of(deployment, lambda r: r["stage"] == "registry" and future_id in r["payload"])
    assert refused["errorCode"] == "CERTIFICATE_NOT_FOUND", refused

    deployment.send(deployment.topics.generate_request, [legitimate])
    [record] = deployment.collect(deployment.topics.certificate_issued, 1, lambda r: r["id"] == future_id)
    assert status_of(deployment, future_id) == "active"
    result = orjson.loads(request(deployment.workers[0], "/verify", method="POST",
                                  body=orjson.dumps(record["certificate"]))[1])
    assert result["verified"], result


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        (b"k1", b"not json", "MALFORMED_JSON"),
        (b"k2", b"[]", "MALFORMED_JSON"),
        (b"k3", b'{"reason": "no id"}', "MANDATORY_PARAMETER_MISSING"),
        (b"k4", b'{"certificateId": "another-key", "origin": "admin"}', "INVALID_PARAM_VALUE"),
        (b"k5", b'{"certificateId": "k5", "origin": "somebody"}', "INVALID_PARAM_VALUE"),
        (b"k6", b'{"certificateId": "k6", "origin": "reissue", "replacedBy": "x"}', "INVALID_PARAM_VALUE"),
    ],
    ids=["not-json", "array", "no-id", "wrong-key", "unknown-origin", "reissue-without-facts"],
)
def test_a_malformed_revocation_is_dead_lettered(deployment, key: bytes, value: bytes, code: str) -> None:
    deployment.send_keyed(deployment.topics.revocations, [(key, value)])

    failed = failure_of(deployment, lambda r: r["stage"] == "registry" and r["source"]["key"] == key.decode())
    assert failed["errorCode"] == code, failed
    assert all(worker.alive() for worker in deployment.workers)


def test_a_learners_decisions_need_the_admin_token_on_every_worker(deployment, issued) -> None:
    """Hole 6: a learner's decisions (scores) are not public; the worker a request
    reaches refuses it before forwarding it to the learner's owner."""
    for worker in deployment.workers:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            status, body, _ = request(worker, "/learners/vc-learner-1/decisions", headers=headers)
            assert status == 401 and orjson.loads(body)["error"]["code"] == "UNAUTHORIZED"
            assert b"vc-learner-1" not in body
        status, body, _ = request(worker, "/learners/vc-learner-1/decisions",
                                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert status == 200 and orjson.loads(body)["userId"] == "vc-learner-1"
