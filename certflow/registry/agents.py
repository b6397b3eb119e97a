"""The registry: every certificate by id, revocations, and the status lists.

* :meth:`Registry.keep` keeps each certificate in the ``certificates`` table,
  partitioned by certificate id, so ``GET /certs/{id}`` is answered by the worker
  that owns the id. The generate flow calls it in the step that makes and publishes
  the certificate: a certificate's id falls in its learner's partition
  (:mod:`certflow.credentials.identity`), which is the partition making it, so the
  registry need not read ``certificate.issued`` back (an event, a fetch and their
  accounting per certificate: reading it, the registry stored 230 certificates a
  second while 319 were published, with a million learners). In the same step it
  indexes the certificate's access code in that partition (``GET /verify`` asks
  every worker: :meth:`Registry.access_code_entries`) and, the first time it stores
  one, if the generate flow asked, asks for the learner's email
  (:mod:`certflow.notify.agents`). Credentials issued through the VC-API are kept
  the same way, from their own topic.
* ``apply_revocations`` marks a certificate revoked (a re-issue replaced it, or an
  admin revoked it) and asks the owner of its status list to set its bit. Only a
  certificate that exists is revoked: an admin's revocation needs the record here
  (the web view checks it first, on this same worker); a re-issue's may come
  before the record only for a certificate issued by a release whose registry read
  ``certificate.issued`` back and had not yet stored it (a record is now kept in the
  step that makes it: :meth:`Registry.keep`). The generate flow sends it only for a
  certificate it found issued to the same learner in the same course batch under
  the same name, and the revocation carries those facts: it is applied when the
  record arrives only if the record certifies them. Nothing
  else is ever recorded ahead of a certificate, so a predictable id cannot be
  revoked before it is issued.
* ``set_status_bits`` owns the status lists: one worker per list id, so concurrent
  revocations of two certificates in one list cannot lose each other's bit.

A certificate's status list entry follows from the message it was made from
(:mod:`certflow.registry.status`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import faust
import orjson
from faust.types import EventT, Message

from certflow.accounting import Outcome
from certflow.errors import CertflowError, ErrorCode
from certflow.events.models import decode_json_object
from certflow.events.settle import Settler
from certflow.notify.agents import NotificationIntent, Notifier
from certflow.pages.access import normalise_code
from certflow.reference.state import keyed_table
from certflow.registry.status import STATUS_LIST_ID, StatusSlot, status_list_id, status_list_url
from certflow.services import CertflowServices
from certflow.settings import Settings

log = logging.getLogger(__name__)

#: Most certificates one partition keeps under one access code (``GET /verify``
#: reads them all, in every partition).
MAX_PER_ACCESS_CODE = 64


def access_code_key(code: str, partition: int) -> bytes:
    """The ``access_codes`` key of ``code``'s certificates in one partition of
    ``certificate.issued``.

    Each partition indexes its own certificates, in the step that stores them: the
    index costs no second event (it was a record to a topic keyed by code, read back
    by the code's owner: an event, a produce and their accounting per certificate). A
    code's certificates are spread over partitions, so the partition is part of the
    key: two partitions never write one key, whichever store holds them, and a
    lookup reads the code's key in every partition.
    """
    return f"{code}@{partition}".encode()


class RevocationOrigin(StrEnum):
    """Who asked for a revocation, which decides what it needs to be recorded."""

    #: The admin endpoint: the certificate's record must be here.
    ADMIN = "admin"
    #: A re-issue the generate flow authorised (:func:`certflow.issue.rules.authorise_reissue`):
    #: recorded ahead of the record, applied when the record certifies the same facts.
    REISSUE = "reissue"


#: What a re-issue's revocation says the old certificate certifies (the record's fields).
CERTIFIED_FIELDS = ("recipientId", "courseId", "batchId", "certificateName")


def certified_facts(record: dict[str, Any]) -> dict[str, str]:
    """What a certificate record certifies, in the shape a re-issue's revocation names it."""
    return {
        "recipientId": str(record["recipient"]["id"]),
        "courseId": str(record["course"]["id"]),
        "batchId": str(record["batchId"]),
        "certificateName": str(record["certificateName"]).lower(),
    }


def recipient_lang(record: Mapping[str, Any]) -> str | None:
    """The language of the certificate's text, when its record says (else None): the
    PDF's and PNG's language, wherever a certificate is rendered."""
    lang = (record.get("related") or {}).get("language") or record.get("language")
    return str(lang) if lang else None


def stored_record(record: dict[str, Any]) -> dict[str, Any]:
    """What the registry keeps of a published certificate: everything but the drawing.

    The SVG is most of a record's bytes and is drawn again on demand from the
    record's ``rendering`` facts (:meth:`CertificateFactory.printable`), so table
    memory and changelog bytes do not grow with template size.
    """
    if record.get("rendering") is None:
        return record  # nothing to draw it from again: kept whole
    return {name: value for name, value in record.items() if name != "svg"}


def parse_revocation(key: bytes | str | None, value: bytes | None, *, max_bytes: int) -> dict[str, Any]:
    """A revocation request, checked; anything malformed is the event's fault
    (dead-lettered with a code), never a crash of the agent."""
    request = decode_json_object(value if value is not None else b"", max_bytes=max_bytes)
    certificate_id = request.get("certificateId")
    if not isinstance(certificate_id, str) or not certificate_id.strip():
        raise CertflowError(
            ErrorCode.MANDATORY_PARAMETER_MISSING, "Mandatory parameter certificateId is missing."
        )
    text_key = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if text_key != certificate_id:
        # The key routes it to the owner of the record: any other key would record
        # it in a partition that does not hold the certificate.
        raise CertflowError(ErrorCode.INVALID_PARAM_VALUE, "a revocation must be keyed by its certificateId")
    try:
        origin = RevocationOrigin(str(request.get("origin")))
    except ValueError:
        raise CertflowError(
            ErrorCode.INVALID_PARAM_VALUE,
            f"origin must be one of {[o.value for o in RevocationOrigin]}",
        ) from None
    for field in ("reason", "replacedBy", "requestedAt"):
        if not isinstance(request.get(field, ""), str):
            raise CertflowError(ErrorCode.INVALID_PARAM_VALUE, f"{field} must be a string")
    certifies = request.get("certifies")
    if origin is RevocationOrigin.REISSUE and not (
        isinstance(certifies, dict)
        and set(certifies) == set(CERTIFIED_FIELDS)
        and all(isinstance(v, str) and v for v in certifies.values())
        and request.get("replacedBy")
    ):
        raise CertflowError(
            ErrorCode.INVALID_PARAM_VALUE,
            "a re-issue's revocation names the certificate replacing it (replacedBy) and what "
            f"the old one certifies (certifies: {', '.join(CERTIFIED_FIELDS)})",
        )
    return {**request, "origin": origin}


class Registry:
    """The certificates, access codes and status lists tables, and the handlers of the agents."""

    def __init__(
        self, app: faust.App, settings: Settings, settle: Settler, notifier: Notifier | None = None
    ) -> None:
        self.settings = settings
        self.settle = settle
        #: Emails the learner about a new certificate once it is stored here, and when
        #: an administrator revokes one (a re-issue's revocation is told in the
        #: re-issue's own email).
        self.notifier = notifier
        topics = settings.topics
        self.revocation_requests = app.topic(topics.revocations)
        self.status_updates = app.topic(topics.status_updates)
        self.certificates = keyed_table(
            app, settings, "certificates", "certificate id → {record, revocation}"
        )
        self.status_lists = keyed_table(
            app, settings, "status_lists", "status list id → revoked indices, ascending"
        )
        self.access_codes = keyed_table(
            app, settings, "access_codes", "access code @ partition → [{id, recipient name, …}], newest last"
        )

    def status_slot(self, message: Message) -> StatusSlot:
        """The status list entry of a certificate made from ``message``."""
        return StatusSlot.of_message(
            message, topics=self.settings.topics, size=self.settings.status_list_size
        )

    def status_url(self, list_id: str) -> str:
        return status_list_url(self.settings.public_url, list_id)

    async def accounted(self, event: EventT, handle: Callable[[dict[str, Any]], Awaitable[Outcome]]) -> None:
        await self.settle.settle(
            event,
            lambda: handle(orjson.loads(event.value)),
            failed_topic=self.settings.topics.generate_failed,
            stage="registry",
        )

    async def store_certificate(self, event: EventT) -> None:
        """Keep the certificate an event carries (a VC-API credential's record)."""
        partition = event.message.partition
        await self.accounted(event, lambda record: self.keep(record, partition=partition))

    async def apply_revocation(self, event: EventT) -> None:
        max_bytes = self.settings.max_event_bytes
        await self.settle.settle(
            event,
            lambda: self._revoke(parse_revocation(event.key, event.value, max_bytes=max_bytes)),
            failed_topic=self.settings.topics.generate_failed,
            stage="registry",
        )

    async def set_status_bit(self, event: EventT) -> None:
        await self.accounted(event, self._set_bit)

    async def request_revocation(
        self,
        certificate_id: str,
        *,
        reason: str,
        origin: RevocationOrigin,
        replaced_by: str = "",
        certifies: dict[str, str] | None = None,
    ) -> None:
        """Revoke a certificate: recorded by its owner, then its status bit is set.

        ``certifies`` (a re-issue's): the learner, course, batch and certificate name
        the old certificate was found to certify in the learner's issued state.
        """
        value: dict[str, Any] = {
            "certificateId": certificate_id,
            "reason": reason,
            "replacedBy": replaced_by,
            "origin": origin.value,
            "requestedAt": datetime.now(UTC).isoformat(),
        }
        if certifies is not None:
            value["certifies"] = certifies
        await self.revocation_requests.send(key=certificate_id.encode(), value=orjson.dumps(value))

    async def keep(
        self, record: dict[str, Any], *, partition: int, notify: NotificationIntent | None = None
    ) -> Outcome:
        """Keep a certificate (``record``: as published, the SVG included) and index its
        access code, both in ``partition``, the current event's, which holds its id;
        the first time, set its status bit if a re-issue's revocation came first, and
        email its learner if the generate flow asked (``notify``): the pages the email
        links to show it now.

        Idempotent: a redelivered event keeps the same record again."""
        key = record["id"].encode()
        stored = self.certificates.get(key) or {}
        first_time = stored.get("record") is None
        revocation = stored.get("revocation")
        if revocation is not None and first_time:
            # A re-issue's revocation that came before the record (a certificate of a
            # release whose registry read certificate.issued back, not yet stored):
            # applied only if the record certifies what the re-issue found, and then
            # the bit is set now that the entry is known.
            expected = revocation.get("certifies")
            if expected is not None and expected != certified_facts(record):
                log.warning(
                    "revocation of %s dropped: it named %s, the certificate certifies %s",
                    record["id"],
                    expected,
                    certified_facts(record),
                )
                revocation = None
            elif expected is not None:
                revocation = {name: value for name, value in revocation.items() if name != "certifies"}
        self.certificates[key] = {"record": stored_record(record), "revocation": revocation}
        # Every time, not only the first: a worker lost between the two table writes
        # reads the record again and finds it stored but not yet indexed.
        self._index_access_code(record, partition)
        if revocation is not None and first_time:
            await self._send_status_bit(record)
        if notify is not None and self.notifier is not None and first_time:
            await self.notifier.publish(record, notify.kind, email=notify.email)
        return Outcome.SUCCESS

    def _index_access_code(self, record: dict[str, Any], partition: int) -> None:
        """Index the certificate under its printed access code, in its own partition."""
        code = normalise_code(str(record.get("accessCode") or ""))
        if not code:
            return
        key = access_code_key(code, partition)
        entries = list(self.access_codes.get(key) or [])
        if any(known["id"] == record["id"] for known in entries):
            return
        entry = {
            "id": record["id"],
            "accessCode": code,
            "recipient": {"name": (record.get("recipient") or {}).get("name", "")},
            "certificateName": record.get("certificateName", ""),
            "issuedDate": record.get("issuedDate", ""),
        }
        # Bounded: a code held by more than MAX_PER_ACCESS_CODE certificates of one
        # partition keeps its newest.
        self.access_codes[key] = [*entries, entry][-MAX_PER_ACCESS_CODE:]

    def access_code_entries(self, code: str, partitions: Iterable[int]) -> list[dict[str, Any]]:
        """The certificates this worker indexes under ``code`` in ``partitions`` (the
        partitions of ``certificate.issued``: a partition held elsewhere has no key
        here, and a lookup asks every worker), and under its key of before the index
        was partitioned (the bare code, on the code's owner), which a table kept from
        then still holds."""
        code = normalise_code(code)
        keys = [code.encode(), *(access_code_key(code, partition) for partition in partitions)]
        return [entry for key in keys for entry in self.access_codes.get(key) or []]

    async def _revoke(self, request: dict[str, Any]) -> Outcome:
        certificate_id = request["certificateId"]
        key = certificate_id.encode()
        stored = dict(self.certificates.get(key) or {"record": None, "revocation": None})
        if stored["revocation"] is not None:
            return Outcome.SKIPPED  # already revoked
        record = stored["record"]
        certifies = request.get("certifies")
        if record is None and request["origin"] is not RevocationOrigin.REISSUE:
            raise CertflowError(
                ErrorCode.CERTIFICATE_NOT_FOUND,
                f"no certificate {certificate_id}: only a certificate that exists can be revoked",
            )
        if record is not None and certifies is not None and certifies != certified_facts(record):
            raise CertflowError(
                ErrorCode.OLD_ID_MISMATCH,
                f"certificate {certificate_id} does not certify what its re-issue replaces ({certifies})",
            )
        revocation = {
            "reason": request.get("reason") or "revoked",
            "replacedBy": request.get("replacedBy", ""),
            "revokedAt": request.get("requestedAt") or datetime.now(UTC).isoformat(),
            **({"certifies": certifies} if record is None and certifies is not None else {}),
        }
        stored["revocation"] = revocation
        self.certificates[key] = stored
        if record is not None:
            await self._send_status_bit(record)
            # A VC-API credential has no learner record to email (no verify URL).
            if self.notifier is not None and request["origin"] is RevocationOrigin.ADMIN \
                    and record.get("verifyUrl") and (record.get("recipient") or {}).get("id"):
                await self.notifier.publish(record, "revoked", revoked_on=revocation["revokedAt"][:10],
                                            revocation_reason=revocation["reason"])
        return Outcome.SUCCESS

    async def _send_status_bit(self, record: dict[str, Any]) -> None:
        status = record["certificate"].get("credentialStatus")
        if not status:
            return  # issued without a status entry: the registry's flag is the only record
        list_id = status_list_id(str(status.get("statusListCredential", "")))
        if not STATUS_LIST_ID.fullmatch(list_id):
            # A VC-API caller's own credentialStatus names a list this deployment
            # does not publish: the registry's flag is the only record.
            return
        await self.status_updates.send(
            key=list_id.encode(),
            value=orjson.dumps({"list": list_id, "index": int(status["statusListIndex"])}),
        )

    async def _set_bit(self, update: dict[str, Any]) -> Outcome:
        key = update["list"].encode()
        revoked = set(self.status_lists.get(key) or [])
        if update["index"] in revoked:
            return Outcome.SKIPPED
        revoked.add(update["index"])
        self.status_lists[key] = sorted(revoked)
        return Outcome.SUCCESS

    def certificate(self, certificate_id: str) -> dict[str, Any] | None:
        """What this worker knows of a certificate: ``{record, revocation}``."""
        return self.certificates.get(certificate_id.encode())

    def revoked_indices(self, list_id: str) -> list[int]:
        return list(self.status_lists.get(list_id.encode()) or [])


def register(
    app: faust.App, services: CertflowServices, settle: Settler, notifier: Notifier | None = None
) -> Registry:
    """The registry's tables and its two agents (certificates are kept by the
    generate flow, in the step that makes them: :meth:`Registry.keep`)."""
    registry = Registry(app, services.settings, settle, notifier)

    async def apply_revocations(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await registry.apply_revocation(event)

    async def set_status_bits(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await registry.set_status_bit(event)

    app.agent(registry.revocation_requests, name="certflow.registry.revocations")(apply_revocations)
    app.agent(registry.status_updates, name="certflow.registry.status")(set_status_bits)
    return registry
