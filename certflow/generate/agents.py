"""The generate flow: ``generate.certificate.request`` → ``certificate.issued``.

Two agents, thin glue around :mod:`certflow.generate.factory`:

* ``split_generate_requests`` reads Sunbird generate requests (raw bytes, any key)
  and validates them. A request for one recipient that is already in that
  learner's partition (every request the issue flow makes is keyed by learner) is
  made right there; any other is re-published, one request per recipient keyed by
  recipient id, so every learner's certificates are made in that learner's
  partition.
* ``issue_certificates`` makes each forwarded recipient's certificate.

A certificate is published with Sunbird's AUDIT telemetry and kept in the registry
in the same step: its id falls in its learner's partition, the one making it
(:mod:`certflow.credentials.identity`).

Nothing that is wrong with an event stops an agent: it is dead-lettered to
``generate.certificate.failed`` with its original bytes and an error code, and the
partition moves on.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import faust
from faust.types import EventT

from certflow.accounting import Outcome
from certflow.events.records import AuditEvent, Decision
from certflow.events.settle import Settler, event_source, failures_at, source_headers
from certflow.generate.models import GenerateCertificateRequest, generate_request_parser
from certflow.issue.rules import IssuedEntry, SkipReason, already_issued, authorise_reissue
from certflow.notify.agents import Notifier
from certflow.notify.models import NotificationKind
from certflow.reference.models import enrolment_slot
from certflow.reference.state import LearnerState
from certflow.registry.agents import Registry, RevocationOrigin
from certflow.registry.status import StatusSlot
from certflow.services import CertflowServices


class GenerateFlow:
    """The generate flow's handlers; its agents call :meth:`split_request` and :meth:`issue_certificate`."""

    def __init__(
        self,
        app: faust.App,
        services: CertflowServices,
        settle: Settler,
        state: LearnerState,
        registry: Registry,
        notifier: Notifier | None = None,
    ) -> None:
        settings = services.settings
        self.app = app
        self.settings = settings
        self.services = services
        self.settle = settle
        self.state = state
        self.registry = registry
        self.notifier = notifier
        topics = settings.topics
        self.recipient_requests = app.topic(topics.generate_recipients, partitions=settings.partitions)
        self.issued_certificates = app.topic(topics.certificate_issued)
        self.telemetry = app.topic(topics.telemetry)
        self.parse_generate_request = generate_request_parser(settings)

    async def split_request(self, event: EventT) -> None:
        """Validate one generate request; make it here if it is one learner's and in that
        learner's partition, or else fan it out, one event per recipient."""
        await self.settle.settle(
            event,
            lambda: self._split(event),
            failed_topic=self.settings.topics.generate_failed,
            stage="intake",
        )

    async def _split(self, event: EventT) -> Outcome:
        request = self.parse_generate_request(event.value)
        if self._in_learners_partition(event, request):
            # Forwarding it to the recipients topic would only bring it back to this
            # partition, at the cost of another produce, fetch and event (about as much
            # CPU as making the certificate, measured).
            with failures_at("recipient"):
                return await self._issue(event, request)
        headers = source_headers(event_source(event))
        for single in request.per_recipient():
            await self.recipient_requests.send(
                key=single.recipient.recipientId.encode(), value=single.to_json(), headers=headers
            )
        self.services.accounting.add(event.message.topic, "recipients-emitted-count", len(request.edata.data))
        return Outcome.SUCCESS

    def _in_learners_partition(self, event: EventT, request: GenerateCertificateRequest) -> bool:
        """Whether this request is for one learner whose tables this partition holds."""
        message = event.message
        return (
            len(request.edata.data) == 1
            and self.app.consumer.topic_partitions(message.topic) == self.settings.partitions
            and self.state.learner_partition(request.recipient.recipientId) == message.partition
        )

    async def issue_certificate(self, event: EventT) -> None:
        """Make one recipient's certificate and publish it with its AUDIT event."""
        await self.settle.settle(
            event,
            lambda: self._issue(event, self.parse_generate_request(event.value)),
            failed_topic=self.settings.topics.generate_failed,
            stage="recipient",
        )

    async def _issue(self, event: EventT, request: GenerateCertificateRequest) -> Outcome:
        """Sunbird's already-issued check, made atomic by running in the learner's
        partition, then the certificate. A certificate whose id is already issued (a
        replay), or a different one of the same name without ``oldId``, is skipped.

        A re-issue (``oldId``) is checked here too, in the partition that holds the
        learner's issued state: it may replace only the certificate this learner holds
        under this name in this course batch (:func:`authorise_reissue`); any other
        ``oldId`` fails the request (``OLD_ID_NOT_FOUND``, ``OLD_ID_MISMATCH``), and
        nothing is made or revoked. The entry of this very certificate (a replay, or
        the pending request the issue flow recorded after deciding its ``oldId`` from
        the same state) was authorised when it was recorded.
        """
        edata, recipient = request.edata, request.recipient
        slot = enrolment_slot(edata.related.courseId, edata.related.batchId)
        certificate_id = request.certified_facts().certificate_id(self.settings.partitions)
        status = self.registry.status_slot(event.message)
        existing = self.state.issued_entries(recipient.recipientId, slot).get(edata.name.lower())
        if existing is not None and already_issued(
            existing, certificate_id, replaces=edata.oldId, message=status.entry_id
        ):
            await self.state.publish_decision(
                _already_issued(request, existing), counted_under=event.message.topic
            )
            return Outcome.SKIPPED
        revoke_old = bool(edata.oldId)
        if edata.oldId and (existing is None or existing.id != certificate_id):
            revoke_old = authorise_reissue(
                edata.oldId,
                name=edata.name,
                slot=slot,
                issued=self.state.learner_issued(recipient.recipientId),
                sunbird_issued=self.state.sunbird_issued(recipient.recipientId, slot),
            )
        try:
            await self._make_certificate(event, request, slot, status, revoke_old=revoke_old)
        except Exception:
            # Whatever went wrong, a pending decision must not block a later retry.
            self.state.forget_issued(recipient.recipientId, slot, edata.name, certificate_id)
            raise
        return Outcome.SUCCESS

    async def _make_certificate(
        self,
        event: EventT,
        request: GenerateCertificateRequest,
        slot: str,
        status: StatusSlot,
        *,
        revoke_old: bool,
    ) -> None:
        edata, recipient = request.edata, request.recipient
        source = event_source(event)
        # Deterministic inputs only: a redelivered event re-creates this certificate
        # byte for byte (its time is the original request's, its status slot this
        # message's).
        now = datetime.fromtimestamp(source.timestamp, UTC) if source.timestamp else datetime.now(UTC)
        certificate = await self.services.certificates.issue(
            request,
            now=now,
            status_list_url=self.registry.status_url(status.list_id),
            status_index=status.index,
        )
        published = certificate.to_json()
        await self.issued_certificates.send(key=certificate.id.encode(), value=published)
        if source.timestamp:
            self.services.metrics.certificate_latency.observe(max(0.0, time.time() - source.timestamp))
        audit = AuditEvent.certificate_issued(certificate, now=now)
        await self.telemetry.send(key=recipient.recipientId.encode(), value=audit.to_json())
        # The learner is emailed by the registry once it holds the certificate (a
        # re-issue's email says it replaces the old one): see certflow.notify.agents.
        kind: NotificationKind = "reissued" if edata.oldId else "issued"
        notify = (self.notifier.intent(kind, email=recipient.recipientEmail or "")
                  if self.notifier is not None else None)
        await self.registry.keep(certificate.to_document(), partition=event.message.partition, notify=notify)
        self.state.record_issued(
            recipient.recipientId,
            slot,
            IssuedEntry(
                id=certificate.id,
                name=edata.name,
                template_id=edata.templateId,
                old_id=edata.oldId,
                status="issued",
                made_from=status.entry_id,
            ),
        )
        if edata.oldId and revoke_old:
            # A re-issue replaces the old certificate: it stops verifying. The
            # revocation names what the old one was found to certify, which the
            # registry checks against the record (which may come after it, for a
            # certificate of a release that read certificate.issued back).
            await self.registry.request_revocation(
                edata.oldId,
                reason="re-issued",
                replaced_by=certificate.id,
                origin=RevocationOrigin.REISSUE,
                certifies={
                    "recipientId": recipient.recipientId,
                    "courseId": edata.related.courseId,
                    "batchId": edata.related.batchId,
                    "certificateName": edata.name.lower(),
                },
            )


