"""Faust's table, not refusing writes while the changelog's partition count is
unknown, and reading a key with one store lookup.

**Writes.** Before the first write from a source topic, Faust checks that the
table's changelog has as many partitions as the source
(``Collection._verify_source_topic_partitions``), reading both counts from the
consumer's metadata snapshot. Right after the changelog topic is created (a fresh
deployment, many partitions, several workers starting at once) that snapshot can
name the topic with 0 partitions for a while: Faust raised ``PartitionsMismatch``
("has 16 partitions, but the changelog … has 0") on every write in the meantime,
and each event was dead-lettered. Measured: 511 access-code entries of one
`certflow bench` sweep run (3 workers, 16 partitions). No topic has 0 partitions,
so 0 means "not known yet": the write goes ahead to the event's own partition, as
it would once the count is known, and the check is made again at the next write (a
real mismatch, which ``certflow topics`` rules out, is still refused).

**Reads.** Faust's table has ``__missing__`` (for ``default=``), so its
``__getitem__`` (mode's ``FastUserDict``) asks the store whether the key is there
and then reads it: two RocksDB lookups, two key encodings and two
``current_event()`` calls for every ``table.get(key)``. A worker reads about ten
table values a certificate (the learner's facts, issued entries, decisions, the
registry's record and access codes). Here a read is one lookup (a 0.5 KB value:
11–12 µs against 17 µs, in process); a missing key still raises ``KeyError`` (so
``get`` still gives None) unless the table has a default.

Upstream: faust-streaming 0.15.3 ``faust/tables/base.py`` and mode-streaming 0.7.1
``mode/utils/collections.py``; no upstream issue is known.
"""

from __future__ import annotations

from typing import Any

import faust


class Table(faust.Table):
    """Faust's table; see the module docstring."""

    def _verify_source_topic_partitions(self, source_topic: str) -> None:
        if self.app.consumer.topic_partitions(self.changelog_topic_name) == 0:
            return  # the changelog's partitions are not in the metadata yet: check again later
        super()._verify_source_topic_partitions(source_topic)

    def __getitem__(self, key: Any) -> Any:
        if self.default is not None:
            return super().__getitem__(key)  # a missing key is the default's
        self.on_key_get(key)
        return self.data[key]  # the store raises KeyError for a missing key, as __missing__ would
