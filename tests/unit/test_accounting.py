"""Every event ends as exactly one outcome, and the counts say so."""

from __future__ import annotations

from certflow.accounting import TOTAL, Accounting, Outcome


def test_totals_equal_the_sum_of_outcomes() -> None:
    accounting = Accounting()
    for outcome in (Outcome.SUCCESS, Outcome.SUCCESS, Outcome.FAILED, Outcome.SKIPPED):
        accounting.received("in")
        accounting.ended("in", outcome)
    counts = accounting.snapshot()["in"]
    assert counts[TOTAL] == 4
    assert counts[TOTAL] == sum(counts[o.value] for o in Outcome)


def test_sunbird_metric_names_are_present_from_the_first_event() -> None:
    accounting = Accounting()
    accounting.received("in")
    assert set(accounting.snapshot()["in"]) == {
        "total-events-count", "success-events-count", "skipped-event-count", "failed-events-count",
    }


def test_extra_counters_sit_beside_the_outcomes() -> None:
    accounting = Accounting()
    accounting.add("in", "recipients-emitted-count", 3)
    assert accounting.snapshot()["in"]["recipients-emitted-count"] == 3
