"""Error codes that leave the service.

Every rejected event lands on a ``*.failed`` topic with one of these codes, so the
codes are a contract with whoever reads those topics: add codes, never rename them.
Sunbird's own validation codes (``MANDATORY_PARAMETER_MISSING``,
``INVALID_PARAM_VALUE``) keep their names so existing dashboards keep matching.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Machine-readable reason an event was rejected."""

    #: The payload is not JSON (or not UTF-8), or JSON whose top level is not an object.
    MALFORMED_JSON = "MALFORMED_JSON"
    #: Larger than ``CERTFLOW_MAX_EVENT_BYTES``.
    EVENT_TOO_LARGE = "EVENT_TOO_LARGE"
    #: Sunbird: a required field is absent or blank.
    MANDATORY_PARAMETER_MISSING = "MANDATORY_PARAMETER_MISSING"
    #: Sunbird: a field is present but its value is not acceptable.
    INVALID_PARAM_VALUE = "INVALID_PARAM_VALUE"
    #: The template URL is not one certflow may fetch (scheme, host, path outside the root).
    TEMPLATE_NOT_ALLOWED = "TEMPLATE_NOT_ALLOWED"
    #: The template could not be fetched (network error, HTTP status, timeout, too large).
    TEMPLATE_FETCH_FAILED = "TEMPLATE_FETCH_FAILED"
    #: The template was fetched but is not a usable SVG document.
    TEMPLATE_INVALID = "TEMPLATE_INVALID"
    #: An issue request names a batch (with that course) certflow has no record of.
    UNKNOWN_BATCH = "UNKNOWN_BATCH"
    #: The certificate made from the request (its template, inline images) is larger
    #: than one Kafka record can carry, so it could never be published.
    CERTIFICATE_TOO_LARGE = "CERTIFICATE_TOO_LARGE"
    #: A re-issue's ``oldId`` is not a certificate issued to this learner: unknown,
    #: not issued yet, or another learner's. Nothing is revoked, nothing issued.
    OLD_ID_NOT_FOUND = "OLD_ID_NOT_FOUND"
    #: A re-issue's ``oldId`` is this learner's certificate, but not the current one
    #: of the same name in the same course batch (another course, batch or name, or
    #: already replaced). Nothing is revoked, nothing issued.
    OLD_ID_MISMATCH = "OLD_ID_MISMATCH"
    #: A revocation names a certificate the registry has no record of (an admin's
    #: revocation must name an existing certificate). Nothing is recorded.
    CERTIFICATE_NOT_FOUND = "CERTIFICATE_NOT_FOUND"
    #: A notification email the SMTP server refused, or that failed on every retry.
    NOTIFICATION_FAILED = "NOTIFICATION_FAILED"
    #: A certificate without a printable form (a credential issued through the VC-API).
    NOT_PRINTABLE = "NOT_PRINTABLE"
    #: The template at a certificate's template address is no longer the one it was
    #: issued with, so its printable form cannot be drawn again (its credential verifies).
    TEMPLATE_CHANGED = "TEMPLATE_CHANGED"
    #: A bug: an exception nobody anticipated. Still dead-lettered, never fatal.
    INTERNAL_ERROR = "INTERNAL_ERROR"


class CertflowError(Exception):
    """A failure that is the event's fault (or its template's), not the worker's.

    Raised by the pure core; agents turn it into a ``*.failed`` record instead of
    crashing, which is what keeps a poison message from blocking its partition.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r}, {self.message!r})"
