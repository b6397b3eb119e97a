"""Whose credentials verify: one rule for every verifier certflow has.

A signature only proves that *some* key signed; with ``did:key`` anyone can make a
key and name its DID as the issuer, so a verifier that accepts any did:key accepts
forgeries. :class:`TrustPolicy` says which issuers count: this deployment's own
signing keys (every key of the ring, old ones included) and the DIDs the operator
lists (``CERTFLOW_TRUSTED_ISSUERS``, and ``certflow verify --trust``). ``POST
/verify``, the verification page and ``certflow verify`` all verify through
``verification.verify_certificate`` with a policy made by :meth:`TrustPolicy.from_settings`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from certflow.credentials.keys import KeyRing, decode_public_key_multibase
from certflow.credentials.proof import resolve_did_key

if TYPE_CHECKING:
    from certflow.settings import Settings

__all__ = ["TrustPolicy", "issuer_did"]


def issuer_did(text: str) -> str:
    """A trusted-issuer entry as a DID: ``did:key:z6Mk…`` (a ``#fragment`` is dropped).

    ``ValueError`` for anything that is not an Ed25519 did:key, so a typo in a trust
    list is reported instead of silently trusting nobody.
    """
    did = text.strip().split("#", 1)[0]
    if not did.startswith("did:key:"):
        raise ValueError(f"{text!r} is not a did:key DID (did:key:z6Mk…)")
    try:
        decode_public_key_multibase(did[len("did:key:"):])
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an Ed25519 did:key: {exc}") from None
    return did


@dataclass(frozen=True)
class TrustPolicy:
    """The issuers (DIDs) whose credentials verify, and how to find their keys."""

    issuers: frozenset[str]
    #: This deployment's ring: its keys resolve under whatever name they sign with.
    keys: KeyRing | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, keys: KeyRing | None, *, also: Iterable[str] = ()
    ) -> TrustPolicy:
        """The deployment's keys (``keys``), ``settings.trusted_issuers`` and ``also``.

        ``keys`` is passed in rather than loaded here: a worker has its ring already,
        and a tool that only verifies must load it without creating one
        (``keys.configured_key_ring``).
        """
        issuers = {issuer_did(entry) for entry in (*settings.trusted_issuers, *also)}
        if keys is not None:
            issuers |= keys.dids
        return cls(frozenset(issuers), keys)

    def trusts(self, did: str | None) -> bool:
        return did is not None and did in self.issuers

    def resolve_key(self, verification_method: str) -> bytes | None:
        """A ``KeyResolver``: this deployment's keys, then any did:key.

        Untrusted did:keys resolve too, on purpose: the signature is then checked,
        and the issuer check says "untrusted issuer did:key:…" rather than a vague
        "unknown verification method". Trust is decided by :attr:`issuers`.
        """
        if self.keys is not None:
            own = self.keys.find(verification_method)
            if own is not None:
                return own
        return resolve_did_key(verification_method)
