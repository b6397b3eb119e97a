"""The unsigned OpenBadgeCredential: issuer DID, expiry and status, and only defined terms."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from certflow.credentials.contexts import OB_V3_CONTEXT, UNDEFINED_TERMS_CONTEXT, VC_V2_CONTEXT
from certflow.credentials.document import CredentialFacts, SignatoryFacts, open_badge_credential
from certflow.credentials.status_list import status_entry

ISSUED = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
ISSUER_DID = "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
STATUS_LIST = "https://certs.example.org/status/1"


def certificate_facts(**changes: Any) -> CredentialFacts:
    """A complete certificate, as the generate agent would state it (shared by the credential tests)."""
    facts = CredentialFacts(
        certificate_id="0b8f6a52-5a3b-5f0e-8a5d-3c9e7f1d2b4a",
        verify_url="https://certs.example.org/certs/0b8f6a52-5a3b-5f0e-8a5d-3c9e7f1d2b4a",
        base_path="https://certs.example.org/certs",
        certificate_name="100PercentCompletionCertificate",
        description="Awarded for completing the course with full marks",
        narrative="course completion certificate",
        recipient_id="user001",
        recipient_name="प्रिया <Sharma> & \"Co\"",
        course_id="do_11309999837886054415",
        course_name="Basics of Data Science",
        batch_id="0131000245281587206",
        template_id="template_01_dev_001",
        issuer_name="Gujarat Council of Educational Research and Training",
        issuer_url="https://gcert.gujarat.gov.in/gcert/",
        valid_from=ISSUED,
        signatories=(
            SignatoryFacts(
                name="CEO Gujarat",
                designation="CEO",
                image="https://cdn.example.org/signature.jpg",
                identity="CEO",
            ),
        ),
        valid_until=datetime(2028, 11, 24, 9, 30, tzinfo=UTC),
        status=status_entry(STATUS_LIST, 42),
        issuer_id=ISSUER_DID,
        issuer_image="https://gcert.gujarat.gov.in/logo.png",
        achievement_image="https://certs.example.org/certs/0b8f6a52-5a3b-5f0e-8a5d-3c9e7f1d2b4a.png",
    )
    return replace(facts, **changes)


def test_the_signing_did_is_the_issuer_and_its_name_and_url_are_kept() -> None:
    issuer = open_badge_credential(certificate_facts())["issuer"]
    assert issuer == {
        "id": ISSUER_DID,
        "type": ["Profile"],
        "name": "Gujarat Council of Educational Research and Training",
        "url": "https://gcert.gujarat.gov.in/gcert/",
        "image": {"id": "https://gcert.gujarat.gov.in/logo.png", "type": "Image"},
    }


def test_without_an_issuer_did_the_issuer_url_is_its_id_as_before() -> None:
    issuer = open_badge_credential(certificate_facts(issuer_id=""))["issuer"]
    assert issuer["id"] == issuer["url"] == "https://gcert.gujarat.gov.in/gcert/"


def test_expiry_and_status_are_stated_when_given() -> None:
    credential = open_badge_credential(certificate_facts())
    assert credential["validFrom"] == "2026-11-24T09:30:00Z"
    assert credential["validUntil"] == "2028-11-24T09:30:00Z"
    assert credential["credentialStatus"] == {
        "id": f"{STATUS_LIST}#42",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "42",
        "statusListCredential": STATUS_LIST,
    }


def test_no_expiry_and_no_status_means_neither_property() -> None:
    credential = open_badge_credential(certificate_facts(valid_until=None, status=None))
    assert "validUntil" not in credential
    assert "credentialStatus" not in credential


def test_dates_are_written_in_utc() -> None:
    from datetime import timedelta, timezone

    india = timezone(timedelta(hours=5, minutes=30))
    credential = open_badge_credential(certificate_facts(valid_from=datetime(2026, 11, 24, 15, 0, tzinfo=india)))
    assert credential["validFrom"] == "2026-11-24T09:30:00Z"


def test_signatories_bring_the_w3c_undefined_terms_context_and_only_then() -> None:
    with_signatories = open_badge_credential(certificate_facts())
    assert with_signatories["@context"] == [VC_V2_CONTEXT, OB_V3_CONTEXT, UNDEFINED_TERMS_CONTEXT]
    without = open_badge_credential(certificate_facts(signatories=()))
    assert without["@context"] == [VC_V2_CONTEXT, OB_V3_CONTEXT]
    assert "signatories" not in without


def test_blank_signatory_fields_are_left_out() -> None:
    credential = open_badge_credential(
        certificate_facts(signatories=(SignatoryFacts(name="Registrar", designation="", image="", identity=""),))
    )
    assert credential["signatories"] == [{"name": "Registrar"}]


def test_wallets_see_the_achievement_and_its_picture() -> None:
    """OB 3.0 fields the Learner Credential Wallet displays: the achievement's name,
    description, criteria and image, and the issuer's name, url and image."""
    achievement = open_badge_credential(certificate_facts())["credentialSubject"]["achievement"]
    assert achievement["name"] == "100PercentCompletionCertificate"
    assert achievement["description"] == "Awarded for completing the course with full marks"
    assert achievement["criteria"] == {"narrative": "course completion certificate"}
    assert achievement["image"] == {
        "id": "https://certs.example.org/certs/0b8f6a52-5a3b-5f0e-8a5d-3c9e7f1d2b4a.png",
        "type": "Image",
        "caption": "100PercentCompletionCertificate",
    }
    plain = open_badge_credential(certificate_facts(issuer_image="", achievement_image=""))
    assert "image" not in plain["issuer"] and "image" not in plain["credentialSubject"]["achievement"]
