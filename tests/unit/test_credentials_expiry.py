"""Expiry as Sunbird's ExpiryDateValuator computes it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from certflow.credentials.expiry import valid_until

ISSUED = datetime(2019, 8, 31, 12, 52, 25, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expiry", "expected"),
    [
        # Sunbird's ExpiryDateValuatorTest, issued 2019-08-31T12:52:25Z.
        ("2m", "2019-10-31T12:52:25Z"),
        ("2Y", "2021-08-31T12:52:25Z"),
        ("2d", "2019-09-02T12:52:25Z"),
        ("2D 2y", "2021-09-02T12:52:25Z"),
        ("2M 1y", "2020-10-31T12:52:25Z"),
        ("2d 2m", "2019-11-02T12:52:25Z"),
    ],
)
def test_sunbirds_expiry_table(expiry: str, expected: str) -> None:
    assert valid_until(ISSUED, expiry) == datetime.fromisoformat(expected)


def test_a_full_timestamp_is_used_as_it_is() -> None:
    assert valid_until(ISSUED, "2030-01-15T00:00:00Z") == datetime(2030, 1, 15, tzinfo=UTC)


@pytest.mark.parametrize("expiry", ["", "   "])
def test_no_expiry_means_none(expiry: str) -> None:
    assert valid_until(ISSUED, expiry) is None


def test_months_keep_the_day_and_clamp_it_to_the_months_end() -> None:
    assert valid_until(ISSUED, "1m") == datetime(2019, 9, 30, 12, 52, 25, tzinfo=UTC)
    assert valid_until(datetime(2024, 1, 31, tzinfo=UTC), "1m") == datetime(2024, 2, 29, tzinfo=UTC)
    assert valid_until(datetime(2024, 2, 29, tzinfo=UTC), "1y") == datetime(2025, 2, 28, tzinfo=UTC)
    assert valid_until(datetime(2024, 11, 30, tzinfo=UTC), "14m") == datetime(2026, 1, 30, tzinfo=UTC)


def test_tokens_apply_in_the_order_written_as_in_sunbird() -> None:
    january_31 = datetime(2019, 1, 31, tzinfo=UTC)
    assert valid_until(january_31, "1m 1d") == datetime(2019, 3, 1, tzinfo=UTC)  # Feb 28, then +1 day
    assert valid_until(january_31, "1d 1m") == datetime(2019, 3, 1, tzinfo=UTC)  # Feb 1, then +1 month
    assert valid_until(datetime(2019, 1, 30, tzinfo=UTC), "1m 1d") == datetime(2019, 3, 1, tzinfo=UTC)
    assert valid_until(datetime(2019, 1, 30, tzinfo=UTC), "1d 1m") == datetime(2019, 2, 28, tzinfo=UTC)


def test_extra_spaces_between_tokens_are_tolerated() -> None:
    assert valid_until(ISSUED, " 2d   2m ") == valid_until(ISSUED, "2d 2m")


@pytest.mark.parametrize(
    "expiry",
    ["2w", "2", "m", "-2d", "2.5y", "2 m", "2dm", "two years", "2019-13-01T00:00:00Z", "2019-08-31", "9999y"],
)
def test_invalid_expiry_is_a_clear_error(expiry: str) -> None:
    with pytest.raises(ValueError, match="expiry"):
        valid_until(ISSUED, expiry)
