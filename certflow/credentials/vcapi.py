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

Validation (the VC Data Model 2.0's rules and a JSON-LD safe-mode expansion) is
:mod:`certflow.credentials.validation`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from certflow.credentials.contexts import (
    DATA_INTEGRITY_V2_CONTEXT,
    EXAMPLES_CONTEXT,
    VC_V1_CONTEXT,
    VC_V2_CONTEXT,
    ContextNotShipped,
)
from certflow.credentials.cryptosuites import CRYPTOSUITES, JCS
from certflow.credentials.jsonld import UnsafeJsonLd
from certflow.credentials.keys import SigningKey
from certflow.credentials.proof import (
    AUTHENTICATION,
    KeyResolver,
    resolve_did_key,
    sign,
    verify_proof,
)
from certflow.credentials.status_list import status_entry
from certflow.credentials.validation import (
    _as_list,
    _url,
    credential_problems,
    holder_id,
    presentation_problems,
    vcapi_document_loader,
)
from certflow.credentials.verification import StatusOf, verify_credential


@dataclass(frozen=True)
class ApiResult:
    """An HTTP status and the JSON body to send with it."""

    status: int
    body: dict[str, Any]


def _refused(status: int, problems: list[str]) -> ApiResult:
    return ApiResult(status, {"errors": [{"message": problem} for problem in problems]})


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


def _presentation_request(body: Any) -> tuple[dict[str, Any], str | None, str | None] | str:
    """The request's presentation, challenge and domain, or why the request is malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("verifiablePresentation"), dict):
        return "the request body must be {verifiablePresentation: {...}, options}"
    options = body.get("options") or {}
    if not isinstance(options, dict):
        return "options must be an object"
    challenge, domain = options.get("challenge"), options.get("domain")
    if (challenge is not None and not isinstance(challenge, str)) or (
        domain is not None and not isinstance(domain, str)
    ):
        return "options.challenge and options.domain must be strings"
    return body["verifiablePresentation"], challenge, domain


def _presented_credentials(
    presentation: Mapping[str, Any],
    errors: list[dict[str, str]],
    warnings: list[str],
    *,
    resolve_key: KeyResolver,
    trusted_issuers: frozenset[str] | None,
    status_of: StatusOf | None,
    now: datetime,
    loader: Callable[..., Any] | None,
) -> list[dict[str, Any]]:
    """Each embedded credential's result, verified like ``/credentials/verify``; their
    errors and warnings are added to ``errors`` and ``warnings``."""
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
    return results


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
    request = _presentation_request(body)
    if isinstance(request, str):
        return ApiResult(400, _verification_body([], [{"check": "request", "message": request}], []))
    presentation, challenge, domain = request
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
    results = _presented_credentials(
        presentation, errors, warnings,
        resolve_key=resolve_key, trusted_issuers=trusted_issuers, status_of=status_of, now=now, loader=loader,
    )
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
    "issue_request",
    "prepare_issue",
    "verify_credential_request",
    "verify_presentation_request",
]
