"""A partition never committed is reported only once it has gone uncommitted for
the livelock timeout since its stream began processing it, not since the worker
started (Faust's count, which reported every quiet partition's first record)."""

from __future__ import annotations

import logging
from time import monotonic

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from certflow.faust_fixes.app import FixedApp
from certflow.faust_fixes.exactly_once import ConsumerThread

REQUESTS = TP("generate.certificate.request", 1)
NEVER_COMMITTED = faust_aiokafka.SLOW_PROCESSING_NO_COMMIT_SINCE_START
NOT_COMMITTED_LATELY = faust_aiokafka.SLOW_PROCESSING_NO_RECENT_COMMIT


def consumer_thread() -> ConsumerThread:
    thread = FixedApp("livelock", broker="kafka://127.0.0.1:1").consumer._thread
    assert isinstance(thread, ConsumerThread)
    thread.tp_commit_timeout_secs = 300.0
    return thread


def reported(thread: ConsumerThread, caplog: pytest.LogCaptureFixture, msg: str) -> bool:
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        thread._log_slow_processing_commit(msg, REQUESTS, "an hour ago")
    return any("Has not committed" in record.getMessage() for record in caplog.records)


def test_a_partition_first_processed_recently_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    thread = consumer_thread()
    thread._processing_since[REQUESTS] = monotonic() - 10  # its first records, 10 s ago; the worker, an hour
    assert not reported(thread, caplog, NEVER_COMMITTED)


def test_a_partition_processed_without_a_commit_for_the_timeout_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    thread = consumer_thread()
    thread._processing_since[REQUESTS] = monotonic() - 301
    assert reported(thread, caplog, NEVER_COMMITTED)


def test_a_partition_whose_commits_stopped_is_reported_as_faust_does(caplog: pytest.LogCaptureFixture) -> None:
    thread = consumer_thread()
    assert reported(thread, caplog, NOT_COMMITTED_LATELY)


def test_processing_is_timed_from_the_first_check_that_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Faust's own checks need a running aiokafka consumer; what they log is above.
    monkeypatch.setattr(faust_aiokafka.AIOKafkaConsumerThread, "verify_event_path", lambda self, now, tp: None)
    thread = consumer_thread()
    monitor = thread.consumer.app.monitor
    assert monitor is not None
    thread.verify_event_path(100.0, REQUESTS)
    assert REQUESTS not in thread._processing_since, "no record processed yet"
    monitor.stream_inbound_time[REQUESTS] = 1.0
    thread.verify_event_path(107.0, REQUESTS)
    thread.verify_event_path(114.0, REQUESTS)
    assert thread._processing_since[REQUESTS] == 107.0
    committed = TP("generate.certificate.request", 2)
    thread.tp_last_committed_at[committed] = 110.0
    monitor.stream_inbound_time[committed] = 1.0
    thread.verify_event_path(114.0, committed)
    assert committed not in thread._processing_since, "committed: Faust times it from its last commit"
