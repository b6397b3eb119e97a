"""Making one certificate: the domain core the generate agent calls.

Given one recipient's generate request, produce the complete certificate: its
deterministic id, the filled SVG with its QR code, and its signed credential. Everything
here is plain data in, plain data out, apart from awaiting the template cache, so
it is tested without Kafka and reused by ``certflow render``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from certflow.credentials.document import CredentialFacts, SignatoryFacts, open_badge_credential
from certflow.credentials.expiry import valid_until
from certflow.credentials.keys import KeyRing
from certflow.credentials.proof import sign
from certflow.credentials.status_list import status_entry
from certflow.errors import CertflowError, ErrorCode
from certflow.events.records import IssuedCertificate, Party, PrintableFacts
from certflow.generate.models import GenerateCertificateEdata, GenerateCertificateRequest
from certflow.render.fetch import SafeFetcher
from certflow.render.images import ImageLimits, check_template_images
from certflow.render.qr import access_code, qr_code_data_uri
from certflow.render.svg import SvgTemplate
from certflow.render.template_cache import TemplateCache
from certflow.settings import Settings


def sunbird_placeholders(
    edata: GenerateCertificateEdata,
    *,
    recipient_id: str,
    recipient_name: str,
    issued_on: datetime,
    expires: datetime | None,
) -> dict[str, str]:
    """Values of Sunbird's template placeholders (its ``VarResolver``, SUNBIRD.md §5.3),
    the QR code aside (``qrCodeImage``: :func:`_fill` adds it).

    ``certificateName`` is the course name when there is one, as in Sunbird (its
    portal shows the badge name as the course name), so templates made for
    Sunbird read the same here.
    """
    values = {
        "certificateName": edata.courseName or edata.name,
        "certificateDescription": edata.description,
        "courseName": edata.courseName,
        "issuedDate": issued_on.strftime("%d %B %Y"),
        "expiryDate": expires.strftime("%d %B %Y") if expires else "",
        "recipientId": recipient_id,
        "recipientName": recipient_name,
        "issuerName": edata.issuer.name,
    }
    for index, signatory in enumerate(edata.signatories[:2]):
        values[f"signatory{index}Image"] = signatory.image
        values[f"signatory{index}Designation"] = signatory.designation
    return values


@dataclass(frozen=True)
class CertificateFactory:
    """Turns a single-recipient generate request into an :class:`IssuedCertificate`."""

    templates: TemplateCache[SvgTemplate]
    #: Used when the event has no ``basePath``.
    default_base_path: str
    #: The newest key signs; certificates name it as their issuer (a did:key).
    keys: KeyRing
    #: Every certflow topic's partition count: ids fall in their learner's partition.
    partitions: int

    @cached_property
    def _access_secret(self) -> bytes:
        """The access codes' MAC key, derived from the signing key: as secret as it
        (derived once: encoding the key costs more than the MAC)."""
        material = self.keys.current.private_key_multibase.encode()
        return hashlib.sha256(b"certflow access code\x00" + material).digest()

    async def issue(
        self,
        request: GenerateCertificateRequest,
        *,
        now: datetime,
        status_list_url: str | None = None,
        status_index: int = 0,
    ) -> IssuedCertificate:
        """The certificate for ``request``; with a status list, revocable.

        A pure function of its inputs and the signing key (Ed25519 signatures are
        deterministic too): the same request made at the same ``now`` with the same
        status slot gives a byte-identical certificate, which is what makes a
        redelivered event harmless.
        """
        edata = request.edata
        recipient = request.recipient
        template = await self.templates.get(edata.svgTemplate)
        certificate_id = request.certified_facts().certificate_id(self.partitions)
        base_path = (edata.basePath or self.default_base_path).rstrip("/")
        verify_url = f"{base_path}/{certificate_id}"
        code = access_code(self._access_secret, certificate_id)
        issued_on = edata.issued_on(now)
        expires = _valid_until(issued_on, edata.expiry)
        values = sunbird_placeholders(
            edata,
            recipient_id=recipient.recipientId,
            recipient_name=recipient.recipientName,
            issued_on=issued_on,
            expires=expires,
        )
        svg = _fill(template, values, verify_url=verify_url, code=code)
        signer = self.keys.current
        facts = _credential_facts(request, certificate_id, verify_url, base_path, issued_on, expires)
        status = status_entry(status_list_url, status_index) if status_list_url else None
        unsigned = open_badge_credential(replace(facts, status=status, issuer_id=signer.did))
        credential = sign(unsigned, signer, created=now)
        return IssuedCertificate(
            id=certificate_id,
            accessCode=code,
            verifyUrl=verify_url,
            recipient=Party(id=recipient.recipientId, name=recipient.recipientName),
            course=Party(id=edata.related.courseId, name=edata.courseName),
            batchId=edata.related.batchId,
            templateId=edata.templateId,
            certificateName=edata.name,
            issuedDate=issued_on.strftime("%Y-%m-%d"),
            issuedOn=now.isoformat(),
            oldId=edata.oldId,
            userId=edata.userId,
            tag=edata.tag,
            related=edata.related.model_dump(mode="json"),
            svg=svg,
            certificate=credential,
            rendering=PrintableFacts(template=edata.svgTemplate, templateDigest=template.digest, values=values),
        )

    async def printable(self, record: Mapping[str, Any]) -> str:
        """The SVG of an issued certificate (a record of ``certificate.issued``), drawn
        again from its facts (``rendering``) as :meth:`issue` drew it.

        Raises ``CertflowError``: ``NOT_PRINTABLE`` for a credential without a
        printable form (issued through the VC-API), ``TEMPLATE_CHANGED`` when the
        template at its address is no longer the one the certificate was issued
        with (a different picture must not pass for the issued one; the credential
        still verifies), or the template cache's fetch errors.
        """
        if record.get("svg"):
            return str(record["svg"])  # a record kept whole (issued before facts were kept)
        if not record.get("rendering"):
            raise CertflowError(ErrorCode.NOT_PRINTABLE, f"certificate {record.get('id')} has no printable form")
        facts = PrintableFacts.model_validate(record["rendering"])
        template = await self.templates.get(facts.template)
        if template.digest != facts.templateDigest:
            raise CertflowError(
                ErrorCode.TEMPLATE_CHANGED,
                f"the template {facts.template} has changed since certificate {record.get('id')} was issued",
            )
        return _fill(template, facts.values, verify_url=str(record["verifyUrl"]),
                     code=str(record["accessCode"]))


def _credential_facts(
    request: GenerateCertificateRequest,
    certificate_id: str,
    verify_url: str,
    base_path: str,
    issued_on: datetime,
    expires: datetime | None,
) -> CredentialFacts:
    """What the credential states about the certificate (its status and issuer aside)."""
    edata, recipient = request.edata, request.recipient
    return CredentialFacts(
        certificate_id=certificate_id,
        verify_url=verify_url,
        base_path=base_path,
        certificate_name=edata.name,
        description=edata.description,
        narrative=edata.criteria.narrative,
        recipient_id=recipient.recipientId,
        recipient_name=recipient.recipientName,
        course_id=edata.related.courseId,
        course_name=edata.courseName,
        batch_id=edata.related.batchId,
        template_id=edata.templateId,
        issuer_name=edata.issuer.name,
        issuer_url=edata.issuer.url,
        valid_from=issued_on,
        signatories=tuple(
            SignatoryFacts(
                name=signatory.name,
                designation=signatory.designation,
                image=signatory.image,
                identity=signatory.id,
            )
            for signatory in edata.signatories
        ),
        valid_until=expires,
        issuer_image=edata.logo if edata.logo.startswith(("https://", "http://")) else "",
        achievement_image=f"{verify_url}.png",
    )


def _valid_until(issued_on: datetime, expiry: str) -> datetime | None:
    try:
        return valid_until(issued_on, expiry)
    except ValueError as exc:
        raise CertflowError(ErrorCode.INVALID_PARAM_VALUE, str(exc)) from None


def _fill(template: SvgTemplate, values: Mapping[str, str], *, verify_url: str, code: str) -> str:
    """The filled template, with the QR code of ``verify_url`` and the access ``code``."""
    try:
        return template.fill({**values, "qrCodeImage": qr_code_data_uri(verify_url, code)})
    except ValueError as exc:
        raise CertflowError(ErrorCode.INVALID_PARAM_VALUE, str(exc)) from None


def parse_template(source: bytes, url: str, image_limits: ImageLimits) -> SvgTemplate:
    """A fetched template, sanitised, whose embedded images are within the limits."""
    template = SvgTemplate.parse(source, url=url)
    check_template_images(source, url, image_limits)
    return template


def build_certificate_factory(settings: Settings, fetcher: SafeFetcher, keys: KeyRing) -> CertificateFactory:
    """The one wiring of template fetching → template cache → certificate factory.

    The worker, ``certflow render``, the bench and the tests all make certificates
    through this, so a preview or a measurement fetches, sanitises and checks a
    template exactly as a worker does. ``fetcher`` is the caller's: its lifetime
    (an HTTP session) is the caller's too.
    """
    return CertificateFactory(template_cache(settings, fetcher), settings.base_path, keys, settings.partitions)


def template_cache(settings: Settings, fetcher: SafeFetcher) -> TemplateCache[SvgTemplate]:
    """Templates as a worker fetches them: sanitised, their images within the limits."""
    limits = ImageLimits.from_settings(settings)
    return TemplateCache.from_settings(
        settings, fetcher, lambda source, url: parse_template(source, url, limits)
    )
