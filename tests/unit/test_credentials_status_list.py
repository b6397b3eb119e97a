"""Bitstring Status List v1.0: bit order, encoding, the list credential and entries."""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime

import pytest

from certflow.credentials.keys import SigningKey
from certflow.credentials.proof import resolve_did_key, verify_proof
from certflow.credentials.status_list import (
    StatusList,
    status_entry,
    status_list_credential,
    status_lookup,
)

LIST_URL = "https://certs.example.org/status/3"
KEY = SigningKey.generate()
PUBLISHED = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def test_a_new_list_has_131072_clear_entries() -> None:
    status_list = StatusList()
    assert status_list.size == 131_072
    assert status_list.to_bytes() == bytes(16_384)
    assert not any(status_list.get(index) for index in (0, 1, 65_535, 131_071))


def test_index_zero_is_the_left_most_bit_of_the_first_byte() -> None:
    status_list = StatusList(16)
    status_list.set(0)
    assert status_list.to_bytes() == b"\x80\x00"
    status_list.set(7)
    status_list.set(8)
    assert status_list.to_bytes() == b"\x81\x80"
    status_list.set(0, False)
    assert status_list.to_bytes() == b"\x01\x80"
    assert [status_list.get(index) for index in range(9)] == [False] * 7 + [True, True]


def test_indexes_outside_the_list_are_refused() -> None:
    with pytest.raises(IndexError):
        StatusList(8).set(8)
    with pytest.raises(IndexError):
        StatusList(8).get(-1)


def test_encoded_is_multibase_base64url_of_gzip_without_padding() -> None:
    status_list = StatusList()
    status_list.set(42)
    encoded = status_list.encoded()
    assert encoded.startswith("u") and "=" not in encoded and "+" not in encoded and "/" not in encoded
    body = encoded[1:]
    raw = gzip.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert raw == status_list.to_bytes()


def test_encode_decode_round_trip() -> None:
    status_list = StatusList()
    for index in (0, 7, 8, 42, 99_999, 131_071):
        status_list.set(index)
    decoded = StatusList.decode(status_list.encoded())
    assert decoded == status_list
    assert [index for index in range(131_072) if decoded.get(index)] == [0, 7, 8, 42, 99_999, 131_071]


def test_the_same_list_always_encodes_to_the_same_text() -> None:
    assert StatusList().encoded() == StatusList().encoded()


def test_the_specifications_example_list_decodes_to_131072_clear_entries() -> None:
    # Bitstring Status List v1.0, example "BitstringStatusListCredential".
    example = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"
    assert StatusList.decode(example) == StatusList()


@pytest.mark.parametrize(
    "encoded",
    [
        "H4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA",  # no multibase prefix
        "u!!!",  # not base64url
        "u" + base64.urlsafe_b64encode(b"not gzip").decode().rstrip("="),
        "u" + base64.urlsafe_b64encode(gzip.compress(bytes(16))[:-6]).decode().rstrip("="),  # truncated
        "u" + base64.urlsafe_b64encode(gzip.compress(b"")).decode().rstrip("="),  # empty
    ],
    ids=["no prefix", "not base64url", "not gzip", "truncated", "empty"],
)
def test_undecodable_lists_are_refused(encoded: str) -> None:
    with pytest.raises(ValueError):
        StatusList.decode(encoded)


def test_a_list_that_inflates_beyond_the_limit_is_refused() -> None:
    bomb = StatusList(8 * 1024 * 1024).encoded()  # 1 MB of zeros, ~1 KB encoded
    with pytest.raises(ValueError, match="more than"):
        StatusList.decode(bomb, max_bytes=64 * 1024)


def test_a_credential_names_its_list_and_index() -> None:
    assert status_entry(LIST_URL, 42) == {
        "id": f"{LIST_URL}#42",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "42",
        "statusListCredential": LIST_URL,
    }


def test_the_status_list_credential_is_signed_by_its_issuer() -> None:
    status_list = StatusList()
    status_list.set(3)
    credential = status_list_credential(LIST_URL, status_list.encoded(), KEY.did, KEY, PUBLISHED)
    assert credential["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert credential["id"] == LIST_URL
    assert credential["issuer"] == KEY.did
    assert credential["validFrom"] == "2026-11-24T09:30:00Z"
    assert credential["credentialSubject"] == {
        "id": f"{LIST_URL}#list",
        "type": "BitstringStatusList",
        "statusPurpose": "revocation",
        "encodedList": status_list.encoded(),
    }
    assert verify_proof(credential, resolve_did_key).ok
    assert StatusList.decode(credential["credentialSubject"]["encodedList"]).get(3)


def test_looking_up_an_entry_in_known_lists() -> None:
    status_list = StatusList()
    status_list.set(42)
    status_of = status_lookup({LIST_URL: status_list})
    assert status_of(status_entry(LIST_URL, 42)) is True
    assert status_of(status_entry(LIST_URL, 41)) is False
    assert status_of(status_entry("https://elsewhere.example/1", 42)) is None
    assert status_of(status_entry(LIST_URL, 131_072)) is None
    assert status_of(status_entry(LIST_URL, 42, purpose="suspension")) is None
    assert status_of({**status_entry(LIST_URL, 42), "statusListIndex": "4x"}) is None
