"""The certificate as data: a W3C Verifiable Credential 2.0 / Open Badges 3.0 document.

Sunbird's legacy path produced an Open Badges 2-style JSON-LD "CertificateExtension";
an ``OpenBadgeCredential`` carries the same facts (recipient, badge, criteria,
evidence, signatories) in the format wallets and verifiers read today. Plain data
in, plain data out: signing happens elsewhere, on exactly this dictionary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

VC_V2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_V3_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"


@dataclass(frozen=True)
class SignatoryFacts:
    name: str
    designation: str
    image: str
    identity: str


@dataclass(frozen=True)
class CredentialFacts:
    """Everything the credential states, already validated and normalised."""

    certificate_id: str
    verify_url: str
    base_path: str
    certificate_name: str
    description: str
    narrative: str
    recipient_id: str
    recipient_name: str
    course_id: str
    course_name: str
    batch_id: str
    template_id: str
    issuer_name: str
    issuer_url: str
    valid_from: datetime
    signatories: tuple[SignatoryFacts, ...] = ()


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def open_badge_credential(facts: CredentialFacts) -> dict[str, Any]:
    """The unsigned ``OpenBadgeCredential`` for one certificate."""
    achievement: dict[str, Any] = {
        "id": f"{facts.base_path}/achievements/{facts.template_id or facts.certificate_id}",
        "type": ["Achievement"],
        "name": facts.certificate_name,
        "criteria": {"narrative": facts.narrative},
    }
    if facts.description:
        achievement["description"] = facts.description
    subject: dict[str, Any] = {
        "type": ["AchievementSubject"],
        "identifier": [
            {
                "type": "IdentityObject",
                "hashed": False,
                "identityHash": facts.recipient_id,
                "identityType": "systemId",
            },
            {
                "type": "IdentityObject",
                "hashed": False,
                "identityHash": facts.recipient_name,
                "identityType": "name",
            },
        ],
        "achievement": achievement,
    }
    credential: dict[str, Any] = {
        "@context": [VC_V2_CONTEXT, OB_V3_CONTEXT],
        "id": facts.verify_url,
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": facts.certificate_name,
        "issuer": {
            "id": facts.issuer_url,
            "type": ["Profile"],
            "name": facts.issuer_name,
            "url": facts.issuer_url,
        },
        "validFrom": _utc(facts.valid_from),
        "credentialSubject": subject,
    }
    if facts.course_name or facts.course_id:
        credential["evidence"] = [
            {
                "type": ["Evidence"],
                "name": facts.course_name or facts.course_id,
                "description": f"Course {facts.course_id}, batch {facts.batch_id}",
            }
        ]
    if facts.signatories:
        # Not an Open Badges term: the VC 2.0 context's @vocab gives it an
        # issuer-dependent IRI, which is what the VC data model prescribes for
        # properties a standard does not define.
        credential["signatories"] = [
            {
                "identity": signatory.identity,
                "name": signatory.name,
                "designation": signatory.designation,
                "image": signatory.image,
            }
            for signatory in facts.signatories
        ]
    return credential
