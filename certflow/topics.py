"""The names of the Kafka topics certflow reads and writes."""

from __future__ import annotations

from functools import cache


class TopicNames:
    """The topic names a deployment uses, with ``topic_prefix`` applied.

    Sunbird deploys its topics as ``{env}.generate.certificate.request``; the same
    prefix here lets certflow replace a Sunbird job without renaming a producer.
    """

    def __init__(self, prefix: str) -> None:
        def name(base: str) -> str:
            return f"{prefix}.{base}" if prefix else base

        #: Sunbird's issue-certificate job requests (a batch, a course, learners).
        self.issue_request = name("issue.certificate.request")
        #: Rejected issue requests, with the original payload and an error code.
        self.issue_failed = name("issue.certificate.failed")
        #: Sunbird's generate-certificate job requests (template, recipients, issuer …).
        self.generate_request = name("generate.certificate.request")
        #: Rejected generate requests and recipients whose certificate could not be made.
        self.generate_failed = name("generate.certificate.failed")
        #: Internal: one generate request per recipient, keyed by recipient id, so a
        #: learner's certificates are made in one partition, in order.
        self.generate_recipients = name("certflow.generate.recipients")
        #: The sink: one record per certificate, keyed by certificate id (placed in the
        #: learner's partition: :mod:`certflow.credentials.identity`).
        self.certificate_issued = name("certificate.issued")
        #: Sunbird's AUDIT telemetry for each issued certificate.
        self.telemetry = name("telemetry.raw")
        #: Every eligibility decision: issued, or skipped with a reason (key userId).
        self.decisions = name("certificate.decisions")
        #: Internal: one eligibility job per learner (key userId), or a batch sweep
        #: sent to every partition when a request names no learners.
        self.eligibility = name("certflow.eligibility")
        #: Revocations of certificates, from re-issues and the admin endpoint
        #: (key certificate id, so the certificate's owner records it first).
        self.revocations = name("certflow.revocations")
        #: Internal: bits to set in a status list (key status list id, so one worker
        #: owns each list).
        self.status_updates = name("certflow.status.updates")
        #: Emails to send to learners about their certificates (key userId: the
        #: learner tables' partitioning, so the notifier holds the learner's profile).
        self.notifications = name("certificate.notifications")
        #: Notifications that could not be sent, with the original payload and the error.
        self.notifications_failed = name("certificate.notifications.failed")
        #: Internal: credentials issued through the VC-API (key: their registry id),
        #: and the status-slot reservations made before signing them.
        self.vcapi_issued = name("certflow.vcapi.issued")
        #: Reference data: course batches with their templates (key batchId).
        self.batches = name("certflow.batches")
        #: Reference data: Sunbird `user_enrolments` rows (key userId).
        self.enrolments = name("certflow.enrolments")
        #: Reference data: Sunbird `user_activity_agg` rows (key userId).
        self.scores = name("certflow.scores")
        #: Reference data: learner profiles, as Sunbird's user-read response (key userId).
        self.learners = name("certflow.learners")

    @staticmethod
    @cache
    def with_prefix(prefix: str) -> TopicNames:
        """The names for ``prefix``, one shared instance each (never changed after)."""
        return TopicNames(prefix)

    def all(self) -> list[str]:
        """Every topic certflow reads or writes, for ``certflow topics``."""
        return list(vars(self).values())

    def compacted(self) -> list[str]:
        """The topics that keep only the newest record of each key
        (``cleanup.policy=compact``), wherever they are created (``certflow topics``,
        the Strimzi resources).

        ``certificate.issued`` is keyed by certificate id, each record the whole
        certificate: the newest record of each key is all its readers (Sunbird's
        services, ``certflow export``) need, and it must never expire.
        """
        return [self.certificate_issued]
