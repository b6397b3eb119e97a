"""Faust's exactly-once processing, made exactly-once: what certflow changes and why.

Under ``processing_guarantee="exactly_once"`` Faust runs each source partition's
work in a Kafka transaction: the records an event makes and the event's offset
are to be committed together, so that a read_committed reader sees each output
once even when a worker dies. faust-streaming 0.15.3 breaks that promise in five
ways, all found by the fault matrix's case (d) (three workers, one SIGKILLed, a
replacement joins; see README, "Faults"), which saw certificates committed twice:

* It commits while events are being processed (:class:`CommitGate`). The offsets
  are taken, then the producer buffer is flushed and the transactions committed,
  while the agents go on: every record an event sent in between was committed
  with the transaction but without the event's offset, so the worker that read
  the partition next made it again. One case (d) run: a commit of offset 171
  whose transaction held the certificates of events 171-178, all made again by
  the next owner after the SIGKILL.
* Its table recovery takes the end of each changelog partition from a value
  aiokafka forgets at every rebalance (:class:`ConsumerThread`).
* Its rebalance forgets what it should commit, hands a new owner records before
  they are sought (twice, or throws them away), and miscounts transaction markers:
  the consumer's part (:mod:`certflow.faust_fixes.consumer`).

Where an event's records go is :class:`TransactionManager`'s. Upstream: no
faust-streaming issue is known to us for these; ``tests/unit/test_exactly_once.py``
shows them on Faust's own code, and the fault matrix's case (d) reproduces them
(``python tests/chaos/matrix.py 4 --cases d``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from time import monotonic
from typing import Any

import faust
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import AppT, HeadersArg
from faust.types.tuples import TP, RecordMetadata

#: How long a commit waits for the events being processed to finish before it
#: gives up (and commits at the next interval instead): longer than any event
#: should take, short enough that a stuck event does not hold the agents up.
COMMIT_GATE_TIMEOUT_SECONDS = 10.0


class CommitGate:
    """Commits only between events: a commit waits until no event is being
    processed, and no event starts while it runs.

    Faust commits on a timer, concurrently with its agents: it takes the offsets
    acknowledged so far, flushes the producer buffer and commits each partition's
    transaction. Whatever an agent sent meanwhile (the certificate of an event not
    yet acknowledged, or of one acknowledged after the offsets were taken) went
    into the committed transaction without the event's offset, and the worker that
    read the partition after a crash made it again: read_committed readers saw it
    twice. Kafka Streams commits between records for this reason. certflow runs
    every event's work inside :meth:`event` (``Settler.settle``), and the
    consumer's commit inside :meth:`closed`; an event is acknowledged as soon as
    its work returns (Faust's stream acknowledges it before waiting for the next
    one, without yielding to the loop), so the offsets a commit takes cover
    exactly the events whose records are in its transactions.
    """

    def __init__(self) -> None:
        self._busy = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._open = asyncio.Event()
        self._open.set()
        self._closing = asyncio.Lock()
        self._inside: ContextVar[bool] = ContextVar("certflow_event_in_progress", default=False)

    @property
    def busy(self) -> int:
        """How many events are being processed."""
        return self._busy

    def inside_event(self) -> bool:
        """Whether the calling task is processing an event (a commit from there
        would wait for itself)."""
        return self._inside.get()

    @contextlib.asynccontextmanager
    async def event(self) -> AsyncIterator[None]:
        """While one event is processed: not during a commit."""
        while not self._open.is_set():
            await self._open.wait()
        self._busy += 1
        self._quiet.clear()
        token = self._inside.set(True)
        try:
            yield
        finally:
            self._inside.reset(token)
            self._busy -= 1
            if not self._busy:
                self._quiet.set()

    @contextlib.asynccontextmanager
    async def closed(self, timeout: float = COMMIT_GATE_TIMEOUT_SECONDS) -> AsyncIterator[bool]:
        """No event starts inside; yields whether the events being processed all
        finished within ``timeout`` (if not, the caller must not commit)."""
        async with self._closing:
            self._open.clear()
            try:
                try:
                    await asyncio.wait_for(self._quiet.wait(), timeout)
                except TimeoutError:
                    quiet = False
                else:
                    quiet = True
                yield quiet
            finally:
                self._open.set()


def event_in_progress(app: AppT) -> AbstractAsyncContextManager[object]:
    """The context one event's work runs in: under exactly-once, inside the
    consumer's :class:`CommitGate`; otherwise nothing (an at-least-once commit
    covers acknowledged events only, and their records are flushed before it)."""
    gate = getattr(app.consumer, "gate", None) if app.in_transaction else None
    if isinstance(gate, CommitGate):
        return gate.event()
    return contextlib.nullcontext()


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, asking the broker where each changelog
    partition ends, under exactly-once too, and reporting a partition never
    committed only once it has gone uncommitted for the livelock timeout since its
    first records (:meth:`_log_slow_processing_commit`).

    Under exactly-once, Faust's table recovery takes the end of each changelog
    partition from ``last_stable_offset``: aiokafka's copy of the last stable
    offset from the last fetch response, which it forgets at every rebalance (each
    assignment starts afresh) and learns again only once the partition is fetched,
    while recovery keeps the partitions paused until it knows their ends. So
    recovery saw every changelog partition as empty (-1): one the worker had read
    before stopped it (``ConsistencyError``: persisted offset 179 > highwater -1;
    in one case (d) run all three surviving workers, at the rebalance after the
    SIGKILL), and one new to the worker was not read back at all (its table served
    empty). ``end_offsets`` asks the broker, with the consumer's isolation level:
    under exactly-once (read_committed) it is the last stable offset the broker has
    now. A SIGKILLed worker's open transaction does not hold it back: the new
    owner's producer has fenced it (and the coordinator aborted it) before recovery
    asks, as Faust starts a partition's transactional producer first.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        #: Per partition never committed, when its stream was first seen processing
        #: it (to within the livelock check's interval).
        self._processing_since: dict[TP, float] = {}

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        ends: Mapping[TP, int] = await self._ensure_consumer().end_offsets(partitions)
        return ends

    def verify_event_path(self, now: float, tp: TP) -> None:
        monitor = self.consumer.app.monitor
        if monitor is not None and tp in monitor.stream_inbound_time and tp not in self.tp_last_committed_at:
            self._processing_since.setdefault(tp, now)
        super().verify_event_path(now, tp)

    def _log_slow_processing_commit(self, msg: str, *args: Any) -> None:
        """Faust's report of a partition not committed, except a partition never
        committed whose stream began processing it within the livelock timeout.

        Faust counts a never-committed partition's time from the worker's start, so
        the first record of a partition that stayed quiet longer than the timeout
        (300 s) was reported at once, before the commit that follows within
        seconds: an ERROR, "Has not committed … at all since worker start", for a
        worker doing its job. At a million learners the issue flow's partitions got
        their first records after the 10.5-minute load, and three of them were
        reported so; a 150,000-learner run with the timeout at 30 s reported nine
        partitions once each as their first records arrived, and none again.
        """
        if msg == faust_aiokafka.SLOW_PROCESSING_NO_COMMIT_SINCE_START:
            since = self._processing_since.get(args[0])
            if since is None or monotonic() - since < self.tp_commit_timeout_secs:
                return
        super()._log_slow_processing_commit(msg, *args)


class TransactionManager(faust_consumer.TransactionManager):
    """Faust's exactly-once producer, sending an event's records in the transaction
    of the partition the event came from, and not beginning a transaction twice.

    Faust sends each record in the transaction of its *destination* partition, but
    commits an event's offset in the transaction of its *source* partition. A record
    sent to another partition (a generate request for a learner, an eligibility job)
    then waited, invisible to read_committed consumers, until some event of that
    other partition was committed too; with nothing more arriving there, it waited
    forever (the exactly-once test stalled at 463 of 800 certificates). In the
    source partition's transaction, an event's records commit atomically with its
    offset, as Kafka Streams does. Records sent outside an event (table changelogs
    from the producer buffer, whose partition is the event's own in co-partitioned
    tables; web requests) keep Faust's choice.
    """

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: HeadersArg | None,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[RecordMetadata]:
        event = faust.current_event()
        if event is None:
            return await super().send(topic, key, value, partition, timestamp, headers)
        source = event.message.tp
        group = self.app.assignor.group_for_topic(source.topic)
        return await self.producer.send(
            topic, key, value, self.consumer.key_partition(topic, key, partition), timestamp, headers,
            transactional_id=f"{self.app.conf.id}-{group}-{source.partition}",
        )

    async def _start_transactions(self, tids: Iterable[str]) -> None:
        """Begin the assigned partitions' transactions, except those still open.

        At a rebalance Faust commits (and ends) the transactions that have offsets
        to commit, then begins one for every assigned partition; a partition the
        worker kept, with nothing to commit, still has its transaction open, and
        beginning it again failed with ``Invalid state transition IN_TRANSACTION ->
        IN_TRANSACTION`` on every worker at every rebalance. Harmless (the open
        transaction goes on and is committed with the partition's next offsets) but
        it read as a defect, so such a transaction is left as it is.
        """
        producers: Mapping[str, object] = getattr(self.producer, "_transaction_producers", {})
        await super()._start_transactions(
            [tid for tid in tids if not _in_transaction(producers.get(tid))]
        )


def _in_transaction(producer: object) -> bool:
    manager = getattr(producer, "_txn_manager", None)
    return manager is not None and bool(manager.is_in_transaction())
