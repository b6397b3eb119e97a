"""The notification email: plain text and HTML, in the learner's language.

Adding a language is adding one entry to :data:`MESSAGES` (every key of ``en``).
Every value in the HTML is escaped; names and course titles carry ``dir`` (and a
``lang`` guessed from their script) so an Urdu name in a Hindi email reads right.
"""

from __future__ import annotations

import html
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid

from certflow.i18n import lang_of, text_direction
from certflow.notify.links import linkedin_add_to_profile
from certflow.notify.models import NotificationRequest

__all__ = ["MESSAGES", "compose", "pick_language"]

#: Language → message → text. ``{name}``, ``{certificate}``, ``{course}``,
#: ``{issuer}``, ``{date}``, ``{reason}`` are filled in.
MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "subject.issued": "Your certificate: {certificate}",
        "subject.reissued": "Your certificate was re-issued: {certificate}",
        "subject.revoked": "Your certificate was revoked: {certificate}",
        "greeting": "Dear {name},",
        "body.issued": "{issuer} has issued you the certificate “{certificate}” for the course “{course}”.",
        "body.reissued": "{issuer} has re-issued your certificate “{certificate}” for the course “{course}”. "
        "The certificate it replaces is no longer valid.",
        "body.revoked": "{issuer} revoked your certificate “{certificate}” for the course “{course}” "
        "on {date}.",
        "reason": "Reason: {reason}",
        "view": "View and verify your certificate",
        "learner_page": "All your certificates",
        "linkedin": "Add to your LinkedIn profile",
        "attached": "Your certificate is attached as a PDF.",
        "valid_until": "Valid until {date}.",
        "footer": "This message was sent automatically; please do not reply.",
        "issuer_fallback": "The issuer",
    },
    "hi": {
        "subject.issued": "आपका प्रमाणपत्र: {certificate}",
        "subject.reissued": "आपका प्रमाणपत्र फिर से जारी किया गया: {certificate}",
        "subject.revoked": "आपका प्रमाणपत्र रद्द कर दिया गया: {certificate}",
        "greeting": "प्रिय {name},",
        "body.issued": "{issuer} ने आपको पाठ्यक्रम “{course}” के लिए प्रमाणपत्र “{certificate}” जारी किया है।",
        "body.reissued": "{issuer} ने पाठ्यक्रम “{course}” के लिए आपका प्रमाणपत्र “{certificate}” "
        "फिर से जारी किया है। "
        "इससे बदला गया प्रमाणपत्र अब मान्य नहीं है।",
        "body.revoked": "{issuer} ने पाठ्यक्रम “{course}” के लिए आपका प्रमाणपत्र “{certificate}” "
        "{date} को रद्द कर दिया है।",
        "reason": "कारण: {reason}",
        "view": "अपना प्रमाणपत्र देखें और सत्यापित करें",
        "learner_page": "आपके सभी प्रमाणपत्र",
        "linkedin": "अपनी LinkedIn प्रोफ़ाइल में जोड़ें",
        "attached": "आपका प्रमाणपत्र PDF के रूप में संलग्न है।",
        "valid_until": "{date} तक मान्य।",
        "footer": "यह संदेश स्वचालित रूप से भेजा गया है; कृपया उत्तर न दें।",
        "issuer_fallback": "जारीकर्ता",
    },
}

#: Language names a profile may hold instead of codes (Sunbird keeps names).
_LANGUAGE_NAMES = {"english": "en", "hindi": "hi", "हिन्दी": "hi", "हिंदी": "hi"}


def pick_language(value: str | None) -> str:
    """The :data:`MESSAGES` language for a profile's ``language`` value: a code
    (``hi``, ``hi-IN``, ``hi_IN``) or a name (``Hindi``); English otherwise."""
    text = (value or "").strip().lower()
    text = _LANGUAGE_NAMES.get(text, text)
    primary = text.replace("_", "-").split("-")[0]
    return primary if primary in MESSAGES else "en"


def _linkedin(request: NotificationRequest) -> str:
    year = month = None
    if len(request.issuedDate) >= 7 and request.issuedDate[:4].isdigit():
        year, month = int(request.issuedDate[:4]), int(request.issuedDate[5:7])
    exp_year = exp_month = None
    if len(request.validUntil) >= 7 and request.validUntil[:4].isdigit():
        exp_year, exp_month = int(request.validUntil[:4]), int(request.validUntil[5:7])
    return linkedin_add_to_profile(
        request.certificateName, request.issuerName, year, month,
        request.certificateUrl, request.certificateId, exp_year, exp_month,
    )


