"""Faust's Kafka transport, with these changes certflow's guarantees depend on.

* Its consumer (:mod:`certflow.faust_fixes.consumer`) never commits past a record
  it read but did not process, hands each record to the agents once, and reads a
  changelog partition from the beginning where Faust's recovery lost track of
  where to start.
* Its producer's ``flush`` waits until every record buffered before it is
  delivered, and for no record buffered after it (:class:`Producer` says why);
  the producer is idempotent with acks=all.
* Topics it creates get the cluster's replication (:class:`Transport`).
* Under exactly-once, an event's records go in its own partition's transaction,
  committed only between events, and table recovery asks the broker where each
  changelog ends (:mod:`certflow.faust_fixes.exactly_once`).

Upstream: faust-streaming #216 and #221 (commits past unprocessed records); the
flush defect has no upstream issue known to us and is reproduced by
``tests/integration/test_producer_flush.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from faust.exceptions import ProducerSendError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import TP, FutureMessage

from certflow.faust_fixes.consumer import Consumer
from certflow.faust_fixes.exactly_once import TransactionManager
from certflow.kafka import topic_durability


class Producer(faust_aiokafka.Producer):
    """Faust's producer: acks=all and idempotent always (Faust makes it idempotent
    only under exactly-once), and whose ``flush`` returns only once every record buffered
    before it was called has been delivered (or raises if one could not be).

    Table changes reach their changelog through the producer's buffer
    (``send_soon``), and Faust commits the offsets of the events that made them
    after ``producer.flush()`` (under exactly-once, with no flush at all: see
    :meth:`commit_transactions`), and hands partitions over in a rebalance after
    it too. But Faust's buffer flush gives up as soon as one record takes 0.1 s to hand
    to the client, and misses the record being handed over, so a commit could run
    ahead of table changes still in the buffer. A worker killed then lost them:
    its successor recovered tables without them, while the events that made them
    were committed. The crash test caught it: 98 learners whose enrolments were
    lost were decided ``not_enrolled``.
    """

    def _settings_extra(self) -> Mapping[str, Any]:
        # Idempotence: a send retried after a broker failover is written once, in
        # order; acks=all: acknowledged means on min.insync.replicas brokers.
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}

    def __post_init__(self) -> None:
        super().__post_init__()
        self._undelivered: set[FutureMessage] = set()
        self._failure: BaseException | None = None

    def send_soon(self, fut: FutureMessage) -> None:
        self._undelivered.add(fut)
        fut.add_done_callback(self._on_delivered)
        super().send_soon(fut)

    def _on_delivered(self, fut: FutureMessage) -> None:
        self._undelivered.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            self._failure = fut.exception()

    async def flush(self) -> None:
        """Deliver what was buffered or sent before this call, not what comes after.

        Agents keep writing tables meanwhile, and a commit covers only the events
        acknowledged before it began. Faust's own flush first drains the buffer
        until it is empty or no record was handed to the client for 0.1 s; while
        agents write faster than the client takes records, neither happens, and a
        commit waited for the whole burst (24.7 s, all of the load, with a worker
        loading 50,000 learners, and Faust warned "Timer commit is overlapping").
        The buffer drains on its own: here the records buffered before the call are
        waited for one by one, and the client's batches of this moment (records
        agents sent directly) by the client's flush, which waits for those alone.
        """
        waiting = set(self._undelivered)
        for client in (self._producer, *self._transaction_producers.values()):
            if client is not None:
                await client.flush()
        while waiting:
            if self.should_stop:
                raise ProducerSendError("producer stopped with table changes undelivered")
            _, waiting = await asyncio.wait(waiting, timeout=1.0)
        failure, self._failure = self._failure, None
        if failure is not None:
            # Committing now would lose a table change: fail the commit instead,
            # and the events are processed again.
            raise ProducerSendError(f"a buffered record was not delivered: {failure!r}") from failure

    async def commit_transactions(
        self,
        tid_to_offset_map: Mapping[str, Mapping[TP, int]],
        group_id: str,
        start_new_transaction: bool = True,
    ) -> None:
        # Under exactly-once Faust commits without flushing: buffered table changes
        # would fall into the next transaction, and be lost with it if it aborts.
        await self.flush()
        await super().commit_transactions(
            tid_to_offset_map, group_id, start_new_transaction=start_new_transaction
        )


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with certflow's consumer, producer and
    transaction manager; the topics Faust creates (table changelogs, repartition
    topics) get the replication that fits the cluster, as ``certflow topics`` gives
    its own (:func:`certflow.kafka.topic_durability`), instead of Faust's one
    ``topic_replication_factor`` for every cluster."""

    Consumer = Consumer
    Producer = Producer
    TransactionManager = TransactionManager

    async def _really_create_topic(
        self,
        owner: Any,
        client: Any,
        topic: str,
        partitions: int,
        replication: int,
        *,
        config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        app = self.app
        brokers = len(client.cluster.brokers()) or 1
        replicas, in_sync = topic_durability(
            brokers, getattr(app, "replication_factor", None), getattr(app, "min_insync_replicas", None),
        )
        config = {"min.insync.replicas": str(in_sync), **(config or {})}
        await super()._really_create_topic(
            owner, client, topic, partitions, replicas, config=config, **kwargs
        )
