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

from certflow.credentials.contexts import (
    DATA_INTEGRITY_V2_CONTEXT,
    VC_V1_CONTEXT,
    document_loader,
    vc_api_document_loader,
)
from certflow.credentials.cryptosuites import RDFC
from certflow.credentials.document import open_badge_credential
from certflow.credentials.keys import SigningKey
from certflow.credentials.proof import sign
from certflow.credentials.rdfc import add_rdfc_proof
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

    def verify(
        credential: dict[str, Any], documents: dict[str, Any] | None = None, *, only: str | None = None
    ) -> Verdict:
        envelope = {"credential": credential, "documents": documents or {}, "only": only}
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
    for url in (VC_V1_CONTEXT, DATA_INTEGRITY_V2_CONTEXT):  # the VC-API's extra contexts
        assert vc_api_document_loader(url)["document"] == theirs[url], url


# --- eddsa-rdfc-2022 and proof sets -------------------------------------------------


def certificate_with_proof_set() -> dict[str, Any]:
    """What a wallet gets: the JCS proof and the RDFC proof added for export."""
    return add_rdfc_proof(certificate(), KEY)


def test_a_proof_set_verifies_and_each_of_its_proofs_on_its_own(node_verifier: Verifier) -> None:
    credential = certificate_with_proof_set()
    both = node_verifier(credential, status_list())
    assert both.verified, both.report
    assert [proof["cryptosuite"] for proof in both.report["proofResults"]] == ["eddsa-jcs-2022", "eddsa-rdfc-2022"]
    for suite in ("eddsa-jcs-2022", "eddsa-rdfc-2022"):
        alone = node_verifier(credential, status_list(), only=suite)
        assert alone.verified, (suite, alone.report)
        assert [proof["cryptosuite"] for proof in alone.report["proofResults"]] == [suite]


def test_an_rdfc_only_credential_verifies(node_verifier: Verifier) -> None:
    facts = certificate_facts(issuer_id=KEY.did, valid_from=now() - timedelta(hours=1))
    credential = sign(open_badge_credential(facts), KEY, created=now(), cryptosuite=RDFC)
    verdict = node_verifier(credential, status_list(), only="eddsa-rdfc-2022")
    assert verdict.verified, verdict.report


def test_tampering_breaks_the_rdfc_proof_too(node_verifier: Verifier) -> None:
    tampered = certificate_with_proof_set()
    tampered["credentialSubject"]["achievement"]["name"] = "Something else"
    verdict = node_verifier(tampered, status_list(), only="eddsa-rdfc-2022")
    assert not verdict.verified
    assert verdict.report["signatureVerified"] is False


def test_a_revoked_certificate_with_a_proof_set_is_revoked(node_verifier: Verifier) -> None:
    verdict = node_verifier(certificate_with_proof_set(), status_list(42))
    assert verdict.report["signatureVerified"] is True
    assert verdict.report["revoked"] is True


# --- the DCC's verifier (Learner Credential Wallet, VerifierPlus) ---------------------


def dcc_verify(credential: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    node = shutil.which("node") or "node"
    ran = subprocess.run(
        [node, "verify_dcc.mjs"], cwd=HERE, input=json.dumps(credential), capture_output=True, text=True, timeout=120
    )
    try:
        return ran.returncode, json.loads(ran.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"verify_dcc.mjs printed no report (exit {ran.returncode}):\n{ran.stdout}\n{ran.stderr[-2000:]}")


def test_the_dcc_verifier_rejects_a_jcs_only_credential(node_verifier: Verifier) -> None:
    """The issue's finding: verifier-core knows no eddsa-jcs-2022."""
    credential = certificate()
    del credential["credentialStatus"]  # status lists are fetched over HTTP there
    code, report = dcc_verify(sign(credential, KEY, created=now()))
    assert code != 0
    assert report["signature"] != "valid", report


def test_the_dcc_verifier_accepts_the_proof_set(node_verifier: Verifier) -> None:
    credential = certificate()
    del credential["credentialStatus"]
    code, report = dcc_verify(add_rdfc_proof(sign(credential, KEY, created=now()), KEY))
    assert code == 0, report
    assert {"id": "valid_signature", "valid": True} in report["log"]
    assert {"id": "expiration", "valid": True} in report["log"]


def test_the_dcc_verifier_detects_tampering(node_verifier: Verifier) -> None:
    credential = certificate()
    del credential["credentialStatus"]
    signed = add_rdfc_proof(sign(credential, KEY, created=now()), KEY)
    signed["credentialSubject"]["identifier"][1]["identityHash"] = "Someone Else"
    code, report = dcc_verify(signed)
    assert code != 0
    assert report["signature"] != "valid", report


# --- the wallet simulator against certflow's exchange -----------------------------------


@pytest.mark.parametrize("suite", ["eddsa-rdfc-2022", "eddsa-jcs-2022"])
def test_the_wallet_simulator_claims_a_certificate(node_verifier: Verifier, suite: str) -> None:
    """certflow asks for DIDAuth, Digital Bazaar's signPresentation answers, certflow
    binds the certificate to the wallet's DID; both verifiers accept the result."""
    from certflow.credentials.exchange import accept_presentation, create_exchange, start_exchange

    issued = certificate()
    store: dict[str, Any] = {}
    exchange = create_exchange(store, issued["id"], now=now())
    request = start_exchange(store, exchange.exchange_id, now=now(), public_url="https://certs.example.org",
                             domain="certs.example.org")
    node = shutil.which("node") or "node"
    ran = subprocess.run([node, "wallet.mjs", "sign", "--suite", suite], cwd=HERE, input=json.dumps(request),
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    wallet = json.loads(ran.stdout)
    assert wallet["verifiablePresentation"]["proof"]["cryptosuite"] == suite

    answer = accept_presentation(
        store, exchange.exchange_id, {"verifiablePresentation": wallet["verifiablePresentation"]}, now=now(),
        domain="certs.example.org", credential_of={issued["id"]: issued}.get, key=KEY,
    )
    (credential,) = answer["verifiablePresentation"]["verifiableCredential"]
    assert credential["credentialSubject"]["id"] == wallet["holder"]
    verdict = node_verifier(credential, status_list())
    assert verdict.verified, verdict.report
    without_status = {name: value for name, value in credential.items() if name != "credentialStatus"}
    from certflow.credentials.exchange import bind_to_holder

    code, report = dcc_verify(bind_to_holder(without_status, wallet["holder"], key=KEY, now=now()))
    assert code == 0, report
