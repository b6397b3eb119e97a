"""Which of a batch's certificates an export prints: those in force, read from the broker.

:func:`find_batch` reads ``certificate.issued`` and the revocations topic, each up
to its end when the export starts (a snapshot: the export ends, and says exactly
what it covered), and keeps a few facts per certificate of the batch, never the
records themselves. The registry's tables cannot answer this: they are partitioned
by certificate id over the workers, and they keep no index by batch.
:func:`select_in_force` leaves out what is revoked, deciding as the registry does
(:mod:`certflow.registry.agents`). Rendering what is selected is
:mod:`certflow.registry.export`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson

from certflow.errors import CertflowError
from certflow.kafka import read_until_end
from certflow.kafka_client import KafkaConnection
from certflow.registry.agents import RevocationOrigin, certified_facts, parse_revocation
from certflow.settings import Settings
from certflow.topics import TopicNames

log = logging.getLogger(__name__)


class NothingToExport(LookupError):
    """The batch has no certificate in force (none at all, or every one revoked)."""

    def __init__(self, selection: BatchSelection) -> None:
        self.selection = selection
        if selection.left_out:
            message = (f"batch {selection.batch_id} has no certificate in force: all "
                       f"{len(selection.left_out)} are revoked")
        else:
            message = f"batch {selection.batch_id} has no certificates"
        super().__init__(message)


@dataclass(frozen=True)
class BatchSource:
    """Where a batch's certificates are read from: the deployment's broker and topics."""

    kafka: KafkaConnection
    topics: TopicNames
    #: A revocation request larger than this is malformed (as the registry reads it).
    max_event_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchSource:
        return cls(settings.kafka, settings.topics, settings.max_event_bytes)


@dataclass(frozen=True)
class BatchCertificate:
    """What an export keeps of one certificate until it is rendered: where its record
    is and what names it, a few hundred bytes however large the record."""

    id: str
    recipient_id: str
    recipient_name: str
    certificate_name: str
    #: What the certificate certifies, as a re-issue's revocation names it.
    facts: Mapping[str, str]
    partition: int
    offset: int

    @classmethod
    def of(cls, record: Mapping[str, Any], *, partition: int, offset: int) -> BatchCertificate:
        """Raises KeyError or TypeError for a record that is not a certificate's."""
        recipient = record["recipient"]
        return cls(
            id=str(record["id"]),
            recipient_id=str(recipient["id"]),
            recipient_name=str(recipient.get("name") or ""),
            certificate_name=str(record.get("certificateName") or ""),
            facts=certified_facts(dict(record)),
            partition=partition,
            offset=offset,
        )

    def described(self) -> dict[str, Any]:
        """The certificate as the manifest names it."""
        return {
            "id": self.id,
            "recipient": {"id": self.recipient_id, "name": self.recipient_name},
            "certificateName": self.certificate_name,
        }


@dataclass(frozen=True)
class Revocation:
    """A revocation request of the revocations topic, as :func:`parse_revocation` checked it."""

    certificate_id: str
    origin: RevocationOrigin
    reason: str
    replaced_by: str = ""
    requested_at: str = ""
    #: A re-issue's: what the certificate it revokes must certify.
    certifies: Mapping[str, str] | None = None

    @classmethod
    def of(cls, request: Mapping[str, Any]) -> Revocation:
        return cls(
            certificate_id=str(request["certificateId"]),
            origin=RevocationOrigin(request["origin"]),
            reason=str(request.get("reason") or "revoked"),
            replaced_by=str(request.get("replacedBy") or ""),
            requested_at=str(request.get("requestedAt") or ""),
            certifies=request.get("certifies"),
        )

    def revokes(self, entry: BatchCertificate) -> bool:
        """Whether the registry revokes ``entry`` on this request.

        An admin's: yes (the admin route sends one only for a certificate the
        registry holds). A re-issue's: only if the certificate certifies what the
        re-issue found, whichever of the two the registry saw first.
        """
        if self.certificate_id != entry.id:
            return False
        if self.origin is RevocationOrigin.REISSUE:
            return self.certifies is not None and dict(self.certifies) == dict(entry.facts)
        return True


