"""The VC-API (W3C CCG) requests as pure functions: issue, verify a credential, verify a presentation.

No web framework here: a route parses the JSON body (``certflow.jsonlimits``),
calls one of these with the deployment's key, clock and status source, and sends
``ApiResult.status`` with ``ApiResult.body``. Each function answers every input,
however malformed, with a status and reasons, never an exception.

* ``POST /credentials/issue`` → :func:`issue_request` (or :func:`prepare_issue`
  then :func:`complete_issue`, when the route must allocate a status list index
  or record the credential between validating and signing);
* ``POST /credentials/verify`` → :func:`verify_credential_request`;
* ``POST /presentations/verify`` → :func:`verify_presentation_request`.

Status codes. VC-API: 201 issued, 200 verified, 400 invalid input. The W3C
test suites accept 400 or 422 for a refused credential; certflow answers **400**
for a request that is not of the VC-API's shape (no ``credential`` object, bad
``options``) and **422** for a well-formed request whose credential breaks the
VC 2.0 data model (:func:`credential_problems`). A verification that fails is
400 with ``verified: false`` and one error per failed check.

Validation is the VC Data Model 2.0's rules (what ``w3c/vc-data-model-2.0-test-
suite`` checks: §4.3 contexts … §5.6 evidence, §5.3 related resources) plus a
JSON-LD safe-mode expansion (``jsonld.safe_expand``): undefined terms, relative
IRIs, redefined protected terms and unknown contexts are refused, since an
issuer signing such a credential would vouch for claims no verifier reads the
same way. Contexts are the shipped ones (never fetched), plus the W3C examples
context (``https://www.w3.org/ns/credentials/examples/v2``, the conformance
suites' vocabulary), available to the VC-API only. VC Data Model 1.1 credentials
(``https://www.w3.org/2018/credentials/v1`` first, ``issuanceDate`` required) are
accepted too, as the W3C eddsa suite sends them; signing one adds the Data
Integrity context its proof needs, as Digital Bazaar's issuer does.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard

from certflow.credentials.contexts import (
    DATA_INTEGRITY_V2_CONTEXT,
    EXAMPLES_CONTEXT,
    VC_V1_CONTEXT,
    VC_V2_CONTEXT,
    ContextNotShipped,
    vc_api_document_loader,
)
from certflow.credentials.jsonld import UnsafeJsonLd, is_absolute_iri, safe_expand
from certflow.credentials.keys import SigningKey, decode_multibase_base58btc
from certflow.credentials.proof import (
    AUTHENTICATION,
    CRYPTOSUITES,
    JCS,
    KeyResolver,
    resolve_did_key,
    sign,
    verify_proof,
)
from certflow.credentials.status_list import status_entry
from certflow.credentials.verification import StatusOf, verify_credential

#: Digests the W3C publishes for resources a ``relatedResource`` may name (VC 2.0
#: §B.1: the base context). A related resource certflow knows must match them;
#: others are checked for form only (certflow fetches nothing).
PUBLISHED_DIGESTS: dict[str, dict[str, bytes]] = {
    VC_V2_CONTEXT: {
        "sha256": bytes.fromhex("24a18c90e9856d526111f29376e302d970b2bd10182e33959995b0207d7043b9"),
        "sha384": bytes.fromhex(
            "35239c36999d2155312091af194a1edb61634d6ad789a5e5b19f2aebdd762dd9d1dcaada40eda7ef921c6b8c0ae107a0"
        ),
    }
}

_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
# XML Schema dateTimeStamp: a time zone is required.
_DATETIME_STAMP = re.compile(
    r"-?\d{4,}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]\d{2}:\d{2})"
)


#: The shipped contexts, plus VC 1.1, Data Integrity v2 and the W3C examples context.
vcapi_document_loader = vc_api_document_loader


@dataclass(frozen=True)
class ApiResult:
    """An HTTP status and the JSON body to send with it."""

    status: int
    body: dict[str, Any]


def _refused(status: int, problems: list[str]) -> ApiResult:
    return ApiResult(status, {"errors": [{"message": problem} for problem in problems]})


# --- the VC 2.0 data model ------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not _DATETIME_STAMP.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


_V1_DATETIME = re.compile(r"-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")


def _v1_datetime(value: Any) -> str | None:
    return value if isinstance(value, str) and _V1_DATETIME.fullmatch(value) else None


def _url(value: Any) -> TypeGuard[str]:
    return is_absolute_iri(value)


def _language_value_problems(name: str, value: Any) -> list[str]:
    """``name`` / ``description``: a string, a language value object, or a list of them."""
    problems = []
    for item in _as_list(value):
        if isinstance(item, str):
            continue
        if isinstance(item, dict) and "@value" in item:
            extra = set(item) - {"@value", "@language", "@direction"}
            if extra or not isinstance(item["@value"], str):
                problems.append(
                    f"{name}: a language value object holds only @value, @language and @direction"
                )
            continue
        problems.append(f"{name} must be a string or a language value object")
    return problems


def _typed_objects(name: str, value: Any, *, needs_id: bool = False) -> list[str]:
    """``credentialStatus``, ``termsOfUse``, ``evidence``, ``refreshService``,
    ``credentialSchema``: one or more objects, each with a ``type``; ``id`` a URL."""
    problems = []
    items = _as_list(value)
    if not items:
        return [f"{name} must hold at least one object"]
    for item in items:
        if not isinstance(item, dict):
            problems.append(f"{name} must be an object or a list of objects")
            continue
        types = item.get("type")
        typed = all(isinstance(kind, str) and kind for kind in _as_list(types))
        if types is None or not typed or types == []:
            problems.append(f"each {name} must have a type (a string or a list of strings)")
        if "id" in item and not _url(item["id"]):
            problems.append(f"{name} id must be a single URL")
        if needs_id and "id" not in item:
            problems.append(f"each {name} must have an id")
    return problems


def _related_resource_problems(value: Any) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for item in _as_list(value):
        if not isinstance(item, dict):
            problems.append("relatedResource must be an object or a list of objects")
            continue
        resource = item.get("id")
        if not _url(resource):
            problems.append("each relatedResource must have an id that is a URL")
            continue
        if resource in seen:
            problems.append(f"relatedResource id {resource} appears twice")
        seen.add(resource)
        if "digestSRI" not in item and "digestMultibase" not in item:
            problems.append(f"relatedResource {resource} has neither digestSRI nor digestMultibase")
        known = PUBLISHED_DIGESTS.get(resource, {})
        if "digestSRI" in item:
            digest = _sri(item["digestSRI"])
            if digest is None:
                problems.append(f"relatedResource {resource}: digestSRI is not sha256/384/512-<base64>")
            elif digest[0] in known and known[digest[0]] != digest[1]:
                problems.append(f"relatedResource {resource}: digestSRI does not match the resource")
        if "digestMultibase" in item:
            raw = _multibase(item["digestMultibase"])
            if raw is None:
                problems.append(f"relatedResource {resource}: digestMultibase is not multibase")
            else:
                algorithm = {32: "sha256", 48: "sha384", 64: "sha512"}.get(len(raw))
                if algorithm in known and known[algorithm] != raw:
                    problems.append(
                        f"relatedResource {resource}: digestMultibase does not match the resource"
                    )
        if "mediaType" in item and not isinstance(item["mediaType"], str):
            problems.append(f"relatedResource {resource}: mediaType must be a string")
    return problems


def _sri(value: Any) -> tuple[str, bytes] | None:
    if not isinstance(value, str) or "-" not in value:
        return None
    algorithm, _, text = value.partition("-")
    if algorithm not in _DIGEST_SIZES:
        return None
    try:
        padded = text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)
        digest = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return (algorithm, digest) if len(digest) == _DIGEST_SIZES[algorithm] else None


def _multibase(value: Any) -> bytes | None:
    if not isinstance(value, str) or len(value) < 2:
        return None
    if value[0] == "u":
        text = value[1:]
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None
    elif value[0] == "z":
        try:
            raw = decode_multibase_base58btc(value)
        except ValueError:
            return None
    else:
        return None
    # a multihash (sha2-256 0x12, sha2-384 0x20, sha2-512 0x13 + length) or a bare digest
    if len(raw) >= 2 and raw[0] in (0x12, 0x20, 0x13) and raw[1] == len(raw) - 2:
        return raw[2:]
    return raw


def _context_problems(document: Mapping[str, Any]) -> list[str]:
    context = document.get("@context")
    if context is None:
        return ["@context is missing"]
    entries = _as_list(context)
    problems = []
    if not entries or entries[0] not in (VC_V2_CONTEXT, VC_V1_CONTEXT):
        problems.append(f"the first @context entry must be {VC_V2_CONTEXT} (or {VC_V1_CONTEXT})")
    for entry in entries[1:]:
        if not (isinstance(entry, dict) or (isinstance(entry, str) and _url(entry))):
            problems.append(f"@context entry {str(entry)[:80]!r} is neither a URL nor an object")
    return problems


def _type_problems(document: Mapping[str, Any], required: str) -> list[str]:
    types = document.get("type")
    if types is None:
        return ["type is missing"]
    items = _as_list(types)
    if not all(isinstance(kind, str) and kind for kind in items):
        return ["type must be a string or a list of strings"]
    if required not in items:
        return [f"type must include {required}"]
    return []


def _issuer_problems(issuer: Any) -> list[str]:
    if isinstance(issuer, str):
        return [] if _url(issuer) else ["issuer must be a URL"]
    if isinstance(issuer, dict):
        problems = [] if _url(issuer.get("id")) else ["issuer.id must be a URL"]
        for name in ("name", "description"):
            if name in issuer:
                problems += _language_value_problems(f"issuer.{name}", issuer[name])
        return problems
    return ["issuer must be a URL or an object with an id"]


def _subject_problems(subject: Any) -> list[str]:
    if subject is None:
        return ["credentialSubject is missing"]
    items = _as_list(subject)
    if not items:
        return ["credentialSubject must hold at least one subject"]
    problems = []
    for item in items:
        if not isinstance(item, dict):
            problems.append("credentialSubject must be an object or a list of objects (not a string or URL)")
        elif not item:
            problems.append("a credentialSubject must make at least one claim (it is empty)")
        elif "id" in item and not _url(item["id"]):
            problems.append("credentialSubject id must be a single URL")
    return problems


def credential_problems(
    credential: Any,
    *,
    loader: Callable[..., Any] | None = vcapi_document_loader,
    require_issuer: bool = True,
) -> list[str]:
    """Every way ``credential`` breaks the VC 2.0 data model, in words ([] if none).

    Includes the JSON-LD safe-mode expansion (``loader=None`` skips it).
    """
    if not isinstance(credential, dict):
        return ["the credential must be a JSON object"]
    problems = _context_problems(credential)
    if "id" in credential and not _url(credential["id"]):
        problems.append("id must be a single URL")
    problems += _type_problems(credential, "VerifiableCredential")
    if "issuer" in credential or require_issuer:
        problems += _issuer_problems(credential.get("issuer"))
    problems += _subject_problems(credential.get("credentialSubject"))
    for name in ("name", "description"):
        if name in credential:
            problems += _language_value_problems(name, credential[name])
    moments = {}
    if _as_list(credential.get("@context"))[:1] == [VC_V1_CONTEXT]:
        # VC 1.1: issuanceDate (required) and expirationDate, xsd:dateTime
        if "issuanceDate" not in credential:
            problems.append("issuanceDate is required in a VC 1.1 credential")
        for name in ("issuanceDate", "expirationDate"):
            if name in credential and _v1_datetime(credential[name]) is None:
                problems.append(f"{name} must be an XML dateTime")
    for name in ("validFrom", "validUntil"):
        if name in credential:
            moments[name] = _datetime(credential[name])
            if moments[name] is None:
                problems.append(
                    f"{name} must be an XML dateTimeStamp with a time zone (2026-01-01T00:00:00Z)"
                )
    valid_from, valid_until = moments.get("validFrom"), moments.get("validUntil")
    if valid_from and valid_until and valid_from > valid_until:
        problems.append("validFrom is after validUntil")
    for name in ("credentialStatus", "termsOfUse", "evidence", "refreshService"):
        if name in credential:
            problems += _typed_objects(name, credential[name])
    if "credentialSchema" in credential:
        problems += _typed_objects("credentialSchema", credential["credentialSchema"], needs_id=True)
    if "relatedResource" in credential:
        problems += _related_resource_problems(credential["relatedResource"])
    if loader is not None and not problems:
        try:
            safe_expand(credential, loader=loader)
        except UnsafeJsonLd as exc:
            problems += exc.problems
    return problems


# --- POST /credentials/issue ------------------------------------------------------------


@dataclass(frozen=True)
class IssuePlan:
    """A credential that may be issued, not yet signed.

    ``needs_status``: it came without ``credentialStatus``, so the route allocates
    a status list index and passes it to :func:`complete_issue`.
    """

    credential: dict[str, Any]
    cryptosuites: tuple[str, ...]
    needs_status: bool
    options: dict[str, Any] = field(default_factory=dict)
    loader: Callable[..., Any] | None = None

    @property
    def credential_id(self) -> str | None:
        value = self.credential.get("id")
        return value if isinstance(value, str) else None


def prepare_issue(
    body: Any,
    *,
    issuer_dids: Collection[str],
    new_credential_id: str | None = None,
    default_cryptosuites: tuple[str, ...] = (JCS.name,),
    loader: Callable[..., Any] | None = vcapi_document_loader,
) -> IssuePlan | ApiResult:
    """Validate an issue request ``{credential, options}``; an :class:`IssuePlan` or a refusal.

    ``issuer_dids``: the deployment's signing DIDs; the credential's ``issuer`` (or
    its ``id``) must be one of them. ``new_credential_id``: the id to give a
    credential that has none (``urn:uuid:…`` or ``{public_url}/certs/{uuid}``;
    VC-API ``options.credentialId`` wins). ``options.cryptosuite``:
    ``eddsa-jcs-2022``, ``eddsa-rdfc-2022`` or a list of both (a proof set);
    default ``default_cryptosuites``.
    """
    if not isinstance(body, dict):
        return _refused(400, ["the request body must be a JSON object {credential, options}"])
    credential = body.get("credential")
    options = body.get("options", {})
    if not isinstance(credential, dict):
        return _refused(400, ["credential must be a JSON object"])
    if options is None:
        options = {}
    if not isinstance(options, dict):
        return _refused(400, ["options must be a JSON object"])
    requested = options.get("cryptosuite", list(default_cryptosuites))
    suites = tuple(_as_list(requested))
    if not suites or not all(isinstance(suite, str) and suite in CRYPTOSUITES for suite in suites):
        return _refused(400, [f"options.cryptosuite must be one of {', '.join(CRYPTOSUITES)}"])
    credential_id = options.get("credentialId")
    if credential_id is not None and not _url(credential_id):
        return _refused(400, ["options.credentialId must be a URL"])

    problems = credential_problems(credential, loader=loader)
    if "proof" in credential:
        problems.append("a credential to issue must not carry a proof")
    issuer = credential.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
    if isinstance(issuer_id, str) and _url(issuer_id) and issuer_id not in issuer_dids:
        problems.append(f"issuer {issuer_id[:200]} is not this issuer ({', '.join(sorted(issuer_dids))})")
    if problems:
        return _refused(422, problems)
    unsigned = dict(credential)
    if "id" not in unsigned:
        if credential_id is not None:
            unsigned["id"] = credential_id
        elif new_credential_id is not None:
            unsigned["id"] = new_credential_id
    # A BitstringStatusListEntry is a VC 2.0 term: a VC 1.1 credential gets none.
    needs_status = (
        "credentialStatus" not in unsigned and _as_list(unsigned["@context"])[:1] == [VC_V2_CONTEXT]
    )
    return IssuePlan(unsigned, suites, needs_status=needs_status, options=options, loader=loader)


def complete_issue(
    plan: IssuePlan,
    *,
    key: SigningKey,
    now: datetime,
    status_list_url: str | None = None,
    status_index: int | None = None,
) -> ApiResult:
    """Sign the planned credential: 201 ``{verifiableCredential}``.

    When the plan ``needs_status`` and a list URL and index are given, a
    ``BitstringStatusListEntry`` (revocation) is added. ``credentialSubject`` is
    never changed. ``key`` must be the issuer's (:func:`prepare_issue` checked
    the issuer against the deployment's DIDs).
    """
    credential = dict(plan.credential)
    contexts = _as_list(credential.get("@context"))
    if contexts[:1] == [VC_V1_CONTEXT] and DATA_INTEGRITY_V2_CONTEXT not in contexts:
        # VC 1.1's context does not define DataIntegrityProof; its proof needs this one.
        credential["@context"] = [*contexts, DATA_INTEGRITY_V2_CONTEXT]
    if plan.needs_status and status_list_url is not None and status_index is not None:
        credential["credentialStatus"] = status_entry(status_list_url, status_index)
    issuer = credential.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
    if issuer_id != key.did:
        return _refused(422, [f"issuer {issuer_id} is not the signing key's DID {key.did}"])
    signed: dict[str, Any] = credential
    try:
        for number, name in enumerate(plan.cryptosuites):
            signed = sign(
                signed, key, created=now, cryptosuite=CRYPTOSUITES[name], add_to_proof_set=number > 0,
                document_loader=plan.loader,
            )
    except UnsafeJsonLd as exc:
        return _refused(422, exc.problems)
    return ApiResult(201, {"verifiableCredential": signed})


def issue_request(
    body: Any,
    *,
    key: SigningKey,
    now: datetime,
    issuer_dids: Collection[str] | None = None,
    new_credential_id: str | None = None,
    allocate_status: Callable[[dict[str, Any]], tuple[str, int]] | None = None,
    default_cryptosuites: tuple[str, ...] = (JCS.name,),
    loader: Callable[..., Any] | None = vcapi_document_loader,
) -> ApiResult:
    """``POST /credentials/issue`` in one call: validate, add a status entry, sign.

    ``allocate_status(credential)`` → ``(status list URL, index)`` is called only
    for a valid credential without ``credentialStatus`` (the route records the
    credential in the registry there).
    """
    plan = prepare_issue(
        body,
        issuer_dids=issuer_dids if issuer_dids is not None else {key.did},
        new_credential_id=new_credential_id,
        default_cryptosuites=default_cryptosuites,
        loader=loader,
    )
    if isinstance(plan, ApiResult):
        return plan
    url, index = (None, None)
    if plan.needs_status and allocate_status is not None:
        url, index = allocate_status(plan.credential)
    return complete_issue(plan, key=key, now=now, status_list_url=url, status_index=index)


# --- POST /credentials/verify -----------------------------------------------------------


def _verification_body(
    checks: list[str], errors: list[dict[str, str]], warnings: list[str]
) -> dict[str, Any]:
    return {"verified": not errors, "checks": checks, "warnings": warnings, "errors": errors}


_CHECK_NAMES = {
    "format": "format",
    "signature": "proof",
    "issuer": "issuer",
    "validFrom": "validFrom",
    "expiry": "validUntil",
    "status": "credentialStatus",
}


def _check_credential(
    credential: Any,
    *,
    resolve_key: KeyResolver,
    trusted_issuers: frozenset[str] | None,
    status_of: StatusOf | None,
    now: datetime,
    loader: Callable[..., Any] | None,
    prefix: str = "",
) -> tuple[list[str], list[dict[str, str]], list[str]]:
    """(checks passed, errors, warnings) of one credential."""
    problems = credential_problems(credential, loader=loader)
    errors = [{"check": "format", "message": f"{prefix}{problem}"} for problem in problems]
    if not isinstance(credential, dict):
        return [], errors, []
    result = verify_credential(
        credential, resolve_key=resolve_key, status_of=status_of, now=now, trusted_issuers=trusted_issuers,
        document_loader=loader, accept_vc_v1=True,
    )
    checks = [] if problems else ["format"]
    warnings: list[str] = []
    for check in result.checks:
        name = _CHECK_NAMES[check.check]
        if check.check == "format":
            if not check.ok and not problems:
                errors.append({"check": "format", "message": f"{prefix}{check.reason}"})
            continue
        if check.ok:
            checks.append(name)
        else:
            errors.append({"check": name, "message": f"{prefix}{check.reason}"})
    proof = verify_proof(credential, resolve_key, document_loader=loader)
    if proof.proofs and proof.ok:
        warnings.append(f"{prefix}proof set: {', '.join(proof.cryptosuites)} all verify")
    return checks, errors, warnings


def verify_credential_request(
    body: Any,
    *,
    now: datetime,
    status_of: StatusOf | None,
    trusted_issuers: frozenset[str] | None = None,
    resolve_key: KeyResolver = resolve_did_key,
    loader: Callable[..., Any] | None = vcapi_document_loader,
) -> ApiResult:
    """``POST /credentials/verify`` ``{verifiableCredential, options}``.

    200 ``{verified: true, checks, warnings, errors: []}`` when every check passes;
    400 ``{verified: false, checks, warnings, errors}`` with one error (``check``,
    ``message``) per failure otherwise. ``trusted_issuers`` None: any issuer who
    signed its own credential (a VC-API verifier's rule; certflow's pages use
    ``TrustPolicy``); a set: only those DIDs. ``resolve_key``: a
    ``TrustPolicy.resolve_key`` to resolve the deployment's other key names.
    """
    if not isinstance(body, dict) or not isinstance(body.get("verifiableCredential"), dict):
        return ApiResult(400, _verification_body([], [{"check": "request", "message":
                         "the request body must be {verifiableCredential: {...}, options}"}], []))
    options = body.get("options", {})
    if options is not None and not isinstance(options, dict):
        problem = {"check": "request", "message": "options must be an object"}
        return ApiResult(400, _verification_body([], [problem], []))
    checks, errors, warnings = _check_credential(
        body["verifiableCredential"], resolve_key=resolve_key, trusted_issuers=trusted_issuers,
        status_of=status_of, now=now, loader=loader,
    )
    return ApiResult(400 if errors else 200, _verification_body(checks, errors, warnings))


# --- POST /presentations/verify ---------------------------------------------------------


#: Most credentials one presentation may carry (each is verified, RDFC included).
MAX_PRESENTED_CREDENTIALS = 16


def presentation_problems(
    presentation: Any, *, loader: Callable[..., Any] | None = vcapi_document_loader
) -> list[str]:
    """The VC 2.0 data model's rules for a presentation (§4.13), in words."""
    if not isinstance(presentation, dict):
        return ["the presentation must be a JSON object"]
    problems = _context_problems(presentation)
    if "id" in presentation and not _url(presentation["id"]):
        problems.append("id must be a single URL")
    problems += _type_problems(presentation, "VerifiablePresentation")
    if "holder" in presentation:
        holder = presentation["holder"]
        holder_id = holder.get("id") if isinstance(holder, dict) else holder
        if not _url(holder_id):
            problems.append("holder must be a URL or an object with an id that is a URL")
    presented = _as_list(presentation.get("verifiableCredential", []))
    if len(presented) > MAX_PRESENTED_CREDENTIALS:
        return [*problems, f"too many credentials ({len(presented)}, at most {MAX_PRESENTED_CREDENTIALS})"]
    for credential in presented:
        if not isinstance(credential, dict):
            problems.append("verifiableCredential must hold objects (not strings or URLs)")
        elif "EnvelopedVerifiableCredential" in _as_list(credential.get("type")):
            problems.append("enveloped credentials are not supported")
    if loader is not None and not problems:
        try:
            safe_expand(presentation, loader=loader)
        except UnsafeJsonLd as exc:
            problems += exc.problems
    return problems


