"""Every course batch, on every worker: a replicated view of ``certflow.batches``.

Batches are few and every partition needs them, which is what a Faust GlobalTable
is for. faust-streaming 0.15.3's GlobalTable does not keep workers in step, though:
after recovery a worker stops applying changelog records written by *another*
worker (faust-streaming issue #283; reproduced here with two workers, where each
saw only the batches it had written itself). An eligibility decision made from a
missing batch is wrong, so certflow keeps the same semantics, a full copy on every
worker, by reading the batches topic itself: each worker's directory consumes every
partition from the beginning, without a consumer group, applying upserts and
tombstones in order. ``caught_up`` is set once it has read what the topic held when
the worker started, which ``/ready`` waits for.
"""

from __future__ import annotations

import asyncio
import logging

import mode
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from certflow import kafka_client
from certflow.jsonlimits import loads_bounded
from certflow.kafka_client import KafkaConnection
from certflow.reference.models import BatchRecord

log = logging.getLogger(__name__)


class BatchDirectory(mode.Service):
    """batchId → :class:`BatchRecord`, kept current from the topic."""

    def __init__(self, kafka: KafkaConnection, topic: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # mode's **kwargs are untyped
        self._kafka = kafka
        self._topic = topic
        self._batches: dict[str, BatchRecord] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._end_offsets: dict[TopicPartition, int] = {}
        self.caught_up = asyncio.Event()

    def get(self, batch_id: str) -> BatchRecord | None:
        return self._batches.get(batch_id)

    def __len__(self) -> int:
        return len(self._batches)

    async def on_start(self) -> None:
        # The worker's own TLS and SASL settings: this consumer is certflow's, not Faust's.
        consumer = kafka_client.consumer(self._kafka, enable_auto_commit=False, auto_offset_reset="earliest")
        await kafka_client.start(consumer, self._kafka)
        partitions: set[int] | None = None
        while not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - no public way
            partitions = consumer.partitions_for_topic(self._topic)
            if not partitions:
                await asyncio.sleep(0.2)
        assignment = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        self._end_offsets = await consumer.end_offsets(assignment)
        self._consumer = consumer
        await self._check_caught_up()

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @mode.Service.task
    async def _follow(self) -> None:
        while not self.should_stop:
            if self._consumer is None:
                await asyncio.sleep(0.1)
                continue
            batch = await self._consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    self._apply(record.key, record.value)
            if not self.caught_up.is_set():
                await self._check_caught_up()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            if key is not None:
                self._batches.pop(key.decode("utf-8", "replace"), None)
            return
        try:
            # Parsed as the reference agent parses it (bounded nesting, then the
            # model), so the directory holds exactly the batches the agent accepts.
            record = BatchRecord.model_validate(loads_bounded(value))
        except (ValidationError, ValueError):
            # Dead-lettered once by the reference agent; here it is simply not a batch.
            log.debug("skipping an invalid batch record with key %r", key)
            return
        self._batches[record.batchId] = record

    async def _check_caught_up(self) -> None:
        assert self._consumer is not None
        for partition, end in self._end_offsets.items():
            if await self._consumer.position(partition) < end:
                return
        self.caught_up.set()
