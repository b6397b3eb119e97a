"""What the registry accepts on ``certflow.revocations`` (security issue 10, hole 2).

A malformed request is the event's fault, with a code (dead-lettered by ``settle``),
not an ``INTERNAL_ERROR``; a re-issue's revocation must say what the certificate it
revokes certifies, which the registry checks against the record.
"""

from __future__ import annotations

import orjson
import pytest

from certflow.errors import CertflowError, ErrorCode
from certflow.registry.agents import RevocationOrigin, certified_facts, parse_revocation
from certflow.settings import Settings

#: The largest event a worker accepts, by default.
MAX_BYTES = Settings().max_event_bytes

FACTS = {"recipientId": "learner-1", "courseId": "do_1", "batchId": "b1", "certificateName": "course completion"}


def revocation(**fields) -> bytes:
    return orjson.dumps({"certificateId": "cert-1", "reason": "r", "replacedBy": "", "requestedAt": "t", **fields})


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        (b"cert-1", None, ErrorCode.MALFORMED_JSON),
        (b"cert-1", b"not json", ErrorCode.MALFORMED_JSON),
        (b"cert-1", b"[]", ErrorCode.MALFORMED_JSON),
        (b"cert-1", b'{"origin": "admin"}', ErrorCode.MANDATORY_PARAMETER_MISSING),
        (b"cert-1", b'{"certificateId": 7, "origin": "admin"}', ErrorCode.MANDATORY_PARAMETER_MISSING),
        (b"another", revocation(origin="admin"), ErrorCode.INVALID_PARAM_VALUE),
        (None, revocation(origin="admin"), ErrorCode.INVALID_PARAM_VALUE),
        (b"cert-1", revocation(), ErrorCode.INVALID_PARAM_VALUE),  # no origin: as before this fix
        (b"cert-1", revocation(origin="anyone"), ErrorCode.INVALID_PARAM_VALUE),
        (b"cert-1", revocation(origin="admin", reason=["x"]), ErrorCode.INVALID_PARAM_VALUE),
        (b"cert-1", revocation(origin="reissue", replacedBy="new"), ErrorCode.INVALID_PARAM_VALUE),
        (b"cert-1", revocation(origin="reissue", certifies=FACTS), ErrorCode.INVALID_PARAM_VALUE),
        (b"cert-1", revocation(origin="reissue", replacedBy="new", certifies={**FACTS, "batchId": ""}),
         ErrorCode.INVALID_PARAM_VALUE),
    ],
    ids=["tombstone", "not-json", "array", "no-id", "id-not-text", "other-key", "no-key", "no-origin",
         "unknown-origin", "reason-not-text", "reissue-without-facts", "reissue-without-replacement",
         "reissue-blank-fact"],
)
def test_a_malformed_revocation_is_refused_with_a_code(key: bytes | None, value: bytes | None, code: ErrorCode) -> None:
    with pytest.raises(CertflowError) as raised:
        parse_revocation(key, value, max_bytes=MAX_BYTES)
    assert raised.value.code is code


def test_well_formed_revocations_are_accepted() -> None:
    admin = parse_revocation(b"cert-1", revocation(origin="admin"), max_bytes=MAX_BYTES)
    reissue = parse_revocation(b"cert-1", revocation(origin="reissue", replacedBy="new", certifies=FACTS), max_bytes=MAX_BYTES)

    assert admin["origin"] is RevocationOrigin.ADMIN
    assert reissue["origin"] is RevocationOrigin.REISSUE and reissue["certifies"] == FACTS


def test_a_record_certifies_what_a_reissue_names_it_by() -> None:
    record = {"recipient": {"id": "learner-1", "name": "L"}, "course": {"id": "do_1", "name": "C"},
              "batchId": "b1", "certificateName": "Course Completion"}

    assert certified_facts(record) == FACTS
