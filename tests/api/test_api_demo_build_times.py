"""The demo world builds at any moment of the week: its multidose period starts on the next
Monday in Oslo, so a build on a Sunday evening after Oslo's midnight (still Sunday in UTC) does
not open a period that starts today with its deadline already past (issue seen at 23:03 UTC on
Sunday 2026-12-06: ``InvalidPackingPeriod``, so ``./dev demo`` failed)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from medloop.demo import build
from medloop.store.multidose import period
from tests.reference import DEMO


@pytest.mark.parametrize(
    ("now", "first_day"),
    [
        # Sunday 23:30 UTC is Monday 00:30 in Oslo (winter): the Monday after that one.
        (datetime(2026, 12, 6, 23, 30, tzinfo=UTC), date(2026, 12, 14)),
        # Sunday 22:30 UTC is Monday 00:30 in Oslo (summer time).
        (datetime(2026, 6, 7, 22, 30, tzinfo=UTC), date(2026, 6, 15)),
        # Sunday 12:00 UTC is Sunday in Oslo too: the next day.
        (datetime(2026, 12, 6, 12, 0, tzinfo=UTC), date(2026, 12, 7)),
    ],
)
def test_the_demo_world_builds_with_its_period_on_the_next_monday_in_oslo(engine, now, first_day):
    world = build(engine, DEMO, now=now)
    assert world.patients
    with engine.connect() as conn:
        days = conn.execute(select(period.c.first_day)).scalars().all()
    assert days and set(days) == {first_day}
