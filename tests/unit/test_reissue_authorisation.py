"""A re-issue may replace only the learner's own current certificate of that name.

Certificate ids are deterministic (UUIDv5 of public facts), so anyone can compute
another learner's id, or one not issued yet; ``oldId`` is checked against the
learner's issued state before anything is revoked (security issue 10, hole 2).
"""

from __future__ import annotations

import pytest

from certflow.errors import CertflowError, ErrorCode
from certflow.issue.rules import IssuedEntry, authorise_reissue

SLOT = "do_course|0140000000000000001"
OTHER_SLOT = "do_course|0140000000000000002"


def entry(id: str, name: str = "Course Completion", *, status: str = "issued", old_id: str = "") -> IssuedEntry:  # noqa: A002
    return IssuedEntry(id=id, name=name, template_id="tmpl", old_id=old_id, status=status, made_from="0-0#1")


def refusal(old_id: str, **kwargs) -> ErrorCode:
    kwargs.setdefault("name", "Course Completion")
    kwargs.setdefault("slot", SLOT)
    with pytest.raises(CertflowError) as raised:
        authorise_reissue(old_id, **kwargs)
    return raised.value.code


def test_the_learners_current_issued_certificate_of_that_name_may_be_replaced_and_is_revoked() -> None:
    issued = {SLOT: {"course completion": entry("cert-a")}}

    assert authorise_reissue("cert-a", name="COURSE completion", slot=SLOT, issued=issued) is True


def test_another_learners_certificate_is_not_found_for_this_learner() -> None:
    # Learner B holds nothing, or a certificate of their own: A's id is not theirs.
    assert refusal("cert-of-learner-a", issued={}) is ErrorCode.OLD_ID_NOT_FOUND
    assert refusal("cert-of-learner-a", issued={SLOT: {"course completion": entry("cert-b")}}) is (
        ErrorCode.OLD_ID_NOT_FOUND
    )


def test_a_certificate_not_issued_yet_cannot_be_replaced() -> None:
    # An id computed for a certificate that does not exist, or is only pending.
    assert refusal("future-id", issued={}) is ErrorCode.OLD_ID_NOT_FOUND
    pending = {SLOT: {"course completion": entry("future-id", status="pending")}}
    assert refusal("future-id", issued=pending) is ErrorCode.OLD_ID_NOT_FOUND


def test_the_learners_certificate_of_another_batch_or_name_is_a_mismatch() -> None:
    issued = {
        OTHER_SLOT: {"course completion": entry("other-batch")},
        SLOT: {"merit": entry("merit-cert", "Merit")},
    }

    assert refusal("other-batch", issued=issued) is ErrorCode.OLD_ID_MISMATCH
    assert refusal("merit-cert", issued=issued) is ErrorCode.OLD_ID_MISMATCH


def test_a_certificate_already_replaced_is_a_mismatch() -> None:
    issued = {SLOT: {"course completion": entry("second", old_id="first")}}

    assert refusal("first", issued=issued) is ErrorCode.OLD_ID_MISMATCH


def test_a_certificate_sunbird_issued_may_be_replaced_but_certflow_has_none_to_revoke() -> None:
    sunbird = [{"name": "Course Completion", "identifier": "sunbird-cert"}]

    assert authorise_reissue("sunbird-cert", name="Course Completion", slot=SLOT, issued={},
                             sunbird_issued=sunbird) is False
    assert refusal("sunbird-cert", issued={}, name="Merit", sunbird_issued=sunbird) is ErrorCode.OLD_ID_MISMATCH
    # Once certflow issued one of that name, Sunbird's is no longer the current one.
    replaced = {SLOT: {"course completion": entry("certflow-cert")}}
    assert refusal("sunbird-cert", issued=replaced, sunbird_issued=sunbird) is ErrorCode.OLD_ID_MISMATCH
