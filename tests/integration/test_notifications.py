"""Learners are emailed about their certificates: a real SMTP server (aiosmtpd),
started by the test, receives what the notifier sends."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from email.message import EmailMessage

import orjson
import pytest
from aiosmtpd.controller import Controller

from certflow.broker import free_port
from certflow.notify.compose import MESSAGES
from tests.integration.conftest import FIXTURES, Deployment
from tests.integration.test_credentials_flow import first_of_each_learner

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "notify-admin-token"


class Inbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        if any(rcpt.startswith("refused-") for rcpt in envelope.rcpt_tos):
            return "550 5.1.1 mailbox unavailable"
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str, timeout: float = 60.0) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for message in self.messages:
                    if address in str(message["To"]):
                        return message
            time.sleep(0.2)
        raise AssertionError(f"no mail to {address}; got {[str(m['To']) for m in self.messages]}")


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    handler = Inbox()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture(scope="module")
def deployment(broker, inbox, tmp_path_factory) -> Iterator[Deployment]:
    public_port = free_port()
    running = Deployment(broker, tmp_path_factory.mktemp("notify"), {
        "CERTFLOW_LOG_LEVEL": "warn",
        "CERTFLOW_PUBLIC_URL": f"http://127.0.0.1:{public_port}",
        "CERTFLOW_SMTP_HOST": "127.0.0.1",
        "CERTFLOW_SMTP_PORT": str(inbox.port),
        "CERTFLOW_SMTP_FROM": "Certificates <certs@example.org>",
        "CERTFLOW_SMTP_STARTTLS": "false",
        "CERTFLOW_NOTIFY_ATTACH_PDF": "true",
        "CERTFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
    })
    running.start_worker(CERTFLOW_WEB_PORT=str(public_port))
    yield running
    running.stop()


def generate_event(batch: str, learners: list[dict[str, str]], base_path: str) -> bytes:
    event = orjson.loads((FIXTURES / "sunbird" / "certgen_EVENT_3_generate_certificate_no_oldId.json").read_bytes())
    event["edata"].update(svgTemplate="course-completion.svg", basePath=base_path, oldId="", data=learners)
    event["edata"]["related"]["batchId"] = batch
    return orjson.dumps(event)


def page_at(url: str) -> str:
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "text/html"}),
                                timeout=30) as response:
        return response.read().decode()


def test_learners_are_emailed_in_their_language_with_link_and_pdf(deployment, inbox) -> None:
    run = uuid.uuid4().hex[:8]
    hindi, english, silent = f"{run}-hi", f"{run}-en", f"{run}-none"
    # The Hindi learner's address and language are in the profile; the English
    # learner's address is in the generate event (Sunbird's recipientEmail).
    deployment.send_keyed(deployment.topics.learners, [
        (hindi.encode(), orjson.dumps({"id": hindi, "firstName": "प्रिया", "lastName": "शर्मा",
                                       "email": f"{hindi}@example.org", "language": ["Hindi"]})),
    ])
    deployment.wait_for_reference(batches=0)
    base_path = f"{deployment.settings['CERTFLOW_PUBLIC_URL']}/certs"
    deployment.send(deployment.topics.generate_request, [generate_event(f"b-{run}", [
        {"recipientId": hindi, "recipientName": "प्रिया शर्मा"},
        {"recipientId": english, "recipientName": "Asha Rao", "recipientEmail": f"{english}@example.org"},
        {"recipientId": silent, "recipientName": "No Address"},
    ], base_path)])
    records = {r["recipient"]["id"]: r for r in deployment.collect(
        deployment.topics.certificate_issued, 3, first_of_each_learner(f"b-{run}"))}

    mail = inbox.to(f"{hindi}@example.org")
    assert mail["Subject"] == MESSAGES["hi"]["subject.issued"].format(
        name="प्रिया शर्मा", certificate=records[hindi]["certificateName"],
        course=records[hindi]["course"]["name"], issuer="", date="", reason="")
    text = mail.get_body(("plain",)).get_content()
    assert records[hindi]["verifyUrl"] in text
    assert f"/learners/{hindi}?token=" in text
    # The learner's page: the signed link opens every certificate of the learner.
    # The email is sent once the registry holds the certificate, so the pages it
    # links to show it as soon as it arrives: asked once, not polled.
    link = next(word for word in text.split() if f"/learners/{hindi}?token=" in word)
    page = page_at(link)
    assert records[hindi]["id"] in page
    assert "प्रिया शर्मा" in page and "Add to LinkedIn profile" in page
    assert records[hindi]["id"] in page_at(records[hindi]["verifyUrl"])  # the worker is the public URL
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(link[:-3] + "AAA", timeout=30)
    assert refused.value.code == 404
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content().startswith(b"%PDF")

    mail = inbox.to(f"{english}@example.org")
    assert mail["Subject"] == MESSAGES["en"]["subject.issued"].format(
        name="Asha Rao", certificate=records[english]["certificateName"],
        course=records[english]["course"]["name"], issuer="", date="", reason="")
    assert records[english]["verifyUrl"] in mail.get_body(("plain",)).get_content()

    # An administrator's revocation is emailed too, with its reason.
    revoke = urllib.request.Request(
        f"{deployment.workers[0].web_url}/certs/{records[english]['id']}/revoke", method="POST",
        data=b'{"reason": "issued to the wrong batch"}',
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(revoke, timeout=30) as answer:
        assert answer.status == 202
    subject = MESSAGES["en"]["subject.revoked"].format(
        name="Asha Rao", certificate=records[english]["certificateName"],
        course=records[english]["course"]["name"], issuer="", date="", reason="")
    deadline = time.monotonic() + 60
    while not any(m["Subject"] == subject for m in list(inbox.messages)):
        assert time.monotonic() < deadline, "no revocation email"
        time.sleep(0.2)
    revoked = next(m for m in list(inbox.messages) if m["Subject"] == subject)
    assert "issued to the wrong batch" in revoked.get_body(("plain",)).get_content()

    # No address: nothing sent, counted as skipped with its reason.
    def skipped() -> bool:
        metrics = deployment.workers[0].get("/metrics")[1].decode()
        return 'certflow_notifications_total{outcome="skipped",reason="no_address"} 1.0' in metrics
    deadline = time.monotonic() + 30
    while not skipped():
        assert time.monotonic() < deadline, "the skip was never counted"
        time.sleep(0.2)
    assert not any(silent in str(m["To"]) for m in inbox.messages)


def test_a_refused_email_is_dead_lettered_with_the_servers_answer(deployment, inbox) -> None:
    run = uuid.uuid4().hex[:8]
    learner = f"{run}-refused"
    base_path = f"{deployment.settings['CERTFLOW_PUBLIC_URL']}/certs"
    deployment.send(deployment.topics.generate_request, [generate_event(f"r-{run}", [
        {"recipientId": learner, "recipientName": "Ravi Kumar", "recipientEmail": f"refused-{run}@example.org"},
    ], base_path)])
    [failed] = deployment.collect(deployment.topics.notifications_failed, 1,
                                  lambda r: learner in r["payload"])
    assert failed["errorCode"] == "NOTIFICATION_FAILED" and failed["stage"] == "notify"
    assert "550" in failed["errorMessage"], failed["errorMessage"]
    assert orjson.loads(failed["payload"])["email"] == f"refused-{run}@example.org"


def test_certflow_issue_certifies_a_roster_and_its_learners_are_emailed(deployment, inbox, tmp_path) -> None:
    run = uuid.uuid4().hex[:8]
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "name,id,email\n"
        f"Lakshmi Iyer,{run}-r1,{run}-r1@example.org\n"
        f"अमित कुमार,{run}-r2,\n"
        f"Bad Address,{run}-r3,not-an-address\n",
        encoding="utf-8",
    )
    env = {**os.environ, **deployment.settings}
    done = subprocess.run(
        [sys.executable, "-m", "certflow", "issue", str(roster), "--template", "course-completion.svg",
         "--course-name", "Algebra I", "--batch", f"roster-{run}", "--issuer-name", "NCERT",
         "--issuer-url", "https://ncert.nic.in/"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 1, done.stderr  # one line rejected
    assert "line 4:" in done.stderr and "2 accepted, 1 rejected; sent 2" in done.stderr
    records = deployment.collect(deployment.topics.certificate_issued, 2, first_of_each_learner(f"roster-{run}"))
    assert sorted(r["recipient"]["id"] for r in records) == [f"{run}-r1", f"{run}-r2"]
    mail = inbox.to(f"{run}-r1@example.org")
    assert "Algebra I" in mail.get_body(("plain",)).get_content()
