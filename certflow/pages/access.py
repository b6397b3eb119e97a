"""``GET /verify``: check a paper certificate by its printed access code.

Six-character codes repeat at national scale (24³·9³ ≈ 10 million codes), so a code
alone never identifies a certificate: the form asks for the learner's name as
printed, or the certificate's short id (the first 8 characters of its UUID, printed
beside the QR code), and :func:`match_access_code` needs both to agree.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from certflow.pages.layout import attr, document, e, path_segment, value

__all__ = ["SHORT_ID_LENGTH", "access_code_page", "match_access_code", "normalise_code", "normalise_name"]

SHORT_ID_LENGTH = 8
_CODE = re.compile(r"^[A-Z0-9]{6}$")


def normalise_code(code: str) -> str:
    """Upper case, spaces and dashes dropped (``p4l-3y9`` → ``P4L3Y9``)."""
    return re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", code or "")).upper()


def normalise_name(name: str) -> str:
    """NFC, case-folded, whitespace collapsed: how names are compared."""
    return " ".join(unicodedata.normalize("NFC", name or "").casefold().split())


def _is_short_id(text: str, certificate_id: str) -> bool:
    cleaned = text.strip().lower()
    full = certificate_id.lower()
    return len(cleaned) >= SHORT_ID_LENGTH and full.startswith(cleaned) and cleaned == full[: len(cleaned)]


def match_access_code(
    candidates: Iterable[Mapping[str, Any]], code: str, name_or_short_id: str
) -> list[Mapping[str, Any]]:
    """The certificate records among ``candidates`` (``IssuedCertificate`` dicts,
    e.g. every certificate holding ``code``) whose access code is ``code`` and whose
    recipient name, or id prefix (≥ 8 characters), is ``name_or_short_id``."""
    wanted = normalise_code(code)
    other = (name_or_short_id or "").strip()
    if not _CODE.match(wanted) or not other:
        return []
    name = normalise_name(other)
    found = []
    for record in candidates:
        code = normalise_code(str(record.get("accessCode", "")))
        if not hmac.compare_digest(code.encode(), wanted.encode()):
            continue
        certificate_id = str(record.get("id", ""))
        recipient = normalise_name(str((record.get("recipient") or {}).get("name", "")))
        if (recipient and recipient == name) or _is_short_id(other, certificate_id):
            found.append(record)
    return found


def access_code_page(
    *,
    code: str = "",
    name_or_short_id: str = "",
    matches: Sequence[Mapping[str, Any]] | None = None,
    error: str = "",
) -> str:
    """The form, and, once submitted (``matches`` not None), its result."""
    result = ""
    if error:
        result = f'<p class="verdict bad" role="alert">{e(error)}</p>'
    elif matches is not None:
        if not matches:
            result = ('<p class="verdict bad" role="status">No certificate matches this access code '
                      "with this name or id. Check both against the paper.</p>")
        else:
            items = "".join(
                f'<li>{value((m.get("certificateName") or ""), tag="strong")} — '
                f'{value((m.get("recipient") or {}).get("name", ""))}, '
                f'issued {e(str(m.get("issuedDate", "")))}: '
                f'<a href="certs/{path_segment(str(m.get("id", "")))}">'
                "see the certificate and its checks</a></li>"
                for m in matches
            )
            result = (f'<p class="verdict ok" role="status">Found: this access code belongs to</p>'
                      f'<ul class="cards">{items}</ul>')
    form = (
        '<form method="get" role="search" aria-describedby="how">'
        '<label for="code">Access code (6 characters, printed under the QR code)</label>'
        f'<input id="code" name="code" required maxlength="12" autocomplete="off" '
        f'autocapitalize="characters" spellcheck="false" value="{attr(code)}">'
        '<label for="who">Learner\'s name as printed, or the certificate\'s short id (8 characters)</label>'
        f'<input id="who" name="who" required maxlength="200" dir="auto" value="{attr(name_or_short_id)}">'
        '<button type="submit">Check</button></form>'
    )
    main = (
        "<h1>Check a paper certificate</h1>"
        '<p id="how">Enter the access code printed on the certificate, and the learner\'s name '
        "or the certificate's short id, to see whether it is genuine.</p>"
        f"{form}{result}"
    )
    return document("Check a certificate by its access code", main,
                    header="<strong>Certificate verification</strong>")
