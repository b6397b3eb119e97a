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
