"""Deterministic certificate identity.

A certificate's id is a UUIDv5 of what it certifies. Kafka delivers at least once, so
the same generate event can be processed twice (a crash before the offset commit, a
rebalance); deriving the id from content means the second run re-creates the *same*
certificate instead of a second one, and downstream consumers can de-duplicate by
key. A re-issue names the certificate it replaces (``oldId``), which makes a new
generation and therefore a new id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import orjson

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

    def certificate_id(self) -> str:
        # A JSON array, not a joined string: distinct facts can never serialise
        # to the same name, whatever characters the ids contain.
        name = orjson.dumps(
            [
                self.recipient_id,
                self.course_id,
                self.batch_id,
                self.template_id,
                self.certificate_name,
                self.replaces,
            ]
        ).decode()
        return str(uuid.uuid5(CERTIFICATE_NAMESPACE, name))
