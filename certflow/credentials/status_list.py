"""Revocation as a W3C Bitstring Status List (v1.0).

Why a bitstring: a verifier learns whether a certificate is revoked by downloading
one list that covers 131,072 certificates (16 KB before compression, a few hundred
bytes after while few are revoked), so neither certflow nor anyone watching the
traffic learns *which* certificate is being checked. Each credential names its
list and its index (``status_entry``); the list itself is published as a signed
``BitstringStatusListCredential``.

Bit order (spec §3.2): index 0 is the left-most (most significant) bit of the first
byte. ``encodedList`` is multibase base64url without padding (``u…``) of the GZIP
of the bitstring.
"""

from __future__ import annotations

import base64
import gzip
import zlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from certflow.credentials.contexts import VC_V2_CONTEXT
from certflow.credentials.keys import SigningKey
from certflow.credentials.proof import sign, xsd_datetime

#: The spec's minimum list size: 16 KB of bits, so a holder hides in a large crowd.
DEFAULT_SIZE = 131_072
REVOCATION = "revocation"
#: Largest bitstring ``decode`` accepts (bytes), so a tiny GZIP bomb cannot exhaust memory.
MAX_DECODED_BYTES = 16 * 1024 * 1024


class StatusList:
    """A mutable bitstring of ``size`` entries, all clear (not revoked) at first."""

    __slots__ = ("_bits", "size")

    def __init__(self, size: int = DEFAULT_SIZE, *, bits: bytes | bytearray | None = None) -> None:
        if size <= 0 or size % 8:
            raise ValueError("a status list's size must be a positive multiple of 8")
        self.size = size
        if bits is None:
            self._bits = bytearray(size // 8)
        else:
            if len(bits) * 8 != size:
                raise ValueError(f"{len(bits)} bytes do not hold {size} entries")
            self._bits = bytearray(bits)

    def _locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < self.size:
            raise IndexError(f"status list index {index} is outside 0..{self.size - 1}")
        return index >> 3, 0x80 >> (index & 7)

    def get(self, index: int) -> bool:
        """True when entry ``index`` is set (the credential is revoked)."""
        offset, mask = self._locate(index)
        return bool(self._bits[offset] & mask)

    def set(self, index: int, value: bool = True) -> None:
        offset, mask = self._locate(index)
        if value:
            self._bits[offset] |= mask
        else:
            self._bits[offset] &= ~mask & 0xFF

    def to_bytes(self) -> bytes:
        return bytes(self._bits)

    def encoded(self) -> str:
        """``encodedList``: ``u`` + base64url (no padding) of the GZIP'd bitstring.

        The GZIP header's time stamp is zero, so the same bits always encode to the
        same string (and republishing an unchanged list changes nothing).
        """
        compressed = gzip.compress(bytes(self._bits), compresslevel=9, mtime=0)
        return "u" + base64.urlsafe_b64encode(compressed).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, encoded: str, *, max_bytes: int = MAX_DECODED_BYTES) -> StatusList:
        """The list an ``encodedList`` value holds; ``ValueError`` if it holds none."""
        if not isinstance(encoded, str) or not encoded.startswith("u"):
            raise ValueError("encodedList must be multibase base64url (starting with 'u')")
        body = encoded[1:]
        try:
            compressed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"encodedList is not base64url: {exc}") from None
        # wbits=31: GZIP framing only; max_length bounds what a small input can expand to.
        inflater = zlib.decompressobj(wbits=31)
        try:
            bits = inflater.decompress(compressed, max_bytes + 1)
        except zlib.error as exc:
            raise ValueError(f"encodedList is not GZIP: {exc}") from None
        if len(bits) > max_bytes:
            raise ValueError(f"encodedList expands to more than {max_bytes} bytes")
        if not inflater.eof:
            raise ValueError("encodedList is a truncated GZIP stream")
        if not bits:
            raise ValueError("encodedList holds an empty bitstring")
        return cls(len(bits) * 8, bits=bits)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StatusList):
            return NotImplemented
        return self.size == other.size and self._bits == other._bits

    #: Mutable, so unhashable (as Python makes any class defining ``__eq__`` alone).
    __hash__ = None  # type: ignore[assignment]  # typeshed's object.__hash__ is a method

    def __repr__(self) -> str:
        return f"StatusList(size={self.size}, set={sum(bin(byte).count('1') for byte in self._bits)})"


def status_entry(list_url: str, index: int, *, purpose: str = REVOCATION) -> dict[str, Any]:
    """The ``credentialStatus`` of the credential at ``index`` of the list at ``list_url``."""
    if index < 0:
        raise ValueError("a status list index is not negative")
    return {
        "id": f"{list_url}#{index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": purpose,
        "statusListIndex": str(index),
        "statusListCredential": list_url,
    }


def status_list_credential(
    list_url: str,
    encoded: str,
    issuer: str | Mapping[str, Any],
    key: SigningKey,
    valid_from: datetime,
    *,
    valid_until: datetime | None = None,
    purpose: str = REVOCATION,
) -> dict[str, Any]:
    """The signed ``BitstringStatusListCredential`` publishing ``encoded`` at ``list_url``.

    ``issuer`` must be the signing key's DID (or a profile with that ``id``), as for
    every certflow credential: verifiers check that the issuer is who signed.
    """
    credential: dict[str, Any] = {
        "@context": [VC_V2_CONTEXT],
        "id": list_url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer if isinstance(issuer, str) else dict(issuer),
        "validFrom": xsd_datetime(valid_from),
        "credentialSubject": {
            "id": f"{list_url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": purpose,
            "encodedList": encoded,
        },
    }
    if valid_until is not None:
        credential["validUntil"] = xsd_datetime(valid_until)
    return sign(credential, key, created=valid_from)


def status_lookup(lists: Mapping[str, StatusList]) -> Callable[[Mapping[str, Any]], bool | None]:
    """A ``status_of`` for ``verify_credential`` over lists the caller already holds.

    For a ``BitstringStatusListEntry`` with purpose ``revocation`` whose list is in
    ``lists`` (by ``statusListCredential`` URL): True if revoked, False if not.
    None (unknown) for anything else: another purpose, an unknown list, an index
    outside the list or not a decimal number.
    """

    def status_of(entry: Mapping[str, Any]) -> bool | None:
        if entry.get("type") != "BitstringStatusListEntry" or entry.get("statusPurpose") != REVOCATION:
            return None
        status_list = lists.get(entry.get("statusListCredential", ""))
        index = entry.get("statusListIndex")
        if status_list is None or not isinstance(index, str) or not index.isdecimal():
            return None
        position = int(index)
        if position >= status_list.size:
            return None
        return status_list.get(position)

    return status_of

