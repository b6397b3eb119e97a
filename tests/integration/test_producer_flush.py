"""A producer flush covers every table change made before it: Faust commits offsets,
and hands partitions over in a rebalance, right after one."""

from __future__ import annotations

import asyncio
import uuid

from certflow.faust_fixes.app import FixedApp
from certflow.kafka import ensure_topics
from certflow.local import LocalBroker


async def buffered_records_after_flush(broker_url: str, records: int) -> tuple[int, int]:
    """Buffer ``records`` table-change-like records (``send_soon``), wait until the
    buffer's queue is empty (the last record is being handed to the client), then
    flush: how many were delivered, and how many were not, when flush returned."""
    name = f"flush-{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker_url, [name], partitions=1)
    # One record per batch: handing each to the client waits for the one before it
    # to be sent, as on a busy or slow broker.
    app = FixedApp(name, broker=broker_url, producer_max_batch_size=1, autodiscover=False)
    topic = app.topic(name, key_serializer="raw", value_serializer="raw")
    producer = app.producer
    await producer.start()
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

