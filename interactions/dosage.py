"""The structured dosage (e-resept ``Dosering``): the project's canonical, JSON-friendly model,
and the arithmetic that turns it into single, daily and weekly amounts.

Mapping to e-resept / FEST (``Forskrivning`` schema, HIS 3020 §6.3.4):

- ``FixedDose`` = ``DoseFastTidspunkt``: ``amount`` (``Mengde``), ``interval`` (``Intervall``),
  ``time_of_day`` (``Tidsomrade``, code system 8325) or ``clock_time`` (``Klokkeslett``) with
  ``exact`` (``GisEksakt``), ``weekdays`` (``FasteUkedager``, 9082), ``days_on``/``days_off``
  (``DagerPa``/``DagerAv``).
- ``AsNeededDose`` = ``DoseEtterBehov``: ``max_per_24h`` (``DoseDognMaks``), ``max_per_period`` per
  ``period`` (``DoseTidsromMaks``/``Tidsrom``), ``min_interval`` (``DoseIntervallMin``).
- ``ShortDose`` = ``Kortdose`` (code system 7478); ``text`` = ``DosVeiledEnkel``;
  ``use`` = ``Bruk``.

Medication lists, the multidose packer and the nursing-home chart reuse this model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from interactions.units import Amount
from interactions.values import MODEL_CONFIG, DayCount, DoseAmount, PeriodValue, StrEnum
from interactions.values import text as bounded


class Use(StrEnum):
    """``Bruk``: 1 Fast, 2 Kur, 3 Ved behov."""

    REGULAR = "regular"
    COURSE = "course"
    AS_NEEDED = "as-needed"


class TimeOfDay(StrEnum):
    """``Tidsomrade`` (code system 8325); the ward maps each slot to its own clock time."""

    MORNING = "morning"
    FORENOON = "forenoon"
    MIDDAY = "midday"
    AFTERNOON = "afternoon"
    EVENING = "evening"
    NIGHT = "night"

    @property
    def code(self) -> str:
        return str(list(TimeOfDay).index(self) + 1)

    @classmethod
    def from_code(cls, code: str) -> TimeOfDay:
        return list(cls)[int(code) - 1]


class Weekday(StrEnum):
    """``FasteUkedager`` (code system 9082: 1 Monday … 7 Sunday)."""

    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"

    @property
    def code(self) -> str:
        return str(list(Weekday).index(self) + 1)

    @classmethod
    def from_code(cls, code: str) -> Weekday:
        return list(cls)[int(code) - 1]


class TimeUnit(StrEnum):
    """Time units of code system 9088 that dosages use."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


# A month counts as its shortest length, so that "at most once a month" never undercounts.
_HOURS_PER_UNIT = {
    TimeUnit.MINUTE: 1 / 60,
    TimeUnit.HOUR: 1.0,
    TimeUnit.DAY: 24.0,
    TimeUnit.WEEK: 168.0,
    TimeUnit.MONTH: 28 * 24.0,
}
_EPSILON = 1e-9


class _Model(BaseModel):
    model_config = MODEL_CONFIG


class Quantity(_Model):
    """An amount with its unit: a dose-form noun ("tablett"), a mass, a volume or IU/E."""

    value: DoseAmount
    unit: Annotated[str, bounded(50, 1)]


class Period(_Model):
    """A length of time, e.g. ``{"value": 8, "unit": "hour"}``."""

    value: PeriodValue
    unit: TimeUnit

    @property
    def hours(self) -> float:
        return self.value * _HOURS_PER_UNIT[self.unit]


class FixedDose(_Model):
    """One planned intake, repeated on every dosing day (or every ``interval``)."""

    amount: Quantity
    time_of_day: TimeOfDay | None = None
    clock_time: time | None = None
    exact: bool = False
    interval: Period | None = None
    weekdays: tuple[Weekday, ...] = Field(default=(), max_length=7)
    days_on: DayCount | None = None
    days_off: DayCount | None = None

    @model_validator(mode="after")
    def _day_pattern_is_complete(self) -> FixedDose:
        if (self.days_on is None) != (self.days_off is None):
            raise ValueError("days_on and days_off go together")
        return self

    def intakes_per_dosing_day(self) -> int:
        """How many times this dose is taken on a day it is taken at all."""
        if self.interval is None or self.interval.hours >= 24:
            return 1
        return math.ceil(24 / self.interval.hours - _EPSILON)

    def dosing_days_per_week(self) -> int:
        """The most days this dose falls on in any seven consecutive days."""
        if self.weekdays:
            return len(set(self.weekdays))
        if self.days_on is not None and self.days_off is not None:
            return _most_days_on_in_a_week(self.days_on, self.days_off)
        if self.interval is not None and self.interval.hours > 24:
            return min(7, math.ceil(7 * 24 / self.interval.hours - _EPSILON))
        return 7


def _most_days_on_in_a_week(days_on: int, days_off: int) -> int:
    cycle = [True] * days_on + [False] * days_off
    return max(
        sum(cycle[(start + day) % len(cycle)] for day in range(7)) for start in range(len(cycle))
    )


class AsNeededDose(_Model):
    """A PRN dose with the limits written on the prescription."""

    amount: Quantity
    max_per_24h: Quantity | None = None
    max_per_period: Quantity | None = None
    period: Period | None = None
    min_interval: Period | None = None

    @model_validator(mode="after")
    def _period_limit_is_complete(self) -> AsNeededDose:
        if (self.max_per_period is None) != (self.period is None):
            raise ValueError("max_per_period and period go together")
        return self


class ShortDose(_Model):
    """``Kortdose``: a coded short dose (code system 7478) with its display text."""

    code: Annotated[str, bounded(20, 1)]
    text: Annotated[str, bounded(500)] | None = None


