"""A producer flush covers every table change made before it, and waits for none
made after it: Faust commits offsets, and hands partitions over in a rebalance,
right after one."""

from __future__ import annotations

import asyncio
import gc
import uuid

from faust.types import ProducerT, TopicT

from certflow.faust_fixes.app import FixedApp
from certflow.kafka import ensure_topics
from certflow.local import LocalBroker


async def started_slow_producer(broker_url: str) -> tuple[TopicT, ProducerT]:
    """A new topic, and a started producer that sends one record per batch: handing
    each to the client waits for the one before it to be sent, as on a busy or
    slow broker."""
    name = f"flush-{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker_url, [name], partitions=1)
    app = FixedApp(name, broker=broker_url, producer_max_batch_size=1, autodiscover=False)
    topic = app.topic(name, key_serializer="raw", value_serializer="raw")
    await app.producer.start()
    return topic, app.producer


async def buffered_records_after_flush(broker_url: str, records: int) -> tuple[int, int]:
    """Buffer ``records`` table-change-like records (``send_soon``), wait until the
    buffer's queue is empty (the last record is being handed to the client), then
    flush: how many were delivered, and how many were not, when flush returned."""
    topic, producer = await started_slow_producer(broker_url)
    try:
        futures = [topic.as_future_message(key=b"learner", value=b"%d" % i) for i in range(records)]
        for fut in futures:
            producer.send_soon(fut)
        while producer.buffer.size:
            await asyncio.sleep(0)
        await producer.flush()
        delivered = sum(1 for fut in futures if fut.done() and fut.exception() is None)
        return delivered, records - delivered
    finally:
        await producer.stop()


def test_flush_returns_only_when_every_buffered_record_is_delivered(broker: LocalBroker) -> None:
    delivered, undelivered = asyncio.run(buffered_records_after_flush(broker.url, 200))
    assert (delivered, undelivered) == (200, 0)


async def flush_while_agents_keep_writing(broker_url: str, seconds: float) -> tuple[bool, int]:
    """Buffer 3 records a millisecond for ``seconds`` (more than the client takes,
    one record per batch), flushing after the first 100: whether the flush returned
    while records were still being buffered, and how many of those buffered before
    it were not delivered when it returned."""
    topic, producer = await started_slow_producer(broker_url)
    buffered: list[asyncio.Future[object]] = []
    writing = True

    async def agent_writing_tables() -> None:
        nonlocal writing
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            for _ in range(3):
                fut = topic.as_future_message(key=b"learner", value=b"%d" % len(buffered))
                producer.send_soon(fut)
                buffered.append(fut)
            await asyncio.sleep(0.001)
        writing = False

    writer = asyncio.create_task(agent_writing_tables())
    gc.disable()  # a collection pausing the loop for 0.1 s ends Faust's own flush early
    try:
        while len(buffered) < 100:
            await asyncio.sleep(0.01)
        before = list(buffered)
        await producer.flush()
        returned_while_writing = writing
        return returned_while_writing, sum(1 for fut in before if not fut.done() or fut.exception())
    finally:
        gc.enable()
        await writer
        await producer.flush()
        await producer.stop()


def test_flush_does_not_wait_for_records_buffered_after_it(broker: LocalBroker) -> None:
    # Faust's own flush drained the buffer until it was empty: a commit waited for
    # as long as agents kept writing (24.7 s while a worker loaded 50,000 learners).
    returned_while_writing, undelivered = asyncio.run(flush_while_agents_keep_writing(broker.url, 6.0))
    assert undelivered == 0
    assert returned_while_writing
