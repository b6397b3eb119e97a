"""The Data Integrity EdDSA cryptosuites' transformation and hashing: ``eddsa-jcs-2022``
(JCS, RFC 8785, canonical JSON) and ``eddsa-rdfc-2022`` (RDFC-1.0 N-Quads).

Signing and verifying with them, and proof sets: :mod:`certflow.credentials.proof`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import rfc8785
from cachetools import LRUCache

CRYPTOSUITE = "eddsa-jcs-2022"
RDFC_CRYPTOSUITE = "eddsa-rdfc-2022"

# --- canonical JSON -------------------------------------------------------------------

#: Largest integer JCS can write exactly: JCS serialises numbers as IEEE-754 doubles.
_MAX_SAFE_INTEGER = 2**53 - 1


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical UTF-8 bytes of a JSON value.

    ``rfc8785`` (pure Python) is the reference and handles everything. For the
    values certflow emits it is ~60 µs per credential, so a faster path is taken
    when the value is *plain*: dicts with ASCII string keys, lists, strings,
    booleans, None and integers of magnitude below 2**53, and nothing else (no
    floats). For plain values ``orjson`` with sorted keys writes exactly the JCS
    bytes, because:

    * no whitespace: both write none;
    * literals: ``true``, ``false``, ``null`` in both;
    * integers below 2**53 are exact doubles, and ECMAScript's Number-to-String
      (which JCS prescribes) writes them as plain decimal digits with a ``-`` sign
      when negative, which is what orjson writes for an int;
    * strings: JCS (ECMAScript ``JSON.stringify``) escapes exactly ``"``, ``\\`` and
      U+0000–U+001F, the latter as ``\\b \\t \\n \\f \\r`` or ``\\u00xx`` with
      lower-case hex, and writes every other character as itself in UTF-8 (``/``,
      DEL, U+2028/9, non-BMP characters included); orjson does the same. A string
      that is not valid Unicode (a lone surrogate) makes orjson fail, and the
      reference then decides;
    * key order: JCS sorts keys by their UTF-16 code units; for ASCII keys that is
      byte order, which is orjson's ``OPT_SORT_KEYS`` order (non-ASCII keys take
      the reference path, where UTF-16 and code-point order can differ).

    ``tests/unit/test_credentials_proof.py`` checks this against ``rfc8785`` on many
    generated documents. Anything else (floats, huge integers, tuples, datetimes,
    non-ASCII keys) goes to ``rfc8785``, so the result is always JCS or an error.
    """
    if _plain(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
    return rfc8785.dumps(value)


def _plain(value: Any) -> bool:
    """True when ``value`` holds only types whose orjson form is their JCS form."""
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        item = pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is dict:
            for key, member in item.items():
                if type(key) is not str or not key.isascii():
                    return False
                push(member)
        elif kind is list:
            stack.extend(item)
        elif kind is int:
            if not -_MAX_SAFE_INTEGER <= item <= _MAX_SAFE_INTEGER:
                return False
        else:
            return False
    return True


def _hash_data(proof_options: Mapping[str, Any], document: Mapping[str, Any], loader: Any = None) -> bytes:
    """§3.3.4: SHA-256 of the canonical proof configuration, then of the document."""
    return (
        hashlib.sha256(canonical_json(proof_options)).digest()
        + hashlib.sha256(canonical_json(document)).digest()
    )


def _rdfc_hash_data(
    proof_options: Mapping[str, Any], document: Mapping[str, Any], loader: Any = None
) -> bytes:
    """§3.2.4: the same, with RDFC-1.0 N-Quads; the proof configuration is read
    under the document's ``@context`` (§3.2.5 step 6), which defines the proof terms."""
    from certflow.credentials.jsonld import canonical_nquads  # pyld: only when asked for

    config = {name: value for name, value in proof_options.items() if name != "@context"}
    config["@context"] = document.get("@context")
    return (
        hashlib.sha256(canonical_nquads(config, loader=loader).encode("utf-8")).digest()
        + _rdfc_document_hash(document, loader)
    )


#: SHA-256 of a document's RDFC N-Quads, by the SHA-256 of its JCS form and the
#: loader: every proof of a set, and a proof added then verified, canonicalises the
#: same document; the JSON decides the graph, so equal JSON means equal N-Quads.
_RDFC_DOCUMENT_HASHES: LRUCache[tuple[bytes, int], bytes] = LRUCache(maxsize=1024)
_RDFC_LOCK = threading.Lock()


def _rdfc_document_hash(document: Mapping[str, Any], loader: Any) -> bytes:
    from certflow.credentials.jsonld import canonical_nquads

    key = (hashlib.sha256(canonical_json(document)).digest(), id(loader) if loader is not None else 0)
    with _RDFC_LOCK:
        known = _RDFC_DOCUMENT_HASHES.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256(canonical_nquads(document, loader=loader).encode("utf-8")).digest()
    with _RDFC_LOCK:
        _RDFC_DOCUMENT_HASHES[key] = digest
    return digest


@dataclass(frozen=True)
class Cryptosuite:
    """A Data Integrity EdDSA cryptosuite: its name and how it hashes (§3.x.4)."""

    name: str
    #: ``hash_data(proof_options, unsecured_document, document_loader)``; the loader
    #: (pyld style; None: the shipped contexts) matters to RDFC only.
    hash_data: Callable[[Mapping[str, Any], Mapping[str, Any], Any], bytes]
    #: Whether the proof repeats the document's ``@context`` (JCS does, §3.3.5
    #: step 2; RDFC proofs live inside the document's JSON-LD, so they do not).
    proof_context: bool


JCS = Cryptosuite(CRYPTOSUITE, _hash_data, proof_context=True)
RDFC = Cryptosuite(RDFC_CRYPTOSUITE, _rdfc_hash_data, proof_context=False)
CRYPTOSUITES: dict[str, Cryptosuite] = {JCS.name: JCS, RDFC.name: RDFC}