@dataclass(frozen=True)
class LeftOut:
    """A certificate of the batch not exported, and why."""

    entry: BatchCertificate
    revocation: Revocation

    def described(self) -> dict[str, Any]:
        revocation = self.revocation
        return {
            **self.entry.described(),
            "reason": "replaced" if revocation.replaced_by else "revoked",
            "detail": revocation.reason,
            "revokedAt": revocation.requested_at,
            "replacedBy": revocation.replaced_by,
        }


@dataclass(frozen=True)
class BatchSelection:
    """A batch's certificates: those in force (in topic order) and those left out."""

    batch_id: str
    in_force: list[BatchCertificate]
    left_out: list[LeftOut]


def select_in_force(
    batch_id: str, entries: Iterable[BatchCertificate], revocations: Iterable[Revocation]
) -> BatchSelection:
    """The certificates of ``batch_id`` in force, given its records and the revocations.

    ``entries`` and ``revocations`` in topic order: a certificate published again (a
    redelivered event makes the same record) is one certificate, its newest record;
    the first revocation that applies is the one the registry recorded (later ones
    are "already revoked"), so it is the one reported.
    """
    newest: dict[str, BatchCertificate] = {}
    for entry in entries:
        newest.pop(entry.id, None)  # re-inserted: topic order of the newest record
        newest[entry.id] = entry
    revoked: dict[str, Revocation] = {}
    for revocation in revocations:
        revoked_entry = newest.get(revocation.certificate_id)
        if revoked_entry is not None and revoked_entry.id not in revoked and revocation.revokes(revoked_entry):
            revoked[revoked_entry.id] = revocation
    in_force = [entry for entry in newest.values() if entry.id not in revoked]
    left_out = [LeftOut(newest[cid], revocation) for cid, revocation in revoked.items()]
    return BatchSelection(batch_id, in_force, left_out)


async def find_batch(source: BatchSource, batch_id: str) -> BatchSelection:
    """The batch's certificates in force and those left out, as published up to now.

    Reads every record of ``certificate.issued`` (there is no index by batch), but
    parses only those that contain the batch id (records are certflow's own orjson),
    and keeps an :class:`BatchCertificate` of each certificate of the batch.
    """
    entries: dict[str, BatchCertificate] = {}
    needle = orjson.dumps(batch_id)
    issued = read_until_end(source.kafka, source.topics.certificate_issued)
    async with aclosing(issued):
        async for consumed in issued:
            if consumed.value is None:  # a tombstone: the certificate's record is gone
                if consumed.key is not None:
                    entries.pop(consumed.key.decode("utf-8", "replace"), None)
                continue
            if needle not in consumed.value:
                continue
            try:
                record = orjson.loads(consumed.value)
                if not isinstance(record, dict) or record.get("batchId") != batch_id:
                    continue
                entry = BatchCertificate.of(record, partition=consumed.partition, offset=consumed.offset)
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                log.warning("%s[%d]@%d is not a certificate record, skipped: %r",
                            consumed.topic, consumed.partition, consumed.offset, exc)
                continue
            entries.pop(entry.id, None)
            entries[entry.id] = entry
    revocations: list[Revocation] = []
    if entries:
        requests = read_until_end(source.kafka, source.topics.revocations)
        async with aclosing(requests):
            async for consumed in requests:
                # Keyed by certificate id: most are another batch's, not parsed.
                if consumed.key is None or consumed.key.decode("utf-8", "replace") not in entries:
                    continue
                try:
                    request = parse_revocation(consumed.key, consumed.value, max_bytes=source.max_event_bytes)
                except CertflowError:
                    continue  # the registry dead-letters it: it revoked nothing
                revocations.append(Revocation.of(request))
    return select_in_force(batch_id, entries.values(), revocations)
