"""The *generate-certificate* request: Sunbird's schema and Sunbird's validation rules.

Field names and rules follow Sunbird's ``collection-certificate-generator``
(SUNBIRD.md §2.3, §5.1), so events produced for Sunbird validate here unchanged and
fail with the same codes: ``MANDATORY_PARAMETER_MISSING`` and ``INVALID_PARAM_VALUE``.
Where we deliberately differ from Sunbird it is said on the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from certflow.credentials.expiry import valid_until
from certflow.credentials.identity import CertifiedFacts
from certflow.errors import ErrorCode
from certflow.events.models import (
    DisplayId,
    DisplayLink,
    DisplayText,
    JobRequest,
    SunbirdModel,
    parse_event,
    quoted,
    summarise,
)
from certflow.events.records import MAX_PUBLISHED_BYTES
from certflow.render.images import DEFAULT_LIMITS, ImageLimits, ImageRefused, check_inline_image

if TYPE_CHECKING:
    from certflow.settings import Settings

#: Image references a certificate may carry into a browser: web URLs or inline images.
#: Anything else (``javascript:``, ``file:``, ``data:text/html``) is refused.
_IMAGE_REFERENCE = re.compile(r"^(https?://|data:image/)", re.IGNORECASE)
#: Sunbird rejects a tag containing any of these (it becomes a storage path segment).
TAG_FORBIDDEN = re.compile(r"""[!@#$%^&*()+=,.?/":;'{}|<>\s-]""")
_ISSUED_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ")
#: Most bytes the split of one event into single-recipient requests may write. Each
#: copy repeats everything but the other recipients, so a 1 MB event naming 10,000
#: recipients next to a large shared part (unknown fields are kept) would otherwise
#: turn into gigabytes on the recipients topic. Real events (a couple of KB shared,
#: a few hundred recipients) stay far below it.
MAX_SPLIT_BYTES = 64 * 1024 * 1024
#: Largest single-recipient request the split may forward. The worker's producer
#: refuses records over 1,000,000 bytes (Faust's ``producer_max_request_size``
#: default) and the broker over 1,048,588, yet ``CERTFLOW_MAX_EVENT_BYTES`` defaults
#: to 1 MiB: an event between the two would pass the size check and then fail to be
#: forwarded, half-way through the agent, as an ``INTERNAL_ERROR``. Refused up front
#: instead, as too large, with room left for the key and the headers.
MAX_FORWARDED_BYTES = MAX_PUBLISHED_BYTES


class Recipient(SunbirdModel):
    """One element of ``edata.data``: a learner to certify."""

    recipientName: DisplayText = ""
    #: Shown on the certificate (``${recipientId}``) and in the credential, and the
    #: learner's key: refused, never altered, when it breaks the display rules.
    recipientId: DisplayId = ""
    recipientEmail: str | None = None
    recipientPhone: str | None = None


class Issuer(SunbirdModel):
    name: DisplayText = ""
    url: DisplayLink = ""
    publicKey: list[str] = Field(default_factory=list)


class Signatory(SunbirdModel):
    name: DisplayText = ""
    id: DisplayId = ""
    designation: DisplayText = ""
    image: DisplayLink = ""

    @property
    def is_blank(self) -> bool:
        return not (self.name or self.id or self.designation or self.image)


class Criteria(SunbirdModel):
    narrative: DisplayText = ""


class Related(SunbirdModel):
    """What the certificate is about; Sunbird reads ``batchId``/``courseId`` from here."""

    batchId: DisplayId = ""
    courseId: DisplayId = ""
    type: str = ""


class SigningKeys(SunbirdModel):
    id: str = ""


class GenerateCertificateEdata(SunbirdModel):
    """``edata`` of a generate-certificate request (Sunbird's generator ``Event``)."""

    userId: DisplayId = ""
    svgTemplate: str = ""
    templateId: DisplayId = ""
    courseName: DisplayText = ""
    data: list[Recipient] = Field(default_factory=list)
    name: DisplayText = ""
    tag: DisplayId = ""
    issuer: Issuer = Field(default_factory=Issuer)
    signatoryList: list[Signatory] = Field(default_factory=list)
    criteria: Criteria = Field(default_factory=Criteria)
    basePath: DisplayLink = ""
    related: Related = Field(default_factory=Related)
    oldId: DisplayId = ""
    issuedDate: str = ""
    expiry: str = ""
    logo: DisplayLink = ""
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

        (Long on purpose: Sunbird's checks one after the other, in Sunbird's order,
        so they can be compared with ``CertValidator`` line by line.)
        """
        context = info.context or {}
        problems: list[tuple[ErrorCode, str]] = []

        def missing(parameter: str) -> None:
            problems.append(
                (ErrorCode.MANDATORY_PARAMETER_MISSING, f"Mandatory parameter {parameter} is missing.")
            )

        def invalid(value: object, parameter: str) -> None:
            problems.append(
                (ErrorCode.INVALID_PARAM_VALUE, f"Invalid value {quoted(value)} for parameter {parameter}.")
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
        limits: ImageLimits = context.get("image_limits", DEFAULT_LIMITS)

        def image(value: str, parameter: str) -> None:
            """A web URL, or an inline image within the image limits (format, bytes,
            declared pixels), judged from its header: a 17 KB PNG declaring
            12000×12000 pixels would cost the renderer 576 MB."""
            if not value.strip():
                return
            if not _IMAGE_REFERENCE.match(value.strip()):
                invalid(value, parameter)
            elif value.strip()[:5].lower() == "data:":
                try:
                    check_inline_image(value, limits)
                except ImageRefused as exc:
                    problems.append(
                        (ErrorCode.INVALID_PARAM_VALUE, f"Invalid image for parameter {parameter}: it {exc}.")
                    )

        for index, signatory in enumerate(self.signatoryList):
            image(signatory.image, f"signatoryList[{index}].image")
        image(self.logo, "logo")
        if not self.criteria.narrative:
            missing("criteria.narrative")
        if self.tag and TAG_FORBIDDEN.search(self.tag):
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
                problems[0][0].value, summarise([message for _, message in problems])
            )
        return self

    @property
    def signatories(self) -> list[Signatory]:
        """Signatories to show: blank entries (accepted under suppression) are left off."""
        return [signatory for signatory in self.signatoryList if not signatory.is_blank]

    def issued_on(self, now: datetime) -> datetime:
        """Sunbird's ``IssuedDateValuator``: the given date, or ``now`` when blank."""
        return _parse_issued_date(self.issuedDate) or now


@lru_cache(maxsize=1024)
def _parse_issued_date(value: str) -> datetime | None:
    """The date, or None; cached, as a batch's requests all carry the same one."""
    for pattern in _ISSUED_DATE_FORMATS:
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


class GenerateCertificateRequest(JobRequest[GenerateCertificateEdata]):
    """A whole generate-certificate event, envelope included."""

    @model_validator(mode="after")
    def _bounded_split(self, info: ValidationInfo) -> GenerateCertificateRequest:
        """Refuse an event whose split would write more than :data:`MAX_SPLIT_BYTES`,
        or a single-recipient request over :data:`MAX_FORWARDED_BYTES`.

        Checked here, before anything is sent, so an event is split completely or
        not at all. Sizes are measured only when they could matter (the event's size,
        from :func:`parse_event`, bounds a single-recipient request).
        """
        count = len(self.edata.data)
        event_bytes = (info.context or {}).get("event_bytes")
        if count == 1:
            if event_bytes is not None and event_bytes > MAX_FORWARDED_BYTES:
                size = len(self.to_json())
                if size > MAX_FORWARDED_BYTES:
                    raise PydanticCustomError(
                        ErrorCode.EVENT_TOO_LARGE.value,
                        f"its single-recipient request would be {size} bytes; at most "
                        f"{MAX_FORWARDED_BYTES} can be forwarded",
                    )
            return self
        if count > 1:
            shared = len(
                self.model_copy(
                    update={"edata": self.edata.model_copy(update={"data": []})}
                ).to_json()
            )
            sizes = [len(r.model_dump_json()) for r in self.edata.data]
            if shared + max(sizes) > MAX_FORWARDED_BYTES:
                raise PydanticCustomError(
                    ErrorCode.EVENT_TOO_LARGE.value,
                    f"its single-recipient requests would be up to {shared + max(sizes)} bytes; "
                    f"at most {MAX_FORWARDED_BYTES} can be forwarded",
                )
            total = count * shared + sum(sizes)
            if total > MAX_SPLIT_BYTES:
                raise PydanticCustomError(
                    ErrorCode.EVENT_TOO_LARGE.value,
                    f"splitting this event into {count} single-recipient requests of "
                    f"{shared} shared bytes each would write {total} bytes; the limit is "
                    f"{MAX_SPLIT_BYTES}",
                )
        return self

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


def validation_context(
    *, suppress_signatory_errors: bool, image_limits: ImageLimits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """The context :class:`GenerateCertificateEdata` validates under."""
    return {"suppress_signatory_errors": suppress_signatory_errors, "image_limits": image_limits}


def generate_request_parser(settings: Settings) -> Callable[[bytes], GenerateCertificateRequest]:
    """A generate request as the generate flow accepts it, under ``settings``.

    The issue flow checks its own requests with the same parser, so it never records
    a certificate the generate flow would refuse.
    """
    context = validation_context(
        suppress_signatory_errors=settings.suppress_signatory_errors,
        image_limits=ImageLimits.from_settings(settings),
    )

    def parse(raw: bytes) -> GenerateCertificateRequest:
        return parse_event(
            GenerateCertificateRequest, raw, max_bytes=settings.max_event_bytes, context=context
        )

    return parse
