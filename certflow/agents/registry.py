"""The registry: every certificate by id, revocations, and the status lists.

* ``store_certificates`` keeps each published certificate in the ``certificates``
  table, partitioned by certificate id (the key of ``certificate.issued``), so
  ``GET /certs/{id}`` is answered by the worker that owns the id.
* ``apply_revocations`` marks a certificate revoked (a re-issue replaced it, or an
  admin revoked it) and asks the owner of its status list to set its bit. Only a
  certificate that exists is revoked: an admin's revocation needs the record here
  (the web view checks it first, on this same worker); a re-issue's may arrive
  before the record (the two travel on different topics), but the generate flow
  sends it only for a certificate it found issued to the same learner in the same
  course batch under the same name, and the revocation carries those facts: it is
  applied when the record arrives only if the record certifies them. Nothing
  else is ever recorded ahead of a certificate, so a predictable id cannot be
  revoked before it is issued.
* ``set_status_bits`` owns the status lists: one worker per list id, so concurrent
  revocations of two certificates in one list cannot lose each other's bit.

A certificate's status list entry follows from the message it was made from
(``StatusSlot.of_message``): unique, and the same if that message is redelivered.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import faust
import orjson
from faust.types import EventT, Message

from certflow.accounting import Outcome
from certflow.agents.dead_letters import settle
from certflow.agents.reference import keyed_table
from certflow.app import app, settings
from certflow.errors import CertflowError, ErrorCode
from certflow.models.events import decode_json_object

log = logging.getLogger(__name__)

topics = settings.topics
certificate_records = app.topic(topics.certificate_issued)
revocation_requests = app.topic(topics.revocations)
status_updates = app.topic(topics.status_updates)

certificates = keyed_table("certificates", "certificate id → {record, revocation}")
status_lists = keyed_table("status_lists", "status list id → revoked indices, ascending")


#: The topics certificates are made from, and the prefix of their status lists' ids.
_CERTIFICATE_STREAMS = {topics.generate_recipients: "", topics.generate_request: "g"}
#: What a status list id looks like (``/status/{list}`` refuses anything else).
STATUS_LIST_ID = re.compile(
    f"(?:{'|'.join(re.escape(stream) for stream in _CERTIFICATE_STREAMS.values())})[0-9]+-[0-9]+"
)


@dataclass(frozen=True)
class StatusSlot:
    """Where a certificate's revocation bit lives."""

    list_id: str
    index: int

    @classmethod
    def of_message(cls, message: Message) -> StatusSlot:
        """The slot of a certificate made from ``message``.

        Offsets are unique in a partition and the same on every redelivery, so the
        slot needs no allocation state and a re-created certificate gets the same
        one: list ``{stream}{partition}-{offset // size}``, index ``offset % size``,
        where the stream tells apart the two topics certificates are made from.
        """
        size = settings.status_list_size
        stream = _CERTIFICATE_STREAMS[message.topic]
        return cls(f"{stream}{message.partition}-{message.offset // size}", message.offset % size)

    @property
    def entry_id(self) -> str:
        """``{list}#{index}``: unique to the message the certificate was made from."""
        return f"{self.list_id}#{self.index}"

    @property
    def url(self) -> str:
        return f"{settings.public_url.rstrip('/')}/status/{self.list_id}"


class RevocationOrigin(StrEnum):
    """Who asked for a revocation, which decides what it needs to be recorded."""

    #: The admin endpoint: the certificate's record must be here.
    ADMIN = "admin"
    #: A re-issue the generate flow authorised (:func:`certflow.eligibility.authorise_reissue`):
    #: recorded ahead of the record, applied when the record certifies the same facts.
    REISSUE = "reissue"


#: What a re-issue's revocation says the old certificate certifies (the record's fields).
CERTIFIED_FIELDS = ("recipientId", "courseId", "batchId", "certificateName")


