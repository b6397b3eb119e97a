"""The consumer never commits past a record it read but did not process."""

from __future__ import annotations

import asyncio

import pytest
from faust.types import TP

from certflow.faust_fixes import consumer as fixes
from certflow.faust_fixes.app import FixedApp

PARTITION = TP("certflow.learners", 1)


def consumer_having(committed: int, acked: list[int]) -> fixes.Consumer:
    consumer = FixedApp("holes", broker="kafka://127.0.0.1:1").consumer
    assert isinstance(consumer, fixes.Consumer)
    consumer._committed_offset[PARTITION] = committed
    consumer._acked[PARTITION] = list(acked)
    consumer._acked_index[PARTITION] = set(acked)
    return consumer


def test_contiguous_acknowledgements_are_committed_as_faust_does() -> None:
    consumer = consumer_having(21, [21, 22, 23])
    assert consumer._new_offset(PARTITION) == 24


def test_a_hole_is_never_committed_past_and_is_read_again_once_it_lasts(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(fixes, "monotonic", lambda: clock[0])
    seeks: list[tuple[TP, int]] = []

    async def commits() -> list[int | None]:
        # Made in the running loop, as a worker's consumer is.
        consumer = consumer_having(21, [22, 23])  # offset 21 read, never processed

        async def seek(tp: TP, offset: int) -> None:
            seeks.append((tp, offset))

        monkeypatch.setattr(consumer, "seek", seek)
        offsets = [consumer._new_offset(PARTITION)]
        clock[0] += fixes.HOLE_GRACE_SECONDS / 2
        offsets.append(consumer._new_offset(PARTITION))
        await asyncio.sleep(0.01)
        assert not seeks, "a record may still be in flight: not read again yet"
        clock[0] += fixes.HOLE_GRACE_SECONDS
        offsets.append(consumer._new_offset(PARTITION))
        await asyncio.sleep(0.01)
        return offsets

    assert asyncio.run(commits()) == [None, None, None]
    assert seeks == [(PARTITION, 21)]


def test_offsets_faust_knows_do_not_exist_are_left_to_faust() -> None:
    consumer = consumer_having(21, [23])
    consumer._gap[PARTITION].addi(21, 23)  # transaction markers at 21 and 22
    assert consumer._new_offset(PARTITION) == 24
