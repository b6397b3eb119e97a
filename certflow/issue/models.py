"""The *issue-certificate* request: a batch, a course, and the learners to consider.

Produced by Sunbird's activity-aggregate-updater, assessment-aggregator and the LMS
"issue certificate" API (SUNBIRD.md §2.1). Unlike Sunbird, which reads only
``userIds[0]``, every listed learner counts, and no ``userIds`` at all means every
learner enrolled in the batch.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator
from pydantic_core import PydanticCustomError

from certflow.errors import ErrorCode
from certflow.events.models import Int64, JobRequest, SunbirdModel

ISSUE_CERTIFICATE_ACTION = "issue-certificate"


class IssueCertificateEdata(SunbirdModel):
    """``edata`` of an issue-certificate request."""

    action: str = ""
    batchId: str = ""
    courseId: str = ""
    userIds: list[str] = Field(default_factory=list)
    #: Sunbird producers have spelt this ``resIssue`` too; both are accepted.
    reIssue: bool = Field(False, validation_alias=AliasChoices("reIssue", "resIssue"))
    iteration: Int64 | None = None
    trigger: str | None = None
    attemptId: str | None = None

    @model_validator(mode="after")
    def _sunbird_rules(self) -> IssueCertificateEdata:
        """Sunbird's ``isValid``: the action, and non-blank batch and course ids."""
        if self.action.lower() != ISSUE_CERTIFICATE_ACTION:
            raise PydanticCustomError(
                ErrorCode.INVALID_PARAM_VALUE.value,
                f"Invalid value {self.action!r} for parameter action; "
                f"expected {ISSUE_CERTIFICATE_ACTION!r}.",
            )
        for name in ("batchId", "courseId"):
            if not getattr(self, name).strip():
                raise PydanticCustomError(
                    ErrorCode.MANDATORY_PARAMETER_MISSING.value,
                    f"Mandatory parameter {name} is missing.",
                )
        return self

    @property
    def learner_ids(self) -> list[str]:
        """The distinct, non-blank learners named, in the order given."""
        return list(dict.fromkeys(uid.strip() for uid in self.userIds if uid.strip()))


class IssueCertificateRequest(JobRequest[IssueCertificateEdata]):
    """A whole issue-certificate event, envelope included."""
