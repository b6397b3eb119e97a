"""Sending notification email over SMTP (aiosmtplib), with bounded retries.

Outcomes are data, not exceptions, so the agent decides what to publish: ``sent``;
``skipped`` (no address, no server configured: nothing to retry, with a reason);
``failed`` (a permanent refusal, 5xx, or transient failures on every attempt: the
agent dead-letters it with the error).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

import aiosmtplib

from certflow.notify.compose import compose
from certflow.notify.models import NotificationRequest

__all__ = ["SendOutcome", "SmtpConfig", "SmtpSender", "classify"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    sender: str = ""
    username: str = ""
    password: str = ""
    starttls: bool = True
    timeout: float = 30.0
    max_attempts: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0
    attach_pdf: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> SmtpConfig:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_seconds,
            max_attempts=settings.smtp_max_attempts,
            backoff=settings.smtp_backoff_seconds,
            backoff_max=settings.smtp_backoff_max_seconds,
            attach_pdf=settings.notify_attach_pdf,
        )


@dataclass(frozen=True)
class SendOutcome:
    status: Literal["sent", "skipped", "failed"]
    #: Why it was skipped, or the last error.
    reason: str = ""
    attempts: int = 0
    #: SMTP reply code of the last error, if the server answered one.
    code: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "attempts": self.attempts, "code": self.code}


def classify(exc: BaseException) -> tuple[bool, int | None]:
    """(permanent?, SMTP code) of a sending error: a 5xx answer is permanent (the
    address does not exist, the message is refused: retrying changes nothing);
    4xx answers, timeouts, refused or lost connections are transient."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        code = max(codes) if codes else None
        return (code is not None and code >= 500), code
    code = getattr(exc, "code", None)
    if isinstance(exc, aiosmtplib.SMTPResponseException) and isinstance(code, int):
        return code >= 500, code
    return False, None


Sleep = Callable[[float], Awaitable[None]]


class SmtpSender:
    """Sends messages through one SMTP server, a new connection per message
    (notifications are sparse; a pooled connection would time out between them)."""

    def __init__(self, config: SmtpConfig, *, sleep: Sleep = asyncio.sleep) -> None:
        self.config = config
        self._sleep = sleep

    def delay(self, attempt: int) -> float:
        """Wait after failed attempt ``attempt`` (1-based): exponential, capped, ±20% jitter."""
        base: float = min(self.config.backoff * (2 ** (attempt - 1)), self.config.backoff_max)
        return base * random.uniform(0.8, 1.2)

    async def _send_once(self, message: EmailMessage) -> None:
        config = self.config
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username or None,
            password=config.password or None,
            start_tls=config.starttls,
            timeout=config.timeout,
        )

    async def send(self, message: EmailMessage) -> SendOutcome:
        """Send ``message``, retrying transient failures up to ``max_attempts``."""
        attempts = max(self.config.max_attempts, 1)
        for attempt in range(1, attempts + 1):
            try:
                await self._send_once(message)
                return SendOutcome("sent", attempts=attempt)
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                permanent, code = classify(exc)
                reason = f"{type(exc).__name__}: {exc}"
                if permanent or attempt == attempts:
                    return SendOutcome("failed", reason=reason, attempts=attempt, code=code)
                wait = self.delay(attempt)
                log.warning("sending to %s failed (%s); attempt %d of %d in %.1fs",
                            message.get("To"), reason, attempt + 1, attempts, wait)
                await self._sleep(wait)
        raise AssertionError("unreachable")

    async def notify(self, request: NotificationRequest, *, pdf: bytes | None = None) -> SendOutcome:
        """Compose and send the email for ``request`` (the PDF attached only when
        ``attach_pdf`` is set and the caller rendered it)."""
        if not request.email:
            return SendOutcome("skipped", reason="the learner has no email address")
        if not self.config.host:
            return SendOutcome("skipped", reason="no SMTP server is configured (CERTFLOW_SMTP_HOST)")
        try:
            message = compose(request, sender=self.config.sender,
                              pdf=pdf if self.config.attach_pdf else None)
        except ValueError as exc:
            return SendOutcome("skipped", reason=f"the email address is not valid: {exc}")
        return await self.send(message)
