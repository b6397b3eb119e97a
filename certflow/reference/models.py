"""Reference data the issue flow decides from: batches, enrolments, scores, learners.

Sunbird reads these per event from Cassandra (``course_batch``, ``user_enrolments``,
``user_activity_agg``) and the user-read API. certflow receives them as upserts on
topics and keeps them in tables partitioned by learner, so deciding eligibility
never leaves the worker. The shapes are Sunbird's: Cassandra's lower-case column
names (camelCase is accepted too), and certificate templates whose nested values are
JSON *strings*, exactly as ``course_batch.cert_templates`` stores them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from certflow.errors import ErrorCode
from certflow.events.models import (
    MAX_DISPLAY_CHARS,
    DisplayText,
    check_display_id,
    rejection,
)
from certflow.generate.models import (
    TAG_FORBIDDEN,
    GenerateCertificateEdata,
    validation_context,
)
from certflow.issue.criteria import criteria_problem
from certflow.jsonlimits import loads_bounded


def _json_if_string(value: Any) -> Any:
    """Cassandra's ``map<text,text>`` holds nested JSON as strings; accept both forms.

    Parsed as every JSON certflow did not write is (``loads_bounded``): its nesting
    bounded, and no ``NaN`` or ``Infinity``, which the tables' JSON cannot keep.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        return loads_bounded(text)
    return value


def _non_finite(value: Any) -> bool:
    """Whether ``value`` holds a NaN or an infinity anywhere (JSON has neither).

    Iterative, like :func:`certflow.jsonlimits.check_depth`: every reference record
    read from a table is validated again (three for each learner the eligibility job
    decides): a recursive walk of generators took about 6 µs of an enrolment's 23,
    this one about 4.
    """
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        if isinstance(item, dict):
            extend(item.values())
        elif isinstance(item, (list, tuple)):
            extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            return True
    return False


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


def _json_map(value: Any) -> Any:
    decoded = _json_if_string(value)
    return decoded if decoded is not None else {}


#: An identifier a record cannot do without (a key, a course, a batch). Ids end up
#: on certificates (recipient, course and batch ids), so they are held to the display
#: rules (no bidi overrides or control characters) when they are loaded.
RequiredId = Annotated[str, AfterValidator(_non_blank), AfterValidator(check_display_id)]
#: A Cassandra ``map`` column: a JSON object, possibly as a string; null means empty.
JsonMap = Annotated[dict[str, float], BeforeValidator(_json_map)]


