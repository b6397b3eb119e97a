"""Client-side Kafka chores: creating topics, producing files, tailing a topic.

Each takes a :class:`~certflow.kafka_client.KafkaConnection` (``settings.kafka``: the
brokers and the client's TLS and SASL settings), or a plain broker URL for a local
PLAINTEXT broker; their clients come from :mod:`certflow.kafka_client`.

Faust only creates its own internal topics. Source topics must exist with the
deployment's partition count *before* workers start: a topic auto-created by the
broker on first use gets the broker default (often 1), and then tables refuse to
start because their changelogs and sources disagree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from certflow import kafka_client
from certflow.kafka_client import KafkaConnection, bootstrap_servers

__all__ = [
    "Consumed", "TopicReport", "bootstrap_servers", "collect_json", "ensure_topics",
    "produce", "read_topic", "topic_config", "topic_durability", "wait_until_consumed",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicReport:
    created: list[str]
    existing: dict[str, int]
    #: What created topics got: replicas of each partition and ``min.insync.replicas``.
    replication_factor: int = 1
    min_insync_replicas: int = 1


def topic_durability(
    brokers: int, replication_factor: int | None = None, min_insync_replicas: int | None = None
) -> tuple[int, int]:
    """Replicas per partition and ``min.insync.replicas`` for new topics on a cluster of
    ``brokers``: what is configured, else 3 and 2 (fewer on a smaller cluster: 1 and 1
    on one broker, 2 and 1 on two), so a write acknowledged with acks=all is on two
    brokers and the topic stays writable with one broker down."""
    replicas = replication_factor or min(3, max(1, brokers))
    in_sync = min_insync_replicas or max(1, min(2, replicas - 1))
    if in_sync > replicas:
        raise ValueError(f"min.insync.replicas {in_sync} exceeds the replication factor {replicas}")
    return replicas, in_sync


def topic_config(
    name: str, *, min_insync_replicas: int, compacted: Iterable[str] = (), extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The per-topic settings certflow creates ``name`` with."""
    config = {"min.insync.replicas": str(min_insync_replicas)}
    if name in set(compacted):
        # Keyed by certificate id, each record the whole current state: the newest
        # record of each key is all a reader (the registry's recovery) needs.
        config["cleanup.policy"] = "compact"
    config.update(extra or {})
    return config


async def ensure_topics(
    kafka: KafkaConnection | str,
    names: Iterable[str],
    *,
    partitions: int,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
    compacted: Iterable[str] = (),
    attempts: int = 30,
) -> TopicReport:
    """Create the topics that are missing; report the partition counts of the others.

    Replication follows the cluster's size unless configured (:func:`topic_durability`);
    topics in ``compacted`` keep only the newest record of each key.
    Idempotent, and patient with a broker that is still starting (Kubernetes starts
    workers and brokers together), so it retries connecting for ``attempts`` seconds.
    """
    admin = await _started_admin(kafka, attempts)
    try:
        cluster = await admin.describe_cluster()
        replicas, in_sync = topic_durability(
            len(cluster.get("brokers") or ()) or 1, replication_factor, min_insync_replicas,
        )
        compacted = set(compacted)
        wanted = list(dict.fromkeys(names))
        present = set(await admin.list_topics())
        missing = [name for name in wanted if name not in present]
        created = await _create_topics(admin, missing, partitions, replicas, in_sync, compacted)
        existing: dict[str, int] = {}
        others = [name for name in wanted if name not in created]
        if others:
            for description in await admin.describe_topics(others):
                existing[description["topic"]] = len(description["partitions"])
        for name, count in existing.items():
            if count != partitions:
                log.warning(
                    "topic %s has %d partitions, settings say %d: learner-keyed "
                    "topics must agree, or tables will not start", name, count, partitions,
                )
        return TopicReport(
            created=created, existing=existing, replication_factor=replicas, min_insync_replicas=in_sync,
        )
    finally:
        await admin.close()


async def _started_admin(kafka: KafkaConnection | str, attempts: int) -> AIOKafkaAdminClient:
    """An admin client connected to ``kafka``, retrying for ``attempts`` seconds while
    no broker answers, but not when one refuses the credentials
    (:class:`~certflow.kafka_client.KafkaAccessRefused`)."""
    admin = kafka_client.admin_client(kafka)
    for attempt in range(attempts):
        try:
            await kafka_client.start(admin, kafka)
            break
        except KafkaConnectionError:
            if attempt == attempts - 1:
                await admin.close()
                raise
            await asyncio.sleep(1.0)
    return admin


