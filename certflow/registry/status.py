"""Status lists: where a certificate's revocation bit lives, and the list URLs.

A certificate's entry follows from the message it was made from
(:meth:`StatusSlot.of_message`): unique, and the same if that message is
redelivered. A list's URL is built and read back here only
(:func:`status_list_url`, :func:`status_list_id`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from faust.types import Message

from certflow.topics import TopicNames

#: Prefix of a status list id per kind of topic certificates are made from: the
#: recipients topic (the generate flow's fan-out), or generate requests made in place.
RECIPIENTS_PREFIX = ""
REQUESTS_PREFIX = "g"
#: Prefix of the lists of credentials issued through the VC-API (``POST
#: /credentials/issue``): ``a{partition}-{n}``, from the offset of a reservation on
#: the ``certflow.vcapi.issued`` topic (:mod:`certflow.vcapi.views`).
API_PREFIX = "a"
#: What a status list id looks like (``/status/{list}`` refuses anything else).
_PREFIXES = (RECIPIENTS_PREFIX, REQUESTS_PREFIX, API_PREFIX)
STATUS_LIST_ID = re.compile(f"(?:{'|'.join(re.escape(prefix) for prefix in _PREFIXES)})[0-9]+-[0-9]+")


def status_list_url(public_url: str, list_id: str) -> str:
    """The URL a credential names its status list by (served at ``/status/{list}``)."""
    return f"{public_url.rstrip('/')}/status/{list_id}"


def status_list_id(url: str) -> str:
    """The list id a status list URL names (its last path segment)."""
    return url.rsplit("/", 1)[-1]


def list_prefixes(topics: TopicNames) -> dict[str, str]:
    """Topic certificates are made from → its status lists' prefix."""
    return {topics.generate_recipients: RECIPIENTS_PREFIX, topics.generate_request: REQUESTS_PREFIX}


@dataclass(frozen=True)
class StatusSlot:
    """Where a certificate's revocation bit lives."""

    list_id: str
    index: int

    @classmethod
    def of_message(cls, message: Message, *, topics: TopicNames, size: int) -> StatusSlot:
        """The slot of a certificate made from ``message``.

        Offsets are unique in a partition and the same on every redelivery, so the
        slot needs no allocation state and a re-created certificate gets the same
        one: list ``{prefix}{partition}-{offset // size}``, index ``offset % size``,
        where the prefix tells apart the two topics certificates are made from.
        """
        prefix = list_prefixes(topics)[message.topic]
        return cls(f"{prefix}{message.partition}-{message.offset // size}", message.offset % size)

    @property
    def entry_id(self) -> str:
        """``{list}#{index}``: unique to the message the certificate was made from."""
        return f"{self.list_id}#{self.index}"
