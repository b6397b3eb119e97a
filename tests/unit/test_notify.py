"""Notifications: composing (en/hi, links, attachment, escaping), signed learner
links, LinkedIn's URL, and delivery to a real SMTP server (aiosmtpd) started here."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from lxml import html as lxml_html

from certflow.broker import free_port
from certflow.notify import (
    NotificationRequest,
    SmtpConfig,
    SmtpSender,
    compose,
    derive_link_secret,
    learner_link,
    learner_token,
    linkedin_add_to_profile,
    notification_for,
    pick_language,
    text_direction,
    verify_learner_token,
)

PDF = b"%PDF-1.7\n% test\n"


def request(**changes) -> NotificationRequest:
    values = dict(
        kind="issued", learnerId="user-1", name="Asha Verma", email="asha@example.org",
        language="", certificateId="0b6f5a2e-1111-5222-8333-444455556666",
        certificateName="Course completion certificate", courseName="Python basics",
        issuerName="Sunbird Academy", certificateUrl="https://certs.example.org/certs/0b6f5a2e",
        learnerPageUrl="https://certs.example.org/learners/user-1?token=1.abc",
        issuedDate="2026-03-14",
    )
    values.update(changes)
    return NotificationRequest(**values)


def parts(message):
    parsed = email.message_from_bytes(bytes(message), policy=email.policy.default)
    text = parsed.get_body(("plain",)).get_content()
    rich = parsed.get_body(("html",)).get_content()
    return parsed, text, rich


# ------------------------------------------------------------------ helpers


def test_text_direction():
    assert text_direction("Asha") == "ltr"
    assert text_direction("عائشہ صدیقی") == "rtl"
    assert text_direction("שלום") == "rtl"
    assert text_direction("12 (3)") == "auto"
    assert text_direction("  42 عائشہ") == "rtl"


def test_pick_language():
    assert pick_language("hi") == pick_language("hi-IN") == pick_language("Hindi") == "hi"
    assert pick_language("") == pick_language(None) == pick_language("xx") == "en"


# ------------------------------------------------------------------ compose


def test_english_email_has_text_html_links():
    message = compose(request(), sender="Certs <certs@example.org>")
    parsed, text, rich = parts(message)
    assert parsed["Subject"] == "Your certificate: Course completion certificate"
    assert parsed.get_content_type() == "multipart/alternative"
    assert "Dear Asha Verma," in text and "Python basics" in text
    assert "https://certs.example.org/certs/0b6f5a2e" in text
    assert "https://www.linkedin.com/profile/add?startTask=CERTIFICATION_NAME" in text
    doc = lxml_html.fromstring(rich)
    assert doc.get("lang") == "en"
    hrefs = [a.get("href") for a in doc.iter("a")]
    assert "https://certs.example.org/certs/0b6f5a2e" in hrefs
    assert request().learnerPageUrl in hrefs
    assert any(h.startswith("https://www.linkedin.com/profile/add?") for h in hrefs)


def test_hindi_email():
    message = compose(request(language="hi", name="आशा वर्मा"), sender="certs@example.org")
    parsed, text, rich = parts(message)
    assert parsed["Subject"] == "आपका प्रमाणपत्र: Course completion certificate"
    assert "प्रिय आशा वर्मा," in text
    assert parsed["Content-Language"] == "hi"
    doc = lxml_html.fromstring(rich)
    assert doc.get("lang") == "hi"
    name = next(b for b in doc.iter("bdi") if b.text == "आशा वर्मा")
    assert name.get("lang") == "hi" and name.get("dir") == "ltr"


def test_urdu_name_is_rtl_and_hostile_values_are_escaped():
    hostile = '<script>alert(1)</script>"\''
    message = compose(request(name="عائشہ صدیقی", courseName=hostile), sender="c@example.org")
    _, _, rich = parts(message)
    assert "<script>" not in rich
    doc = lxml_html.fromstring(rich)
    assert not list(doc.iter("script"))
    urdu = next(b for b in doc.iter("bdi") if b.text == "عائشہ صدیقی")
    assert urdu.get("dir") == "rtl" and urdu.get("lang") == "ur"
    assert any(b.text == hostile for b in doc.iter("bdi"))


def test_pdf_attached_when_given():
    message = compose(request(), sender="c@example.org", pdf=PDF)
    parsed = email.message_from_bytes(bytes(message), policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    attachments = list(parsed.iter_attachments())
    assert [a.get_content_type() for a in attachments] == ["application/pdf"]
    assert attachments[0].get_content() == PDF
    assert attachments[0].get_filename().endswith(".pdf")
    assert parsed.get_body(("html",)) is not None


def test_revoked_email_has_date_and_reason_and_no_linkedin():
    message = compose(request(kind="revoked", revokedOn="2026-04-01", revocationReason="Re-issued"),
                      sender="c@example.org")
    parsed, text, _ = parts(message)
    assert "revoked" in parsed["Subject"]
    assert "2026-04-01" in text and "Reason: Re-issued" in text
    assert "linkedin" not in text.lower()


def test_notification_for_a_record():
    record = {
        "id": "cid", "verifyUrl": "https://x/certs/cid", "recipient": {"id": "u1", "name": "N"},
        "course": {"id": "c1", "name": "Course"}, "certificateName": "Cert", "issuedDate": "2026-01-02",
        "certificate": {"issuer": {"name": "Org"}, "validUntil": "2027-01-02T00:00:00Z"},
    }
    note = notification_for(record, "issued", email="a@b.org", language="hi")
    assert (note.learnerId, note.issuerName, note.validUntil, note.courseName) == ("u1", "Org", "2027-01-02", "Course")
    assert NotificationRequest.model_validate_json(note.to_json()) == note


# ------------------------------------------------------------------ links


def test_learner_link_round_trip_and_tampering():
    secret = derive_link_secret("z-private-key")
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    url = learner_link("https://certs.example.org/", "user 1/é", secret, expires)
    parts_ = urlsplit(url)
    assert parts_.path == "/learners/user%201%2F%C3%A9"
    token = parse_qs(parts_.query)["token"][0]
    now = datetime(2029, 1, 1, tzinfo=UTC)
    assert verify_learner_token("user 1/é", token, secret, now)
    assert not verify_learner_token("user 2", token, secret, now)
    assert not verify_learner_token("user 1/é", token, derive_link_secret("other"), now)
    assert not verify_learner_token("user 1/é", token, secret, expires + timedelta(seconds=1))
    forged = str(int(expires.timestamp()) + 86400) + "." + token.split(".")[1]
    assert not verify_learner_token("user 1/é", forged, secret, now)
    for junk in ("", ".", "abc", "1.", "x.y"):
        assert not verify_learner_token("user 1/é", junk, secret, now)
    assert derive_link_secret("k", "configured") != derive_link_secret("k")
    assert learner_token("u", secret, 10) == learner_token("u", secret, 10)


def test_linkedin_url():
    url = linkedin_add_to_profile("Merit & honours", "Sunbird Academy", 2026, 3,
                                  "https://certs.example.org/certs/a?b=c", "a-b", 2028, 3,
                                  organization_id=1337)
    split = urlsplit(url)
    assert (split.scheme, split.netloc, split.path) == ("https", "www.linkedin.com", "/profile/add")
    query = parse_qs(split.query)
    assert query == {
        "startTask": ["CERTIFICATION_NAME"], "name": ["Merit & honours"],
        "organizationId": ["1337"], "organizationName": ["Sunbird Academy"],
        "issueYear": ["2026"], "issueMonth": ["3"], "expirationYear": ["2028"],
        "expirationMonth": ["3"], "certUrl": ["https://certs.example.org/certs/a?b=c"], "certId": ["a-b"],
    }
    assert url.startswith("https://www.linkedin.com/profile/add?startTask=CERTIFICATION_NAME&name=Merit%20%26%20honours")


# ------------------------------------------------------------------ SMTP


class Collector:
    """aiosmtpd handler: answers ``replies`` in turn (then 250), keeps accepted mail."""

    def __init__(self, replies: list[str] | None = None) -> None:
        self.replies = list(replies or [])
        self.messages: list[email.message.EmailMessage] = []
        self.attempts = 0

    async def handle_DATA(self, server, session, envelope):
        self.attempts += 1
        if self.replies:
            return self.replies.pop(0)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted"


@pytest.fixture
def smtp_server():
    started = []

    def start(handler: Collector) -> int:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        started.append(controller)
        return port

    yield start
    for controller in started:
        controller.stop()


def sender(port: int, **changes) -> tuple[SmtpSender, list[float]]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    config = SmtpConfig(host="127.0.0.1", port=port, sender="Certificates <certs@example.org>",
                        starttls=False, timeout=10, max_attempts=3, backoff=0.5, **changes)
    return SmtpSender(config, sleep=sleep), waits


async def test_sends_english_and_hindi_with_attachment(smtp_server):
    handler = Collector()
    smtp, _ = sender(smtp_server(handler), attach_pdf=True)
    outcome = await smtp.notify(request(), pdf=PDF)
    assert outcome.status == "sent" and outcome.attempts == 1
    outcome = await smtp.notify(request(language="hi-IN", email="b@example.org"), pdf=PDF)
    assert outcome.status == "sent"
    english, hindi = handler.messages
    assert english["To"].addresses[0].addr_spec == "asha@example.org"
    assert english["Subject"].startswith("Your certificate")
    assert hindi["Subject"].startswith("आपका प्रमाणपत्र")
    for received in (english, hindi):
        assert received.get_content_type() == "multipart/mixed"
        alternative = next(p for p in received.iter_parts() if p.get_content_type() == "multipart/alternative")
        assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
        assert request().certificateUrl in received.get_body(("plain",)).get_content()
        assert [a.get_content() for a in received.iter_attachments()] == [PDF]
    assert "प्रिय Asha Verma" in hindi.get_body(("plain",)).get_content()


async def test_no_attachment_unless_configured(smtp_server):
    handler = Collector()
    smtp, _ = sender(smtp_server(handler))
    assert (await smtp.notify(request(), pdf=PDF)).status == "sent"
    assert handler.messages[0].get_content_type() == "multipart/alternative"


async def test_retries_a_transient_refusal(smtp_server):
    handler = Collector(["451 4.3.0 Try again later"])
    smtp, waits = sender(smtp_server(handler))
    outcome = await smtp.notify(request())
    assert outcome.status == "sent" and outcome.attempts == 2
    assert handler.attempts == 2 and len(handler.messages) == 1
    assert len(waits) == 1 and 0.4 <= waits[0] <= 0.6


async def test_gives_up_after_max_attempts(smtp_server):
    handler = Collector(["451 busy"] * 5)
    smtp, waits = sender(smtp_server(handler))
    outcome = await smtp.notify(request())
    assert outcome.status == "failed" and outcome.attempts == 3 and outcome.code == 451
    assert len(waits) == 2 and waits[1] > waits[0] * 1.3  # exponential


async def test_permanent_failure_is_not_retried(smtp_server):
    handler = Collector(["550 5.1.1 No such user"])
    smtp, waits = sender(smtp_server(handler))
    outcome = await smtp.notify(request())
    assert outcome.status == "failed" and outcome.code == 550 and outcome.attempts == 1
    assert "No such user" in outcome.reason and waits == []


async def test_connection_refused_is_transient():
    smtp, waits = sender(free_port())
    outcome = await smtp.notify(request())
    assert outcome.status == "failed" and outcome.attempts == 3 and len(waits) == 2


async def test_skips_without_address_or_server(smtp_server):
    handler = Collector()
    smtp, _ = sender(smtp_server(handler))
    outcome = await smtp.notify(request(email=""))
    assert outcome.status == "skipped" and "no email address" in outcome.reason
    assert (await smtp.notify(request(email="not an address"))).status == "skipped"
    unconfigured = SmtpSender(SmtpConfig(host=""))
    assert (await unconfigured.notify(request())).status == "skipped"
    assert handler.messages == []
