"""Every event is accounted for: counters per input topic, with Sunbird's metric names.

Each event read from an input topic ends as exactly one of *success* (passed on or
issued), *skipped* (nothing to do, with a reason) or *failed* (dead-lettered), so
``total-events-count == success + skipped + failed`` is an invariant operators (and
the tests) can check from ``/stats`` at any moment.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from enum import StrEnum


class Outcome(StrEnum):
    """How one input event ended; values are Sunbird's metric names (SUNBIRD.md §6)."""

    SUCCESS = "success-events-count"
    SKIPPED = "skipped-event-count"
    FAILED = "failed-events-count"


TOTAL = "total-events-count"


class Accounting:
    """Per-topic counters of this worker process (they restart at zero with it)."""

    def __init__(self) -> None:
        self._counters: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def received(self, topic: str) -> None:
        self._counters[topic][TOTAL] += 1

    def ended(self, topic: str, outcome: Outcome) -> None:
        self._counters[topic][outcome.value] += 1

    def add(self, topic: str, metric: str, amount: int = 1) -> None:
        """A further counter that is not an outcome (``recipients-emitted-count`` …)."""
        self._counters[topic][metric] += amount

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {
            topic: {TOTAL: 0, **{o.value: 0 for o in Outcome}, **counts}
            for topic, counts in sorted(self._counters.items())
        }
