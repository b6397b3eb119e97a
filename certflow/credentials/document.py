"""The certificate as data: a W3C Verifiable Credential 2.0 / Open Badges 3.0 document.

Sunbird's legacy path produced an Open Badges 2-style JSON-LD "CertificateExtension";
an ``OpenBadgeCredential`` carries the same facts (recipient, badge, criteria,
evidence, signatories) in the format wallets and verifiers read today. Plain data
in, plain data out: signing happens elsewhere (``proof.sign``), on exactly this
dictionary.

Every property emitted here is defined by the credential's contexts, and that is
checked (``tests/unit/test_credentials_contexts.py``, and the independent verifier in
``tests/interop``, which expands in JSON-LD safe mode): the final VC 2.0 context has
no ``@vocab``, so an undefined property would silently vanish from the credential's
meaning, and strict verifiers reject it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from certflow.credentials.contexts import OB_V3_CONTEXT, UNDEFINED_TERMS_CONTEXT, VC_V2_CONTEXT


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
    #: ``validUntil``: when the certificate expires (``expiry.valid_until``); None: never.
    valid_until: datetime | None = None
    #: ``credentialStatus``: the certificate's revocation entry (``status_list.status_entry``).
    status: Mapping[str, Any] | None = None
    #: The DID of the key that signs the credential; it becomes the issuer profile's
    #: ``id`` (verifiers require issuer and signer to be the same). Empty: the
    #: issuer URL is the id, as in unsigned credentials.
    issuer_id: str = ""
    #: The issuer's logo (an http(s) URL): the issuer profile's ``image``, which
    #: wallets show beside the issuer's name. Empty: none.
    issuer_image: str = ""
    #: The certificate's picture (``{verify_url}.png``): the achievement's
    #: ``image``, which wallets show as the badge. Empty: none.
    achievement_image: str = ""


def _utc(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def open_badge_credential(facts: CredentialFacts) -> dict[str, Any]:
    """The unsigned ``OpenBadgeCredential`` for one certificate.

    It builds one JSON-LD document top to bottom; splitting it would scatter the
    document's shape.
    """
    achievement: dict[str, Any] = {
        "id": f"{facts.base_path}/achievements/{facts.template_id or facts.certificate_id}",
        "type": ["Achievement"],
        "name": facts.certificate_name,
        "criteria": {"narrative": facts.narrative},
    }
    if facts.description:
        achievement["description"] = facts.description
    if facts.achievement_image:
        achievement["image"] = {
            "id": facts.achievement_image, "type": "Image", "caption": facts.certificate_name
        }
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
    issuer: dict[str, Any] = {
        "id": facts.issuer_id or facts.issuer_url,
        "type": ["Profile"],
        "name": facts.issuer_name,
    }
    if facts.issuer_url or not facts.issuer_id:
        issuer["url"] = facts.issuer_url
    if facts.issuer_image:
        issuer["image"] = {"id": facts.issuer_image, "type": "Image"}
    context: list[Any] = [VC_V2_CONTEXT, OB_V3_CONTEXT]
    if facts.signatories:
        # Sunbird's signatories are in neither VC 2.0 nor Open Badges 3.0, and the
        # final VC 2.0 context has no @vocab. The W3C's undefined-terms context
        # ({"@vocab": "https://www.w3.org/ns/credentials/undefined-term#"}) is
        # the VC 2.0 way to use such terms without publishing a vocabulary. An
        # inline context would be narrower, but Digital Bazaar's eddsa-jcs-2022
        # verifier compares @context entries by reference, so it rejects every
        # proof over a document with an inline context. certflow's tests pin
        # exactly which terms fall to this @vocab (signatories, identity,
        # designation), so a misspelt property still fails them.
        context.append(UNDEFINED_TERMS_CONTEXT)
    credential: dict[str, Any] = {
        "@context": context,
        "id": facts.verify_url,
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": facts.certificate_name,
        "issuer": issuer,
        "validFrom": _utc(facts.valid_from),
        "credentialSubject": subject,
    }
    if facts.valid_until is not None:
        credential["validUntil"] = _utc(facts.valid_until)
    if facts.status is not None:
        credential["credentialStatus"] = dict(facts.status)
    if facts.course_name or facts.course_id:
        credential["evidence"] = [
            {
                "type": ["Evidence"],
                "name": facts.course_name or facts.course_id,
                "description": f"Course {facts.course_id}, batch {facts.batch_id}",
            }
        ]
    if facts.signatories:
        # Not an Open Badges term: see the @context above. Blank fields
        # are left out (an empty ``image`` would be a relative IRI to JSON-LD).
        credential["signatories"] = [
            {
                name: value
                for name, value in (
                    ("identity", signatory.identity),
                    ("name", signatory.name),
                    ("designation", signatory.designation),
                    ("image", signatory.image),
                )
                if value
            }
            for signatory in facts.signatories
        ]
    return credential
