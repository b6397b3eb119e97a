"""eddsa-jcs-2022 Data Integrity proofs: what verifies, what does not, and why."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from certflow.credentials.cryptosuites import _plain, canonical_json
from certflow.credentials.document import open_badge_credential
from certflow.credentials.keys import KeyRing, SigningKey, decode_public_key_multibase
from certflow.credentials.proof import (
    resolve_did_key,
    sign,
    verify_proof,
)
from tests.unit.test_credentials_document import certificate_facts

SIGNED_AT = datetime(2026, 11, 24, 9, 31, tzinfo=UTC)
KEY = SigningKey.generate(created=SIGNED_AT)
RING = KeyRing((KEY,))


def signed_credential() -> dict[str, Any]:
    return sign(open_badge_credential(certificate_facts(issuer_id=KEY.did)), KEY, created=SIGNED_AT)


# --- signing -------------------------------------------------------------------------


def test_a_signed_credential_verifies() -> None:
    credential = signed_credential()
    check = verify_proof(credential, RING.find)
    assert check.ok, check.reason
    assert check.verification_method == KEY.verification_method
    assert check.did == KEY.did


def test_the_proof_is_an_eddsa_jcs_2022_data_integrity_proof() -> None:
    credential = signed_credential()
    proof = credential["proof"]
    assert {name: value for name, value in proof.items() if name != "proofValue"} == {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "created": "2026-11-24T09:31:00Z",
        "verificationMethod": KEY.verification_method,
        "proofPurpose": "assertionMethod",
        # Create Proof step 2: the proof carries the document's @context.
        "@context": credential["@context"],
    }
    assert proof["proofValue"].startswith("z")


def test_signing_leaves_the_document_alone_and_replaces_an_old_proof() -> None:
    document = open_badge_credential(certificate_facts(issuer_id=KEY.did))
    original = copy.deepcopy(document)
    signed = sign(document, KEY, created=SIGNED_AT)
    assert document == original
    resigned = sign(signed, KEY, created=datetime(2027, 1, 1, tzinfo=UTC))
    assert resigned["proof"]["created"] == "2027-01-01T00:00:00Z"
    assert verify_proof(resigned, RING.find).ok


def test_any_did_key_verifies_offline_from_the_did_itself() -> None:
    assert verify_proof(signed_credential(), resolve_did_key).ok


# --- tampering ------------------------------------------------------------------------


def string_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for name, member in value.items():
            yield from string_paths(member, (*path, name))
    elif isinstance(value, list):
        for index, member in enumerate(value):
            yield from string_paths(member, (*path, index))


def changed(document: dict[str, Any], path: tuple[Any, ...], change: Any) -> dict[str, Any]:
    tampered = copy.deepcopy(document)
    *parents, last = path
    holder: Any = tampered
    for step in parents:
        holder = holder[step]
    holder[last] = change(holder[last])
    return tampered


def one_character_changed(text: str) -> str:
    if not text:
        return "x"
    middle = len(text) // 2
    return text[:middle] + ("A" if text[middle] != "A" else "B") + text[middle + 1 :]


def test_changing_any_character_of_any_string_breaks_the_proof() -> None:
    credential = signed_credential()
    paths = list(string_paths(credential))
    assert len(paths) > 40
    for path in paths:
        check = verify_proof(changed(credential, path, one_character_changed), RING.find)
        assert not check.ok, f"a change at {path} still verified"
        assert check.reason


@pytest.mark.parametrize(
    ("path", "change"),
    [
        (("credentialSubject", "identifier", 0, "hashed"), lambda hashed: not hashed),
        (("credentialSubject", "identifier"), lambda identities: identities[::-1]),
        (("credentialSubject",), lambda subject: {**subject, "extra": "claim"}),
        (("credentialSubject",), lambda subject: {k: v for k, v in subject.items() if k != "achievement"}),
        (("credentialStatus", "statusListIndex"), lambda index: index + "0"),
    ],
    ids=["boolean flipped", "list reordered", "property added", "property removed", "status index"],
)
def test_changing_structure_breaks_the_proof(path: tuple[Any, ...], change: Any) -> None:
    assert not verify_proof(changed(signed_credential(), path, change), RING.find).ok


def reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: reversed_keys(value[name]) for name in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(member) for member in value]
    return value


def test_key_order_and_whitespace_do_not_matter() -> None:
    credential = signed_credential()
    assert verify_proof(reversed_keys(credential), RING.find).ok
    assert verify_proof(json.loads(json.dumps(credential, indent=4, ensure_ascii=True)), RING.find).ok


# --- who signed -----------------------------------------------------------------------


def test_a_key_outside_the_ring_is_an_unknown_verification_method() -> None:
    stranger = SigningKey.generate()
    forged = sign(open_badge_credential(certificate_facts(issuer_id=stranger.did)), stranger, created=SIGNED_AT)
    check = verify_proof(forged, RING.find)
    assert not check.ok
    assert check.reason.startswith("unknown verification method")


def test_a_proof_that_names_a_ring_key_but_was_made_by_another_key_fails() -> None:
    stranger = SigningKey.generate()
    forged = sign(signed_credential(), stranger, created=SIGNED_AT, verification_method=KEY.verification_method)
    check = verify_proof(forged, RING.find)
    assert (check.ok, check.reason) == (False, "bad signature")


def test_after_rotation_old_credentials_verify_and_new_ones_use_the_new_key() -> None:
    old_credential = signed_credential()
    rotated = RING.with_new_key()
    assert verify_proof(old_credential, rotated.find).ok
    new_credential = sign(open_badge_credential(certificate_facts()), rotated.current, created=SIGNED_AT)
    assert new_credential["proof"]["verificationMethod"] == rotated.current.verification_method
    assert rotated.current.verification_method != KEY.verification_method
    assert verify_proof(new_credential, rotated.find).ok
    assert not verify_proof(new_credential, RING.find).ok


# --- malformed proofs -----------------------------------------------------------------


def with_proof(**proof_changes: Any) -> dict[str, Any]:
    credential = signed_credential()
    credential["proof"] = {**credential["proof"], **proof_changes}
    return {name: value for name, value in credential.items() if value is not None} | {
        "proof": {name: value for name, value in credential["proof"].items() if value is not None}
    }


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"@context": ["https://www.w3.org/ns/credentials/v2"]}, "missing proof"),
        ({"proof": "z123"}, "malformed proof"),
        (with_proof(cryptosuite="ecdsa-rdfc-2019"), "unsupported cryptosuite"),
        (with_proof(type="Ed25519Signature2020"), "unsupported cryptosuite"),
        (with_proof(proofValue="u" + "A" * 86), "malformed proofValue"),
        (with_proof(proofValue="z0OIl"), "malformed proofValue"),
        (with_proof(proofValue="z3yMApqCuCjXDWPrbjfR5mjCPTHqFG8Pux1TxQrEM"), "malformed proofValue"),
        (with_proof(proofValue=None), "malformed proofValue"),
        (with_proof(proofPurpose="authentication"), "wrong proof purpose"),
        (with_proof(created="yesterday"), "malformed proof"),
        (with_proof(verificationMethod=None), "malformed proof"),
        (
            with_proof(**{"@context": ["https://www.w3.org/ns/credentials/v2", "https://example.org/other"]}),
            "bad signature: document @context does not start with proof @context",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_malformed_proofs_fail_with_a_reason(document: dict[str, Any], reason: str) -> None:
    check = verify_proof(document, RING.find)
    assert not check.ok
    assert check.reason.startswith(reason), check.reason


def test_resolving_did_key_verification_methods() -> None:
    assert resolve_did_key(KEY.verification_method) == KEY.public_key_bytes
    assert resolve_did_key(KEY.did) == KEY.public_key_bytes
    other = SigningKey.generate().public_key_multibase
    secp256k1 = "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"
    for bad in (f"{KEY.did}#{other}", "did:web:example.org#key-1", secp256k1, 42):
        with pytest.raises(ValueError):
            resolve_did_key(bad)  # type: ignore[arg-type]


# --- the W3C test vector --------------------------------------------------------------

# "Data Integrity EdDSA Cryptosuites v1.0", test vector for eddsa-jcs-2022
# (w3c/vc-di-eddsa, TestVectors/eddsa-jcs-2022/signedJCS.json and keyPair.json).
W3C_SIGNED = {
    "@context": ["https://www.w3.org/ns/credentials/v2", "https://www.w3.org/ns/credentials/examples/v2"],
    "id": "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33",
    "type": ["VerifiableCredential", "AlumniCredential"],
    "name": "Alumni Credential",
    "description": "A minimum viable example of an Alumni Credential.",
    "issuer": "https://vc.example/issuers/5678",
    "validFrom": "2023-01-01T00:00:00Z",
    "credentialSubject": {"id": "did:example:abcdefgh", "alumniOf": "The School of Examples"},
    "proof": {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "created": "2023-02-24T23:36:38Z",
        "verificationMethod": "https://vc.example/issuers/5678#z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",
        "proofPurpose": "assertionMethod",
        "@context": ["https://www.w3.org/ns/credentials/v2", "https://www.w3.org/ns/credentials/examples/v2"],
        "proofValue": "z63t83Y53KfzJ5ZosfKTnqfMcKB2dmTrfjSaQjeNNjAD5srBowQfmWqeRb8rRjmeEuCBEsddF9LsVogtuTsijJKh4",
    },
}


def test_the_w3c_test_vector_verifies() -> None:
    public_key = decode_public_key_multibase("z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2")
    assert verify_proof(W3C_SIGNED, lambda method: public_key).ok


def test_signing_reproduces_the_w3c_test_vector_exactly() -> None:
    key = SigningKey.from_json({"privateKeyMultibase": "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"})
    unsigned = {name: value for name, value in W3C_SIGNED.items() if name != "proof"}
    signed = sign(
        unsigned,
        key,
        created=datetime(2023, 2, 24, 23, 36, 38, tzinfo=UTC),
        verification_method=W3C_SIGNED["proof"]["verificationMethod"],
    )
    assert signed == W3C_SIGNED  # Ed25519 is deterministic: same bytes hashed, same signature


# --- canonical JSON -------------------------------------------------------------------

ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)
# What certflow emits: ASCII keys; any text; integers JSON numbers can hold exactly.
SAFE_INTEGERS = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
CERTFLOW_JSON = st.recursive(
    st.none() | st.booleans() | SAFE_INTEGERS | st.text(st.characters(codec="utf-8")),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=12), children, max_size=6),
    max_leaves=40,
)


def reference(value: Any) -> bytes | type[Exception]:
    try:
        return rfc8785.dumps(value)
    except ValueError:
        return ValueError


def ours(value: Any) -> bytes | type[Exception]:
    try:
        return canonical_json(value)
    except ValueError:
        return ValueError


@settings(max_examples=250, deadline=None)
@given(CERTFLOW_JSON)
def test_the_fast_canonical_form_is_jcs_for_what_certflow_emits(value: Any) -> None:
    assert _plain(value)
    assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=150, deadline=None)
@given(ANY_JSON)
def test_canonical_json_is_jcs_for_any_json(value: Any) -> None:
    assert ours(value) == reference(value)


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": 2, "A": 3, "_": 4, "~": 5},
        ["\u0000\u0008\u0009\u000a\u000c\u000d\u001f\u007f\u2028\u2029", "\ud7ff\ue000\uffff😀", '"\\/'],
        {"big": 2**53 - 1, "small": -(2**53) + 1, "zero": 0, "negative": -7},
        {"too big": 2**53},
        {"float": 1.0, "exponent": 1e21, "tiny": 5e-324},
        {"\u20ac": 1, "\U0001f600": 2, "\ufb33": 3},
        {"lone surrogate": "\ud800"},
        ("tuple", 1),
    ],
    ids=["ascii keys", "escapes", "integers", "unsafe integer", "floats", "non-ascii keys", "surrogate", "tuple"],
)
def test_canonical_json_edge_cases_agree_with_rfc8785(value: Any) -> None:
    assert ours(value) == reference(value)


def test_a_typical_credential_takes_the_fast_path() -> None:
    assert _plain(signed_credential())
