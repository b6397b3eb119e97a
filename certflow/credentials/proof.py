"""W3C Data Integrity proofs: ``eddsa-jcs-2022`` and ``eddsa-rdfc-2022``, and proof sets.

Why this cryptosuite: it signs the JSON itself (canonicalised with JCS, RFC 8785)
rather than an RDF graph, so signing needs no JSON-LD processing, no context
loading and no network, and costs microseconds; yet the result is a standard W3C
Data Integrity proof that generic VC verifiers check (see ``tests/interop``).

The algorithm is "Data Integrity EdDSA Cryptosuites v1.0", §3.3 (eddsa-jcs-2022):

* proof options: ``type``, ``cryptosuite``, ``created``, ``verificationMethod``,
  ``proofPurpose``, and, because the document has one, ``@context`` (Create Proof
  step 2: the proof carries the document's ``@context``);
* proof configuration = the proof options (without ``proofValue``), JCS-canonical;
* transformation = the document without ``proof``, JCS-canonical;
* hashing = SHA-256(canonical proof configuration) ‖ SHA-256(canonical document),
  64 bytes, proof configuration hash first (§3.3.4);
* serialisation = the Ed25519 signature of those 64 bytes, ``proofValue`` =
  multibase base58btc (``z…``).

Verification (§3.3.2) is the mirror image: drop ``proofValue`` from the proof to get
the options; when the proof has an ``@context``, the document's ``@context`` must
start with it, and it replaces the document's for hashing.

``eddsa-rdfc-2022`` (§3.2) differs only in the canonicalisation: RDF Dataset
Canonicalization (RDFC-1.0, pyld's URDNA2015) of the document's JSON-LD meaning,
with the proof configuration canonicalised under the document's ``@context``
(``certflow.credentials.jsonld``; undefined terms are an error, as in Digital
Bazaar's safe mode). It is what the Digital Credentials Consortium's verifier
(Learner Credential Wallet, VerifierPlus) accepts, but costs milliseconds, so
certflow adds it beside the JCS proof (a proof set) when a credential leaves the
hot path: :func:`certflow.credentials.rdfc.add_rdfc_proof`.

A proof set (``proof`` a list) verifies when every proof in it verifies
(:func:`verify_proof` reports each in ``ProofCheck.proofs``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from certflow.credentials.cryptosuites import (
    CRYPTOSUITE,
    CRYPTOSUITES,
    JCS,
    RDFC_CRYPTOSUITE,
    Cryptosuite,
)
from certflow.credentials.keys import (
    SigningKey,
    decode_multibase_base58btc,
    decode_public_key_multibase,
    multibase_base58btc,
)

PROOF_TYPE = "DataIntegrityProof"
ASSERTION_METHOD = "assertionMethod"
AUTHENTICATION = "authentication"

#: Most proofs a proof set may hold: each RDFC proof costs milliseconds, and a
#: presented document must not be able to ask for unbounded work.
MAX_PROOFS = 8

#: Given a proof's verificationMethod, the 32-byte Ed25519 public key, or None.
KeyResolver = Callable[[str], bytes | None]

# --- signing --------------------------------------------------------------------------


def xsd_datetime(moment: datetime) -> str:
    """``2026-11-24T09:30:00Z``: the UTC, whole-second form every certflow date takes."""
    if moment.tzinfo is None:
        raise ValueError("a credential's date-times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")



def sign(
    document: Mapping[str, Any],
    key: SigningKey,
    *,
    created: datetime,
    proof_purpose: str = ASSERTION_METHOD,
    verification_method: str | None = None,
    cryptosuite: Cryptosuite = JCS,
    challenge: str | None = None,
    domain: str | None = None,
    add_to_proof_set: bool = False,
    document_loader: Any = None,
    proof_id: str | None = None,
    previous_proof: str | list[str] | None = None,
) -> dict[str, Any]:
    """A copy of ``document`` with a ``DataIntegrityProof`` by ``key`` (``eddsa-jcs-2022``
    unless ``cryptosuite=RDFC``).

    An existing ``proof`` is replaced, unless ``add_to_proof_set``: then the new
    proof joins the existing one(s) in a proof set (``proof`` a list). Every proof of
    a set signs the document without any ``proof`` (Data Integrity §2.1.2), so the
    proofs are independent and a verifier may check any of them. ``created`` is
    explicit so that signing is a pure function. ``verification_method`` names the
    key another way than its ``did:key`` (say, a ``did:web`` key id); verifiers must
    then be able to resolve that name. ``challenge`` and ``domain``: for a
    presentation's ``authentication`` proof. RDFC raises
    ``jsonld.UnsafeJsonLd`` for a document with undefined terms. ``proof_id`` names
    the proof; ``previous_proof`` chains it to proofs of the set (by their ids),
    which it then signs along with the document (Data Integrity §2.1.2).

    It is long because it follows the spec's Add Proof steps in order (proof
    options, chained proofs, hashing, proof set); splitting it would scatter them.
    """
    unsecured = {name: value for name, value in document.items() if name != "proof"}
    proof: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": cryptosuite.name,
        "created": xsd_datetime(created),
        "verificationMethod": verification_method or key.verification_method,
        "proofPurpose": proof_purpose,
    }
    if proof_id is not None:
        proof["id"] = proof_id
    if previous_proof is not None:
        proof["previousProof"] = previous_proof
    if challenge is not None:
        proof["challenge"] = challenge
    if domain is not None:
        proof["domain"] = domain
    if cryptosuite.proof_context and "@context" in unsecured:
        proof["@context"] = unsecured["@context"]
    signed_over = unsecured
    if previous_proof is not None:
        wanted = previous_proof if isinstance(previous_proof, list) else [previous_proof]
        existing = document.get("proof")
        existing = existing if isinstance(existing, list) else [existing]
        chained = [item for item in existing if isinstance(item, dict) and item.get("id") in wanted]
        if len(chained) != len(set(wanted)):
            raise ValueError(f"previous_proof {previous_proof!r} names proofs the document does not have")
        signed_over = {**unsecured, "proof": chained}
    signature = key.sign(cryptosuite.hash_data(proof, signed_over, document_loader))
    proof["proofValue"] = multibase_base58btc(signature)
    if add_to_proof_set and document.get("proof") is not None:
        existing = document["proof"]
        return {**unsecured, "proof": [*(existing if isinstance(existing, list) else [existing]), proof]}
    return {**unsecured, "proof": proof}


# --- verifying ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProofCheck:
    """The outcome of checking one proof: ``ok``, or why not, in words."""

    ok: bool
    reason: str
    verification_method: str | None = None
    cryptosuite: str | None = None
    #: For a proof set: the check of each proof, in order (empty for a single proof).
    proofs: tuple[ProofCheck, ...] = ()

    @property
    def did(self) -> str | None:
        """The DID that controls the verification method (the part before ``#``).

        For a proof set, the DID that signed every proof of it, or None when they
        are signed by different DIDs.
        """
        if self.proofs:
            dids = {check.did for check in self.proofs}
            return dids.pop() if len(dids) == 1 else None
        if not self.verification_method:
            return None
        return self.verification_method.split("#", 1)[0]

    @property
    def dids(self) -> frozenset[str]:
        """Every DID that signed a proof (of the set)."""
        return frozenset(did for check in (self.proofs or (self,)) if (did := check.did) is not None)

    @property
    def cryptosuites(self) -> tuple[str, ...]:
        """The cryptosuites of the proofs that verified."""
        checks = self.proofs or (self,)
        return tuple(check.cryptosuite for check in checks if check.ok and check.cryptosuite)

    def as_dict(self) -> dict[str, Any]:
        checks = self.proofs or (self,)
        return {
            "verified": self.ok,
            "reason": self.reason,
            "proofs": [
                {
                    "verified": check.ok,
                    "cryptosuite": check.cryptosuite,
                    "verificationMethod": check.verification_method,
                    "reason": check.reason,
                }
                for check in checks
            ],
        }


# XML Schema dateTimeStamp (a time zone is required), as Data Integrity asks of `created`.
_DATETIME_STAMP = re.compile(
    r"-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})"
)


def verify_proof(
    document: Mapping[str, Any],
    resolve_key: KeyResolver,
    *,
    expected_purpose: str = ASSERTION_METHOD,
    cryptosuites: Collection[str] = (CRYPTOSUITE, RDFC_CRYPTOSUITE),
    challenge: str | None = None,
    domain: str | None = None,
    document_loader: Any = None,
) -> ProofCheck:
    """Check ``document``'s proof, or every proof of its proof set; never raises for bad input.

    ``resolve_key`` decides which keys count: ``KeyRing.find`` accepts only
    certflow's own keys, :func:`resolve_did_key` any ``did:key`` (then the caller
    must decide whether it trusts that DID). ``cryptosuites``: the ones accepted
    (both EdDSA suites by default). ``challenge`` / ``domain``: when given, each
    proof must carry exactly these (a presentation's replay protection).
    ``document_loader``: the contexts RDFC may read (None: the shipped ones).

    A proof set verifies only when every proof in it does: a proof that fails is a
    forgery or a tampered document whatever the other proofs say.
    """
    proof = document.get("proof")
    if proof is None:
        return ProofCheck(False, "missing proof")
    unsecured = {name: value for name, value in document.items() if name != "proof"}
    if isinstance(proof, list):
        if not proof:
            return ProofCheck(False, "missing proof: the proof set is empty")
        if len(proof) > MAX_PROOFS:
            return ProofCheck(
                False, f"malformed proof: a proof set of {len(proof)} proofs (at most {MAX_PROOFS})"
            )
        checks = tuple(
            _verify_chained(
                item, proof, unsecured, resolve_key, expected_purpose, cryptosuites, challenge, domain,
                document_loader,
            )
            for item in proof
        )
        failed = [f"proof {number} ({check.cryptosuite or '?'}): {check.reason}"
                  for number, check in enumerate(checks, 1) if not check.ok]
        first = checks[0]
        if failed:
            return ProofCheck(False, "; ".join(failed), first.verification_method, first.cryptosuite, checks)
        suites = ", ".join(check.cryptosuite or "?" for check in checks)
        methods = sorted({check.verification_method or "" for check in checks})
        return ProofCheck(True, f"{len(checks)} proofs ({suites}) signed by {', '.join(methods)}",
                          first.verification_method, first.cryptosuite, checks)
    return _verify_one(
        proof, unsecured, resolve_key, expected_purpose, cryptosuites, challenge, domain, document_loader
    )


def _verify_chained(
    proof: Any,
    all_proofs: list[Any],
    document: Mapping[str, Any],
    resolve_key: KeyResolver,
    expected_purpose: str,
    cryptosuites: Collection[str],
    challenge: str | None,
    domain: str | None,
    document_loader: Any,
) -> ProofCheck:
    """One proof of a set; a proof chained to others (``previousProof``, Data Integrity
    §4.4) signs the document *with* those proofs, which must be in the set."""
    previous = proof.get("previousProof") if isinstance(proof, dict) else None
    if previous is None:
        return _verify_one(proof, document, resolve_key, expected_purpose, cryptosuites, challenge, domain,
                           document_loader)
    wanted = previous if isinstance(previous, list) else [previous]
    if not wanted or not all(isinstance(name, str) for name in wanted):
        return ProofCheck(False, "malformed proof: previousProof must be a string or a list of strings",
                          proof.get("verificationMethod"), proof.get("cryptosuite"))
    matching = [item for item in all_proofs if isinstance(item, dict) and item.get("id") in wanted]
    missing = set(wanted) - {item.get("id") for item in matching}
    if missing:
        return ProofCheck(False, f"previousProof {sorted(missing)[0]!r} is not in the proof set",
                          proof.get("verificationMethod"), proof.get("cryptosuite"))
    chained = {**document, "proof": matching}
    return _verify_one(proof, chained, resolve_key, expected_purpose, cryptosuites, challenge, domain,
                       document_loader)


def _verify_one(
    proof: Any,
    document: Mapping[str, Any],
    resolve_key: KeyResolver,
    expected_purpose: str,
    cryptosuites: Collection[str],
    challenge: str | None,
    domain: str | None,
    document_loader: Any,
) -> ProofCheck:
    """The check of one proof of ``document``, with the reason it fails, if it does.

    It is long because it is the spec's Verify Proof steps as a list of early
    returns, each with its own reason; splitting it would hide their order.
    """
    if not isinstance(proof, dict):
        return ProofCheck(False, "malformed proof: it must be a JSON object")
    method = proof.get("verificationMethod")
    method = method if isinstance(method, str) else None
    name = proof.get("cryptosuite")
    suite = CRYPTOSUITES.get(name) if isinstance(name, str) and name in cryptosuites else None
    if proof.get("type") != PROOF_TYPE or suite is None:
        return ProofCheck(
            False,
            f"unsupported cryptosuite: {proof.get('type')!s}/{name!s} "
            f"(only {PROOF_TYPE}/{' or '.join(sorted(cryptosuites))})",
            method,
        )
    if method is None:
        return ProofCheck(False, "malformed proof: no verificationMethod", None, suite.name)
    if proof.get("proofPurpose") != expected_purpose:
        return ProofCheck(
            False, f"wrong proof purpose {proof.get('proofPurpose')!r}, expected {expected_purpose!r}",
            method, suite.name,
        )
    created = proof.get("created")
    if created is not None and not (isinstance(created, str) and _DATETIME_STAMP.fullmatch(created)):
        return ProofCheck(False, f"malformed proof: created {created!r} is not an XML dateTimeStamp",
                          method, suite.name)
    if challenge is not None and proof.get("challenge") != challenge:
        return ProofCheck(False, "the proof's challenge is not the one asked for", method, suite.name)
    if domain is not None and proof.get("domain") != domain:
        return ProofCheck(False, "the proof's domain is not the one asked for", method, suite.name)
    signature = _decode_proof_value(proof.get("proofValue"))
    if signature is None:
        return ProofCheck(
            False, "malformed proofValue: not a base58btc Ed25519 signature", method, suite.name
        )

    options = {name: value for name, value in proof.items() if name != "proofValue"}
    unsecured = dict(document)
    if "@context" in options:
        # §3.3.2 step 4: the document's contexts must start with the proof's.
        proof_context = _as_list(options["@context"])
        if _as_list(unsecured.get("@context"))[: len(proof_context)] != proof_context:
            return ProofCheck(False, "bad signature: document @context does not start with proof @context",
                              method, suite.name)
        unsecured["@context"] = options["@context"]

    try:
        public_key = resolve_key(method)
    except (ValueError, LookupError):
        public_key = None
    if public_key is None:
        return ProofCheck(False, f"unknown verification method {method}", method, suite.name)

    try:
        data = suite.hash_data(options, unsecured, document_loader)
    except (TypeError, ValueError, OverflowError) as exc:
        # jsonld.UnsafeJsonLd is a ValueError: undefined terms, unshipped contexts
        return ProofCheck(False, f"malformed document: not canonicalisable ({str(exc)[:300]})",
                          method, suite.name)
    except RecursionError:
        # rfc8785 recurses; parsers bound nesting (certflow.jsonlimits), and a
        # document built some other way still gets an answer rather than a crash.
        return ProofCheck(False, "malformed document: nested too deep to canonicalise", method, suite.name)
    try:
        _public_key(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return ProofCheck(False, "bad signature", method, suite.name)
    return ProofCheck(True, f"signed by {method}", method, suite.name)


def _decode_proof_value(value: Any) -> bytes | None:
    try:
        signature = decode_multibase_base58btc(value)
    except ValueError:
        return None
    return signature if len(signature) == 64 else None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@lru_cache(maxsize=256)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def resolve_did_key(verification_method: str) -> bytes:
    """The Ed25519 public key a ``did:key`` verification method names, offline.

    ``did:key:z6Mk…#z6Mk…``: the fragment, when present, must repeat the key (the
    did:key method's only verification method). ``ValueError`` otherwise.
    """
    if not isinstance(verification_method, str) or not verification_method.startswith("did:key:"):
        raise ValueError(f"not a did:key verification method: {verification_method!r}")
    did, _, fragment = verification_method.partition("#")
    multibase = did[len("did:key:") :]
    if fragment and fragment != multibase:
        raise ValueError(f"{verification_method!r}: the fragment must repeat the key")
    return decode_public_key_multibase(multibase)
