"""A report's period: whole Oslo calendar days, and the buckets (day, ISO week, month) the
reports count by."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from medloop.domain.errors import InvalidValue
from medloop.domain.oslo import local_day_bounds

MAX_DAYS = 400
"""The longest period one report covers (a year and a bit: a quarter-on-quarter comparison)."""


class InvalidReportPeriod(InvalidValue):
    code = "invalid-report-period"


class ReportPeriod(BaseModel):
    """The Oslo calendar days ``first_day`` … ``last_day``, both included."""

    model_config = ConfigDict(frozen=True)

    first_day: date
    last_day: date

    @classmethod
    def of(cls, first_day: date, last_day: date) -> ReportPeriod:
        if last_day < first_day:
            raise InvalidReportPeriod(
                f"the period ends ({last_day}) before it begins ({first_day})",
                first_day=first_day.isoformat(),
                last_day=last_day.isoformat(),
            )
        days = (last_day - first_day).days + 1
        if days > MAX_DAYS:
            raise InvalidReportPeriod(
                f"a report covers at most {MAX_DAYS} days, not {days}",
                first_day=first_day.isoformat(),
                last_day=last_day.isoformat(),
            )
        return cls(first_day=first_day, last_day=last_day)

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """The UTC instants where the first day begins and the day after the last begins."""
        return local_day_bounds(self.first_day)[0], local_day_bounds(self.last_day)[1]

    def days(self) -> list[date]:
        return [
            self.first_day + timedelta(days=n)
            for n in range((self.last_day - self.first_day).days + 1)
        ]

    def months(self) -> list[str]:
        found: list[str] = []
        for day in self.days():
            key = month_of(day)
            if not found or found[-1] != key:
                found.append(key)
        return found

    def weeks(self) -> list[date]:
        found: list[date] = []
        for day in self.days():
            key = week_of(day)
            if not found or found[-1] != key:
                found.append(key)
        return found


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def week_of(day: date) -> date:
    """The Monday of ``day``'s ISO week."""
    return day - timedelta(days=day.weekday())
