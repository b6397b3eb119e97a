"""Roster CSV → ordinary generate requests, with rejected lines and reasons."""

from __future__ import annotations

import orjson
import pytest

from certflow.errors import CertflowError
from certflow.events.models import parse_event
from certflow.generate.models import GenerateCertificateRequest, validation_context
from certflow.roster import RosterSpec, read_roster, rejected_csv, roster_requests

SPEC = RosterSpec(
    svg_template="https://templates.example.org/merit.svg",
    course_name="Python basics",
    certificate_name="Merit certificate",
    issuer_name="Sunbird Academy",
    issuer_url="https://academy.example.org",
    batch_id="batch-7",
)

ROSTER = (
    "\ufeffName,ID,Email,grade\n"
    "Asha Verma,u1,asha@example.org,A\n"
    "आशा वर्मा,u2,,B\n"
    "\n"
    ",u3,x@example.org,A\n"            # no name
    "Ravi,,ravi@example.org,A\n"        # no id
    "Ravi,u4,not-an-address,A\n"        # bad email
    "Ra\u202eiv,u5,r@example.org,A\n"   # bidi override
    "Asha again,u1,a@example.org,A\n"   # duplicate id
    "Too,many,fields,here,!\n"
    '"Quoted, Name",u6,q@example.org,C\n'
)


def test_accepted_lines_become_single_recipient_generate_requests():
    result = roster_requests(ROSTER, SPEC, now_ms=1_700_000_000_000)
    keys = [key for key, _ in result.requests]
    assert keys == ["u1", "u2", "u6"]
    first = result.requests[0][1]
    assert isinstance(first, GenerateCertificateRequest)
    assert first.recipient.recipientName == "Asha Verma" and first.recipient.recipientEmail == "asha@example.org"
    assert first.edata.courseName == "Python basics" and first.edata.name == "Merit certificate"
    assert first.edata.related.batchId == "batch-7" and first.edata.templateId == "merit.svg"
    assert first.recipient.model_dump()["grade"] == "A"  # optional fields ride along
    assert result.requests[2][1].recipient.recipientName == "Quoted, Name"
    # What goes on the topic parses as any Sunbird event would.
    raw = first.to_json()
    again = parse_event(GenerateCertificateRequest, raw, max_bytes=10**6,
                        context=validation_context(suppress_signatory_errors=True))
    assert again.recipient.recipientId == "u1" and orjson.loads(raw)["eid"] == "BE_JOB_REQUEST"


def test_rejected_lines_have_numbers_and_reasons():
    result = roster_requests(ROSTER, SPEC)
    reasons = {r.line: r.reason for r in result.rejected}
    assert set(reasons) == {5, 6, 7, 8, 9, 10}
    assert "name" in reasons[5] and "id" in reasons[6]
    assert "email" in reasons[7]
    assert "INVALID_PARAM_VALUE" in reasons[8] and "U+202E" in reasons[8]
    assert "already on line 2" in reasons[9]
    assert "5 fields" in reasons[10]
    assert result.summary == "3 accepted, 6 rejected"
    assert rejected_csv(result.rejected).splitlines()[0] == "line,reason"


def test_a_bad_spec_fails_once_not_per_line():
    with pytest.raises(CertflowError) as caught:
        roster_requests(ROSTER, RosterSpec(svg_template="t.svg", course_name="c", certificate_name="n",
                                           issuer_name="Org", issuer_url=""))
    assert "issuer.url" in caught.value.message


def test_header_problems():
    with pytest.raises(ValueError, match="empty"):
        read_roster("")
    with pytest.raises(ValueError, match="no name and id"):
        read_roster("email\nx@example.org\n")
    with pytest.raises(ValueError, match="repeats"):
        read_roster("name,id,Name\n")
    with pytest.raises(ValueError, match="field names"):
        read_roster("name,id,bad column!\n")
    rows, rejected = read_roster("learner_name,user-id\nA,1\nB,2\nC,3\n", max_rows=2)
    assert [r[1]["recipientId"] for r in rows] == ["1", "2"] and "more than 2" in rejected[0].reason
