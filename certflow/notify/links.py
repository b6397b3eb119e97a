"""Links in notifications: the learner's page (signed, expiring) and LinkedIn's
add-to-profile URL.

Learner links carry ``{expiry}.{mac}``, an HMAC-SHA256 over the learner id and the
expiry, so a learner opens their certificates from an email without an account and
a link cannot be altered to show another learner's, nor kept working past its date.

The key (:func:`derive_link_secret`) is, by default, derived from the current
signing key exactly like the access codes' MAC key (certflow/issuing.py), under
another label: every worker already shares the signing keys (workers refuse to start
without them), so nothing new must be distributed or rotated, and one label can never
produce the other's MAC. The cost: rotating the signing key ends the links already
sent, so ``CERTFLOW_LEARNER_LINK_SECRET`` can pin a key of its own instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

__all__ = [
    "derive_link_secret",
    "learner_link",
    "learner_token",
    "linkedin_add_to_profile",
    "verify_learner_token",
]

LINKEDIN_ADD_TO_PROFILE = "https://www.linkedin.com/profile/add"


def derive_link_secret(private_key_multibase: str, configured: str = "") -> bytes:
    """The learner links' HMAC key: ``configured`` (the setting) when set, else
    derived from the signing key's private multibase."""
    if configured:
        return hashlib.sha256(b"certflow learner link key\x00" + configured.encode()).digest()
    return hashlib.sha256(b"certflow learner link\x00" + private_key_multibase.encode()).digest()


def _epoch(moment: datetime | int) -> int:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        return int(moment.timestamp())
    return int(moment)


def _mac(secret: bytes, learner_id: str, expires: int) -> str:
    # Learner ids hold no control characters (display rules), so NUL separates.
    message = b"certflow learner page\x00" + learner_id.encode() + b"\x00" + str(expires).encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def learner_token(learner_id: str, secret: bytes, expires_at: datetime | int) -> str:
    """``{expiry epoch seconds}.{base64url HMAC-SHA256}``."""
    expires = _epoch(expires_at)
    return f"{expires}.{_mac(secret, learner_id, expires)}"


def learner_link(base_url: str, learner_id: str, secret: bytes, expires_at: datetime | int) -> str:
    """``{base_url}/learners/{learner id}?token={token}``: the learner's page."""
    token = learner_token(learner_id, secret, expires_at)
    return f"{base_url.rstrip('/')}/learners/{quote(learner_id, safe='')}?{urlencode({'token': token})}"


def verify_learner_token(
    learner_id: str, token: str, secret: bytes, now: datetime | None = None
) -> bool:
    """Whether ``token`` was made for ``learner_id`` with ``secret`` and has not
    expired at ``now``; the MAC is compared in constant time."""
    expires_text, dot, mac = (token or "").partition(".")
    if not dot or not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    expected = _mac(secret, learner_id, expires)
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        return False
    moment = now or datetime.now(UTC)
    return _epoch(moment) < expires


def linkedin_add_to_profile(
    name: str,
    organisation_name: str,
    issue_year: int | None,
    issue_month: int | None,
    cert_url: str,
    cert_id: str,
    expiration_year: int | None = None,
    expiration_month: int | None = None,
    organization_id: str | int | None = None,
) -> str:
    """LinkedIn's "Add license or certification" link (addtoprofile.linkedin.com):
    ``startTask=CERTIFICATION_NAME`` opens the form filled with these fields.
    ``organizationId`` (a LinkedIn company id) wins over ``organizationName`` there,
    so both are sent when known."""
    params: list[tuple[str, str]] = [("startTask", "CERTIFICATION_NAME"), ("name", name)]
    if organization_id not in (None, ""):
        params.append(("organizationId", str(organization_id)))
    if organisation_name:
        params.append(("organizationName", organisation_name))
    if issue_year:
        params.append(("issueYear", str(issue_year)))
    if issue_month:
        params.append(("issueMonth", str(issue_month)))
    if expiration_year:
        params.append(("expirationYear", str(expiration_year)))
    if expiration_month:
        params.append(("expirationMonth", str(expiration_month)))
    params += [("certUrl", cert_url), ("certId", cert_id)]
    return f"{LINKEDIN_ADD_TO_PROFILE}?{urlencode(params, quote_via=quote)}"
