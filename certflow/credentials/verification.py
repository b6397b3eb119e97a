"""Is this certificate genuine, current and not revoked? Every answer with a reason.

A verifier page shows a person *why* a certificate fails, so each check reports
in words, and every check runs even after one has failed (a forged *and* expired
certificate shows both). The checks:

* ``format``: a VC 2.0 credential at all (``@context``, ``type``, ``issuer``,
  ``credentialSubject``, well-formed dates), and, with ``expected_types``, of the
  kind asked for (a status list credential is signed by the issuer too, but it is
  not a certificate);
* ``signature``: the ``eddsa-jcs-2022`` proof (``proof.verify_proof``);
* ``issuer``: the signer is the issuer the credential names (otherwise anyone
  could sign a credential in someone else's name), and, when ``trusted_issuers``
  is given, one of them;
* ``validFrom`` / ``expiry``: ``now`` lies within the validity period;
* ``status``: not revoked. Unknown status (a list that cannot be had, an entry it
  does not cover) fails verification with "status unknown": a revocation system
  that fails open would let a revoked certificate pass whenever its list is
  unreachable. A credential without ``credentialStatus`` passes this check.

:func:`verify_certificate` is the rule every certflow verifier applies to a
presented certificate (``POST /verify``, the verification page, ``certflow
verify``): trusted issuers only (``trust.TrustPolicy``), certificates only.
:func:`verified_status_list` is the rule for a status list fetched to check one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from certflow.credentials.contexts import VC_V1_CONTEXT, VC_V2_CONTEXT
from certflow.credentials.proof import KeyResolver, ProofCheck, verify_proof
from certflow.credentials.status_list import REVOCATION, StatusList

if TYPE_CHECKING:
    from certflow.credentials.trust import TrustPolicy

CheckName = Literal["format", "signature", "issuer", "validFrom", "expiry", "status"]
#: Given one ``credentialStatus`` entry: True if revoked, False if not, None if unknown.
StatusOf = Callable[[Mapping[str, Any]], bool | None]
#: The credential type of a certflow certificate (``document.open_badge_credential``).
CERTIFICATE_TYPES = frozenset({"OpenBadgeCredential"})
#: The credential type of a published status list (``status_list.status_list_credential``).
STATUS_LIST_TYPES = frozenset({"BitstringStatusListCredential"})
#: How far ahead of the verifier's clock a status list's ``validFrom`` may be.
STATUS_LIST_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Check:
    check: CheckName
    ok: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "reason": self.reason}


@dataclass(frozen=True)
class VerificationResult:
    """``verified`` only when every check passed."""

    checks: tuple[Check, ...]

    @property
    def verified(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    def check(self, name: CheckName) -> Check:
        return next(check for check in self.checks if check.check == name)

    def as_dict(self) -> dict[str, Any]:
        return {"verified": self.verified, "checks": [check.as_dict() for check in self.checks]}


def verify_credential(
    credential: Mapping[str, Any],
    *,
    resolve_key: KeyResolver,
    status_of: StatusOf | None,
    now: datetime,
    trusted_issuers: set[str] | frozenset[str] | None = None,
    expected_types: Collection[str] | None = None,
    document_loader: Any = None,
    accept_vc_v1: bool = False,
) -> VerificationResult:
    """Every check of one credential at time ``now`` (timezone-aware).

    ``resolve_key`` decides which keys can sign (``KeyRing.find``: certflow's own
    keys; ``proof.resolve_did_key``: any did:key, then narrowed by
    ``trusted_issuers``, a set of DIDs; None trusts any signer who is the issuer:
    verifiers call :func:`verify_certificate`, which always passes a set). ``status_of``
    looks a ``credentialStatus`` entry up (``status_list.status_lookup``); None means
    no status source is available, which leaves a credential that has a status entry
    unverified. ``expected_types``: the credential's ``type`` must name one of them.
    ``document_loader``: the JSON-LD contexts an ``eddsa-rdfc-2022`` proof may read
    (None: the shipped ones). A proof set verifies when each of its proofs does.
    ``accept_vc_v1``: a VC Data Model 1.1 credential (``issuanceDate``,
    ``expirationDate``) passes the format check too (the VC-API verifier); certflow's
    own certificates are VC 2.0, so its verifiers leave this off.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    proof = verify_proof(credential, resolve_key, document_loader=document_loader)
    return VerificationResult(
        (
            _format(credential, expected_types, accept_vc_v1=accept_vc_v1),
            Check("signature", proof.ok, proof.reason),
            _issuer(credential, proof, trusted_issuers),
            _valid_from(credential, now),
            _expiry(credential, now),
            _status(credential, status_of),
        )
    )


