"""The *generate-certificate* request: Sunbird's schema and Sunbird's validation rules.

Field names and rules follow Sunbird's ``collection-certificate-generator``
(SUNBIRD.md §2.3, §5.1), so events produced for Sunbird validate here unchanged and
fail with the same codes: ``MANDATORY_PARAMETER_MISSING`` and ``INVALID_PARAM_VALUE``.
Where we deliberately differ from Sunbird it is said on the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from certflow.credentials.expiry import valid_until
from certflow.credentials.identity import CertifiedFacts
from certflow.errors import ErrorCode
from certflow.models.events import DisplayText, JobRequest, SunbirdModel

#: Image references a certificate may carry into a browser: web URLs or inline images.
#: Anything else (``javascript:``, ``file:``, ``data:text/html``) is refused.
_IMAGE_REFERENCE = re.compile(r"^(https?://|data:image/)", re.IGNORECASE)
#: Sunbird rejects a tag containing any of these (it becomes a storage path segment).
_TAG_FORBIDDEN = re.compile(r"""[!@#$%^&*()+=,.?/":;'{}|<>\s-]""")
_ISSUED_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ")


class Recipient(SunbirdModel):
    """One element of ``edata.data``: a learner to certify."""

    recipientName: DisplayText = ""
    recipientId: str = ""
    recipientEmail: str | None = None
    recipientPhone: str | None = None


class Issuer(SunbirdModel):
    name: DisplayText = ""
    url: str = ""
    publicKey: list[str] = Field(default_factory=list)


class Signatory(SunbirdModel):
    name: DisplayText = ""
    id: str = ""
    designation: DisplayText = ""
    image: str = ""

    @property
    def is_blank(self) -> bool:
        return not (self.name or self.id or self.designation or self.image)


class Criteria(SunbirdModel):
    narrative: DisplayText = ""


class Related(SunbirdModel):
    """What the certificate is about; Sunbird reads ``batchId``/``courseId`` from here."""

    batchId: str = ""
    courseId: str = ""
    type: str = ""


class SigningKeys(SunbirdModel):
    id: str = ""


class GenerateCertificateEdata(SunbirdModel):
    """``edata`` of a generate-certificate request (Sunbird's generator ``Event``)."""

    userId: str = ""
    svgTemplate: str = ""
    templateId: str = ""
    courseName: DisplayText = ""
    data: list[Recipient] = Field(default_factory=list)
    name: DisplayText = ""
    tag: str = ""
    issuer: Issuer = Field(default_factory=Issuer)
    signatoryList: list[Signatory] = Field(default_factory=list)
    criteria: Criteria = Field(default_factory=Criteria)
    basePath: str = ""
    related: Related = Field(default_factory=Related)
    oldId: str = ""
    issuedDate: str = ""
    expiry: str = ""
    logo: str = ""
    description: DisplayText = ""
    keys: SigningKeys | None = None
    orgId: str | None = None

    @model_validator(mode="after")
    def _sunbird_rules(self, info: ValidationInfo) -> GenerateCertificateEdata:
        """Sunbird's ``CertValidator``, in its order, reporting every problem at once.

        Differences from Sunbird: ``recipientId`` is required too (it keys the learner's
        partition and the certificate id); a malformed ``issuedDate`` is rejected here
        instead of failing half-way through generation; and signatory images and the
        logo must be http(s) or ``data:image/`` URLs, since they end up in an ``href``
        that browsers follow.
        """
        context = info.context or {}
        problems: list[tuple[ErrorCode, str]] = []

        def missing(parameter: str) -> None:
            problems.append(
                (ErrorCode.MANDATORY_PARAMETER_MISSING, f"Mandatory parameter {parameter} is missing.")
            )

        def invalid(value: object, parameter: str) -> None:
            problems.append(
                (ErrorCode.INVALID_PARAM_VALUE, f"Invalid value {value!r} for parameter {parameter}.")
            )

        if not self.name:
            missing("name")
        if not self.svgTemplate.strip():
            missing("svgTemplate")
        if not self.data:
            missing("data")
        for index, recipient in enumerate(self.data):
            if not recipient.recipientName:
                missing(f"data[{index}].recipientName")
            if not recipient.recipientId.strip():
                missing(f"data[{index}].recipientId")
        if not self.issuer.name:
            missing("issuer.name")
        if not self.issuer.url.strip():
            missing("issuer.url")
        if not context.get("suppress_signatory_errors", False):
            if not self.signatoryList:
                missing("signatoryList")
            for index, signatory in enumerate(self.signatoryList):
                for field in ("name", "id", "designation", "image"):
                    if not str(getattr(signatory, field)).strip():
                        missing(f"signatoryList[{index}].{field}")
        for index, signatory in enumerate(self.signatoryList):
            if signatory.image.strip() and not _IMAGE_REFERENCE.match(signatory.image.strip()):
                invalid(signatory.image[:80], f"signatoryList[{index}].image")
        if self.logo.strip() and not _IMAGE_REFERENCE.match(self.logo.strip()):
            invalid(self.logo[:80], "logo")
        if not self.criteria.narrative:
            missing("criteria.narrative")
        if self.tag and _TAG_FORBIDDEN.search(self.tag):
            invalid(self.tag, "tag")
        if self.basePath and not re.match(r"^https?://[^\s/]+", self.basePath):
            invalid(self.basePath, "basePath")
        if self.keys is not None and not self.keys.id:
            missing("keys.id")
        if self.issuedDate and _parse_issued_date(self.issuedDate) is None:
            invalid(self.issuedDate, "issuedDate")
        if self.expiry:
            try:
                valid_until(datetime.now(UTC), self.expiry)
            except ValueError:
                invalid(self.expiry, "expiry")
        if problems:
            raise PydanticCustomError(
                problems[0][0].value, " ".join(message for _, message in problems)
            )
        return self

    @property
    def signatories(self) -> list[Signatory]:
        """Signatories to show: blank entries (accepted under suppression) are left off."""
        return [signatory for signatory in self.signatoryList if not signatory.is_blank]

    def issued_on(self, now: datetime) -> datetime:
        """Sunbird's ``IssuedDateValuator``: the given date, or ``now`` when blank."""
        return _parse_issued_date(self.issuedDate) or now


def _parse_issued_date(value: str) -> datetime | None:
    for pattern in _ISSUED_DATE_FORMATS:
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


class GenerateCertificateRequest(JobRequest[GenerateCertificateEdata]):
    """A whole generate-certificate event, envelope included."""

    def per_recipient(self) -> Iterator[GenerateCertificateRequest]:
        """One request per ``data`` element, each a valid Sunbird event on its own.

        Sunbird loops over recipients inside one task; splitting lets each learner's
        certificate be made in that learner's partition, in parallel with others.
        """
        for recipient in self.edata.data:
            yield self.model_copy(
                update={"edata": self.edata.model_copy(update={"data": [recipient]})}
            )

    @property
    def recipient(self) -> Recipient:
        """The recipient of a request that :meth:`per_recipient` produced."""
        return self.edata.data[0]

    def certified_facts(self) -> CertifiedFacts:
        """What this single-recipient request certifies: the inputs of its certificate id."""
        return CertifiedFacts(
            recipient_id=self.recipient.recipientId,
            course_id=self.edata.related.courseId,
            batch_id=self.edata.related.batchId,
            template_id=self.edata.templateId,
            certificate_name=self.edata.name,
            replaces=self.edata.oldId,
        )


def validation_context(*, suppress_signatory_errors: bool) -> dict[str, Any]:
    """The context :class:`GenerateCertificateEdata` validates under."""
    return {"suppress_signatory_errors": suppress_signatory_errors}
