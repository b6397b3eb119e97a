"""Faust's Kafka transport, whose consumer pauses between empty fetches.

Faust's aiokafka transport as it is, except that its consumer's fetcher pauses
``CERTFLOW_CONSUMER_IDLE_BACKOFF_MS`` after a fetch that brought nothing
(:func:`certflow.kafka.pause_when_idle` says why). Faust builds the consumer deep
inside its consumer thread, so the thread is the one class replaced here.
"""

from __future__ import annotations

from faust.transport.drivers import aiokafka as faust_aiokafka

from certflow.kafka import pause_when_idle


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread; its aiokafka consumer pauses when idle."""

    async def on_start(self) -> None:
        await super().on_start()
        if self._consumer is not None:
            pause_when_idle(self._consumer, getattr(self.app, "consumer_idle_backoff", 0.0))


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`Consumer`; everything else as Faust's."""

    Consumer = Consumer
