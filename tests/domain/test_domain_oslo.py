"""The domain's calendar days are Oslo days (``medloop.domain.oslo``), whatever the UTC date:
the day an instant falls on, and where a day begins and ends, across both clock changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from medloop.domain.oslo import OSLO, local_date, local_day_bounds, today


@pytest.mark.parametrize(
    ("at", "day"),
    [
        # Winter (UTC+1): from 23:00 UTC it is already the next day in Oslo.
        (datetime(2026, 12, 6, 22, 59, tzinfo=UTC), date(2026, 12, 6)),
        (datetime(2026, 12, 6, 23, 0, tzinfo=UTC), date(2026, 12, 7)),
        # Summer (UTC+2): from 22:00 UTC.
        (datetime(2026, 6, 14, 21, 59, tzinfo=UTC), date(2026, 6, 14)),
        (datetime(2026, 6, 14, 22, 0, tzinfo=UTC), date(2026, 6, 15)),
        # An aware instant in another zone counts by its Oslo day too.
        (datetime(2026, 12, 7, 0, 30, tzinfo=OSLO).astimezone(UTC), date(2026, 12, 7)),
    ],
)
def test_local_date_is_the_oslo_calendar_day_of_the_instant(at: datetime, day: date) -> None:
    assert local_date(at) == day


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        (date(2026, 3, 29), 23),  # spring forward: the night loses an hour
        (date(2026, 10, 25), 25),  # autumn back: the night repeats one
        (date(2026, 12, 7), 24),
    ],
)
def test_local_day_bounds_span_the_oslo_day_in_utc(day: date, hours: int) -> None:
    start, end = local_day_bounds(day)
    assert start.tzinfo is UTC and end.tzinfo is UTC
    assert end - start == timedelta(hours=hours)
    assert local_date(start) == day
    assert local_date(end - timedelta(microseconds=1)) == day
    assert local_date(end) == day + timedelta(days=1)


def test_today_is_the_oslo_day_of_now_not_the_utc_date(monkeypatch):
    from medloop.domain import oslo

    class AfterOsloMidnight(datetime):
        @classmethod
        def now(cls, tz=None):  # 00:30 on Monday 7 December in Oslo
            return datetime(2026, 12, 6, 23, 30, tzinfo=UTC).astimezone(tz)

    monkeypatch.setattr(oslo, "datetime", AfterOsloMidnight)
    assert today() == date(2026, 12, 7)
