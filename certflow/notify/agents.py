"""The notifier: email each learner about their certificates.

The registry publishes a :class:`NotificationRequest` on ``certificate.notifications``,
keyed by the learner id: for a new certificate once it holds it, for an
administrator's revocation once it has applied it. The generate flow, which knows
whom to email (the event's ``recipientEmail``) and why (issued or re-issued), passes
that on (:meth:`Notifier.intent`) when it keeps the certificate in the registry, in
the step that makes it: an email never reaches a learner before the pages it links
to (the certificate, the learner's page, the wallet offer) can show the
certificate. A certificate stored again (a redelivery) is not emailed again.

That topic has the learner tables' partition count, so the worker that
reads a learner's notifications holds the learner's profile: the address and the
language come from the request (the generate event's ``recipientEmail``) or, when it
has none, from the profile (``email``, ``language``), or else the address an earlier
generate event gave (the ``notify_contacts`` table: a revocation names no address).

Each notification ends as one of: ``sent`` (counted as success), ``skipped`` (no
address: counted as skipped, the reason logged; with no SMTP server configured no
request is published at all, and the skip is counted where it is made), or ``failed`` (the
server refused it, or every retry failed): dead-lettered on
``certificate.notifications.failed`` with the original payload, a code and the
server's message, by the settle mechanism every agent uses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import orjson
from faust.types import EventT

from certflow.accounting import Outcome
from certflow.errors import CertflowError, ErrorCode
from certflow.events.models import decode_json_object
from certflow.events.settle import Settler
from certflow.notify.links import derive_link_secret, learner_link
from certflow.notify.models import NotificationKind, NotificationRequest, notification_for
from certflow.notify.smtp import SmtpConfig, SmtpSender
from certflow.reference.state import LearnerState, keyed_table
from certflow.render.images import inline_remote_images
from certflow.services import CertflowServices

log = logging.getLogger(__name__)

#: The request's extra field carrying the certificate's SVG, when its PDF is attached.
SVG_FIELD = "svg"


@dataclass(frozen=True)
class NotificationIntent:
    """Why and to which address (the generate event's, or "" for the profile's) the
    learner is to be emailed about a certificate, once the registry holds it."""

    kind: NotificationKind
    email: str


def profile_contact(profile: Mapping[str, Any] | None) -> tuple[str, str]:
    """``(email, language)`` from a stored learner profile ("" when absent). Sunbird's
    user-read gives ``language`` as a list (``["Hindi"]``): its first entry is used."""
    if not profile:
        return "", ""
    email = profile.get("email")
    language = profile.get("language")
    if isinstance(language, list):
        language = language[0] if language else ""
    return (email.strip() if isinstance(email, str) else "",
            language.strip() if isinstance(language, str) else "")


def skip_reason(reason: str) -> str:
    """A skip's reason as a metric label (a closed set: an address is never a label)."""
    if "no email address" in reason:
        return "no_address"
    if "SMTP server" in reason:
        return "no_smtp_server"
    return "invalid_address"


