"""Exactly-once, made exactly-once: each defect of Faust's that the fault matrix's
case (d) ran into, shown on Faust's own code where it can be, and certflow's fix
(``certflow/faust_fixes/exactly_once.py``, ``certflow/faust_fixes/consumer.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from faust.transport import consumer as faust_consumer
from faust.types import TP
from faust.types.tuples import Message

from certflow.faust_fixes import consumer as fixes
from certflow.faust_fixes.app import FixedApp
from certflow.faust_fixes.exactly_once import CommitGate, ConsumerThread

SOURCE = TP("certflow.generate.recipients", 1)
CHANGELOG = TP("certflow-issued-changelog", 1)


def new_consumer() -> fixes.Consumer:
    """A worker's consumer under exactly-once, handing records to nobody."""
    app = FixedApp("eos", broker="kafka://127.0.0.1:1", processing_guarantee="exactly_once")
    app.in_worker = True

    async def on_message(message: Any) -> None:
        return None

    app.topics.on_message = on_message  # type: ignore[method-assign]  # a stand-in for the agents
    consumer = app.consumer
    assert isinstance(consumer, fixes.Consumer) and consumer.in_transaction
    return consumer


def acknowledged(consumer: fixes.Consumer, committed: int, acked: list[int]) -> None:
    consumer._committed_offset[SOURCE] = committed
    consumer._acked[SOURCE] = list(acked)
    consumer._acked_index[SOURCE] = set(acked)


# -- commits between events


async def test_a_commit_waits_for_the_event_being_processed_and_none_starts_during_it() -> None:
    gate = CommitGate()
    steps: list[str] = []

    async def event(name: str, work: float) -> None:
        async with gate.event():
            steps.append(f"{name} starts")
            await asyncio.sleep(work)
            steps.append(f"{name} ends")

    async def commit() -> None:
        async with gate.closed() as quiet:
            assert quiet
            steps.append("commit starts")
            await asyncio.sleep(0.05)
            steps.append("commit ends")

    first = asyncio.ensure_future(event("first", 0.05))
    await asyncio.sleep(0.01)
    committing = asyncio.ensure_future(commit())
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(event("second", 0))
    await asyncio.gather(first, committing, second)
    assert steps == ["first starts", "first ends", "commit starts", "commit ends", "second starts", "second ends"]


async def test_a_commit_that_cannot_wait_for_an_event_says_so_and_lets_events_go_on() -> None:
    gate = CommitGate()
    stuck = asyncio.Event()

    async def slow_event() -> None:
        async with gate.event():
            assert gate.inside_event()
            await stuck.wait()

    task = asyncio.ensure_future(slow_event())
    await asyncio.sleep(0.01)
    assert not gate.inside_event()
    async with gate.closed(timeout=0.05) as quiet:
        assert not quiet
    async with gate.event():  # the gate is open again
        pass
    stuck.set()
    await task
    assert gate.busy == 0


