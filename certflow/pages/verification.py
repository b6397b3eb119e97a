"""The page someone sees after scanning a certificate's QR code (``GET /certs/{id}``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from certflow.notify.links import linkedin_add_to_profile
from certflow.pages.layout import attr, day, document, e, path_segment, value

__all__ = ["CHECK_LABELS", "issuer_header", "not_found_page", "verification_page"]

#: ``VerificationResult`` check names → what a reader is told was checked.
CHECK_LABELS = {
    "format": "The document is a well-formed certificate",
    "signature": "The digital signature is intact (nothing was changed)",
    "issuer": "The issuer is trusted",
    "validFrom": "The certificate is already in force",
    "expiry": "The certificate has not expired",
    "status": "The certificate has not been revoked",
}

_FORMATS = (("pdf", "PDF"), ("png", "PNG image"), ("svg", "SVG"))


def _safe_image(src: object) -> str | None:
    """An image source the page's CSP lets load: ``data:image/…`` or same-origin path."""
    if not isinstance(src, str):
        return None
    text = src.strip()
    if text.lower().startswith("data:image/") and not text.lower().startswith("data:image/svg"):
        return text
    if text.startswith("/") and not text.startswith("//"):
        return text
    return None


def _http_url(url: object) -> str | None:
    if isinstance(url, str) and url.strip().lower().startswith(("https://", "http://")):
        return url.strip()
    return None


def issuer_header(issuer: Mapping[str, Any], logo: str | None = None) -> str:
    """Issuer's logo (alt text: its name), name and link, for ``<header>``."""
    name = str(issuer.get("name") or "")
    image = issuer.get("image")
    if isinstance(image, Mapping):
        image = image.get("id")
    src = _safe_image(logo) or _safe_image(image)
    parts = []
    if src:
        parts.append(f'<img src="{attr(src)}" alt="{attr(name or "Issuer")} logo">')
    shown = value(name or "Unknown issuer", tag="strong")
    url = _http_url(issuer.get("url"))
    parts.append(f'<a href="{attr(url)}" rel="noopener noreferrer">{shown}</a>' if url else shown)
    return "".join(parts)


def _year_month(text: str) -> tuple[int | None, int | None]:
    if len(text) >= 7 and text[:4].isdigit() and text[5:7].isdigit():
        return int(text[:4]), int(text[5:7])
    return None, None


def linkedin_for(record: Mapping[str, Any]) -> str:
    credential = record.get("certificate") or {}
    issued = str(record.get("issuedDate") or credential.get("validFrom") or "")
    issued_year, issued_month = _year_month(issued)
    exp_year, exp_month = _year_month(str(credential.get("validUntil") or ""))
    return linkedin_add_to_profile(
        str(record.get("certificateName") or credential.get("name") or ""),
        str((credential.get("issuer") or {}).get("name") or ""),
        issued_year, issued_month, str(record["verifyUrl"]), str(record["id"]), exp_year, exp_month,
    )


def _checks(checks: Sequence[Mapping[str, Any]]) -> str:
    items = []
    for check in checks:
        name = str(check.get("check", ""))
        label = CHECK_LABELS.get(name, name)
        mark = '<span class="pass">✓ Passed</span>' if check.get("ok") else '<span class="fail">✗ Failed</span>'
        reason = check.get("reason") or ""
        detail = f" — {value(reason)}" if reason else ""
        items.append(f"<li>{mark}: {e(label)}{detail}</li>")
    return f'<ul class="checks">{"".join(items)}</ul>'