def _span(value: str) -> str:
    """A value in the HTML, escaped, with its own direction and language."""
    lang = lang_of(value)
    lang_attr = f' lang="{html.escape(lang)}"' if lang else ""
    return f'<bdi dir="{text_direction(value)}"{lang_attr}>{html.escape(value)}</bdi>'


def compose(
    request: NotificationRequest,
    *,
    sender: str,
    pdf: bytes | None = None,
    pdf_filename: str | None = None,
) -> EmailMessage:
    """The email for ``request``: ``multipart/alternative`` (text, HTML), inside
    ``multipart/mixed`` with the PDF when ``pdf`` is given.

    It is long because it writes the plain-text and HTML bodies one after the other,
    line for line alike, so that a change to one is made beside the other; split
    apart, the two would drift.
    """
    lang = pick_language(request.language)
    texts = MESSAGES[lang]
    fields = {
        "name": request.name,
        "certificate": request.certificateName,
        "course": request.courseName or request.certificateName,
        "issuer": request.issuerName or texts["issuer_fallback"],
        "date": request.revokedOn,
        "reason": request.revocationReason,
    }
    linkedin = _linkedin(request) if request.kind != "revoked" else ""

    # Plain text.
    lines = [texts["greeting"].format(**fields), "", texts[f"body.{request.kind}"].format(**fields)]
    if request.kind == "revoked" and request.revocationReason:
        lines.append(texts["reason"].format(**fields))
    if request.validUntil and request.kind != "revoked":
        lines.append(texts["valid_until"].format(date=request.validUntil))
    lines += ["", f"{texts['view']}: {request.certificateUrl}"]
    if request.learnerPageUrl:
        lines.append(f"{texts['learner_page']}: {request.learnerPageUrl}")
    if linkedin:
        lines.append(f"{texts['linkedin']}: {linkedin}")
    if pdf is not None:
        lines += ["", texts["attached"]]
    lines += ["", "-- ", texts["footer"]]
    plain = "\n".join(lines) + "\n"

    # HTML: the same, every value escaped and marked with its direction.
    marked = {key: _span(value) for key, value in fields.items()}
    esc = html.escape

    def link(url: str, label: str) -> str:
        return f'<p><a href="{esc(url, quote=True)}" style="color:#0b57d0">{esc(label)}</a></p>'

    page_dir = "rtl" if lang in ("ur", "ar", "fa", "he") else "ltr"
    parts = [
        f'<!DOCTYPE html><html lang="{lang}" dir="{page_dir}"><head><meta charset="utf-8">',
        f"<title>{esc(texts[f'subject.{request.kind}'].format(**fields))}</title></head>",
        '<body style="font-family:sans-serif;color:#1f1f1f;background:#ffffff;line-height:1.5">',
        f"<p>{texts['greeting'].format(**marked)}</p>",
        f"<p>{texts[f'body.{request.kind}'].format(**marked)}</p>",
    ]
    if request.kind == "revoked" and request.revocationReason:
        parts.append(f"<p>{texts['reason'].format(**marked)}</p>")
    if request.validUntil and request.kind != "revoked":
        parts.append(f"<p>{esc(texts['valid_until'].format(date=request.validUntil))}</p>")
    parts.append(link(request.certificateUrl, texts["view"]))
    if request.learnerPageUrl:
        parts.append(link(request.learnerPageUrl, texts["learner_page"]))
    if linkedin:
        parts.append(link(linkedin, texts["linkedin"]))
    if pdf is not None:
        parts.append(f"<p>{esc(texts['attached'])}</p>")
    parts.append(f'<hr><p style="color:#444444;font-size:small">{esc(texts["footer"])}</p></body></html>')
    rich = "".join(parts)

    message = EmailMessage()
    message["Subject"] = texts[f"subject.{request.kind}"].format(**fields)
    message["From"] = sender
    if request.email:
        # Raises ValueError (email.errors.HeaderParseError) for a malformed address.
        message["To"] = Address(display_name=request.name, addr_spec=request.email)
    message["Message-ID"] = make_msgid(domain="certflow")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(plain)
    message.add_alternative(rich, subtype="html")
    # After the content: set_content() drops Content-* headers set before it.
    message["Content-Language"] = lang
    if pdf is not None:
        message.add_attachment(
            pdf, maintype="application", subtype="pdf",
            filename=pdf_filename or f"certificate-{request.certificateId}.pdf",
        )
    return message