class ReferenceModel(BaseModel):
    """Base of reference records: extra columns are kept (``additionalProps`` may
    name any of them), aliases accept Cassandra and camelCase spellings.

    A record is kept in a table as JSON and validated again when read, so it must
    hold nothing JSON cannot: a NaN or an infinity anywhere in it is refused here,
    rather than kept and read back as null (orjson writes them so). Typed float
    fields refuse them too when spelled as text (``"NaN"``, ``"inf"``), which JSON
    and CSV rows can carry (``allow_inf_nan``).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _only_json_numbers(cls, data: Any) -> Any:
        if _non_finite(data):
            raise PydanticCustomError(
                ErrorCode.INVALID_PARAM_VALUE.value, "the record holds a NaN or an infinity, which JSON cannot carry"
            )
        return data


class CertTemplate(ReferenceModel):
    """One certificate template of a batch (a value of ``course_batch.cert_templates``)."""

    identifier: str = ""
    name: str = ""
    url: str = ""
    criteria: dict[str, Any] = Field(default_factory=dict)
    issuer: dict[str, Any] = Field(default_factory=dict)
    signatoryList: list[dict[str, Any]] = Field(default_factory=list)
    additionalProps: dict[str, list[str]] = Field(default_factory=dict)
    notifyTemplate: dict[str, Any] | None = None

    @field_validator(
        "criteria", "issuer", "signatoryList", "additionalProps", "notifyTemplate", mode="before"
    )
    @classmethod
    def _nested_json(cls, value: Any) -> Any:
        decoded = _json_if_string(value)
        return decoded if decoded is not None else None

    @model_validator(mode="before")
    @classmethod
    def _defaults_for_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            defaults: dict[str, Any] = {
                "criteria": {}, "issuer": {}, "signatoryList": [], "additionalProps": {},
            }
            return {
                **data,
                **{key: value for key, value in defaults.items() if data.get(key) in (None, "")},
            }
        return data

    @property
    def is_svg(self) -> bool:
        """Sunbird only issues from templates whose URL contains ``.svg``."""
        return ".svg" in self.url

    def problem(self) -> str | None:
        """Why this template cannot be issued from, or ``None`` if it is usable.

        Sunbird's checks, plus what the generate flow will require of the event made
        from it (a name, an issuer, signatories it accepts, criteria eligibility can
        evaluate). A template that passed here but whose generate event were refused
        would leave every eligible learner recorded as *being issued* a certificate
        that is never made, and skipped as already issued ever after. Judged once
        per template (eligibility asks for every learner).
        """
        return self._problem

    @cached_property
    def _problem(self) -> str | None:
        if not self.url.strip():
            return f"template {self.identifier or self.name!r} has no url"
        if not self.criteria:
            return f"template {self.identifier or self.name!r} has no criteria"
        criteria = criteria_problem(self.criteria, template=self.identifier or self.name)
        if criteria is not None:
            return criteria
        return self._generate_problem()

    def _generate_problem(self) -> str | None:
        """What the generate flow would say about the event eligibility makes from this
        template (``certflow.issue.rules.generate_request``), for any learner."""
        probe = {
            "name": self.name,
            "svgTemplate": self.url,
            "data": [{"recipientName": "probe", "recipientId": "probe"}],
            "issuer": self.issuer,
            "signatoryList": self.signatoryList,
            "criteria": {"narrative": self.name},
        }
        try:
            GenerateCertificateEdata.model_validate(
                probe, context=validation_context(suppress_signatory_errors=True)
            )
        except ValidationError as exc:
            return (
                f"template {self.identifier or self.name!r} would make invalid certificates: "
                f"{rejection(exc).message}"
            )
        return None


def _tag_safe(value: str) -> str:
    """A batch id becomes the ``tag`` of every generate event made for the batch."""
    if TAG_FORBIDDEN.search(value):
        raise ValueError(
            f"{value!r} cannot be used: certificates are tagged with the batch id, and a tag "
            "must not contain spaces or any of !@#$%^&*()+=,.?/\":;'{}|<>-"
        )
    return value


class BatchRecord(ReferenceModel):
    """A course batch with its certificate templates (topic ``certflow.batches``, key batchId)."""

    batchId: Annotated[RequiredId, AfterValidator(_tag_safe)] = Field(
        validation_alias=AliasChoices("batchId", "batchid")
    )
    courseId: RequiredId = Field(validation_alias=AliasChoices("courseId", "courseid"))
    #: Printed on every certificate of the batch: checked like every printed text.
    courseName: DisplayText = ""
    name: str = ""
    certTemplates: dict[str, CertTemplate] = Field(
        default_factory=dict, validation_alias=AliasChoices("certTemplates", "cert_templates")
    )
    #: Content id → content type (Sunbird reads these from its content cache); only
    #: scores of contents of a supported type count toward assessment criteria.
    contentTypes: dict[str, str] = Field(default_factory=dict)

    @field_validator("certTemplates", mode="before")
    @classmethod
    def _templates(cls, value: Any) -> Any:
        decoded = _json_if_string(value)
        if isinstance(decoded, dict):
            # The map key is the template id; Sunbird rows repeat it as `identifier`.
            return {
                key: ({"identifier": key, **item} if isinstance(item, dict) else item)
                for key, item in decoded.items()
            }
        return decoded if decoded is not None else {}


def _timestamp(value: Any) -> datetime | None:
    """Cassandra timestamps arrive as epoch milliseconds or ISO text."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            # Only ValueError becomes a validation error; the platform's
            # OverflowError/OSError for a far-off instant would escape as a crash.
            raise ValueError(f"{value!r} is not a timestamp in milliseconds") from None
    text = str(value).strip().replace("Z", "+00:00")
    for pattern in ("%Y-%m-%d %H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S%z"):
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            pass
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class EnrolmentRow(ReferenceModel):
    """A learner's enrolment in a batch (Sunbird ``user_enrolments``; topic key userId)."""

    userid: RequiredId = Field(validation_alias=AliasChoices("userid", "userId"))
    courseid: RequiredId = Field(validation_alias=AliasChoices("courseid", "courseId"))
    batchid: RequiredId = Field(validation_alias=AliasChoices("batchid", "batchId"))
    active: bool | None = None
    status: int | None = None
    completedon: datetime | None = Field(
        None, validation_alias=AliasChoices("completedon", "completedOn")
    )
    issued_certificates: list[dict[str, Any]] = Field(
        default_factory=list,
        validation_alias=AliasChoices("issued_certificates", "issuedCertificates"),
    )

    @field_validator("completedon", mode="before")
    @classmethod
    def _completed(cls, value: Any) -> Any:
        return _timestamp(value)

    @field_validator("issued_certificates", mode="before")
    @classmethod
    def _issued(cls, value: Any) -> Any:
        decoded = _json_if_string(value)
        return decoded if decoded is not None else []

    @property
    def slot(self) -> str:
        return enrolment_slot(self.courseid, self.batchid)


