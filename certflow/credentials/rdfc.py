"""The second proof, ``eddsa-rdfc-2022``, added off the hot path and cached.

Why: the Digital Credentials Consortium's verifier (``@digitalcredentials/
verifier-core``, behind the Learner Credential Wallet and VerifierPlus) accepts
only ``Ed25519Signature2020`` and ``eddsa-rdfc-2022`` proofs, and rejects a
credential carrying only certflow's ``eddsa-jcs-2022`` proof. An RDFC proof needs
RDF Dataset Canonicalization, which pyld does in pure Python in milliseconds per
certificate (measured: README "Verifiable credentials"), two orders of magnitude
more than JCS. The issue path therefore keeps signing JCS only, and the RDFC proof
is added when a credential leaves certflow for a wallet or an export
(:func:`add_rdfc_proof`), memoised by the credential's id and content, so a
learner who claims or downloads a certificate twice costs one canonicalisation.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cachetools import LRUCache

from certflow.credentials.cryptosuites import RDFC, RDFC_CRYPTOSUITE, canonical_json
from certflow.credentials.keys import SigningKey
from certflow.credentials.proof import sign

#: Credentials whose proof set is remembered (a few KB each).
CACHE_SIZE = 4096

_cache: LRUCache[tuple[str, str, str], dict[str, Any]] = LRUCache(maxsize=CACHE_SIZE)
_lock = threading.Lock()


def content_hash(credential: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the credential's JCS form, proofs included."""
    return hashlib.sha256(canonical_json(credential)).hexdigest()


def _proofs(credential: Mapping[str, Any]) -> list[Any]:
    proof = credential.get("proof")
    if proof is None:
        return []
    return list(proof) if isinstance(proof, list) else [proof]


def has_rdfc_proof(credential: Mapping[str, Any]) -> bool:
    return any(
        isinstance(proof, dict) and proof.get("cryptosuite") == RDFC_CRYPTOSUITE
        for proof in _proofs(credential)
    )


def add_rdfc_proof(
    credential: Mapping[str, Any], key: SigningKey, *, created: datetime | None = None
) -> dict[str, Any]:
    """``credential`` with an ``eddsa-rdfc-2022`` proof by ``key`` beside its proof(s).

    The new proof's ``created`` is the existing proof's (when it has one and
    ``created`` is not given), so the result is a pure function of the input and
    the key, and the cached copy is the copy any worker would make. A credential
    that already has an RDFC proof is returned as it is. Raises
    ``jsonld.UnsafeJsonLd`` (a ``ValueError``) for a credential with terms its
    contexts do not define: RDFC would leave them unsigned.
    """
    if has_rdfc_proof(credential):
        return dict(credential)
    if created is None:
        created = _existing_created(credential)
    if created is None:
        raise ValueError("created is needed: the credential has no proof to take it from")
    cache_key = (
        str(credential.get("id", "")),
        content_hash(credential),
        f"{key.verification_method}|{created.isoformat()}",
    )
    with _lock:
        cached = _cache.get(cache_key)
    if cached is not None:
        return _copy(cached)
    signed = sign(credential, key, created=created, cryptosuite=RDFC, add_to_proof_set=True)
    with _lock:
        _cache[cache_key] = signed
    return _copy(signed)


def _existing_created(credential: Mapping[str, Any]) -> datetime | None:
    for proof in _proofs(credential):
        if isinstance(proof, dict) and isinstance(proof.get("created"), str):
            try:
                moment = datetime.fromisoformat(proof["created"])
            except ValueError:
                continue
            if moment.tzinfo is not None:
                return moment
    return None


def _copy(credential: dict[str, Any]) -> dict[str, Any]:
    """A deep-enough copy that a caller changing the result cannot change the cache."""
    import copy

    return copy.deepcopy(credential)


def cache_clear() -> None:
    with _lock:
        _cache.clear()
