"""A consumer pauses after a fetch that brought nothing, and only then."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from certflow.kafka import pause_when_idle


class ScriptedFetcher:
    """Stands in for aiokafka's fetcher: each fetch says whether it brought records."""

    def __init__(self, results: list[bool]) -> None:
        self._results = iter(results)

    async def _proc_fetch_request(self, *args: Any) -> bool:
        return next(self._results)


def consumer_with(fetcher: ScriptedFetcher) -> Any:
    return SimpleNamespace(_fetcher=fetcher)


def test_an_empty_fetch_is_followed_by_the_pause_and_a_fruitful_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []

    async def recorded_sleep(seconds: float) -> None:
        pauses.append(seconds)

    fetcher = ScriptedFetcher([True, False, True, False])
    pause_when_idle(consumer_with(fetcher), 0.05)
    monkeypatch.setattr(asyncio, "sleep", recorded_sleep)

    async def fetch_four_times() -> list[tuple[bool, int]]:
        return [(await fetcher._proc_fetch_request("assignment", 0, "request"), len(pauses)) for _ in range(4)]

    assert asyncio.run(fetch_four_times()) == [(True, 0), (False, 1), (True, 1), (False, 2)]
    assert pauses == [0.05, 0.05]


def test_a_pause_cut_short_by_closing_the_consumer_ends_the_fetch_quietly() -> None:
    """aiokafka cancels its fetch tasks on close and awaits them: they must not raise."""
    fetcher = ScriptedFetcher([False])
    pause_when_idle(consumer_with(fetcher), 60)

    async def close_during_pause() -> bool:
        task = asyncio.ensure_future(fetcher._proc_fetch_request("assignment", 0, "request"))
        await asyncio.sleep(0.01)
        task.cancel()
        return await task

    assert asyncio.run(close_during_pause()) is False


@pytest.mark.parametrize("backoff", [0, -1])
def test_no_pause_when_turned_off(backoff: float) -> None:
    fetcher = ScriptedFetcher([False])
    original = fetcher._proc_fetch_request
    pause_when_idle(consumer_with(fetcher), backoff)
    assert fetcher._proc_fetch_request == original
