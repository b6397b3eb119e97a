"""When a certificate expires: Sunbird's ``ExpiryDateValuator``, reproduced.

A Sunbird generate request's ``expiry`` is either a full time stamp
(``2027-08-31T00:00:00Z``, used as it is) or a duration relative to the issue date
in tokens such as ``2m``, ``1y 6m`` or ``30D``: a number, then ``d`` (days), ``m``
(months) or ``y`` (years), in either case, separated by spaces. Tokens are added
one after the other, in the order written, with calendar semantics, exactly as
Sunbird's ``java.util.Calendar.add`` does: adding months keeps the day of the month
and clamps it to the target month's length (31 August + 1 month = 30 September;
+ 2 months = 31 October), and a year is twelve such months (29 February + 1 year =
28 February). Order matters only through that clamping.

Departures from Sunbird, both about bad input: runs of spaces between tokens are
accepted (Sunbird's ``split(" ")`` rejected them), and an invalid expiry raises
``ValueError`` saying what is wrong instead of yielding no date.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

#: Sunbird's pass-through form, ``yyyy-MM-dd'T'HH:mm:ss'Z'``.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
#: Sunbird's token, ``^\d+[MYDmyd]$``.
_TOKEN = re.compile(r"(\d+)([dDmMyY])")


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus ``months`` calendar months, the day clamped to the month's end."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def valid_until(issued: datetime, expiry: str) -> datetime | None:
    """The expiry instant for a certificate issued at ``issued``; None when ``expiry`` is blank.

    ``ValueError`` (with the offending text) for anything Sunbird would reject.
    """
    text = expiry.strip()
    if not text:
        return None
    if _TIMESTAMP.fullmatch(text):
        try:
            return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"expiry {expiry!r} is not a real date and time") from None
    moment = issued if issued.tzinfo is not None else issued.replace(tzinfo=UTC)
    for token in text.split():
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise ValueError(
                f"expiry {expiry!r}: {token!r} is neither a number followed by d, m or y "
                "(days, months, years, e.g. '2m' or '1y 6m') nor yyyy-MM-ddTHH:mm:ssZ"
            )
        amount, unit = int(match.group(1)), match.group(2).lower()
        try:
            if unit == "d":
                moment = moment + timedelta(days=amount)
            elif unit == "m":
                moment = add_months(moment, amount)
            else:
                moment = add_months(moment, 12 * amount)
        except (OverflowError, ValueError):
            raise ValueError(f"expiry {expiry!r} lies beyond the year 9999") from None
    return moment
