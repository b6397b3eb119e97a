"""A roster (CSV: name, id, email, optional fields) to ordinary Sunbird generate
requests, for ``certflow issue ROSTER.csv --template T --course-name …``.

Pure: text in, requests and rejected lines out. Each accepted line becomes one
single-recipient ``generate.certificate.request`` (key: the learner id), exactly what
Sunbird's pre-processor sends, so everything downstream (validation, identity,
rendering, credentials, notifications) applies unchanged. Each line is held to the
same display rules as an event (NFC, no control or bidi-override characters, length
limits); a bad line is reported with its number and reason and the others go on.
"""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from certflow.errors import CertflowError
from certflow.events.models import rejection
from certflow.generate.models import GenerateCertificateRequest, Recipient, validation_context

__all__ = [
    "COLUMN_ALIASES",
    "RejectedLine",
    "RosterResult",
    "RosterSpec",
    "read_roster",
    "rejected_csv",
    "roster_requests",
]

#: Accepted header names (case, spaces, ``_`` and ``-`` ignored) → Recipient field.
COLUMN_ALIASES = {
    "name": "recipientName", "recipientname": "recipientName", "learnername": "recipientName",
    "fullname": "recipientName",
    "id": "recipientId", "recipientid": "recipientId", "userid": "recipientId", "learnerid": "recipientId",
    "email": "recipientEmail", "recipientemail": "recipientEmail", "emailaddress": "recipientEmail",
    "phone": "recipientPhone", "recipientphone": "recipientPhone", "mobile": "recipientPhone",
}
#: Most lines one roster may have (a CSV is read whole).
MAX_ROWS = 100_000
_EMAIL = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:.]+$")
_OPTIONAL_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class RosterSpec:
    """What every certificate of the roster shares (the generate event's edata)."""

    svg_template: str
    course_name: str
    certificate_name: str
    issuer_name: str
    issuer_url: str
    template_id: str = ""
    batch_id: str = ""
    course_id: str = ""
    criteria: str = ""
    signatories: Sequence[Mapping[str, str]] = ()
    base_path: str = ""
    issued_date: str = ""
    expiry: str = ""
    logo: str = ""
    description: str = ""
    tag: str = ""

    def edata(self, recipients: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "svgTemplate": self.svg_template,
            "templateId": self.template_id or self.svg_template.rsplit("/", 1)[-1],
            "courseName": self.course_name,
            "name": self.certificate_name,
            "data": recipients,
            "issuer": {"name": self.issuer_name, "url": self.issuer_url},
            "signatoryList": [dict(s) for s in self.signatories],
            "criteria": {"narrative": self.criteria or f"Completed the course {self.course_name}"},
            "basePath": self.base_path,
            "related": {"type": "course", "batchId": self.batch_id,
                        "courseId": self.course_id or self.course_name},
            "issuedDate": self.issued_date,
            "expiry": self.expiry,
            "logo": self.logo,
            "description": self.description,
            "tag": self.tag,
            "userId": recipients[0]["recipientId"] if recipients else "",
        }


@dataclass(frozen=True)
class RejectedLine:
    #: 1-based line number in the file (the header is line 1).
    line: int
    reason: str
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RosterResult:
    #: (key = learner id, request) per accepted line, in file order.
    requests: list[tuple[str, GenerateCertificateRequest]]
    rejected: list[RejectedLine]

    @property
    def summary(self) -> str:
        return f"{len(self.requests)} accepted, {len(self.rejected)} rejected"


def _canonical(header: str) -> str:
    key = re.sub(r"[\s_\-]", "", header.strip().lower())
    return COLUMN_ALIASES.get(key, header.strip())


