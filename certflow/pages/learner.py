"""The learner's page: every certificate of one learner, reached from the signed
link in their email (``certflow.notify.links``), without an account."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from certflow.pages.layout import attr, day, document, e, value
from certflow.pages.verification import linkedin_for

__all__ = ["learner_page"]


def learner_page(
    learner_name: str,
    records: Sequence[Mapping[str, Any]],
    *,
    revocations: Mapping[str, Mapping[str, Any]] | None = None,
    learner_lang: str | None = None,
    wallet_url_for: Callable[[Mapping[str, Any]], str | None] | None = None,
) -> str:
    """``records``: the learner's ``IssuedCertificate`` dicts (newest first is the
    caller's choice); ``revocations``: certificate id → the registry's revocation;
    ``wallet_url_for``: where "Add to wallet" posts to make a certificate's one-time
    claim link (a form: making a claim link is not something a plain link may do)."""
    revocations = revocations or {}
    cards = []
    for record in records:
        certificate_id = str(record["id"])
        verify_url = str(record["verifyUrl"])
        course = record.get("course") or {}
        revoked = revocations.get(certificate_id)
        status = (f'<p class="verdict bad">Revoked on {e(day(revoked.get("revokedAt")))}</p>'
                  if revoked else "")
        actions = [f'<li><a href="{attr(verify_url)}">View and verify</a></li>']
        actions += [f'<li><a href="{attr(verify_url)}.{fmt}" download>Download {label}</a></li>'
                    for fmt, label in (("pdf", "PDF"), ("png", "PNG"))]
        if not revoked:
            actions.append(f'<li><a href="{attr(linkedin_for(record))}" rel="noopener noreferrer">'
                           "Add to LinkedIn profile</a></li>")
            wallet = wallet_url_for(record) if wallet_url_for else None
            if wallet:
                actions.append(
                    f'<li><form method="post" action="{attr(wallet)}">'
                    '<button type="submit">Add to wallet</button></form></li>'
                )
        cards.append(
            "<li>"
            f"<h2>{value(record.get('certificateName') or '')}</h2>{status}"
            f"<dl><dt>Course</dt>{value(course.get('name') or course.get('id') or '', tag='dd')}"
            f"<dt>Issued on</dt><dd>{e(str(record.get('issuedDate') or ''))}</dd></dl>"
            f'<ul class="actions">{"".join(actions)}</ul></li>'
        )
    body = f'<ul class="cards">{"".join(cards)}</ul>' if cards else "<p>No certificates yet.</p>"
    main = f"<h1>Certificates of {value(learner_name, lang=learner_lang)}</h1>{body}"
    return document(f"Certificates of {learner_name}", main, header="<strong>Your certificates</strong>")