def verify_certificate(
    credential: Mapping[str, Any],
    *,
    trust: TrustPolicy,
    status_of: StatusOf | None,
    now: datetime,
) -> VerificationResult:
    """Is this a genuine certificate of an issuer ``trust`` trusts? Every verifier's rule.

    A credential signed by a key ``trust`` does not trust fails the ``issuer`` check
    ("untrusted issuer did:key:…"), whoever it claims to be; a credential that is
    not a certificate (a status list, signed by the same keys) fails ``format``.
    """
    return verify_credential(
        credential,
        resolve_key=trust.resolve_key,
        status_of=status_of,
        now=now,
        trusted_issuers=trust.issuers,
        expected_types=CERTIFICATE_TYPES,
    )


def verified_status_list(
    published: Mapping[str, Any],
    *,
    url: str,
    issuer: str | None,
    trust: TrustPolicy,
    now: datetime,
) -> StatusList:
    """The bits of a fetched ``BitstringStatusListCredential``, if they may be believed.

    It must verify like any credential, from a trusted issuer, be a status list
    (not some other credential of that issuer), be issued by ``issuer`` (the issuer
    of the credential whose status is asked: nobody else decides whether it is
    revoked), be the list at ``url`` when it names itself, and be a revocation list.
    ``ValueError`` with the reason otherwise.
    """
    result = verify_credential(
        published,
        resolve_key=trust.resolve_key,
        status_of=None,
        # A list is signed as it is served (validFrom: that second), by a server
        # whose clock may run a little ahead of this one.
        now=now + STATUS_LIST_CLOCK_SKEW,
        trusted_issuers=trust.issuers,
        expected_types=STATUS_LIST_TYPES,
    )
    if not result.verified:
        raise ValueError(f"status list {url} does not verify: {'; '.join(reasons(result))}")
    list_issuer = issuer_id(published)
    if list_issuer != issuer:
        raise ValueError(
            f"status list {url} is issued by {list_issuer}, not by the credential's issuer {issuer}"
        )
    if "id" in published and published["id"] != url:
        raise ValueError(f"status list {url} is another list: {str(published['id'])[:200]}")
    subject = published.get("credentialSubject")
    if not isinstance(subject, dict) or subject.get("type") != "BitstringStatusList":
        raise ValueError(f"status list {url} has no BitstringStatusList subject")
    if subject.get("statusPurpose") != REVOCATION:
        raise ValueError(f"status list {url} is not a revocation list")
    try:
        # decode refuses a missing or non-string list with ValueError, as any other bad one
        return StatusList.decode(subject.get("encodedList"))  # type: ignore[arg-type]  # see above
    except ValueError as exc:
        raise ValueError(f"status list {url}: {exc}") from None


# --- the checks -----------------------------------------------------------------------


def _format(
    credential: Mapping[str, Any],
    expected_types: Collection[str] | None = None,
    *,
    accept_vc_v1: bool = False,
) -> Check:
    problems: list[str] = []
    context = credential.get("@context")
    first = context[0] if isinstance(context, list) and context else context
    if first != VC_V2_CONTEXT and not (accept_vc_v1 and first == VC_V1_CONTEXT):
        problems.append(f"@context must start with {VC_V2_CONTEXT}")
    types = credential.get("type")
    types = types if isinstance(types, list) else [types]
    if "VerifiableCredential" not in types:
        problems.append("type must include VerifiableCredential")
    if expected_types is not None and not any(
        kind in expected_types for kind in types if isinstance(kind, str)
    ):
        problems.append(f"{_kind(types)}, not {_kind(sorted(expected_types), expected=True)}")
    if _issuer_id(credential) is None:
        problems.append("issuer must be a URL or an object with an id")
    subject = credential.get("credentialSubject")
    if not subject or not isinstance(subject, dict | list):
        problems.append("credentialSubject is missing")
    for name in ("validFrom", "validUntil"):
        if name in credential and _datetime(credential[name]) is None:
            problems.append(f"{name} {credential[name]!r} is not a date-time with a time zone")
    if problems:
        return Check("format", False, "; ".join(problems))
    return Check("format", True, "a Verifiable Credential 2.0")