async def _create_topics(
    admin: AIOKafkaAdminClient, missing: list[str], partitions: int, replicas: int, in_sync: int,
    compacted: set[str],
) -> list[str]:
    """Create ``missing``; the names created (one made meanwhile by another is not)."""
    created: list[str] = []
    if missing:
        response = await admin.create_topics([
            NewTopic(
                name, partitions, replicas,
                topic_configs=topic_config(name, min_insync_replicas=in_sync, compacted=compacted),
            )
            for name in missing
        ])
        for name, code, message in _topic_errors(response):
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:
                raise RuntimeError(f"cannot create topic {name}: {message} (error {code})")
    return created


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    errors = getattr(response, "topic_errors", [])
    return [(entry[0], entry[1], entry[2] if len(entry) > 2 else None) for entry in errors]


async def produce(
    kafka: KafkaConnection | str,
    topic: str,
    events: Iterable[tuple[bytes | None, bytes | None]],
    *,
    max_batch_size: int = 16384,
) -> int:
    """Send ``(key, value)`` pairs and wait until the broker has them all
    (acks=all, idempotent: a retried send is written once)."""
    producer = kafka_client.producer(
        kafka, linger_ms=5, acks="all", enable_idempotence=True, max_batch_size=max_batch_size,
    )
    await kafka_client.start(producer, kafka)
    try:
        futures = [await producer.send(topic, key=key, value=value) for key, value in events]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


@dataclass(frozen=True)
class Consumed:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    #: Broker/producer timestamp, epoch milliseconds.
    timestamp: int = 0


async def read_topic(
    kafka: KafkaConnection | str,
    topic: str,
    *,
    timeout: float,
    count: int | None = None,
    committed_only: bool = False,
) -> AsyncGenerator[Consumed, None]:
    """Every record of ``topic`` from the beginning, until ``count`` or ``timeout`` idle seconds.

    Reads without a consumer group (manual assignment), so tailing never disturbs
    the offsets of the workers' group. ``committed_only`` skips records of aborted
    transactions (``read_committed``), as consumers of an exactly-once deployment do.
    """
    consumer = kafka_client.consumer(
        kafka,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed" if committed_only else "read_uncommitted",
    )
    await kafka_client.start(consumer, kafka)
    try:
        partitions = await _partitions_for(consumer, topic)
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        seen = 0
        while count is None or seen < count:
            batch = await consumer.getmany(timeout_ms=int(timeout * 1000))
            if not batch:
                return
            for records in batch.values():
                for record in records:
                    yield Consumed(
                        record.topic, record.partition, record.offset,
                        record.key, record.value, tuple(record.headers or ()), record.timestamp,
                    )
                    seen += 1
                    if count is not None and seen >= count:
                        return
    finally:
        await consumer.stop()


async def read_until_end(
    kafka: KafkaConnection | str,
    topic: str,
    *,
    start: Mapping[int, int] | None = None,
    stop: Mapping[int, int] | None = None,
    idle_timeout: float = 30.0,
    fetch_max_bytes: int = 4 * 1024 * 1024,
) -> AsyncGenerator[Consumed, None]:
    """The committed records of ``topic`` from ``start`` to ``stop`` (partition → offset;
    by default every partition from its beginning to its end when called).

    A snapshot, unlike :func:`read_topic`: it ends when every partition has reached
    its end as it was when the reading began, not after some idle time, so a reader
    gets everything published before it started, however slow the broker, and is not
    kept reading by records published since. Records of aborted transactions are
    skipped (``read_committed``: an exactly-once worker's unfinished writes are not
    certificates yet). Without a consumer group, like :func:`read_topic`. Memory is
    bounded by ``fetch_max_bytes`` of prefetched records, whatever the topic's size;
    a record larger than that is still fetched (the broker always returns at least
    one). ``TimeoutError`` if nothing arrives for ``idle_timeout`` seconds short of
    the end.
    """
    consumer = kafka_client.consumer(
        kafka,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        fetch_max_bytes=fetch_max_bytes,
        max_partition_fetch_bytes=min(fetch_max_bytes, 1024 * 1024),
    )
    await kafka_client.start(consumer, kafka)
    try:
        named = stop if stop is not None else start
        numbers = sorted(named) if named is not None else await _partitions_for(consumer, topic)
        partitions = [TopicPartition(topic, number) for number in numbers]
        consumer.assign(partitions)
        ends = (
            {tp: stop[tp.partition] for tp in partitions} if stop is not None
            else await consumer.end_offsets(partitions)
        )
        begins = (
            {tp: start[tp.partition] for tp in partitions} if start is not None
            else await consumer.beginning_offsets(partitions)
        )
        remaining = {tp for tp in partitions if begins[tp] < ends[tp]}
        for tp in partitions:
            if tp in remaining:
                consumer.seek(tp, begins[tp])
            else:
                consumer.pause(tp)
        loop = asyncio.get_running_loop()
        last_seen = loop.time()
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    yield Consumed(
                        record.topic, record.partition, record.offset,
                        record.key, record.value, tuple(record.headers or ()), record.timestamp,
                    )
            for tp in list(remaining):
                # The position passes the end over transaction markers too, which
                # are never returned as records.
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
            if batch:
                last_seen = loop.time()
            elif loop.time() - last_seen > idle_timeout:
                left = {tp.partition: ends[tp] - await consumer.position(tp) for tp in remaining}
                raise TimeoutError(f"{topic}: nothing arrived for {idle_timeout:.0f} s short of the end ({left})")
    finally:
        await consumer.stop()