async def test_under_exactly_once_the_consumer_commits_only_between_events(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = new_consumer()
    acknowledged(consumer, 10, [10, 11])
    taken: list[dict[TP, int]] = []

    async def commit_offsets(offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        taken.append(dict(offsets))
        return True

    monkeypatch.setattr(consumer, "_commit_offsets", commit_offsets)
    monkeypatch.setattr(consumer, "_handle_attached", lambda offsets: asyncio.sleep(0))
    done = asyncio.Event()

    async def event_12() -> None:
        async with consumer.gate.event():
            await done.wait()
            # Faust acknowledges an event as soon as its work returns.
            consumer._acked[SOURCE].append(12)
            consumer._acked_index[SOURCE].add(12)

    task = asyncio.ensure_future(event_12())
    await asyncio.sleep(0.01)
    commit = asyncio.ensure_future(consumer.force_commit())
    await asyncio.sleep(0.05)
    assert not taken, "no offsets are taken while an event's records may be half sent"
    done.set()
    await asyncio.gather(task, commit)
    assert taken == [{SOURCE: 13}]


# -- a rebalance


async def test_faust_forgets_what_was_acknowledged_before_its_rebalance_handler_commits() -> None:
    consumer = new_consumer()
    seen: list[dict[TP, int]] = []

    async def handler(revoked: set[TP]) -> None:  # the app's: wait for the agents, commit
        seen.append(consumer._filter_committable_offsets([SOURCE]))

    consumer._on_partitions_revoked = handler

    acknowledged(consumer, 10, [10, 11, 12])
    await faust_consumer.Consumer.on_partitions_revoked(consumer, {SOURCE})
    acknowledged(consumer, 10, [10, 11, 12])
    await consumer.on_partitions_revoked({SOURCE})

    assert seen == [{}, {SOURCE: 13}]  # Faust's: nothing left to commit; certflow's: 10-12
    assert SOURCE not in consumer._acked and SOURCE not in consumer._committed_offset


def test_stream_partitions_of_a_new_assignment_are_fetched_once_sought_and_the_flow_resumed(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = new_consumer()
    monkeypatch.setattr(consumer, "_is_changelog_tp", lambda tp: tp == CHANGELOG)
    monkeypatch.setattr(consumer, "assignment", lambda: {SOURCE, CHANGELOG})
    consumer.pause_partitions({SOURCE, CHANGELOG})
    consumer._held = set()  # as on_partitions_assigned leaves it

    consumer.resume_partitions({SOURCE, CHANGELOG})  # recovery resumes the streams, then seeks
    assert consumer._get_active_partitions() == {CHANGELOG}

    async def committed() -> Mapping[TP, int]:
        return {SOURCE: 40}

    monkeypatch.setattr(consumer._thread, "seek_to_committed", committed)
    consumer.resume_flow()  # recovery reads the changelogs: the streams stay paused
    assert consumer._get_active_partitions() == {CHANGELOG}
    asyncio.run(consumer.perform_seek())
    assert consumer._next_offset[SOURCE] == 40
    # Faust resumes the flow after the seek, emptying the agents' queues: only then.
    assert consumer._get_active_partitions() == {CHANGELOG}
    consumer.resume_flow()
    assert consumer._get_active_partitions() == {SOURCE, CHANGELOG}


# -- offsets that do not exist, records handed over once


def records(*offsets: int) -> list[ConsumerRecord[bytes, bytes]]:
    return [ConsumerRecord(SOURCE.topic, SOURCE.partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])
            for offset in offsets]


def test_a_transaction_marker_at_the_committed_offset_is_passed_not_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = new_consumer()
    monkeypatch.setattr(consumer.app.topics, "acks_enabled_for", lambda topic: True)
    consumer._next_offset[SOURCE] = 20  # sought to the committed offset: a commit marker
    consumer._note_absent_offsets({SOURCE: records(21, 22, 24)})  # 23: the next marker
    acknowledged(consumer, 20, [21, 22, 24])
    assert consumer._new_offset(SOURCE) == 25
    assert not consumer._holes


def test_faust_counts_the_record_it_delivers_after_a_marker_as_a_gap() -> None:
    consumer = new_consumer()
    consumer._committed_offset[SOURCE] = 20
    # Faust's drain, having read 21, delivers 23 (22: a marker): its gap takes 23 too,
    # which a commit would then pass before 23 is processed.
    asyncio.run(faust_consumer.Consumer._add_gap(consumer, SOURCE, 22, 23))
    assert sorted((i.begin, i.end) for i in consumer._gap[SOURCE]) == [(22, 24)]
    consumer._gap.clear()
    asyncio.run(consumer._add_gap(SOURCE, 22, 23))
    assert not consumer._gap[SOURCE]


def test_a_record_handed_to_the_agents_is_not_handed_over_again(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = new_consumer()
    monkeypatch.setattr(consumer.app.topics, "acks_enabled_for", lambda topic: topic == SOURCE.topic)
    fetches = [{SOURCE: records(5, 6)}, {SOURCE: records(5, 6, 7)}]  # sought back to 5 in between

    async def wait_next_records(self: Any, timeout: float) -> tuple[Any, set[TP]]:
        return fetches.pop(0), {SOURCE}

    monkeypatch.setattr(faust_consumer.Consumer, "_wait_next_records", wait_next_records)
    monkeypatch.setattr(consumer, "_read_undelivered_again", lambda fetched, delivered: None)
    monkeypatch.setattr(consumer, "highwater", lambda tp: 8)
    consumer.flow_active = True

    async def drain() -> list[int]:
        handed: list[int] = []
        for _ in range(2):
            async for _tp, message in consumer.getmany(timeout=0):
                handed.append(message.offset)
                await consumer.callback(message)  # what Faust's drain does with each
        return handed

    assert asyncio.run(drain()) == [5, 6, 7]


def test_changelog_records_delivered_are_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    """A changelog's offsets are never committed, so nothing would ever forget them:
    a worker replaying a million certificates' changelogs (or keeping standbys) grew
    by an int per record. Faust's recovery skips what it applied by itself."""
    consumer = new_consumer()
    monkeypatch.setattr(consumer.app.topics, "acks_enabled_for", lambda topic: topic == SOURCE.topic)
    generation = consumer.app.consumer_generation_id

    async def deliver() -> None:
        for tp in (SOURCE, CHANGELOG):
            for offset in range(3):
                await consumer.callback(Message(tp.topic, tp.partition, offset, 0.0, 0, None, b"k", b"v",
                                                None, tp=tp, generation_id=generation))

    asyncio.run(deliver())
    assert consumer._delivered[SOURCE] == {0, 1, 2}
    assert CHANGELOG not in consumer._delivered


def test_a_hole_handed_over_but_never_processed_is_handed_over_again(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = new_consumer()
    clock = [1000.0]
    monkeypatch.setattr(fixes, "monotonic", lambda: clock[0])
    monkeypatch.setattr(consumer, "add_future", lambda coroutine: coroutine.close())
    consumer._delivered[SOURCE].update({21, 22, 23})  # 21 thrown away unprocessed, 22 and 23 processed
    acknowledged(consumer, 21, [22, 23])
    assert consumer._new_offset(SOURCE) is None
    clock[0] += fixes.HOLE_GRACE_SECONDS
    assert consumer._new_offset(SOURCE) is None  # read again from 21
    assert consumer._delivered[SOURCE] == {22, 23}


# -- recovery


def test_recovery_asks_the_broker_where_a_changelog_ends() -> None:
    asked: list[list[TP]] = []

    class Client:
        async def end_offsets(self, partitions: list[TP]) -> dict[TP, int]:
            asked.append(partitions)
            return {tp: 180 for tp in partitions}

        def last_stable_offset(self, tp: TP) -> None:  # forgotten at every rebalance
            return None

    thread = ConsumerThread.__new__(ConsumerThread)
    thread._consumer = Client()  # type: ignore[assignment]  # a stand-in for aiokafka's consumer
    assert asyncio.run(thread._highwaters([CHANGELOG])) == {CHANGELOG: 180}
    assert asked == [[CHANGELOG]]
