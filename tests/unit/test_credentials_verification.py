"""Verifying a certificate: every check, every failure with a reason a person can read."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certflow.credentials.document import open_badge_credential
from certflow.credentials.keys import KeyRing, SigningKey
from certflow.credentials.proof import resolve_did_key, sign
from certflow.credentials.status_list import StatusList, status_list_credential, status_lookup
from certflow.credentials.verification import verify_credential
from tests.unit.test_credentials_document import STATUS_LIST, certificate_facts

NOW = datetime(2027, 3, 1, tzinfo=UTC)
KEY = SigningKey.generate()
RING = KeyRing((KEY,))
CLEAR = status_lookup({STATUS_LIST: StatusList()})


def credential(**changes: Any) -> dict[str, Any]:
    return sign(
        open_badge_credential(certificate_facts(issuer_id=KEY.did, **changes)),
        KEY,
        created=datetime(2026, 11, 24, 9, 31, tzinfo=UTC),
    )


def verify(document: dict[str, Any], **options: Any) -> Any:
    arguments: dict[str, Any] = {"resolve_key": RING.find, "status_of": CLEAR, "now": NOW} | options
    return verify_credential(document, **arguments)


def test_a_genuine_current_unrevoked_certificate_verifies() -> None:
    result = verify(credential())
    assert result.verified
    names = [check.check for check in result.checks]
    assert names == ["format", "signature", "issuer", "validFrom", "expiry", "status"]
    assert result.as_dict()["verified"] is True
    assert all(check["ok"] and check["reason"] for check in result.as_dict()["checks"])


def test_a_revoked_certificate_does_not_verify() -> None:
    revoked = StatusList()
    revoked.set(42)
    result = verify(credential(), status_of=status_lookup({STATUS_LIST: revoked}))
    assert not result.verified
    assert result.check("status").reason.startswith("revoked")
    assert [check.check for check in result.failures] == ["status"]


@pytest.mark.parametrize(
    "status_of",
    [None, status_lookup({}), lambda entry: (_ for _ in ()).throw(TimeoutError("list server down"))],
    ids=["no status source", "unknown list", "status source fails"],
)
def test_unknown_status_fails_closed(status_of: Any) -> None:
    result = verify(credential(), status_of=status_of)
    assert not result.verified
    assert result.check("status").reason.startswith("status unknown")


def test_a_certificate_without_status_needs_no_status_source() -> None:
    assert verify(credential(status=None), status_of=None).verified


def test_an_expired_certificate_does_not_verify() -> None:
    result = verify(credential(valid_until=NOW - timedelta(seconds=1)))
    assert not result.verified
    assert result.check("expiry").reason.startswith("expired")
    assert verify(credential(valid_until=None)).check("expiry").reason == "does not expire"


def test_a_certificate_is_not_valid_before_valid_from() -> None:
    result = verify(credential(valid_from=NOW + timedelta(days=1)))
    assert not result.verified
    assert result.check("validFrom").reason.startswith("not yet valid")


def test_a_tampered_certificate_fails_the_signature_check() -> None:
    tampered = credential()
    tampered["credentialSubject"]["identifier"][1]["identityHash"] = "Somebody Else"
    result = verify(tampered)
    assert not result.verified
    assert result.check("signature").reason == "bad signature"


def test_trusted_issuers_narrow_who_may_sign() -> None:
    document = credential()
    assert verify(document, resolve_key=resolve_did_key, trusted_issuers={KEY.did}).verified
    result = verify(document, resolve_key=resolve_did_key, trusted_issuers={"did:key:z6MkOther"})
    assert not result.verified
    assert result.check("issuer").reason.startswith("untrusted issuer")


def test_the_issuer_must_be_the_signer() -> None:
    impostor = SigningKey.generate()
    document = sign(open_badge_credential(certificate_facts(issuer_id=KEY.did)), impostor, created=NOW)
    result = verify(document, resolve_key=resolve_did_key)
    assert result.check("signature").ok
    assert not result.verified
    assert "is not the signer" in result.check("issuer").reason


def test_after_rotation_certificates_signed_by_the_old_key_still_verify() -> None:
    old = credential()
    rotated = RING.with_new_key()
    assert verify(old, resolve_key=rotated.find).verified
    new = sign(open_badge_credential(certificate_facts(issuer_id=rotated.current.did)), rotated.current, created=NOW)
    assert verify(new, resolve_key=rotated.find).verified


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda document: document.update(type=["OpenBadgeCredential"]), "type must include VerifiableCredential"),
        (lambda document: document.pop("credentialSubject"), "credentialSubject is missing"),
        (lambda document: document.update({"@context": ["https://www.w3.org/2018/credentials/v1"]}), "@context"),
        (lambda document: document.update(validFrom="24 Nov 2026"), "validFrom"),
        (lambda document: document.update(issuer={"name": "nobody"}), "issuer must be"),
    ],
    ids=["type", "subject", "context", "date", "issuer"],
)
def test_malformed_credentials_fail_the_format_check(change: Any, reason: str) -> None:
    document = copy.deepcopy(credential())
    change(document)
    document = sign(document, KEY, created=NOW)
    result = verify(document)
    assert not result.verified
    assert reason in result.check("format").reason


def test_every_failure_says_why() -> None:
    revoked = StatusList()
    revoked.set(42)
    stranger = SigningKey.generate()
    document = sign(
        open_badge_credential(
            certificate_facts(issuer_id=stranger.did, valid_from=NOW + timedelta(days=1), valid_until=NOW)
        ),
        stranger,
        created=NOW,
    )
    result = verify(document, status_of=status_lookup({STATUS_LIST: revoked}))
    failed = {check["check"]: check["reason"] for check in result.as_dict()["checks"] if not check["ok"]}
    assert set(failed) == {"signature", "issuer", "validFrom", "expiry", "status"}
    assert all(failed.values())


def test_a_status_list_credential_verifies_like_any_credential() -> None:
    document = status_list_credential(STATUS_LIST, StatusList().encoded(), KEY.did, KEY, NOW - timedelta(days=1))
    assert verify(document, status_of=None).verified


def test_now_must_carry_a_time_zone() -> None:
    with pytest.raises(ValueError):
        verify(credential(), now=datetime(2027, 3, 1))


# --- one rule for every verifier: trusted issuers, certificates only (issue 10) -----------


def _trust(*dids: str, keys: KeyRing | None = RING) -> Any:
    from certflow.credentials.trust import TrustPolicy
    from certflow.settings import Settings

    return TrustPolicy.from_settings(Settings(trusted_issuers=list(dids)), keys)


def _status_list(key: SigningKey, *, url: str = STATUS_LIST, bits: StatusList | None = None,
                 issuer: str | None = None) -> dict[str, Any]:
    return status_list_credential(url, (bits or StatusList()).encoded(), issuer=issuer or key.did, key=key,
                                  valid_from=NOW - timedelta(minutes=1))


def test_a_certificate_signed_by_a_fresh_key_is_an_untrusted_issuer() -> None:
    from certflow.credentials.verification import verify_certificate

    forger = SigningKey.generate()
    forged = sign(open_badge_credential(certificate_facts(issuer_id=forger.did)), forger, created=NOW)
    result = verify_certificate(forged, trust=_trust(), status_of=CLEAR, now=NOW)
    assert result.check("signature").ok  # a perfectly good signature …
    assert not result.verified  # … by nobody this deployment trusts
    assert result.check("issuer").reason == f"untrusted issuer {forger.did}"
    # Claiming the deployment's DID does not help: the signer is still the forger.
    claimed = sign(open_badge_credential(certificate_facts(issuer_id=KEY.did)), forger, created=NOW)
    assert not verify_certificate(claimed, trust=_trust(), status_of=CLEAR, now=NOW).verified


def test_trusted_issuers_are_the_deployment_keys_and_the_configured_ones() -> None:
    from certflow.credentials.verification import verify_certificate

    partner = SigningKey.generate()
    theirs = sign(open_badge_credential(certificate_facts(issuer_id=partner.did)), partner, created=NOW)
    assert verify_certificate(credential(), trust=_trust(), status_of=CLEAR, now=NOW).verified
    assert verify_certificate(theirs, trust=_trust(partner.verification_method), status_of=CLEAR, now=NOW).verified
    assert not verify_certificate(credential(), trust=_trust(partner.did, keys=None), status_of=CLEAR,
                                  now=NOW).verified
    # Nobody configured: nothing verifies, rather than anything.
    assert not verify_certificate(credential(), trust=_trust(keys=None), status_of=CLEAR, now=NOW).verified


@pytest.mark.parametrize("entry", ["did:web:example.org", "z6Mk", "did:key:zNotAKey", ""])
def test_a_trusted_issuer_that_is_not_a_did_key_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="did:key"):
        _trust(entry)


def test_a_status_list_credential_is_not_a_certificate() -> None:
    from certflow.credentials.verification import verify_certificate

    status_list = _status_list(KEY)
    result = verify_certificate(status_list, trust=_trust(), status_of=CLEAR, now=NOW)
    assert result.check("signature").ok and result.check("issuer").ok
    assert not result.verified
    assert result.check("format").reason == (
        "a BitstringStatusListCredential, not a certificate (OpenBadgeCredential)"
    )


def test_a_status_list_is_believed_only_from_the_credentials_trusted_issuer() -> None:
    from certflow.credentials.verification import verified_status_list

    revoked = StatusList()
    revoked.set(42)
    trust = _trust()
    assert verified_status_list(_status_list(KEY, bits=revoked), url=STATUS_LIST, issuer=KEY.did,
                                trust=trust, now=NOW).get(42)
    forger = SigningKey.generate()
    cases = {
        # Signed by another key in the issuer's name: the old CLI believed this one.
        "is not the signer": _status_list(forger, issuer=KEY.did),
        f"untrusted issuer {forger.did}": _status_list(forger),
        "not a certificate": None,
        "another list": _status_list(KEY, url="https://certs.example.org/status/2"),
    }
    for case, listed in cases.items():
        published, reason = (
            (credential(), "an OpenBadgeCredential, not a BitstringStatusListCredential")
            if listed is None else (listed, case)
        )
        with pytest.raises(ValueError, match=reason):
            verified_status_list(published, url=STATUS_LIST, issuer=KEY.did, trust=trust, now=NOW)
    partner = SigningKey.generate()
    with pytest.raises(ValueError, match="not by the credential's issuer"):
        verified_status_list(_status_list(partner), url=STATUS_LIST, issuer=KEY.did,
                             trust=_trust(partner.did), now=NOW)


def test_a_credential_nested_too_deep_is_reported_not_raised() -> None:
    deep: dict[str, Any] = {}
    for _ in range(1000):
        deep = {"a": deep}
    document = credential()
    document["credentialSubject"]["extra"] = deep
    result = verify(document)  # rfc8785 used to raise RecursionError here
    assert not result.verified
    assert "nested too deep" in result.check("signature").reason