def _issuer(
    credential: Mapping[str, Any], proof: ProofCheck, trusted: set[str] | frozenset[str] | None
) -> Check:
    issuer = _issuer_id(credential)
    signer = proof.did
    if signer is None and proof.ok and issuer in proof.dids:
        # a proof set signed by several DIDs (say, the issuer and a notary), all verified
        signer = issuer
    if signer is None:
        return Check("issuer", False, "no signer to compare with the issuer")
    if not proof.ok:
        # A proof that does not verify names its signer, but proves nothing.
        return Check("issuer", False, f"issuer {issuer} not confirmed: the signature does not verify")
    if issuer != signer:
        return Check("issuer", False, f"issuer {issuer} is not the signer {signer}")
    if trusted is not None and signer not in trusted:
        return Check("issuer", False, f"untrusted issuer {signer}")
    return Check("issuer", True, f"issued by {signer}" + (" (trusted)" if trusted is not None else ""))


def _v1_dates(credential: Mapping[str, Any]) -> Mapping[str, Any]:
    """A VC 1.1 credential's issuanceDate / expirationDate, named as VC 2.0 names them."""
    renamed = {"issuanceDate": "validFrom", "expirationDate": "validUntil"}
    dates = {renamed[name]: credential[name] for name in renamed if name in credential}
    return {**credential, **dates} if dates and "validFrom" not in credential else credential


def _valid_from(credential: Mapping[str, Any], now: datetime) -> Check:
    credential = _v1_dates(credential)
    if "validFrom" not in credential:
        return Check("validFrom", True, "no validFrom")
    moment = _datetime(credential["validFrom"])
    if moment is None:
        return Check("validFrom", False, f"unreadable validFrom {credential['validFrom']!r}")
    if moment > now:
        return Check("validFrom", False, f"not yet valid: valid from {credential['validFrom']}")
    return Check("validFrom", True, f"valid from {credential['validFrom']}")


def _expiry(credential: Mapping[str, Any], now: datetime) -> Check:
    credential = _v1_dates(credential)
    if "validUntil" not in credential:
        return Check("expiry", True, "does not expire")
    moment = _datetime(credential["validUntil"])
    if moment is None:
        return Check("expiry", False, f"unreadable validUntil {credential['validUntil']!r}")
    if moment <= now:
        return Check("expiry", False, f"expired on {credential['validUntil']}")
    return Check("expiry", True, f"valid until {credential['validUntil']}")


def _status(credential: Mapping[str, Any], status_of: StatusOf | None) -> Check:
    entries = credential.get("credentialStatus")
    if entries is None:
        return Check("status", True, "no credentialStatus")
    entries = entries if isinstance(entries, list) else [entries]
    if status_of is None:
        return Check("status", False, "status unknown: no status source")
    unknown: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict):
            unknown.append("a credentialStatus entry that is not an object")
            continue
        try:
            revoked = status_of(entry)
        except Exception as exc:  # noqa: BLE001 - a status source's failure is a reason, not a crash
            unknown.append(f"{entry.get('id', 'entry')}: {exc}")
            continue
        if revoked:
            return Check("status", False, f"revoked ({entry.get('id', 'credentialStatus')})")
        if revoked is None:
            unknown.append(str(entry.get("id", "entry")))
    if unknown:
        return Check("status", False, f"status unknown: {', '.join(unknown)}")
    return Check("status", True, "not revoked")


# --- helpers --------------------------------------------------------------------------


def _kind(types: Sequence[Any], *, expected: bool = False) -> str:
    """``a BitstringStatusListCredential``; ``a certificate (OpenBadgeCredential)``."""
    named = [str(kind)[:80] for kind in types if kind != "VerifiableCredential" and isinstance(kind, str)]
    if not named:
        return "a credential of no particular type"
    text = " or ".join(named[:3])
    if expected and set(named) == CERTIFICATE_TYPES:
        return f"a certificate ({text})"
    return f"{'an' if text[:1] in 'AEIOUaeiou' else 'a'} {text}"


def issuer_id(credential: Mapping[str, Any]) -> str | None:
    """The issuer a credential names (``issuer``, or its ``id``), or None."""
    return _issuer_id(credential)


def _issuer_id(credential: Mapping[str, Any]) -> str | None:
    issuer = credential.get("issuer")
    if isinstance(issuer, dict):
        issuer = issuer.get("id")
    return issuer if isinstance(issuer, str) and issuer else None


def _datetime(value: Any) -> datetime | None:
    """An XML Schema dateTimeStamp (time zone required), or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def reasons(result: VerificationResult) -> Sequence[str]:
    """The failed checks' reasons, for a one-line message."""
    return [f"{check.check}: {check.reason}" for check in result.failures]
