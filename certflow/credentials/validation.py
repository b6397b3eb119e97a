"""The VC Data Model 2.0's rules for credentials and presentations, in words.

:func:`credential_problems` and :func:`presentation_problems` answer any input with
a list of reasons it breaks the data model (empty when it does not), including a
JSON-LD safe-mode expansion with the VC-API's contexts (see
:mod:`certflow.credentials.vcapi`, whose requests call them).

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
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeGuard

from certflow.credentials.contexts import (
    VC_V1_CONTEXT,
    VC_V2_CONTEXT,
    vc_api_document_loader,
)
from certflow.credentials.jsonld import UnsafeJsonLd, is_absolute_iri, safe_expand
from certflow.credentials.keys import decode_multibase_base58btc

__all__ = [
    "MAX_PRESENTED_CREDENTIALS",
    "PUBLISHED_DIGESTS",
    "credential_problems",
    "holder_id",
    "presentation_problems",
    "vcapi_document_loader",
]

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
    problems = _envelope_problems(credential, "VerifiableCredential")
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


def _envelope_problems(document: dict[str, Any], required_type: str) -> list[str]:
    """The rules a credential and a presentation share: ``@context``, an ``id`` that is
    one URL if present, and a ``type`` that includes ``required_type``."""
    problems = _context_problems(document)
    if "id" in document and not _url(document["id"]):
        problems.append("id must be a single URL")
    return problems + _type_problems(document, required_type)


#: Most credentials one presentation may carry (each is verified, RDFC included).
MAX_PRESENTED_CREDENTIALS = 16


def presentation_problems(
    presentation: Any, *, loader: Callable[..., Any] | None = vcapi_document_loader
) -> list[str]:
    """The VC 2.0 data model's rules for a presentation (§4.13), in words."""
    if not isinstance(presentation, dict):
        return ["the presentation must be a JSON object"]
    problems = _envelope_problems(presentation, "VerifiablePresentation")
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
