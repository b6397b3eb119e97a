"""Where table recovery starts reading a changelog partition."""

from __future__ import annotations

from faust.types import TP

from certflow.faust_fixes.consumer import changelog_starts


def test_a_partition_without_a_start_is_read_from_the_beginning_and_the_others_where_faust_says() -> None:
    assigned_mid_recovery, nothing_read, read_before = TP("c", 0), TP("c", 1), TP("c", 2)
    assert changelog_starts({assigned_mid_recovery: None, nothing_read: -1, read_before: 42}) == {
        assigned_mid_recovery: 0, nothing_read: 0, read_before: 42,
    }
