"""eddsa-rdfc-2022 proofs, proof sets, the cached RDFC proof, and the JSON-LD safe mode behind them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from certflow.credentials import rdfc
from certflow.credentials.cryptosuites import JCS, RDFC
from certflow.credentials.document import open_badge_credential
from certflow.credentials.jsonld import UnsafeJsonLd, canonical_nquads, safe_expand
from certflow.credentials.keys import KeyRing, SigningKey
from certflow.credentials.proof import resolve_did_key, sign, verify_proof
from certflow.credentials.rdfc import add_rdfc_proof, has_rdfc_proof
from tests.unit.test_credentials_document import certificate_facts

KEY = SigningKey.generate()
OTHER = SigningKey.generate()
SIGNED_AT = datetime(2026, 11, 24, 9, 31, tzinfo=UTC)
V2 = "https://www.w3.org/ns/credentials/v2"


def certificate(**changes: Any) -> dict[str, Any]:
    return open_badge_credential(certificate_facts(issuer_id=KEY.did, **changes))


def test_an_rdfc_proof_verifies_and_names_its_suite() -> None:
    signed = sign(certificate(), KEY, created=SIGNED_AT, cryptosuite=RDFC)
    proof = signed["proof"]
    assert proof["cryptosuite"] == "eddsa-rdfc-2022"
    assert "@context" not in proof  # it is read under the document's contexts
    check = verify_proof(signed, KeyRing((KEY,)).find)
    assert check.ok, check.reason
    assert check.cryptosuite == "eddsa-rdfc-2022"


def test_rdfc_signs_meaning_not_bytes() -> None:
    """Key order and the form of a single-valued type change the JSON, not the graph."""
    signed = sign(certificate(), KEY, created=SIGNED_AT, cryptosuite=RDFC)
    reordered = {name: signed[name] for name in reversed(list(signed))}
    reordered["credentialSubject"] = dict(reordered["credentialSubject"], type="AchievementSubject")
    assert verify_proof(reordered, resolve_did_key).ok
    assert not verify_proof(reordered | {"proof": {**signed["proof"], "cryptosuite": "eddsa-jcs-2022"}},
                            resolve_did_key).ok


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c["credentialSubject"]["achievement"].update(name="Other"),
        lambda c: c["credentialSubject"]["identifier"][0].update(identityHash="user002"),
        lambda c: c.update(validUntil="2099-01-01T00:00:00Z"),
        lambda c: c["issuer"].update(name="Someone"),
        lambda c: c["signatories"][0].update(name="Forged"),
    ],
    ids=["achievement", "recipient", "validity", "issuer name", "signatory (an undefined-terms @vocab term)"],
)
def test_tampering_breaks_an_rdfc_proof(tamper: Any) -> None:
    signed = sign(certificate(), KEY, created=SIGNED_AT, cryptosuite=RDFC)
    tamper(signed)
    assert verify_proof(signed, resolve_did_key).reason == "bad signature"


def test_an_undefined_term_cannot_be_signed_or_verified_with_rdfc() -> None:
    document = certificate(signatories=())
    document["credentialSubject"]["grade"] = "A"
    with pytest.raises(UnsafeJsonLd, match="grade"):
        sign(document, KEY, created=SIGNED_AT, cryptosuite=RDFC)
    signed = sign(certificate(signatories=()), KEY, created=SIGNED_AT, cryptosuite=RDFC)
    signed["credentialSubject"]["grade"] = "A"
    check = verify_proof(signed, resolve_did_key)
    assert not check.ok and "undefined terms" in check.reason


def test_a_proof_set_verifies_only_when_every_proof_does() -> None:
    both = add_rdfc_proof(sign(certificate(), KEY, created=SIGNED_AT), KEY)
    assert [proof["cryptosuite"] for proof in both["proof"]] == ["eddsa-jcs-2022", "eddsa-rdfc-2022"]
    check = verify_proof(both, resolve_did_key)
    assert check.ok and check.did == KEY.did
    assert check.cryptosuites == ("eddsa-jcs-2022", "eddsa-rdfc-2022")
    assert [proof["verified"] for proof in check.as_dict()["proofs"]] == [True, True]

    broken = {**both, "proof": [both["proof"][0], {**both["proof"][1], "proofValue": both["proof"][0]["proofValue"]}]}
    check = verify_proof(broken, resolve_did_key)
    assert not check.ok
    assert "proof 2 (eddsa-rdfc-2022): bad signature" in check.reason
    assert [proof.ok for proof in check.proofs] == [True, False]


def test_a_proof_set_by_two_signers_names_no_single_signer() -> None:
    mixed = sign(sign(certificate(), KEY, created=SIGNED_AT), OTHER, created=SIGNED_AT, add_to_proof_set=True)
    check = verify_proof(mixed, resolve_did_key)
    assert check.ok and check.did is None


def test_an_empty_proof_set_and_unknown_suites_fail() -> None:
    assert not verify_proof({**certificate(), "proof": []}, resolve_did_key).ok
    rdfc_only = sign(certificate(), KEY, created=SIGNED_AT, cryptosuite=RDFC)
    assert "unsupported cryptosuite" in verify_proof(rdfc_only, resolve_did_key, cryptosuites={JCS.name}).reason


def test_add_rdfc_proof_is_memoised_and_pure() -> None:
    rdfc.cache_clear()
    signed = sign(certificate(), KEY, created=SIGNED_AT)
    first = add_rdfc_proof(signed, KEY)
    assert len(rdfc._cache) == 1
    second = add_rdfc_proof(signed, KEY)
    assert first == second and first is not second
    assert first["proof"][1]["created"] == signed["proof"]["created"]
    second["proof"].clear()  # a caller's change does not reach the cache
    assert add_rdfc_proof(signed, KEY) == first
    assert has_rdfc_proof(first) and add_rdfc_proof(first, KEY) == first
    changed = sign(certificate(recipient_name="Someone Else"), KEY, created=SIGNED_AT)
    add_rdfc_proof(changed, KEY)
    assert len(rdfc._cache) == 2


def test_the_cache_is_bounded() -> None:
    assert rdfc._cache.maxsize == rdfc.CACHE_SIZE


# --- JSON-LD safe mode -------------------------------------------------------------------


def test_safe_expansion_accepts_certflow_credentials() -> None:
    assert safe_expand(certificate())


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"@context": [V2], "type": "VerifiableCredential", "oops": 1}, "undefined terms (not in the @context): oops"),
        ({"@context": [V2], "type": ["VerifiableCredential", "Nope"]}, "undefined terms (not in the @context): Nope"),
        ({"@context": [V2], "id": "relative/1", "type": "VerifiableCredential"}, "relative or malformed IRIs"),
        ({"@context": [V2, {"@vocab": None}], "type": "Unmapped"}, "relative or malformed IRIs"),
        ({"@context": [V2, {"VerifiableCredential": "https://evil.example/#VC"}]}, "protected term"),
        ({"@context": [V2, "https://evil.example/context"]}, "not shipped"),
        ({"@context": [V2, 7]}, "neither a URL nor an object"),
        ({"type": "VerifiableCredential"}, "no @context"),
    ],
)
def test_safe_expansion_refuses_what_would_be_lost(document: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnsafeJsonLd) as refused:
        safe_expand(document)
    assert reason in str(refused.value)


def test_canonicalisation_refuses_a_poison_graph() -> None:
    """Blank nodes that all look alike make RDFC-1.0 exponential; it stops early."""
    nodes = [
        {"@id": f"_:b{i}", "https://www.w3.org/2018/credentials#credentialSubject": [
            {"@id": f"_:b{j}"} for j in range(8) if j != i]}
        for i in range(8)
    ]
    with pytest.raises(UnsafeJsonLd, match="poison"):
        canonical_nquads({"@context": [V2], "@graph": nodes})


def test_canonicalisation_refuses_a_huge_document() -> None:
    document = {"@context": [V2], "type": "VerifiableCredential",
                "credentialSubject": [{"id": f"did:example:{i}"} for i in range(50)]}
    with pytest.raises(UnsafeJsonLd, match="too large"):
        canonical_nquads(document, max_quads=20)
    assert canonical_nquads(document).count("\n") == 51


# --- proof chains -------------------------------------------------------------------------


@pytest.mark.parametrize("previous", ["urn:uuid:first", ["urn:uuid:first"]])
def test_a_chained_proof_signs_the_proof_it_follows(previous: Any) -> None:
    first = sign(certificate(), KEY, created=SIGNED_AT, cryptosuite=RDFC, proof_id="urn:uuid:first")
    chained = sign(first, OTHER, created=SIGNED_AT, cryptosuite=RDFC, add_to_proof_set=True,
                   previous_proof=previous)
    check = verify_proof(chained, resolve_did_key)
    assert check.ok, check.reason
    assert check.dids == {KEY.did, OTHER.did}

    missing = {**chained, "proof": [{**chained["proof"][0], "id": "urn:uuid:renamed"}, chained["proof"][1]]}
    check = verify_proof(missing, resolve_did_key)
    assert not check.ok and "is not in the proof set" in check.reason

    changed_first = {**chained, "proof": [{**chained["proof"][0], "created": "2026-11-25T00:00:00Z"},
                                          chained["proof"][1]]}
    check = verify_proof(changed_first, resolve_did_key)
    assert [proof.ok for proof in check.proofs] == [False, False]


def test_a_chain_to_a_proof_that_is_not_there_cannot_be_signed() -> None:
    first = sign(certificate(), KEY, created=SIGNED_AT, cryptosuite=RDFC)
    with pytest.raises(ValueError, match="names proofs"):
        sign(first, OTHER, created=SIGNED_AT, add_to_proof_set=True, previous_proof="urn:uuid:nope")


def test_a_proof_set_is_bounded() -> None:
    from certflow.credentials.proof import MAX_PROOFS

    signed = sign(certificate(), KEY, created=SIGNED_AT)
    flood = {**signed, "proof": [signed["proof"]] * (MAX_PROOFS + 1)}
    check = verify_proof(flood, resolve_did_key)
    assert not check.ok and "at most" in check.reason
