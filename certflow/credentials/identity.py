"""Deterministic certificate identity.

A certificate's id is a UUIDv5 of what it certifies. Kafka delivers at least once, so
the same generate event can be processed twice (a crash before the offset commit, a
rebalance); deriving the id from content means the second run re-creates the *same*
certificate instead of a second one, and downstream consumers can de-duplicate by
key. A re-issue names the certificate it replaces (``oldId``), which makes a new
generation and therefore a new id.

An id is also *placed*: its last four hexadecimal digits are chosen so that Kafka's
default partitioner puts it in its recipient's partition. Everything keyed by
certificate id (``certificate.issued``, revocations, the registry's tables) then
lives in the partition that makes the certificate, so the worker that makes it
keeps it in its registry in the same step, instead of reading it back from
``certificate.issued`` (an event, a fetch and their accounting per certificate).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache

import orjson

from certflow.partitioning import key_partition, placed_key

#: Fixed namespace of certflow certificate ids. Changing it changes every id: never.
CERTIFICATE_NAMESPACE = uuid.UUID("6f3f5c2e-7a8b-5d4e-9c1a-2b3c4d5e6f70")


@dataclass(frozen=True)
class CertifiedFacts:
    """What a certificate certifies; exactly the inputs of its id."""

    recipient_id: str
    course_id: str
    batch_id: str
    template_id: str
    certificate_name: str
    #: The id of the certificate this one replaces, "" for a first issue.
    replaces: str = ""

    def certificate_id(self, partitions: int) -> str:
        """The certificate's id, placed in its recipient's partition of ``partitions``
        (every certflow topic's count): a UUIDv5 of the facts, its last 16 bits
        changed as :func:`certflow.partitioning.placed_key` says (106 bits of the hash remain)."""
        return _placed_certificate_id(self, partitions)


#: Ids remembered: a worker asks for each certificate's id three times, when the
#: eligibility job decides (a job decides up to 500 learners) and twice when the
#: generate step makes it (its already-issued check, then the factory). The
#: generate step's second ask is always remembered; its first is only while the
#: generate step keeps up with the eligibility jobs, which run ahead of it on a
#: large batch (profiled at 20,000 learners: placed in both, about 1 % of the CPU
#: each). Remembering a whole backlog would cost memory in proportion to it.
REMEMBERED_IDS = 4096


@lru_cache(maxsize=REMEMBERED_IDS)
def _placed_certificate_id(facts: CertifiedFacts, partitions: int) -> str:
    """:meth:`CertifiedFacts.certificate_id`, remembered: a pure function of the facts,
    and placing a UUID costs about 16 µs, some fifty lookups here."""
    # A JSON array, not a joined string: distinct facts can never serialise
    # to the same name, whatever characters the ids contain.
    name = orjson.dumps(
        [
            facts.recipient_id,
            facts.course_id,
            facts.batch_id,
            facts.template_id,
            facts.certificate_name,
            facts.replaces,
        ]
    ).decode()
    identifier = str(uuid.uuid5(CERTIFICATE_NAMESPACE, name))
    return placed_key(identifier, key_partition(facts.recipient_id.encode(), partitions), partitions)
