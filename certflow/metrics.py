"""Prometheus metrics of a worker: Sunbird's counters, latencies, cache, consumer lag.

Counters keep Sunbird's names (SUNBIRD.md §6) so existing dashboards carry over,
with ``-`` turned into ``_`` as Prometheus requires and a ``topic`` label, e.g.
``certflow_total_events_count{topic="generate.certificate.request"}``. They are read
from the worker's :class:`~certflow.accounting.Accounting` at scrape time rather
than kept twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from certflow.accounting import Accounting
from certflow.render.template_cache import CacheStats

#: Seconds from the request reaching Kafka to its certificate being published.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: Seconds one event spends in its agent.
_PROCESSING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)


class WorkerMetrics:
    """The registry a worker's ``/metrics`` serves."""

    def __init__(
        self, accounting: Accounting, cache_stats: Callable[[], dict[str, CacheStats]]
    ) -> None:
        self.registry = CollectorRegistry()
        #: Records behind, per (topic, partition): measured by the web view just
        #: before a scrape, since reading positions needs the event loop.
        self.lag: dict[tuple[str, int], int] = {}
        self.certificate_latency = Histogram(
            "certflow_certificate_latency_seconds",
            "From the request reaching Kafka to its certificate being published.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.notifications = Counter(
            "certflow_notifications_total",
            "Notifications to learners by outcome (sent, skipped, failed) and, for a skip, why.",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.processing = Histogram(
            "certflow_event_processing_seconds",
            "Time one event spends in its agent, by stage.",
            ["stage"],
            buckets=_PROCESSING_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(accounting, cache_stats, lambda: self.lag))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Counters and gauges computed from the worker's state at scrape time."""

    def __init__(
        self,
        accounting: Accounting,
        cache_stats: Callable[[], dict[str, CacheStats]],
        lag: Callable[[], dict[tuple[str, int], int]],
    ) -> None:
        self._accounting = accounting
        self._cache_stats = cache_stats
        self._lag = lag

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily] = {}
        for topic, counts in self._accounting.snapshot().items():
            for name, value in counts.items():
                metric = "certflow_" + name.replace("-", "_")
                family = families.setdefault(
                    metric,
                    CounterMetricFamily(metric, f"Sunbird's {name}, per input topic.", labels=["topic"]),
                )
                family.add_metric([topic], value)
        yield from families.values()

        caches = {
            field: CounterMetricFamily(
                f"certflow_cache_{field}", f"Cache {field}, per cache.", labels=["cache"]
            )
            for field in ("hits", "misses", "evictions", "fetches", "revalidated")
        }
        sizes = GaugeMetricFamily("certflow_cache_entries", "Entries held, per cache.", labels=["cache"])
        for cache, stats in self._cache_stats().items():
            for field, family in caches.items():
                family.add_metric([cache], getattr(stats, field))
            sizes.add_metric([cache], stats.size)
        yield from caches.values()
        yield sizes

        lag = GaugeMetricFamily(
            "certflow_consumer_lag", "Records not yet read, per assigned partition.",
            labels=["topic", "partition"],
        )
        for (topic, partition), behind in sorted(self._lag().items()):
            lag.add_metric([topic, str(partition)], behind)
        yield lag