def read_roster(
    text: str, *, max_rows: int = MAX_ROWS
) -> tuple[list[tuple[int, dict[str, str]]], list[RejectedLine]]:
    """The roster's rows as (line number, {field: value}) with headers mapped to
    Recipient fields, and the lines that cannot even be read.

    Raises ValueError for a roster without a header naming a name and an id column.
    """
    text = text.removeprefix("\ufeff")  # spreadsheets' UTF-8 BOM
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError("the roster is empty: it needs a header line (name,id,email,…)") from None
    columns = [_canonical(h) for h in header]
    if "recipientName" not in columns or "recipientId" not in columns:
        raise ValueError(f"the roster's header {header!r} names no name and id columns")
    duplicates = {c for c in columns if columns.count(c) > 1}
    if duplicates:
        raise ValueError(f"the roster's header repeats {sorted(duplicates)}")
    bad = [c for c in columns if c not in COLUMN_ALIASES.values() and not _OPTIONAL_FIELD.match(c)]
    if bad:
        raise ValueError(f"column names {bad!r} are not usable field names (letters, digits, _)")
    rows: list[tuple[int, dict[str, str]]] = []
    rejected: list[RejectedLine] = []
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue  # blank lines
        if len(rows) + len(rejected) >= max_rows:
            rejected.append(
                RejectedLine(line, f"the roster has more than {max_rows} lines; the rest is ignored")
            )
            break
        if len(values) != len(columns):
            rejected.append(RejectedLine(line, f"has {len(values)} fields; the header has {len(columns)}",
                                         dict(zip(columns, values, strict=False))))
            continue
        rows.append((line, dict(zip(columns, values, strict=True))))
    return rows, rejected


def _recipient(values: Mapping[str, str]) -> dict[str, Any]:
    """A Recipient's fields from one row (display rules applied), or CertflowError/ValueError."""
    fields = {key: value.strip() for key, value in values.items() if value.strip()}
    email = fields.get("recipientEmail")
    if email is not None and not _EMAIL.match(email):
        raise ValueError(f"the email address {email!r} is not valid")
    try:
        recipient = Recipient.model_validate(fields)
    except ValidationError as exc:
        raise rejection(exc) from None
    if not recipient.recipientName:
        raise ValueError("the name is missing")
    if not recipient.recipientId:
        raise ValueError("the id is missing")
    return recipient.model_dump(mode="json", exclude_none=True)


def roster_requests(
    text: str,
    spec: RosterSpec,
    *,
    suppress_signatory_errors: bool = True,
    now_ms: int | None = None,
    max_rows: int = MAX_ROWS,
) -> RosterResult:
    """One generate request per valid roster line, and the rejected lines with reasons.

    ``spec`` is checked first, with a placeholder recipient, under Sunbird's rules
    (the same validation the generate agent applies): a spec error (no issuer URL …)
    raises :class:`CertflowError`, since every line would fail the same way.
    """
    context = validation_context(suppress_signatory_errors=suppress_signatory_errors)
    ets = now_ms if now_ms is not None else int(time.time() * 1000)

    def request(recipient: dict[str, Any]) -> GenerateCertificateRequest:
        event = {
            "eid": "BE_JOB_REQUEST",
            "ets": ets,
            "mid": f"certflow.roster.{uuid.uuid4()}",
            "actor": {"id": "Certificate Generator", "type": "System"},
            "context": {"pdata": {"id": "certflow.roster", "ver": "1.0"}},
            "object": {"id": recipient["recipientId"], "type": "GenerateCertificate"},
            "edata": spec.edata([recipient]),
        }
        try:
            return GenerateCertificateRequest.model_validate(event, context=context)
        except ValidationError as exc:
            raise rejection(exc) from None

    request({"recipientName": "Roster check", "recipientId": "roster-check"})  # the spec itself

    rows, rejected = read_roster(text, max_rows=max_rows)
    requests: list[tuple[str, GenerateCertificateRequest]] = []
    seen: dict[str, int] = {}
    for line, values in rows:
        try:
            recipient = _recipient(values)
            first = seen.get(recipient["recipientId"])
            if first is not None:
                raise ValueError(f"the id {recipient['recipientId']!r} is already on line {first}")
            made = request(recipient)
        except CertflowError as exc:
            rejected.append(RejectedLine(line, f"{exc.code.value}: {exc.message}", values))
            continue
        except ValueError as exc:
            rejected.append(RejectedLine(line, str(exc), values))
            continue
        seen[recipient["recipientId"]] = line
        requests.append((recipient["recipientId"], made))
    rejected.sort(key=lambda r: r.line)
    return RosterResult(requests, rejected)


def rejected_csv(rejected: Iterable[RejectedLine]) -> str:
    """The rejected lines as CSV (line, reason), for the administrator to fix."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["line", "reason"])
    for item in rejected:
        writer.writerow([item.line, item.reason])
    return out.getvalue()