class Dosage(_Model):
    """How a medication is taken: fixed doses or as-needed doses (never both), plus texts."""

    use: Use
    fixed: tuple[FixedDose, ...] = Field(default=(), max_length=48)
    as_needed: tuple[AsNeededDose, ...] = Field(default=(), max_length=48)
    short_dose: ShortDose | None = None
    text: Annotated[str, bounded(2_000)] | None = None

    @model_validator(mode="after")
    def _doses_match_use(self) -> Dosage:
        if self.fixed and self.as_needed:
            raise ValueError("a dosage has fixed doses or as-needed doses, not both")
        if self.as_needed and self.use is not Use.AS_NEEDED:
            raise ValueError("as-needed doses need use 'as-needed'")
        if self.fixed and self.use is Use.AS_NEEDED:
            raise ValueError("fixed doses need use 'regular' or 'course'")
        return self


class DoseNotComputable(ValueError):
    """The dosage does not determine an amount; ``code`` says why, for machines."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class DoseTotals:
    """Upper bounds of what a dosage gives, in one unit.

    ``daily`` is the most on any one calendar day, ``weekly`` the most in any seven consecutive
    days, ``dosing_days_per_week`` the most days with an intake in any seven consecutive days.
    """

    single: Amount
    daily: Amount
    weekly: Amount
    dosing_days_per_week: int


Convert = Callable[[Quantity], Amount]


def totals(dosage: Dosage, convert: Convert) -> DoseTotals:
    """Single, daily and weekly amounts of ``dosage``, each dose converted by ``convert``.

    ``convert`` maps a dose quantity to the amount being checked (e.g. mg of one substance) and
    raises ``DoseNotComputable`` when it cannot. Raises ``DoseNotComputable`` when the dosage has
    no structured doses, mixes units, or is as-needed without any limit per day.
    """
    if dosage.fixed:
        return _fixed_totals(dosage.fixed, convert)
    if dosage.as_needed:
        return _as_needed_totals(dosage.as_needed, convert)
    raise DoseNotComputable(
        "no-structured-dosage", "the dosage has no structured doses (only a short dose or text)"
    )


def _fixed_totals(doses: tuple[FixedDose, ...], convert: Convert) -> DoseTotals:
    amounts = [convert(dose.amount) for dose in doses]
    unit = _common_unit(amounts)
    per_day = [
        amount.value * dose.intakes_per_dosing_day()
        for dose, amount in zip(doses, amounts, strict=True)
    ]
    daily = max(
        sum(
            value
            for dose, value in zip(doses, per_day, strict=True)
            if not dose.weekdays or weekday in dose.weekdays
        )
        for weekday in Weekday
    )
    weekly = sum(
        value * dose.dosing_days_per_week() for dose, value in zip(doses, per_day, strict=True)
    )
    return DoseTotals(
        single=Amount(max(amount.value for amount in amounts), unit),
        daily=Amount(daily, unit),
        weekly=Amount(weekly, unit),
        dosing_days_per_week=_dosing_days_per_week(doses),
    )


def _dosing_days_per_week(doses: tuple[FixedDose, ...]) -> int:
    # Doses without weekdays are assumed to fall on the same days as each other.
    on_weekdays = {day for dose in doses for day in dose.weekdays}
    other_days = max(
        (dose.dosing_days_per_week() for dose in doses if not dose.weekdays), default=0
    )
    return min(7, max(len(on_weekdays), other_days))


def _as_needed_totals(doses: tuple[AsNeededDose, ...], convert: Convert) -> DoseTotals:
    limits = [_as_needed_limits(dose, convert) for dose in doses]
    unit = _common_unit([amount for limit in limits for amount in limit])
    single = max(limit[0].value for limit in limits)
    daily = sum(limit[1].value for limit in limits)
    weekly = sum(limit[2].value for limit in limits)
    days = min(7, sum(math.floor(limit[2].value / limit[0].value + _EPSILON) for limit in limits))
    return DoseTotals(Amount(single, unit), Amount(daily, unit), Amount(weekly, unit), days)


def _as_needed_limits(dose: AsNeededDose, convert: Convert) -> tuple[Amount, Amount, Amount]:
    """(single, most per day, most per week) of one PRN dose, from its own limits."""
    single = convert(dose.amount)
    per_day: list[Amount] = []
    per_week: list[Amount] = []
    if dose.max_per_24h is not None:
        per_day.append(convert(dose.max_per_24h))
    if dose.min_interval is not None:
        intakes = math.ceil(24 / dose.min_interval.hours - _EPSILON)
        per_day.append(Amount(single.value * intakes, single.unit))
    if dose.max_per_period is not None and dose.period is not None:
        per_period = convert(dose.max_per_period)
        for window, bounds in ((24.0, per_day), (168.0, per_week)):
            periods = math.ceil(window / dose.period.hours - _EPSILON)
            bounds.append(Amount(per_period.value * periods, per_period.unit))
    if not per_day:
        raise DoseNotComputable(
            "as-needed-without-maximum",
            "the as-needed dose has no maximum per 24 h, per period or minimum interval",
        )
    unit = _common_unit([single, *per_day, *per_week])
    daily = min(amount.value for amount in per_day)
    weekly = min([daily * 7, *(amount.value for amount in per_week)])
    return single, Amount(daily, unit), Amount(weekly, unit)


def _common_unit(amounts: list[Amount]) -> str:
    units = {amount.unit for amount in amounts}
    if len(units) != 1:
        raise DoseNotComputable(
            "mixed-units", f"the doses use units that cannot be added: {', '.join(sorted(units))}"
        )
    return units.pop()