def _already_issued(request: GenerateCertificateRequest, existing: IssuedEntry) -> Decision:
    edata = request.edata
    return Decision(
        requestId=request.mid,
        stage="generate",
        userId=request.recipient.recipientId,
        batchId=edata.related.batchId,
        courseId=edata.related.courseId,
        templateId=edata.templateId,
        certificateName=edata.name,
        decision="skipped",
        reason=SkipReason.ALREADY_ISSUED.value,
        detail="a certificate of this name was issued",
        certificateId=existing.id,
        oldId=edata.oldId,
        decidedAt=datetime.now(UTC).isoformat(),
    )


def register(
    app: faust.App, services: CertflowServices, settle: Settler, state: LearnerState, registry: Registry,
    notifier: Notifier | None = None,
) -> GenerateFlow:
    """The generate flow's two agents: split requests, make each recipient's certificate."""
    flow = GenerateFlow(app, services, settle, state, registry, notifier)

    async def split_generate_requests(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await flow.split_request(event)

    async def issue_certificates(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await flow.issue_certificate(event)

    topic = app.topic(services.settings.topics.generate_request)
    app.agent(topic, name="certflow.generate.split")(split_generate_requests)
    app.agent(flow.recipient_requests, name="certflow.generate.issue")(issue_certificates)
    return flow
