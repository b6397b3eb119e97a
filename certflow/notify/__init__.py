"""Telling learners about their certificates: the notification request, the email,
SMTP delivery, signed learner-page links and LinkedIn's add-to-profile link.

Pure functions and plain I/O, no Faust: the notifier agent (issue 14) reads
:class:`NotificationRequest` from ``certificate.notifications`` and calls
:meth:`SmtpSender.notify`.
"""

from certflow.notify.compose import MESSAGES, compose, pick_language
from certflow.notify.i18n import lang_of, text_direction
from certflow.notify.links import (
    derive_link_secret,
    learner_link,
    learner_token,
    linkedin_add_to_profile,
    verify_learner_token,
)
from certflow.notify.models import NotificationKind, NotificationRequest, notification_for
from certflow.notify.smtp import SendOutcome, SmtpConfig, SmtpSender, classify

__all__ = [
    "MESSAGES",
    "NotificationKind",
    "NotificationRequest",
    "SendOutcome",
    "SmtpConfig",
    "SmtpSender",
    "classify",
    "compose",
    "derive_link_secret",
    "lang_of",
    "learner_link",
    "learner_token",
    "linkedin_add_to_profile",
    "notification_for",
    "pick_language",
    "text_direction",
    "verify_learner_token",
]