def holder_id(presentation: Mapping[str, Any]) -> str | None:
    holder = presentation.get("holder")
    holder = holder.get("id") if isinstance(holder, dict) else holder
    return holder if isinstance(holder, str) else None


def verify_presentation_request(
    body: Any,
    *,
    now: datetime,
    status_of: StatusOf | None,
    trusted_issuers: frozenset[str] | None = None,
    resolve_key: KeyResolver = resolve_did_key,
    loader: Callable[..., Any] | None = vcapi_document_loader,
    require_proof: bool = False,
) -> ApiResult:
    """``POST /presentations/verify`` ``{verifiablePresentation, options: {challenge, domain}}``.

    The presentation's proof (``eddsa-rdfc-2022`` or ``eddsa-jcs-2022``,
    ``proofPurpose: authentication``, by a ``did:key``) must carry the options'
    ``challenge`` and ``domain`` when they are given. An unsigned presentation is
    accepted (with a warning) only when no challenge is asked and
    ``require_proof`` is false: a challenge is a request to prove control of a
    key now. Every embedded credential is verified like ``/credentials/verify``;
    the body lists each in ``credentialResults``.
    """
    def bad(message: str) -> ApiResult:
        return ApiResult(400, _verification_body([], [{"check": "request", "message": message}], []))

    if not isinstance(body, dict) or not isinstance(body.get("verifiablePresentation"), dict):
        return bad("the request body must be {verifiablePresentation: {...}, options}")
    options = body.get("options") or {}
    if not isinstance(options, dict):
        return bad("options must be an object")
    challenge, domain = options.get("challenge"), options.get("domain")
    if (challenge is not None and not isinstance(challenge, str)) or (
        domain is not None and not isinstance(domain, str)
    ):
        return bad("options.challenge and options.domain must be strings")
    presentation = body["verifiablePresentation"]
    errors = [
        {"check": "format", "message": problem}
        for problem in presentation_problems(presentation, loader=loader)
    ]
    checks = [] if errors else ["format"]
    warnings: list[str] = []
    proof_check = None
    if presentation.get("proof") is None:
        if challenge is not None or require_proof:
            errors.append(
                {"check": "proof", "message": "the presentation is not signed, but a proof is required"}
            )
        else:
            warnings.append("the presentation is not signed: it proves nothing about its holder")
    else:
        proof_check = verify_proof(
            presentation, resolve_did_key, expected_purpose=AUTHENTICATION,
            challenge=challenge, domain=domain, document_loader=loader,
        )
        if proof_check.ok:
            checks.append("proof")
            holder = holder_id(presentation)
            if holder is not None and holder != proof_check.did:
                warnings.append(f"holder {holder} is not the presentation's signer {proof_check.did}")
        else:
            errors.append({"check": "proof", "message": proof_check.reason})
    results = []
    for number, credential in enumerate(_as_list(presentation.get("verifiableCredential", []))):
        if not isinstance(credential, dict):
            continue
        c_checks, c_errors, c_warnings = _check_credential(
            credential, resolve_key=resolve_key, trusted_issuers=trusted_issuers, status_of=status_of,
            now=now, loader=loader, prefix=f"verifiableCredential[{number}]: ",
        )
        results.append({"verified": not c_errors, "checks": c_checks, "errors": c_errors})
        errors += c_errors
        warnings += c_warnings
    body_out = _verification_body(checks, errors, warnings)
    body_out["credentialResults"] = results
    if proof_check is not None and proof_check.ok:
        body_out["holder"] = proof_check.did
    return ApiResult(400 if errors else 200, body_out)


__all__ = [
    "EXAMPLES_CONTEXT",
    "ApiResult",
    "ContextNotShipped",
    "IssuePlan",
    "complete_issue",
    "credential_problems",
    "holder_id",
    "issue_request",
    "prepare_issue",
    "presentation_problems",
    "vcapi_document_loader",
    "verify_credential_request",
    "verify_presentation_request",
]
