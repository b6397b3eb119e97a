"""The registry: every certificate by id, revocations, and the status lists.

* ``store_certificates`` keeps each published certificate in the ``certificates``
  table, partitioned by certificate id (the key of ``certificate.issued``), so
  ``GET /certs/{id}`` is answered by the worker that owns the id.
* ``apply_revocations`` marks a certificate revoked (a re-issue replaced it, or an
  admin revoked it) and asks the owner of its status list to set its bit.
* ``set_status_bits`` owns the status lists: one worker per list id, so concurrent
  revocations of two certificates in one list cannot lose each other's bit.

A certificate's status list entry follows from the message it was made from
(``StatusSlot.of_message``): unique, and the same if that message is redelivered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from faust.types import EventT, Message

from certflow.accounting import Outcome
from certflow.agents.dead_letters import settle
from certflow.agents.reference import keyed_table
from certflow.app import app, settings

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


async def request_revocation(certificate_id: str, *, reason: str, replaced_by: str = "") -> None:
    """Revoke a certificate: recorded by its owner, then its status bit is set."""
    await revocation_requests.send(
        key=certificate_id.encode(),
        value=orjson.dumps({
            "certificateId": certificate_id,
            "reason": reason,
            "replacedBy": replaced_by,
            "requestedAt": datetime.now(UTC).isoformat(),
        }),
    )


@app.agent(certificate_records, name="certflow.registry.certificates")
async def store_certificates(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        await _accounted(event, _store_certificate)


@app.agent(revocation_requests, name="certflow.registry.revocations")
async def apply_revocations(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        await _accounted(event, _revoke)


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
    certificates[key] = {"record": record, "revocation": revocation}
    if revocation is not None and stored.get("record") is None:
        # Revoked before its record arrived here (the topics are not ordered with
        # each other): the bit is set now that the status entry is known.
        await _send_status_bit(record)
    return Outcome.SUCCESS


async def _revoke(request: dict[str, Any]) -> Outcome:
    key = request["certificateId"].encode()
    stored = dict(certificates.get(key) or {"record": None, "revocation": None})
    if stored["revocation"] is not None:
        return Outcome.SKIPPED  # already revoked
    stored["revocation"] = {
        "reason": request["reason"],
        "replacedBy": request.get("replacedBy", ""),
        "revokedAt": request["requestedAt"],
    }
    certificates[key] = stored
    if stored["record"] is not None:
        await _send_status_bit(stored["record"])
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