def verification_page(
    record: Mapping[str, Any],
    verification: Mapping[str, Any],
    *,
    revocation: Mapping[str, Any] | None = None,
    recipient_lang: str | None = None,
    issuer_logo: str | None = None,
    wallet_url: str | None = None,
    wallet_qr: str | None = None,
) -> str:
    """The verification page of one certificate.

    ``record``: an ``IssuedCertificate`` as a dict; ``verification``:
    ``VerificationResult.as_dict()``; ``revocation``: the registry's entry
    (``reason``, ``revokedAt``, ``replacedBy``) or None; ``recipient_lang``: the
    learner profile's language, if known (else guessed from the name's script);
    ``issuer_logo``: a ``data:image/…`` URI or same-origin path; ``wallet_url`` /
    ``wallet_qr`` (a ``data:image/…`` URI): where a wallet picks the credential up.

    It builds one HTML page top to bottom (verdict, details, checks, downloads);
    splitting it would scatter the page's shape.
    """
    credential = record.get("certificate") or {}
    issuer = credential.get("issuer") or {}
    certificate_id = str(record["id"])
    checks = verification.get("checks") or []
    failed = {c.get("check") for c in checks if not c.get("ok")}
    certificate_name = str(record.get("certificateName") or credential.get("name") or "Certificate")
    recipient = str((record.get("recipient") or {}).get("name") or "")
    course = record.get("course") or {}
    valid_until = day(credential.get("validUntil"))

    if revocation:
        banner = ("bad", f"Revoked on {day(revocation.get('revokedAt')) or 'an unknown date'}")
    elif verification.get("verified"):
        banner = ("ok", "Valid certificate")
    elif "expiry" in failed and len(failed) == 1:
        banner = ("bad", f"Expired on {valid_until}" if valid_until else "Expired")
    else:
        banner = ("bad", "This certificate could not be verified")

    facts = [
        ("Awarded to", value(recipient, lang=recipient_lang, tag="dd")),
        ("Achievement", value(certificate_name, tag="dd")),
        ("Course", value(course.get("name") or course.get("id") or "", tag="dd")),
        ("Issued by", value(issuer.get("name") or "", tag="dd")),
        ("Issued on", f'<dd><time datetime="{attr(record.get("issuedDate"))}">'
                      f'{e(str(record.get("issuedDate") or ""))}</time></dd>'),
    ]
    if valid_until:
        facts.append(
            ("Valid until", f'<dd><time datetime="{attr(valid_until)}">{e(valid_until)}</time></dd>')
        )
    else:
        facts.append(("Valid until", "<dd>No expiry date</dd>"))
    if revocation:
        revoked_on = day(revocation.get("revokedAt"))
        facts.append(("Revoked on", f'<dd><time datetime="{attr(revoked_on)}">{e(revoked_on)}</time></dd>'))
        facts.append(("Reason", value(revocation.get("reason") or "", tag="dd")))
        replaced = revocation.get("replacedBy")
        if replaced:
            link = f'<a href="{attr(path_segment(str(replaced)))}">{e(str(replaced))}</a>'
            facts.append(("Replaced by", f"<dd>{link}</dd>"))
    facts.append(("Certificate id", value(certificate_id, tag="dd", lang="zxx")))
    dl = "".join(f"<dt>{e(label)}</dt>{shown}" for label, shown in facts)

    own = path_segment(certificate_id)
    revoked_note = " (marked REVOKED)" if revocation else ""
    downloads = "".join(
        f'<li><a href="{own}.{fmt}" download>Download {label}{revoked_note}</a></li>'
        for fmt, label in _FORMATS
    )
    share = ""
    if not revocation:
        share = (f'<li><a href="{attr(linkedin_for(record))}" rel="noopener noreferrer">'
                 "Add to LinkedIn profile</a></li>")
        if wallet_url:
            share += f'<li><a href="{attr(wallet_url)}" rel="noopener noreferrer">Add to wallet</a></li>'
    qr = ""
    wallet_image = _safe_image(wallet_qr)
    if wallet_image and not revocation:
        qr = (f'<figure class="qr"><img src="{attr(wallet_image)}" '
              'alt="QR code: scan with a wallet app to add this certificate">'
              "<figcaption>Scan with your wallet app</figcaption></figure>")

    main = (
        f"<h1>{value(certificate_name)}</h1>"
        f'<p class="verdict {banner[0]}" role="status">{e(banner[1])}</p>'
        f'<figure class="picture"><img src="{own}.png" '
        f'alt="{attr(f"Certificate {certificate_name} awarded to {recipient}")}">'
        "</figure>"
        f'<section aria-labelledby="details"><h2 id="details">Details</h2><dl>{dl}</dl></section>'
        f'<section aria-labelledby="checks"><h2 id="checks">What was checked</h2>{_checks(checks)}</section>'
        f'<section aria-labelledby="get"><h2 id="get">Download and share</h2>'
        f'<ul class="actions">{downloads}{share}</ul>{qr}</section>'
    )
    return document(f"{certificate_name} — {recipient}: certificate verification", main,
                    header=issuer_header(issuer, issuer_logo))


def not_found_page(certificate_id: str | None = None) -> str:
    """The HTML 404 for an unknown certificate id."""
    shown = f" {value(certificate_id, tag='code', lang='zxx')}" if certificate_id else ""
    main = (
        "<h1>Certificate not found</h1>"
        f'<p class="verdict bad" role="status">No certificate{shown} is known here.</p>'
        "<p>Check that the address was copied in full. A paper certificate can also be checked "
        'with the access code printed on it: <a href="/verify">check an access code</a>.</p>'
    )
    return document("Certificate not found", main, header="<strong>Certificate verification</strong>")