async def request_revocation(
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
    await revocation_requests.send(key=certificate_id.encode(), value=orjson.dumps(value))


def certified_facts(record: dict[str, Any]) -> dict[str, str]:
    """What a certificate record certifies, in the shape a re-issue's revocation names it."""
    return {
        "recipientId": str(record["recipient"]["id"]),
        "courseId": str(record["course"]["id"]),
        "batchId": str(record["batchId"]),
        "certificateName": str(record["certificateName"]).lower(),
    }


@app.agent(certificate_records, name="certflow.registry.certificates")
async def store_certificates(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        await _accounted(event, _store_certificate)


@app.agent(revocation_requests, name="certflow.registry.revocations")
async def apply_revocations(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        await settle(
            event, lambda: _revoke(parse_revocation(event.key, event.value)),
            failed_topic=topics.generate_failed, stage="registry",
        )


@app.agent(status_updates, name="certflow.registry.status")
async def set_status_bits(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        await _accounted(event, _set_bit)


async def _accounted(event: EventT, handle: Any) -> None:
    await settle(
        event, lambda: handle(orjson.loads(event.value)), failed_topic=topics.generate_failed, stage="registry"
    )


async def _store_certificate(record: dict[str, Any]) -> Outcome:
    key = record["id"].encode()
    stored = certificates.get(key) or {}
    revocation = stored.get("revocation")
    if revocation is not None and stored.get("record") is None:
        # A re-issue's revocation that arrived before the record (the topics are
        # not ordered with each other): applied only if the record certifies what
        # the re-issue found, and then the bit is set now that the entry is known.
        expected = revocation.get("certifies")
        if expected is not None and expected != certified_facts(record):
            log.warning(
                "revocation of %s dropped: it named %s, the certificate certifies %s",
                record["id"], expected, certified_facts(record),
            )
            revocation = None
        elif expected is not None:
            revocation = {name: value for name, value in revocation.items() if name != "certifies"}
    certificates[key] = {"record": record, "revocation": revocation}
    if revocation is not None and stored.get("record") is None:
        await _send_status_bit(record)
    return Outcome.SUCCESS


def parse_revocation(key: bytes | str | None, value: bytes | None) -> dict[str, Any]:
    """A revocation request, checked; anything malformed is the event's fault
    (dead-lettered with a code), never a crash of the agent."""
    request = decode_json_object(value if value is not None else b"", max_bytes=settings.max_event_bytes)
    certificate_id = request.get("certificateId")
    if not isinstance(certificate_id, str) or not certificate_id.strip():
        raise CertflowError(ErrorCode.MANDATORY_PARAMETER_MISSING, "Mandatory parameter certificateId is missing.")
    text_key = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if text_key != certificate_id:
        # The key routes it to the owner of the record: any other key would record
        # it in a partition that does not hold the certificate.
        raise CertflowError(ErrorCode.INVALID_PARAM_VALUE, "a revocation must be keyed by its certificateId")
    try:
        origin = RevocationOrigin(request.get("origin"))
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


async def _revoke(request: dict[str, Any]) -> Outcome:
    certificate_id = request["certificateId"]
    key = certificate_id.encode()
    stored = dict(certificates.get(key) or {"record": None, "revocation": None})
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
    stored["revocation"] = {
        "reason": request.get("reason") or "revoked",
        "replacedBy": request.get("replacedBy", ""),
        "revokedAt": request.get("requestedAt") or datetime.now(UTC).isoformat(),
        **({"certifies": certifies} if record is None and certifies is not None else {}),
    }
    certificates[key] = stored
    if record is not None:
        await _send_status_bit(record)
    return Outcome.SUCCESS


async def _send_status_bit(record: dict[str, Any]) -> None:
    status = record["certificate"].get("credentialStatus")
    if not status:
        return  # issued without a status entry: the registry's flag is the only record
    list_id = status["statusListCredential"].rsplit("/", 1)[-1]
    await status_updates.send(
        key=list_id.encode(),
        value=orjson.dumps({"list": list_id, "index": int(status["statusListIndex"])}),
    )


async def _set_bit(update: dict[str, Any]) -> Outcome:
    key = update["list"].encode()
    revoked = set(status_lists.get(key) or [])
    if update["index"] in revoked:
        return Outcome.SKIPPED
    revoked.add(update["index"])
    status_lists[key] = sorted(revoked)
    return Outcome.SUCCESS


def certificate(certificate_id: str) -> dict[str, Any] | None:
    """What this worker knows of a certificate: ``{record, revocation}``."""
    return certificates.get(certificate_id.encode())


def revoked_indices(list_id: str) -> list[int]:
    return list(status_lists.get(list_id.encode()) or [])