class ScoreRow(ReferenceModel):
    """A learner's assessment aggregates in a course batch (Sunbird ``user_activity_agg``).

    Keys of ``agg`` (integers) and ``aggregates`` (doubles, winning on a clash) are
    ``score:<contentId>`` and ``max_score:<contentId>``, as Sunbird writes them.
    """

    user_id: RequiredId = Field(validation_alias=AliasChoices("user_id", "userId", "userid"))
    activity_id: RequiredId = Field(validation_alias=AliasChoices("activity_id", "courseId", "activityId"))
    context_id: RequiredId = Field(validation_alias=AliasChoices("context_id", "contextId"))
    activity_type: str = "Course"
    agg: JsonMap = Field(default_factory=dict)
    aggregates: JsonMap = Field(default_factory=dict)

    @property
    def batch_id(self) -> str:
        """Sunbird's context id is ``cb:<batchId>``."""
        return self.context_id.removeprefix("cb:")

    @property
    def slot(self) -> str:
        return enrolment_slot(self.activity_id, self.batch_id)

    def attempts(self) -> dict[str, tuple[float, float]]:
        """Content id → (score, max score); max score defaults to 1, as in Sunbird."""
        merged = {**self.agg, **self.aggregates}
        return {
            key.removeprefix("score:"): (value, merged.get("max_score:" + key[6:], 1.0) or 1.0)
            for key, value in merged.items()
            if key.startswith("score:")
        }


class LearnerProfile(ReferenceModel):
    """A learner's profile, shaped as Sunbird's user-read ``result.response``.

    A whole user-read API response is accepted too, and unwrapped.
    """

    userId: RequiredId = Field(validation_alias=AliasChoices("userId", "id", "identifier", "userid"))
    #: Checked like every name on a certificate (NFC, trimmed, no control or bidi
    #: override characters): the issue flow prints them, and a profile the generate
    #: flow would refuse must be refused here, on load, with a reason. Otherwise the
    #: learner is recorded as being issued a certificate that can never be made.
    firstName: DisplayText | None = None
    lastName: DisplayText | None = None
    rootOrgId: str | None = None
    userLocations: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _printable_name(self) -> LearnerProfile:
        name = self.recipient_name
        if not name:
            raise PydanticCustomError(
                ErrorCode.MANDATORY_PARAMETER_MISSING.value,
                "the learner has no name (firstName and lastName are empty) to put on a certificate",
            )
        if len(name) > MAX_DISPLAY_CHARS:
            raise PydanticCustomError(
                ErrorCode.INVALID_PARAM_VALUE.value,
                f"the name (first name and last name) is {len(name)} characters long; "
                f"at most {MAX_DISPLAY_CHARS} are allowed on a certificate",
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _unwrap_api_response(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("result"), dict):
            inner = data["result"].get("response")
            if isinstance(inner, dict):
                return inner
        return data

    @property
    def recipient_name(self) -> str:
        """First name plus last name; a missing, empty or ``"null"`` last name is dropped."""
        first = (self.firstName or "").strip()
        last = (self.lastName or "").strip()
        if last.lower() == "null":
            last = ""
        return f"{first} {last}".strip()

    def locations(self) -> dict[str, str]:
        """Location type → name (``state``, ``district`` …)."""
        return {
            str(item["type"]): str(item.get("name", ""))
            for item in self.userLocations
            if isinstance(item, dict) and item.get("type")
        }


def enrolment_slot(course_id: str, batch_id: str) -> str:
    """The key of one course batch inside a learner's table entry."""
    return f"{course_id}|{batch_id}"
