"""certflow's credentials, checked by a verifier that shares no code with certflow.

The verifier is Digital Bazaar's JavaScript VC stack (``verify.mjs`` here, exact
versions in ``package-lock.json``): ``vc.verifyCredential`` with the
eddsa-jcs-2022 cryptosuite, their Bitstring Status List checker, did:key
resolution and JSON-LD safe-mode expansion, all offline. ``npm ci`` installs it
into ``tests/interop/node_modules`` once per test run (a few seconds with a warm
npm cache); without node and npm these tests are skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certflow.credentials.contexts import document_loader
from certflow.credentials.document import open_badge_credential
from certflow.credentials.keys import SigningKey
from certflow.credentials.proof import sign
from certflow.credentials.status_list import StatusList, status_list_credential
from tests.unit.test_credentials_document import STATUS_LIST, certificate_facts

HERE = Path(__file__).parent
KEY = SigningKey.generate()


@dataclass(frozen=True)
class Verdict:
    exit_code: int
    report: dict[str, Any]

    @property
    def verified(self) -> bool:
        return self.exit_code == 0 and self.report["verified"] is True


Verifier = Callable[..., Verdict]


@pytest.fixture(scope="module")
def node_verifier() -> Verifier:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the independent verifier needs node and npm on PATH (apt-get install nodejs npm)")
    installed = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True, timeout=600
    )
    if installed.returncode != 0:
        pytest.fail(f"npm ci failed in {HERE}:\n{installed.stderr[-3000:]}")

    def verify(credential: dict[str, Any], documents: dict[str, Any] | None = None) -> Verdict:
        envelope = {"credential": credential, "documents": documents or {}}
        ran = subprocess.run(
            [node, "verify.mjs"], cwd=HERE, input=json.dumps(envelope), capture_output=True, text=True, timeout=120
        )
        try:
            report = json.loads(ran.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"verify.mjs printed no report (exit {ran.returncode}):\n{ran.stdout}\n{ran.stderr}")
        return Verdict(ran.returncode, report)

    return verify


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def status_list(*revoked: int) -> dict[str, Any]:
    bits = StatusList()
    for index in revoked:
        bits.set(index)
    published = now() - timedelta(hours=1)
    return {STATUS_LIST: status_list_credential(STATUS_LIST, bits.encoded(), KEY.did, KEY, published)}


def certificate() -> dict[str, Any]:
    """A certflow OpenBadgeCredential with signatories, expiry and a status entry (index 42)."""
    facts = certificate_facts(
        issuer_id=KEY.did, valid_from=now() - timedelta(hours=1), valid_until=now() + timedelta(days=365)
    )
    return sign(open_badge_credential(facts), KEY, created=now())


def test_a_certflow_open_badge_credential_verifies(node_verifier: Verifier) -> None:
    verdict = node_verifier(certificate(), status_list())
    assert verdict.verified, verdict.report
    assert verdict.report["revoked"] is False
    assert verdict.report["jsonld"]["credential"] == "ok"
    assert verdict.report["proofResults"][0]["verificationMethod"] == KEY.verification_method


def test_a_changed_byte_in_the_subject_does_not_verify(node_verifier: Verifier) -> None:
    tampered = certificate()
    tampered["credentialSubject"]["identifier"][0]["identityHash"] = "user002"
    verdict = node_verifier(tampered, status_list())
    assert not verdict.verified
    assert verdict.report["signatureVerified"] is False


def test_a_certflow_status_list_credential_verifies(node_verifier: Verifier) -> None:
    (status_credential,) = status_list(7).values()
    verdict = node_verifier(status_credential)
    assert verdict.verified, verdict.report


def test_the_verifier_reads_certflows_bit_order(node_verifier: Verifier) -> None:
    revoked = node_verifier(certificate(), status_list(42))
    assert revoked.report["signatureVerified"] is True
    assert revoked.report["revoked"] is True
    assert revoked.exit_code != 0
    neighbours = node_verifier(certificate(), status_list(41, 43))
    assert neighbours.verified and neighbours.report["revoked"] is False


def test_the_verifier_rejects_undefined_terms(node_verifier: Verifier) -> None:
    """Why the other tests' pass means something: safe mode catches an undefined property."""
    document = open_badge_credential(certificate_facts(issuer_id=KEY.did, signatories=(), status=None))
    document["credentialSubject"]["grade"] = "A"
    verdict = node_verifier(sign(document, KEY, created=now()))
    assert verdict.report["signatureVerified"] is True
    assert not verdict.verified
    assert "Safe mode validation error" in verdict.report["jsonld"]["credential"]


def test_certflow_ships_the_verifiers_contexts(node_verifier: Verifier) -> None:
    node = shutil.which("node") or "node"
    ran = subprocess.run([node, "contexts.mjs"], cwd=HERE, capture_output=True, text=True, timeout=60, check=True)
    theirs = json.loads(ran.stdout)
    for url in document_loader:
        assert document_loader[url] == theirs[url], url
