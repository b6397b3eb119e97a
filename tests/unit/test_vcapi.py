"""VC-API requests as pure functions: what the W3C conformance suites ask of an issuer and verifier.

One case per rule of the VC Data Model 2.0 that ``w3c/vc-data-model-2.0-test-suite``
checks through ``POST /credentials/issue`` (the fixtures here are certflow's own,
written for each rule), and what ``vc-di-eddsa-test-suite`` and
``vc-bitstring-status-list-test-suite`` check of issued and verified credentials.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certflow.credentials.cryptosuites import RDFC
from certflow.credentials.keys import SigningKey
from certflow.credentials.proof import sign, xsd_datetime
from certflow.credentials.status_list import StatusList, status_lookup
from certflow.credentials.validation import credential_problems
from certflow.credentials.vcapi import (
    EXAMPLES_CONTEXT,
    complete_issue,
    issue_request,
    prepare_issue,
    verify_credential_request,
    verify_presentation_request,
)

V2 = "https://www.w3.org/ns/credentials/v2"
KEY = SigningKey.generate()
OTHER = SigningKey.generate()
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
STATUS_URL = "https://certs.example.org/status/1"


def minimal(**changes: Any) -> dict[str, Any]:
    credential: dict[str, Any] = {
        "@context": [V2],
        "type": ["VerifiableCredential"],
        "issuer": KEY.did,
        "credentialSubject": {"id": "did:example:learner"},
    }
    credential.update(changes)
    return {name: value for name, value in credential.items() if value is not None}


def issue(credential: dict[str, Any], **options: Any) -> Any:
    return issue_request(
        {"credential": credential, "options": options},
        key=KEY,
        now=NOW,
        new_credential_id="urn:uuid:5b3f1f0e-2b8e-4a55-9d0c-0d1c6c1b1a01",
        allocate_status=lambda _: (STATUS_URL, 42),
    )


# --- issuing: what is accepted -------------------------------------------------------


@pytest.mark.parametrize(
    "credential",
    [
        minimal(),
        minimal(type="VerifiableCredential"),
        minimal(**{"@context": [V2, EXAMPLES_CONTEXT]}, type=["VerifiableCredential", "ExampleDegree"]),
        minimal(id="https://certs.example.org/certs/1"),
        minimal(issuer={"id": KEY.did, "name": "Board", "description": {"@value": "Exams", "@language": "en"}}),
        minimal(name=[{"@value": "Degree", "@language": "en"}, {"@value": "Diplôme", "@language": "fr",
                                                                   "@direction": "ltr"}]),
        minimal(credentialSubject=[{"id": "did:example:a"}, {"id": "did:example:b"}]),
        minimal(validFrom="2026-01-01T00:00:00Z", validUntil="2027-01-01T00:00:00.250+05:30"),
        minimal(**{"@context": [V2, {"ExampleStatus": "https://example.org/vocab#ExampleStatus"}]},
                credentialStatus={"type": "ExampleStatus"}),
        minimal(**{"@context": [V2, EXAMPLES_CONTEXT]},
                evidence=[{"type": ["Evidence"], "name": "exam"}], termsOfUse={"type": "IssuerPolicy"},
                refreshService={"type": "ExampleRefresh", "id": "https://example.org/refresh"},
                credentialSchema={"id": "https://example.org/schema.json", "type": "JsonSchema"}),
        minimal(relatedResource={"id": V2, "digestSRI":
                "sha384-NSOcNpmdIVUxIJGvGUoe22FjTWrXiaXlsZ8q6912LdnR3KraQO2n75Ica4wK4Qeg"}),
        minimal(relatedResource=[{"id": V2, "mediaType": "application/ld+json",
                                  "digestMultibase": "uJKGMkOmFbVJhEfKTduMC2XCyvRAYLjOVmZWwIH1wQ7k"}]),
    ],
    ids=["minimal", "type string", "examples context", "id URL", "issuer object", "language values",
         "two subjects", "dates", "status of another type", "typed objects", "digestSRI", "digestMultibase"],
)
def test_a_valid_credential_is_issued(credential: dict[str, Any]) -> None:
    result = issue(copy.deepcopy(credential))
    assert result.status == 201, result.body
    issued = result.body["verifiableCredential"]
    assert issued["credentialSubject"] == credential["credentialSubject"]
    proof = issued["proof"]
    assert proof["type"] == "DataIntegrityProof" and proof["cryptosuite"] == "eddsa-jcs-2022"
    assert proof["proofPurpose"] == "assertionMethod"
    assert proof["verificationMethod"] == KEY.verification_method
    assert proof["created"] == "2026-12-06T12:00:00Z"
    assert proof["proofValue"].startswith("z")


# --- issuing: one refusal per rule ---------------------------------------------------


@pytest.mark.parametrize(
    ("credential", "reason"),
    [
        (minimal(**{"@context": None}), "@context is missing"),
        (minimal(**{"@context": [EXAMPLES_CONTEXT, V2]}), "first @context entry"),
        (minimal(**{"@context": [V2, 12345]}), "neither a URL nor an object"),
        (minimal(**{"@context": [V2, "https ://not a url/v1"]}), "neither a URL nor an object"),
        (minimal(**{"@context": [V2, "https://example.org/unknown/v1"]}), "is not shipped"),
        (minimal(id=["https://a.example/1", "https://b.example/1"]), "id must be a single URL"),
        (minimal(id="not a url"), "id must be a single URL"),
        (minimal(id=None) | {"id": None}, "id must be a single URL"),
        (minimal(type=None), "type is missing"),
        (minimal(type=["ExampleCredential"]), "type must include VerifiableCredential"),
        (minimal(type=["VerifiableCredential", "UndefinedCredential"]), "undefined terms"),
        (minimal(**{"@context": [V2, {"@vocab": None}]}, type=["VerifiableCredential", "Unmapped"]),
         "relative or malformed IRIs"),
        (minimal(**{"@context": [V2, {"Mapped": "https ://not-a-url#Mapped"}]},
                 type=["VerifiableCredential", "Mapped"]), "JSON-LD error"),
        (minimal(**{"@context": [V2, {"VerifiableCredential": "https://example.org/#Bad"}]}),
         "protected term"),
        (minimal(**{"@context": [V2, {"@protected": True, "T": "https://example.org/#T"},
                                 {"T": "https://example.org/#Other"}]}, type=["VerifiableCredential", "T"]),
         "protected term"),
        (minimal(grade="A"), "undefined terms (not in the @context): grade"),
        (minimal(issuer=None), "issuer must be a URL or an object"),
        (minimal(issuer="not-a-url"), "issuer must be a URL"),
        (minimal(issuer={"id": "fake-issuer"}), "issuer.id must be a URL"),
        (minimal(issuer={"id": None}), "issuer.id must be a URL"),
        (minimal(issuer=OTHER.did), "is not this issuer"),
        (minimal(issuer={"id": KEY.did, "name": {"@value": "x", "@language": "en", "url": "https://x"}}),
         "issuer.name: a language value object"),
        (minimal(name={"@value": "x", "@language": "en", "url": "https://x"}), "name: a language value object"),
        (minimal(description=42), "description must be a string"),
        (minimal(credentialSubject=None), "credentialSubject is missing"),
        (minimal(credentialSubject={}), "at least one claim"),
        (minimal(credentialSubject=[{"id": "did:example:a"}, {}]), "at least one claim"),
        (minimal(credentialSubject="did:example:learner"), "not a string"),
        (minimal(credentialSubject={"id": ["did:example:a", "did:example:b"]}), "credentialSubject id"),
        (minimal(validFrom="Sat 25 Feb 2023 07:16:31 PM CST"), "validFrom must be an XML dateTimeStamp"),
        (minimal(validFrom="2026-01-01T00:00:00"), "validFrom must be an XML dateTimeStamp"),
        (minimal(validUntil="2026-13-01T00:00:00Z"), "validUntil must be an XML dateTimeStamp"),
        (minimal(validFrom="2027-01-01T00:00:00Z", validUntil="2026-01-01T00:00:00Z"), "validFrom is after"),
        (minimal(credentialStatus={"id": STATUS_URL}), "credentialStatus must have a type"),
        (minimal(credentialStatus={"id": STATUS_URL, "type": 2}), "credentialStatus must have a type"),
        (minimal(credentialStatus={"id": [STATUS_URL, STATUS_URL], "type": "BitstringStatusListEntry"}),
         "credentialStatus id must be a single URL"),
        (minimal(credentialStatus={"id": "not a url", "type": "BitstringStatusListEntry"}),
         "credentialStatus id must be a single URL"),
        (minimal(termsOfUse={"id": "https://example.org/tou"}), "termsOfUse must have a type"),
        (minimal(evidence=[{"name": "exam"}]), "evidence must have a type"),
        (minimal(refreshService={"id": "https://example.org/refresh"}), "refreshService must have a type"),
        (minimal(credentialSchema={"id": "https://example.org/schema.json"}), "credentialSchema must have a type"),
        (minimal(credentialSchema={"type": "JsonSchema"}), "credentialSchema must have an id"),
        (minimal(credentialSchema={"id": "schema.json", "type": "JsonSchema"}), "credentialSchema id"),
        (minimal(relatedResource=[V2]), "relatedResource must be an object"),
        (minimal(relatedResource=[{"digestMultibase": "uJKGMkOmFbVJhEfKTduMC2XCyvRAYLjOVmZWwIH1wQ7k"}]),
         "must have an id"),
        (minimal(relatedResource=[{"id": V2, "digestSRI":
                 "sha384-NSOcNpmdIVUxIJGvGUoe22FjTWrXiaXlsZ8q6912LdnR3KraQO2n75Ica4wK4Qeg"},
                                  {"id": V2, "digestMultibase": "uJKGMkOmFbVJhEfKTduMC2XCyvRAYLjOVmZWwIH1wQ7k"}]),
         "appears twice"),
        (minimal(relatedResource=[{"id": V2}]), "neither digestSRI nor digestMultibase"),
        (minimal(relatedResource=[{"id": V2, "digestMultibase": "uM4RgWQc3RUDtjJCSgTJtTfvpZ7SPEg_LNO0ESlovQC0"}]),
         "does not match"),
        (minimal(relatedResource=[{"id": V2, "digestSRI":
                 "sha384-_rCVIV7fSXXTNIvpiq26jRDyj8JG8TDjij-tD0ewLk4JpnXEz6a5AeeY_1qQ0d0P"}]), "does not match"),
        (minimal(proof={"type": "DataIntegrityProof"}), "must not carry a proof"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_malformed_credential_is_refused_with_422_and_the_reason(credential: dict[str, Any], reason: str) -> None:
    result = issue(credential)
    assert result.status == 422, result.body
    messages = [error["message"] for error in result.body["errors"]]
    assert any(reason in message for message in messages), messages


@pytest.mark.parametrize(
    "body",
    [None, [], "credential", {}, {"credential": "x"}, {"credential": minimal(), "options": []},
     {"credential": minimal(), "options": {"cryptosuite": "ecdsa-rdfc-2019"}},
     {"credential": minimal(), "options": {"credentialId": "no url"}}],
)
def test_a_malformed_request_is_refused_with_400(body: Any) -> None:
    result = issue_request(body, key=KEY, now=NOW)
    assert result.status == 400, result.body
    assert result.body["errors"]


def test_a_status_entry_is_added_only_when_the_credential_has_none() -> None:
    issued = issue(minimal())
    assert issued.body["verifiableCredential"]["credentialStatus"] == {
        "id": f"{STATUS_URL}#42",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "42",
        "statusListCredential": STATUS_URL,
    }
    own = {"id": "https://example.org/status/9#1", "type": "BitstringStatusListEntry", "statusPurpose": "revocation",
           "statusListIndex": "1", "statusListCredential": "https://example.org/status/9"}
    kept = issue(minimal(credentialStatus=own))
    assert kept.body["verifiableCredential"]["credentialStatus"] == own


def test_ids_are_kept_or_given() -> None:
    assert issue(minimal(id="https://example.org/c/1")).body["verifiableCredential"]["id"] == "https://example.org/c/1"
    assert issue(minimal()).body["verifiableCredential"]["id"].startswith("urn:uuid:")
    asked = issue_request({"credential": minimal(), "options": {"credentialId": "urn:uuid:0"}}, key=KEY, now=NOW)
    assert asked.body["verifiableCredential"]["id"] == "urn:uuid:0"


def test_prepare_then_complete_lets_the_route_record_before_signing() -> None:
    plan = prepare_issue({"credential": minimal()}, issuer_dids={KEY.did}, new_credential_id="urn:uuid:7")
    assert not isinstance(plan, type(issue(minimal())))
    assert plan.needs_status and plan.credential_id == "urn:uuid:7"
    result = complete_issue(plan, key=KEY, now=NOW, status_list_url=STATUS_URL, status_index=3)
    assert result.status == 201
    assert result.body["verifiableCredential"]["credentialStatus"]["statusListIndex"] == "3"


@pytest.mark.parametrize("suites", [["eddsa-rdfc-2022"], ["eddsa-jcs-2022", "eddsa-rdfc-2022"]])
def test_options_choose_the_cryptosuite_or_a_proof_set(suites: list[str]) -> None:
    issued = issue(minimal(), cryptosuite=suites if len(suites) > 1 else suites[0]).body["verifiableCredential"]
    proofs = issued["proof"] if isinstance(issued["proof"], list) else [issued["proof"]]
    assert [proof["cryptosuite"] for proof in proofs] == suites
    verified = verify_credential_request({"verifiableCredential": issued}, now=NOW, status_of=lambda _: False)
    assert verified.status == 200, verified.body


def test_credential_problems_is_empty_for_a_valid_credential() -> None:
    assert credential_problems(minimal()) == []


# --- verifying a credential ----------------------------------------------------------


def status_of(*revoked: int) -> Any:
    bits = StatusList()
    for index in revoked:
        bits.set(index)
    return status_lookup({STATUS_URL: bits})


def issued(**options: Any) -> dict[str, Any]:
    return issue(minimal(validFrom="2026-01-01T00:00:00Z"), **options).body["verifiableCredential"]


def test_a_good_credential_verifies_with_200_and_its_checks() -> None:
    result = verify_credential_request({"verifiableCredential": issued(), "options": {}}, now=NOW,
                                       status_of=status_of())
    assert result.status == 200
    assert result.body["verified"] is True
    assert result.body["errors"] == []
    assert {"proof", "issuer", "credentialStatus", "validFrom"} <= set(result.body["checks"])


@pytest.mark.parametrize("suite", ["eddsa-jcs-2022", "eddsa-rdfc-2022"])
def test_a_bad_credential_is_400_with_a_reason_for_each_failure(suite: str) -> None:
    credential = issued(cryptosuite=suite)
    credential["credentialSubject"]["id"] = "did:example:someone-else"
    credential["validUntil"] = "2026-02-01T00:00:00Z"
    result = verify_credential_request({"verifiableCredential": credential}, now=NOW, status_of=status_of(42))
    assert result.status == 400
    assert result.body["verified"] is False
    failed = {error["check"] for error in result.body["errors"]}
    assert {"proof", "validUntil", "credentialStatus"} <= failed


@pytest.mark.parametrize(
    ("change", "check"),
    [
        (lambda proof: proof.update(cryptosuite="eddsa-2022"), "proof"),
        (lambda proof: proof.update(type="Ed25519Signature2020"), "proof"),
        (lambda proof: proof.update(created="2026-12-06"), "proof"),
        (lambda proof: proof.update(proofValue="z" + "1" * 40), "proof"),
        (lambda proof: proof.pop("verificationMethod"), "proof"),
        (lambda proof: proof.update(proofPurpose="authentication"), "proof"),
    ],
    ids=["wrong cryptosuite", "wrong type", "created not dateTimeStamp", "short proofValue",
         "no verificationMethod", "wrong purpose"],
)
def test_what_the_eddsa_suite_breaks_in_a_proof_fails_verification(change: Any, check: str) -> None:
    for suite in ("eddsa-jcs-2022", "eddsa-rdfc-2022"):
        credential = issued(cryptosuite=suite)
        change(credential["proof"])
        result = verify_credential_request({"verifiableCredential": credential}, now=NOW, status_of=status_of())
        assert result.status == 400, (suite, result.body)
        assert check in {error["check"] for error in result.body["errors"]}


def test_a_revoked_credential_is_reported_revoked() -> None:
    result = verify_credential_request({"verifiableCredential": issued()}, now=NOW, status_of=status_of(42))
    assert result.status == 400
    assert any("revoked" in error["message"] for error in result.body["errors"])


def test_a_credential_from_an_untrusted_issuer_fails_when_a_trust_list_is_given() -> None:
    result = verify_credential_request({"verifiableCredential": issued()}, now=NOW, status_of=status_of(),
                                       trusted_issuers=frozenset({OTHER.did}))
    assert result.status == 400
    assert any("untrusted issuer" in error["message"] for error in result.body["errors"])


def test_an_unsigned_or_malformed_credential_is_400() -> None:
    unsigned = verify_credential_request({"verifiableCredential": minimal()}, now=NOW, status_of=None)
    assert unsigned.status == 400 and not unsigned.body["verified"]
    for body in (None, {}, {"verifiableCredential": "x"}, {"verifiableCredential": minimal(), "options": 3}):
        assert verify_credential_request(body, now=NOW, status_of=None).status == 400


# --- verifying a presentation --------------------------------------------------------

HOLDER = SigningKey.generate()


def presentation(*credentials: dict[str, Any], **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@context": [V2],
        "type": ["VerifiablePresentation"],
        "holder": HOLDER.did,
        "verifiableCredential": list(credentials),
    }
    document.update(changes)
    return {name: value for name, value in document.items() if value is not None}


@pytest.mark.parametrize("suite", [None, RDFC])
def test_a_signed_presentation_verifies_with_its_challenge_and_domain(suite: Any) -> None:
    kwargs = {"cryptosuite": suite} if suite else {}
    signed = sign(presentation(issued()), HOLDER, created=NOW, proof_purpose="authentication",
                  challenge="c-123", domain="certs.example.org", **kwargs)
    body = {"verifiablePresentation": signed, "options": {"challenge": "c-123", "domain": "certs.example.org"}}
    result = verify_presentation_request(body, now=NOW, status_of=status_of())
    assert result.status == 200, result.body
    assert result.body["holder"] == HOLDER.did
    assert result.body["credentialResults"][0]["verified"] is True
    replayed = verify_presentation_request({**body, "options": {"challenge": "other"}}, now=NOW,
                                           status_of=status_of())
    assert replayed.status == 400
    wrong_domain = verify_presentation_request({**body, "options": {"challenge": "c-123", "domain": "evil.example"}},
                                               now=NOW, status_of=status_of())
    assert wrong_domain.status == 400


def test_a_presentation_signed_for_assertion_is_not_an_authentication() -> None:
    signed = sign(presentation(), HOLDER, created=NOW, challenge="c")
    result = verify_presentation_request({"verifiablePresentation": signed, "options": {"challenge": "c"}},
                                         now=NOW, status_of=None)
    assert result.status == 400
    assert "proof purpose" in result.body["errors"][0]["message"]


def test_an_unsigned_presentation_passes_only_without_a_challenge() -> None:
    unsigned = presentation(issued())
    free = verify_presentation_request({"verifiablePresentation": unsigned}, now=NOW, status_of=status_of())
    assert free.status == 200 and free.body["warnings"]
    asked = verify_presentation_request({"verifiablePresentation": unsigned, "options": {"challenge": "c"}},
                                        now=NOW, status_of=status_of())
    assert asked.status == 400


def test_each_embedded_credential_is_verified() -> None:
    tampered = issued()
    tampered["credentialSubject"]["id"] = "did:example:other"
    signed = sign(presentation(issued(), tampered), HOLDER, created=NOW, proof_purpose="authentication",
                  challenge="c")
    result = verify_presentation_request({"verifiablePresentation": signed, "options": {"challenge": "c"}},
                                         now=NOW, status_of=status_of())
    assert result.status == 400
    assert [entry["verified"] for entry in result.body["credentialResults"]] == [True, False]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"@context": [EXAMPLES_CONTEXT, V2]}, "first @context"),
        ({"type": ["ExamplePresentation"]}, "VerifiablePresentation"),
        ({"holder": "not a url"}, "holder"),
        ({"holder": {"name": "x"}}, "holder"),
        ({"verifiableCredential": ["https://example.org/credential/1"]}, "not strings"),
    ],
    ids=["context order", "type", "holder", "holder object without id", "credential as string"],
)
def test_a_malformed_presentation_is_400(changes: dict[str, Any], reason: str) -> None:
    result = verify_presentation_request({"verifiablePresentation": presentation(**changes)}, now=NOW,
                                         status_of=None)
    assert result.status == 400
    assert any(reason in error["message"] for error in result.body["errors"]), result.body


def test_dates_are_written_as_the_suites_expect() -> None:
    assert xsd_datetime(NOW + timedelta(microseconds=5)) == "2026-12-06T12:00:00Z"


# --- VC 1.1 (the W3C eddsa suite issues and verifies 1.1 credentials too) -----------------

V1 = "https://www.w3.org/2018/credentials/v1"


def v1_credential(**changes: Any) -> dict[str, Any]:
    credential = {"@context": [V1], "type": ["VerifiableCredential"], "issuer": KEY.did,
                  "issuanceDate": "2020-03-16T22:37:26.544Z", "credentialSubject": {"id": KEY.did}}
    credential.update(changes)
    return {name: value for name, value in credential.items() if value is not None}


@pytest.mark.parametrize("suite", ["eddsa-jcs-2022", "eddsa-rdfc-2022"])
def test_a_vc_1_1_credential_is_issued_with_the_data_integrity_context_and_verifies(suite: str) -> None:
    result = issue(v1_credential(), cryptosuite=suite)
    assert result.status == 201, result.body
    issued_v1 = result.body["verifiableCredential"]
    assert issued_v1["@context"] == [V1, "https://w3id.org/security/data-integrity/v2"]
    assert "credentialStatus" not in issued_v1  # BitstringStatusListEntry is a VC 2.0 term
    verified = verify_credential_request({"verifiableCredential": issued_v1}, now=NOW, status_of=None)
    assert verified.status == 200, verified.body


@pytest.mark.parametrize(
    ("changes", "reason"),
    [({"issuanceDate": None}, "issuanceDate is required"), ({"issuanceDate": "16 March 2020"}, "issuanceDate must be"),
     ({"expirationDate": "soon"}, "expirationDate must be")],
)
def test_a_malformed_vc_1_1_credential_is_refused(changes: dict[str, Any], reason: str) -> None:
    result = issue(v1_credential(**changes))
    assert result.status == 422
    assert any(reason in error["message"] for error in result.body["errors"]), result.body


def test_an_expired_vc_1_1_credential_does_not_verify() -> None:
    issued_v1 = issue(v1_credential(expirationDate="2021-01-01T00:00:00Z")).body["verifiableCredential"]
    result = verify_credential_request({"verifiableCredential": issued_v1}, now=NOW, status_of=None)
    assert result.status == 400
    assert any(error["check"] == "validUntil" for error in result.body["errors"])


def test_a_presentation_carries_a_bounded_number_of_credentials() -> None:
    from certflow.credentials.validation import MAX_PRESENTED_CREDENTIALS

    crowded = presentation(*[minimal()] * (MAX_PRESENTED_CREDENTIALS + 1))
    result = verify_presentation_request({"verifiablePresentation": crowded}, now=NOW, status_of=None)
    assert result.status == 400
    assert any("too many credentials" in error["message"] for error in result.body["errors"])