class Notifier:
    """Publishes notification requests, and sends them (the notifier agent's handler)."""

    def __init__(
        self, app: faust.App, services: CertflowServices, settle: Settler, state: LearnerState
    ) -> None:
        settings = services.settings
        self.settings = settings
        self.services = services
        self.settle = settle
        self.state = state
        self.topic = app.topic(settings.topics.notifications, partitions=settings.partitions)
        self.sender = SmtpSender(SmtpConfig.from_settings(settings))
        #: The address a generate event gave for a learner without one in their
        #: profile, so that a later revocation reaches them too.
        self.contacts = keyed_table(app, settings, "notify_contacts", "userId → email from a generate event")

    def intent(self, kind: NotificationKind, *, email: str) -> NotificationIntent | None:
        """What the generate flow asks of the registry for a certificate it makes: to
        email the learner once it holds it; None (the skip counted here) without an
        SMTP server, as :meth:`publish`."""
        if not self._can_send():
            return None
        return NotificationIntent(kind, email)

    def _can_send(self) -> bool:
        """Whether an SMTP server is configured; without one nothing could ever be
        sent, and the skip is counted (``no_smtp_server``) where the email was asked for."""
        if self.sender.config.host:
            return True
        self.services.metrics.notifications.labels("skipped", "no_smtp_server").inc()
        return False

    async def publish(
        self,
        record: Mapping[str, Any],
        kind: NotificationKind,
        *,
        email: str = "",
        revoked_on: str = "",
        revocation_reason: str = "",
    ) -> None:
        """Ask for an email about ``record`` (an ``IssuedCertificate`` as a dict).

        With no SMTP server configured nothing could ever be sent, so no request is
        published: the skip is counted here (``no_smtp_server``), which spares every
        certificate a record, an event and a profile lookup.
        """
        if not self._can_send():
            return
        request = notification_for(record, kind, email=email or "", revoked_on=revoked_on,
                                   revocation_reason=revocation_reason)
        value: dict[str, Any] = request.model_dump(mode="json")
        if self.settings.notify_attach_pdf and kind != "revoked" and record.get("svg"):
            value[SVG_FIELD] = record["svg"]
        await self.topic.send(key=request.learnerId.encode(), value=orjson.dumps(value))

    async def notify(self, event: EventT[bytes]) -> None:
        await self.settle.settle(
            event,
            lambda: self._notify(event.value or b""),
            failed_topic=self.settings.topics.notifications_failed,
            stage="notify",
        )

    def _complete(self, request: NotificationRequest) -> NotificationRequest:
        """The address and language from the learner's profile where the request has
        none, and the learner's page link."""
        key = request.learnerId.encode()
        email, language = profile_contact(self.state.learners.get(key))
        if request.email and request.email != self.contacts.get(key):
            self.contacts[key] = request.email
        email = email or self.contacts.get(key) or ""
        secret = derive_link_secret(self.services.keys.current.private_key_multibase,
                                    self.settings.learner_link_secret)
        expires = datetime.now(UTC) + timedelta(days=self.settings.learner_link_days)
        return request.model_copy(update={
            "email": request.email or email,
            "language": request.language or language,
            "learnerPageUrl": request.learnerPageUrl
            or learner_link(self.settings.public_url, request.learnerId, secret, expires),
        })

    async def _notify(self, raw: bytes) -> Outcome:
        document = decode_json_object(raw, max_bytes=self.settings.max_event_bytes)
        svg = document.pop(SVG_FIELD, None)
        try:
            request = self._complete(NotificationRequest.model_validate(document))
        except ValueError as exc:
            raise CertflowError(ErrorCode.INVALID_PARAM_VALUE, f"not a notification request: {exc}") from None
        pdf = None
        if self.sender.config.attach_pdf and isinstance(svg, str) and request.email:
            images = self.services.images
            pdf = await self.services.renderer.render(
                request.certificateId, lambda: inline_remote_images(svg, images), "pdf",
                title=request.certificateName or None,
                lang=request.language or None,
            )
        outcome = await self.sender.notify(request, pdf=pdf)
        if outcome.status == "sent":
            self.services.metrics.notifications.labels("sent", "").inc()
            log.info("notified %s of certificate %s (%s)", request.learnerId, request.certificateId,
                     request.kind)
            return Outcome.SUCCESS
        if outcome.status == "skipped":
            log.info("notification of %s about %s skipped: %s", request.learnerId, request.certificateId,
                     outcome.reason, extra={"reason": outcome.reason})
            self.services.metrics.notifications.labels("skipped", skip_reason(outcome.reason)).inc()
            return Outcome.SKIPPED
        self.services.metrics.notifications.labels("failed", "").inc()
        code = f" (SMTP {outcome.code})" if outcome.code else ""
        raise CertflowError(
            ErrorCode.NOTIFICATION_FAILED,
            f"the email to the learner could not be sent after {outcome.attempts} attempt(s){code}: "
            f"{outcome.reason}",
        )


def register(app: faust.App, services: CertflowServices, settle: Settler, state: LearnerState) -> Notifier:
    """The notifier agent, reading ``certificate.notifications``."""
    notifier = Notifier(app, services, settle, state)

    async def send_notifications(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await notifier.notify(event)

    app.agent(notifier.topic, name="certflow.notify.send")(send_notifications)
    return notifier
