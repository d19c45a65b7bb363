"""Oslo time: the zone whose calendar days the domain counts in.

A planned dose's wall-clock time, a packing period's days and order deadline, a report's
period, the timeline's days and "today" for a command are all Oslo calendar days, whatever
the server's own zone; instants are stored in UTC. Summer and winter time are the zone's
(``zoneinfo``), so an Oslo day is 23, 24 or 25 hours long.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")

_DAY = timedelta(days=1)


def local_date(at: datetime) -> date:
    """The Oslo calendar day the aware instant ``at`` falls on."""
    return at.astimezone(OSLO).date()


def today() -> date:
    """The Oslo calendar day now (the default "today" of what runs outside a command)."""
    return local_date(datetime.now(UTC))


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants where the Oslo calendar day ``day`` begins and ends."""
    start = datetime.combine(day, time(0), tzinfo=OSLO).astimezone(UTC)
    end = datetime.combine(day + _DAY, time(0), tzinfo=OSLO).astimezone(UTC)
    return start, end