async def wait_until_consumed(
    kafka: KafkaConnection | str, group_id: str, topics: Iterable[str], *, timeout: float, poll: float = 0.5
) -> None:
    """Until consumer group ``group_id`` has committed every record of ``topics``.

    A worker commits an offset only after what it wrote for the records before it
    (table changelogs included) reached the broker, so nothing left to commit means
    the group has *applied* every record: the exact "reference data is loaded"
    signal. Counts of table keys are not, because a worker's tables also hold
    standby copies of other workers' partitions.
    """
    admin = kafka_client.admin_client(kafka)
    consumer = kafka_client.consumer(kafka, enable_auto_commit=False)
    await kafka_client.start(admin, kafka)
    try:
        await kafka_client.start(consumer, kafka)
    except BaseException:
        await admin.close()
        raise
    try:
        partitions = [
            TopicPartition(topic, p) for topic in topics for p in await _partitions_for(consumer, topic)
        ]
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            ends = await consumer.end_offsets(partitions)
            committed = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
            lag: dict[str, int] = {}
            for tp in partitions:
                done = committed.get(tp)
                position = done.offset if done is not None and done.offset >= 0 else 0
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, ends[tp] - position)
            if not any(lag.values()):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"group {group_id} still has records to consume: {lag}")
            await asyncio.sleep(poll)
    finally:
        await consumer.stop()
        await admin.close()


async def record_counts(kafka: KafkaConnection | str, *, suffix: str = "") -> dict[str, int]:
    """Records held now (end offset less start offset, over every partition) by each
    topic whose name ends with ``suffix``: how much a replay of those topics reads."""
    consumer = kafka_client.consumer(kafka, enable_auto_commit=False)
    await kafka_client.start(consumer, kafka)
    try:
        names = sorted(t for t in await consumer.topics() if t.endswith(suffix) and not t.startswith("__"))
        partitions = [TopicPartition(topic, p) for topic in names for p in await _partitions_for(consumer, topic)]
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        counts = dict.fromkeys(names, 0)
        for tp in partitions:
            counts[tp.topic] += ends[tp] - starts[tp]
        return counts
    finally:
        await consumer.stop()


async def _partitions_for(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    for _ in range(50):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        await consumer._client.force_metadata_update()  # noqa: SLF001 - no public way
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} does not exist")


async def collect_json(
    kafka: KafkaConnection | str,
    topic: str,
    count: int,
    where: Callable[[dict[str, Any]], bool] = lambda record: True,
    *,
    timeout: float = 60.0,
    committed_only: bool = False,
) -> list[dict[str, Any]]:
    """The first ``count`` JSON records of ``topic`` that match ``where``, read from the
    beginning; fewer only when nothing new arrived for ``timeout`` seconds."""
    found: list[dict[str, Any]] = []
    stream = read_topic(kafka, topic, timeout=timeout, committed_only=committed_only)
    async with aclosing(stream):
        async for record in stream:
            value = orjson.loads(record.value or b"null")
            if where(value):
                found.append(value)
                if len(found) >= count:
                    break
    return found
