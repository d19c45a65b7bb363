"""FHIR R4 ``Dosage`` (a MedicationRequest's ``dosageInstruction``) as medloop's structured
dosage (``interactions.dosage.Dosage``), so that decision support can check the dose of a
CDS Hooks draft; and how a dosage that could not be mapped is told in the alerts.

The mapping never guesses. It reads what decides the amounts — the dose, how often, on which
days, the as-needed limits and the bounds — and either gives a ``MappedDosage`` or a
``NotMapped`` naming the FHIR element it could not represent faithfully and why (the draft is
then checked without a dosage). Elements that do not change how much is given when are ignored:
``route``, ``site``, ``method``, ``additionalInstruction``, ``patientInstruction``,
``asNeededCodeableConcept``'s reason, ``maxDosePerLifetime``, ``timing.repeat.duration`` and
``offset``, ``doseAndRate.type``, and ``timing.code`` next to a ``timing.repeat``. A
``maxDosePerPeriod`` on a regular dosage is ignored too: the schedule already says what is given.

How elements are read (each as the FHIR element states it; nothing is defaulted):

- ``when`` codes name one intake each: MORN/MORN.early morning, MORN.late forenoon, NOON midday,
  AFT* afternoon, EVE* evening, NIGHT and HS (before sleep) night; waking and named meals (WAKE,
  PHS, CM, ACM, PCD …) are intakes at no slot of ours. C, AC and PC ("at / before / after a
  meal") name no meal, so they only qualify a ``frequency``.
- ``frequency`` per ``period`` of at most a day becomes an interval that gives as many intakes
  on a calendar day as the period allows (three times a day: every 8 hours, three a day; once
  every 5 hours: five a day); once per a longer period is an interval of that period; more
  than once per a longer period is refused unless ``dayOfWeek`` names the days.
- As-needed timing is a limit: once per period is a minimum interval, more often a maximum per
  period; ``frequencyMax`` is the most it allows and ``period`` (not ``periodMax``) the shortest
  wait.
- Several ``dosageInstruction``s are concurrent (summed) when their ``sequence`` is the same or
  absent on all and their bounds are equal: summing can only raise the amounts checked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from fhir.resources.R4B.dosage import Dosage as FhirDosage
from pydantic import ValidationError

from interactions.alerts import Alert, DoseNotCheckedDetail, shorten
from interactions.dosage import (
    AsNeededDose,
    Dosage,
    FixedDose,
    Period,
    Quantity,
    TimeOfDay,
    TimeUnit,
    Use,
    Weekday,
)
from interactions.units import Dimension, canonical, unit_info

UCUM = "http://unitsofmeasure.org"
ROOT = "MedicationRequest.dosageInstruction"
NO_DOSAGE = "no-dosage"
"""The reason code of the engine's "no dosage" alert; kept when the draft has no dosage at all."""
DOSAGE_NOT_MAPPED = "dosage-not-mapped"


@dataclass(frozen=True, slots=True)
class MappedDosage:
    """The draft's dosage and the first and last day it is in use (``None``: not bounded)."""

    dosage: Dosage
    start: date | None = None
    stop: date | None = None


@dataclass(frozen=True, slots=True)
class NotMapped:
    """Why a draft's dosage was not mapped: the FHIR ``element`` (a path) and the ``reason``."""

    element: str
    reason: str
    code: str = DOSAGE_NOT_MAPPED

    def __str__(self) -> str:
        return f"{self.element}: {self.reason}"


class _Refused(Exception):
    def __init__(self, element: str, reason: str) -> None:
        super().__init__(element, reason)
        self.element = element
        self.reason = reason


def dosage_of(instructions: Sequence[FhirDosage] | None, today: date) -> MappedDosage | NotMapped:
    """The draft's ``dosageInstruction`` as one medloop dosage, or why it cannot be one.

    ``today`` is when bounds without a start of their own start."""
    if not instructions:
        return NotMapped(ROOT, "the draft has no dosage instruction", code=NO_DOSAGE)
    try:
        _in_sequence(instructions)
        parts = [_instruction(d, f"{ROOT}[{i}]", today) for i, d in enumerate(instructions)]
        return _concurrent(parts)
    except _Refused as refused:
        return NotMapped(refused.element, refused.reason)
    except ValidationError as error:
        # The FHIR values are each representable but break a rule of medloop's dosage model.
        first = error.errors()[0]["msg"] if error.errors() else str(error)
        return NotMapped(ROOT, f"medloop's dosage model refuses it: {first}")


def explained(
    alerts: Iterable[Alert],
    not_mapped: Mapping[str, NotMapped],
    names: Mapping[str, str],
    routes: Mapping[str, NotMapped | None] | None = None,
) -> tuple[Alert, ...]:
    """``alerts`` with each "dose not checked" alert of a draft saying which FHIR element
    stopped it: "no dosage" when its dosage was not mapped (``not_mapped`` by draft id), "route
    not known" with the draft's route element (``routes``: every draft's id, with why a route it
    gave was not taken, or ``None`` when it gave none)."""
    return tuple(_explained(alert, not_mapped, names, routes or {}) for alert in alerts)


ROUTE_UNKNOWN = "route-unknown"


def _explained(
    alert: Alert,
    not_mapped: Mapping[str, NotMapped],
    names: Mapping[str, str],
    routes: Mapping[str, NotMapped | None],
) -> Alert:
    detail = alert.detail
    if not (isinstance(detail, DoseNotCheckedDetail) and len(alert.medications) == 1):
        return alert
    draft = alert.medications[0]
    if detail.reason_code == NO_DOSAGE and draft in not_mapped:
        why = not_mapped[draft]
        reason = (
            str(why) if why.code == NO_DOSAGE else f"the FHIR dosage could not be mapped: {why}"
        )
        code = why.code
    elif detail.reason_code == ROUTE_UNKNOWN and draft in routes:
        given = routes[draft]
        reason = (
            f"{ROOT}.route: absent, and the catalogue gives no route for a drug named so"
            if given is None
            else f"the FHIR route could not be mapped: {given}"
        )
        code = ROUTE_UNKNOWN
    else:
        return alert
    name = names.get(draft, draft)
    return alert.model_copy(
        update={
            "summary": shorten(f"Dose of {detail.substance} not checked ({name}): {reason}"),
            "detail": detail.model_copy(update={"reason_code": code, "reason": reason}),
        }
    )


# --- one Dosage ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Part:
    """One dosageInstruction, mapped."""

    as_needed: bool
    fixed: tuple[FixedDose, ...]
    prn: tuple[AsNeededDose, ...]
    text: str | None
    start: date | None
    stop: date | None


@dataclass(frozen=True, slots=True)
class _Slot:
    """One named intake on a dosing day (a ``when`` code or a ``timeOfDay``)."""

    time_of_day: TimeOfDay | None = None
    clock_time: time | None = None


def _instruction(dosage: FhirDosage, path: str, today: date) -> _Part:
    if dosage.modifierExtension:
        raise _Refused(f"{path}.modifierExtension", "a modifier extension changes its meaning")
    as_needed = dosage.asNeededBoolean is True or dosage.asNeededCodeableConcept is not None
    amount = _dose(dosage, path)
    _check_max_per_administration(dosage, amount, path)
    timing = dosage.timing
    repeat = None
    if timing is not None:
        if timing.modifierExtension:
            raise _Refused(f"{path}.timing.modifierExtension", "a modifier extension changes it")
        if timing.event:
            raise _Refused(f"{path}.timing.event", "intakes on given dates are not a schedule")
        repeat = timing.repeat
        if repeat is None and timing.code is not None:
            raise _Refused(f"{path}.timing.code", "a coded timing without repeat is not read")
    start, stop = _bounds(repeat, f"{path}.timing.repeat", today)
    if as_needed:
        prn = _as_needed(amount, repeat, dosage, path)
        return _Part(True, (), (prn,), dosage.text, start, stop)
    if repeat is None:
        raise _Refused(f"{path}.timing", "absent: how often the dose is taken is not stated")
    fixed = _fixed(amount, repeat, f"{path}.timing.repeat")
    return _Part(False, fixed, (), dosage.text, start, stop)


def _dose(dosage: FhirDosage, path: str) -> Quantity:
    entries = dosage.doseAndRate or []
    if not entries:
        raise _Refused(f"{path}.doseAndRate", "absent: the dosage gives no structured dose")
    if len(entries) > 1:
        raise _Refused(
            f"{path}.doseAndRate",
            f"{len(entries)} entries (e.g. ordered and calculated); "
            "which one is given is not chosen here",
        )
    entry, at = entries[0], f"{path}.doseAndRate[0]"
    for rate in ("rateQuantity", "rateRange", "rateRatio"):
        if getattr(entry, rate) is not None:
            raise _Refused(f"{at}.{rate}", "a rate (infusion) is not a dose medloop can check")
    if entry.doseRange is not None:
        raise _Refused(f"{at}.doseRange", "a range of doses; the dose check needs a single dose")
    if entry.doseQuantity is None:
        raise _Refused(f"{at}.doseQuantity", "absent: the dosage gives no dose")
    return _quantity(entry.doseQuantity, f"{at}.doseQuantity")


def _check_max_per_administration(dosage: FhirDosage, amount: Quantity, path: str) -> None:
    """A cap per administration below the dose itself contradicts it; otherwise the dose is
    the single amount and the cap adds nothing."""
    cap = dosage.maxDosePerAdministration
    if cap is None:
        return
    try:
        limit = _quantity(cap, f"{path}.maxDosePerAdministration")
    except _Refused:
        return
    dose, most = canonical(amount.value, amount.unit), canonical(limit.value, limit.unit)
    if dose.unit == most.unit and most.value < dose.value:
        raise _Refused(
            f"{path}.maxDosePerAdministration",
            f"{limit.value:g} {limit.unit} is less than the dose {amount.value:g} {amount.unit}",
        )


def _bounds(repeat: Any, path: str, today: date) -> tuple[date | None, date | None]:
    if repeat is None:
        return None, None
    if repeat.boundsRange is not None:
        raise _Refused(f"{path}.boundsRange", "a range of durations does not say when it stops")
    if repeat.boundsPeriod is not None:
        start = _day(repeat.boundsPeriod.start, f"{path}.boundsPeriod.start")
        stop = _day(repeat.boundsPeriod.end, f"{path}.boundsPeriod.end")
        if stop is not None and stop < (start or today):
            raise _Refused(f"{path}.boundsPeriod", "it ends before it starts")
        return start, stop
    duration = repeat.boundsDuration
    if duration is not None:
        days = _days(duration, f"{path}.boundsDuration")
        try:
            return None, today + timedelta(days=days - 1)
        except OverflowError:
            reason = f"{days} days end beyond the calendar"
            raise _Refused(f"{path}.boundsDuration", reason) from None
    return None, None


def _day(value: Any, path: str) -> date | None:
    """The calendar day of a FHIR dateTime as written (its own offset), if it names a day."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise _Refused(path, f"{value!r} does not name a day")


def _days(duration: Any, path: str) -> int:
    unit = _time_unit(duration, path)
    value = _positive(duration.value, f"{path}.value")
    per_unit = {TimeUnit.DAY: 1, TimeUnit.WEEK: 7}.get(unit)
    days = None if per_unit is None else value * per_unit
    if days is None or days.denominator != 1:
        raise _Refused(path, "only whole days or weeks give a last day of use")
    return int(days)


# --- amounts ------------------------------------------------------------------------------

_UCUM_UNITS = {
    "kg": "kg",
    "g": "g",
    "mg": "mg",
    "ug": "mcg",
    "ng": "ng",
    "L": "l",
    "l": "l",
    "mL": "ml",
    "ml": "ml",
    "[iU]": "IU",
    "[IU]": "IU",
    "U": "U",
    "mmol": "mmol",
}
_ENGLISH_NOUNS = {
    "tablett": ("tablet", "tablets", "tab", "tabs", "tbl"),
    "kapsel": ("capsule", "capsules", "cap", "caps"),
    "brusetablett": ("effervescent tablet", "effervescent tablets"),
    "sugetablett": ("lozenge", "lozenges"),
    "dråpe": ("drop", "drops", "gtt"),
    "stikkpille": ("suppository", "suppositories", "supp"),
    "plaster": ("patch", "patches"),
    "pose": ("sachet", "sachets"),
    "ampulle": ("ampoule", "ampoules", "ampule", "ampules"),
    "hetteglass": ("vial", "vials"),
    "pust": ("puff", "puffs"),
    "inhalasjon": ("inhalation", "inhalations"),
    "dose": ("dose", "doses"),
    "applikasjon": ("application", "applications"),
    "stk": ("piece", "pieces", "unit of presentation"),
}
_NOUNS = {english: noun for noun, spellings in _ENGLISH_NOUNS.items() for english in spellings}
_ANNOTATION = re.compile(r"\{([^{}]*)\}")
_UNITY = {"", "1", "/1", "1/1"}


def _quantity(quantity: Any, path: str) -> Quantity:
    if quantity.comparator is not None:
        raise _Refused(f"{path}.comparator", f"{quantity.comparator!r}: not a single amount")
    value = _positive(quantity.value, f"{path}.value")
    return Quantity(value=float(value), unit=_unit(quantity, path))


def _positive(value: Decimal | None, path: str) -> Fraction:
    if value is None:
        raise _Refused(path, "absent")
    if not value.is_finite() or not 0 < float(value) < math.inf:
        raise _Refused(path, f"{value} is not a positive amount")
    return Fraction(value)


def _unit(quantity: Any, path: str) -> str:
    """The medloop unit of a FHIR Quantity: its UCUM code, else its human-readable unit."""
    system, code, text = quantity.system, quantity.code, quantity.unit
    if system == UCUM:
        if code is None:
            raise _Refused(f"{path}.code", "absent: a UCUM quantity names its unit by code")
        found = _ucum(code, text)
        if found is None:
            raise _Refused(f"{path}.code", f"UCUM unit {code!r} is not a dose unit medloop knows")
        return found
    found = None if text is None else _spoken(text)
    if found is None and system is None and code is not None:
        found = _ucum(code, None)
    if found is None and text is None and code is None:
        raise _Refused(f"{path}.unit", "absent: the quantity has no unit")
    if found is None:
        shown = f"{system} code {code!r}" if system else repr(text if text else code)
        raise _Refused(f"{path}.unit", f"the unit {shown} is not a dose unit medloop knows")
    return found


def _ucum(code: str, text: str | None) -> str | None:
    if code in _UCUM_UNITS:
        return _UCUM_UNITS[code]
    if _ANNOTATION.sub("", code) not in _UNITY:
        return None
    # A UCUM annotation carries no meaning of its own: "{tbl}" is a count, like "1". The count
    # is of the product's own units; a dose-form noun in the annotation or the text names them,
    # otherwise "stk" (pieces).
    for label in (*_ANNOTATION.findall(code), text or ""):
        noun = _spoken(label)
        info = None if noun is None else unit_info(noun)
        if noun is not None and info is not None and info.dimension is Dimension.COUNT:
            return noun
    return "stk"


def _spoken(text: str) -> str | None:
    """A unit written for people: English dose-form nouns, UCUM codes, or medloop's own units."""
    key = text.strip()
    if key.lower() in _NOUNS:
        return _NOUNS[key.lower()]
    if key in _UCUM_UNITS:
        return _UCUM_UNITS[key]
    return key if unit_info(key) is not None else None


# --- time ---------------------------------------------------------------------------------

_PERIOD_UNITS = {
    "min": TimeUnit.MINUTE,
    "h": TimeUnit.HOUR,
    "d": TimeUnit.DAY,
    "wk": TimeUnit.WEEK,
    "mo": TimeUnit.MONTH,
}
_SPOKEN_TIME = {
    "minute": TimeUnit.MINUTE,
    "minutes": TimeUnit.MINUTE,
    "hour": TimeUnit.HOUR,
    "hours": TimeUnit.HOUR,
    "day": TimeUnit.DAY,
    "days": TimeUnit.DAY,
    "week": TimeUnit.WEEK,
    "weeks": TimeUnit.WEEK,
    "month": TimeUnit.MONTH,
    "months": TimeUnit.MONTH,
}
_HOURS = {
    TimeUnit.MINUTE: Fraction(1, 60),
    TimeUnit.HOUR: Fraction(1),
    TimeUnit.DAY: Fraction(24),
    TimeUnit.WEEK: Fraction(168),
    TimeUnit.MONTH: Fraction(28 * 24),
}
_DAY = Fraction(24)
_WEEK = Fraction(168)
_WEEKDAYS = {
    "mon": Weekday.MONDAY,
    "tue": Weekday.TUESDAY,
    "wed": Weekday.WEDNESDAY,
    "thu": Weekday.THURSDAY,
    "fri": Weekday.FRIDAY,
    "sat": Weekday.SATURDAY,
    "sun": Weekday.SUNDAY,
}
_WHEN: dict[str, TimeOfDay | None] = {
    "MORN": TimeOfDay.MORNING,
    "MORN.early": TimeOfDay.MORNING,
    "MORN.late": TimeOfDay.FORENOON,
    "NOON": TimeOfDay.MIDDAY,
    "AFT": TimeOfDay.AFTERNOON,
    "AFT.early": TimeOfDay.AFTERNOON,
    "AFT.late": TimeOfDay.AFTERNOON,
    "EVE": TimeOfDay.EVENING,
    "EVE.early": TimeOfDay.EVENING,
    "EVE.late": TimeOfDay.EVENING,
    "NIGHT": TimeOfDay.NIGHT,
    "HS": TimeOfDay.NIGHT,
    **dict.fromkeys(("WAKE", "PHS", "CM", "CD", "CV", "ACM", "ACD", "ACV", "PCM", "PCD", "PCV")),
}
_ANY_MEAL = frozenset({"C", "AC", "PC"})


def _time_unit(quantity: Any, path: str) -> TimeUnit:
    """The unit of a FHIR Duration (or a Ratio's denominator): a UCUM code, else its text."""
    code = quantity.code if quantity.system in (UCUM, None) else None
    text = (quantity.unit or "").strip()
    unit = _PERIOD_UNITS.get(code or "") or _PERIOD_UNITS.get(text)
    unit = unit or _SPOKEN_TIME.get(text.lower())
    if unit is None:
        raise _Refused(path, f"the time unit {code or text!r} is not one of min, h, d, wk, mo")
    return unit


def _period_of(value: Decimal | None, unit_code: str | None, path: str) -> Period:
    if unit_code is None:
        raise _Refused(f"{path}.periodUnit", "absent: the period has no unit")
    unit = _PERIOD_UNITS.get(unit_code)
    if unit is None:
        raise _Refused(f"{path}.periodUnit", f"{unit_code!r} is not one of min, h, d, wk, mo")
    return Period(value=float(_positive(value, f"{path}.period")), unit=unit)


def _hours(period: Period) -> Fraction:
    return Fraction(period.value) * _HOURS[period.unit]


@dataclass(frozen=True, slots=True)
class _Repeat:
    """What a ``timing.repeat`` says about how often, in exact numbers."""

    slots: tuple[_Slot, ...]
    weekdays: tuple[Weekday, ...]
    frequency: int | None
    period: Period | None


def _repeat(repeat: Any, path: str) -> _Repeat:
    for element in ("count", "countMax"):
        if getattr(repeat, element) is not None:
            raise _Refused(f"{path}.{element}", "a number of intakes in all is not representable")
    weekdays = []
    for index, code in enumerate(repeat.dayOfWeek or []):
        if code not in _WEEKDAYS:
            raise _Refused(f"{path}.dayOfWeek[{index}]", f"{code!r} is not a day of the week")
        weekdays.append(_WEEKDAYS[code])
    when, clock = list(repeat.when or []), list(repeat.timeOfDay or [])
    if when and clock:
        raise _Refused(f"{path}.timeOfDay", "timeOfDay and when together (FHIR tim-10)")
    slots = [_Slot(clock_time=at) for at in clock]
    meals = [code for code in when if code in _ANY_MEAL]
    for index, code in enumerate(when):
        if code in _ANY_MEAL:
            continue
        if code not in _WHEN:
            raise _Refused(f"{path}.when[{index}]", f"{code!r} is not a time medloop can place")
        slots.append(_Slot(time_of_day=_WHEN[code]))
    if meals and slots:
        raise _Refused(f"{path}.when", f"{meals[0]} (any meal) mixed with named times")
    if meals and repeat.frequency is None:
        raise _Refused(f"{path}.frequency", f"absent: {meals[0]} (any meal) does not say how often")
    period = None
    if repeat.period is not None or repeat.periodUnit is not None:
        period = _period_of(repeat.period, repeat.periodUnit, path)
    if repeat.frequency is not None and period is None:
        raise _Refused(f"{path}.period", "absent: a frequency needs a period")
    if period is not None and repeat.frequency is None:
        raise _Refused(f"{path}.frequency", "absent: a period needs a frequency")
    return _Repeat(tuple(slots), tuple(weekdays), repeat.frequency, period)


def _fixed(amount: Quantity, repeat: Any, path: str) -> tuple[FixedDose, ...]:
    for element in ("frequencyMax", "periodMax"):
        if getattr(repeat, element) is not None:
            raise _Refused(f"{path}.{element}", "a range of frequencies; a schedule needs one")
    found = _repeat(repeat, path)
    slots, weekdays = found.slots, found.weekdays
    if found.period is None or found.frequency is None:
        if not slots:
            raise _Refused(path, "neither frequency and period nor when or timeOfDay say how often")
        return tuple(_fixed_dose(amount, slot, None, weekdays) for slot in slots)
    frequency, period = found.frequency, found.period
    hours = _hours(period)
    if weekdays:
        days = len(set(weekdays))
        if hours == _DAY:
            per_day = Fraction(frequency)
        elif hours == _WEEK and frequency % days == 0:
            per_day = Fraction(frequency, days)
        else:
            raise _Refused(
                f"{path}.period",
                f"{frequency} per {period.value:g} {period.unit} on "
                f"{days} named day(s) does not say how many intakes fall on each",
            )
    elif hours <= _DAY:
        per_day = frequency * _DAY / hours
    else:
        if frequency != 1:
            raise _Refused(
                f"{path}.frequency",
                f"{frequency} per {period.value:g} {period.unit} does not "
                "say how many intakes fall on one day",
            )
        if len(slots) > 1:
            named = f"{path}.when" if repeat.when else f"{path}.timeOfDay"
            raise _Refused(named, "several times a day, but once per period")
        return (_fixed_dose(amount, slots[0] if slots else _Slot(), period, ()),)
    if slots:
        if per_day != len(slots):
            raise _Refused(
                f"{path}.frequency",
                f"{frequency} per {period.value:g} {period.unit} is "
                f"{float(per_day):g} a day, but {len(slots)} time(s) a day are named",
            )
        return tuple(_fixed_dose(amount, slot, None, weekdays) for slot in slots)
    if per_day == 1:
        return (_fixed_dose(amount, _Slot(), None, weekdays),)
    every = period if frequency == 1 else Period(value=float(_DAY / per_day), unit=TimeUnit.HOUR)
    return (_fixed_dose(amount, _Slot(), every, weekdays),)


def _fixed_dose(
    amount: Quantity, slot: _Slot, interval: Period | None, weekdays: tuple[Weekday, ...]
) -> FixedDose:
    return FixedDose(
        amount=amount,
        time_of_day=slot.time_of_day,
        clock_time=slot.clock_time,
        interval=interval,
        weekdays=weekdays,
    )


@dataclass(frozen=True, slots=True)
class _Limit:
    """At most ``most`` in any ``period``, as stated by ``element``."""

    most: Quantity
    period: Period
    element: str


def _as_needed(amount: Quantity, repeat: Any, dosage: FhirDosage, path: str) -> AsNeededDose:
    limits: list[_Limit] = []
    min_interval = None
    if repeat is not None:
        at = f"{path}.timing.repeat"
        found = _repeat(repeat, at)
        if found.weekdays:
            raise _Refused(f"{at}.dayOfWeek", "as-needed doses on named days are not representable")
        if found.slots:
            for element in ("frequencyMax", "periodMax"):
                if getattr(repeat, element) is not None:
                    raise _Refused(f"{at}.{element}", "a range of frequencies at named times")
            if found.period is not None and found.frequency is not None:
                hours = _hours(found.period)
                if hours > _DAY or found.frequency * _DAY / hours != len(found.slots):
                    raise _Refused(f"{at}.frequency", "it does not match the times named")
            most = Quantity(value=amount.value * len(found.slots), unit=amount.unit)
            limits.append(_Limit(most, Period(value=1, unit=TimeUnit.DAY), f"{at}.when"))
        elif found.period is not None and found.frequency is not None:
            times = max(found.frequency, repeat.frequencyMax or 0)
            if times == 1:
                min_interval = found.period
            else:
                most = Quantity(value=amount.value * times, unit=amount.unit)
                limits.append(_Limit(most, found.period, f"{at}.frequency"))
    if dosage.maxDosePerPeriod is not None:
        limits.append(_max_per_period(dosage.maxDosePerPeriod, f"{path}.maxDosePerPeriod"))
    return _prn_dose(amount, limits, min_interval)


def _max_per_period(ratio: Any, path: str) -> _Limit:
    if ratio.numerator is None or ratio.denominator is None:
        raise _Refused(path, "a ratio needs a numerator and a denominator")
    most = _quantity(ratio.numerator, f"{path}.numerator")
    unit = _time_unit(ratio.denominator, f"{path}.denominator")
    value = _positive(ratio.denominator.value, f"{path}.denominator.value")
    return _Limit(most, Period(value=float(value), unit=unit), path)


def _prn_dose(amount: Quantity, limits: list[_Limit], min_interval: Period | None) -> AsNeededDose:
    """At most two limits come in (one from the timing, one from maxDosePerPeriod); a 24-hour
    one goes to ``max_per_24h``, the other to ``max_per_period``. A limit below one dose
    contradicts the dose."""
    dose = canonical(amount.value, amount.unit)
    for limit in limits:
        most = canonical(limit.most.value, limit.most.unit)
        if most.unit == dose.unit and most.value < dose.value:
            raise _Refused(
                limit.element,
                f"at most {limit.most.value:g} {limit.most.unit} is less than "
                f"one dose of {amount.value:g} {amount.unit}",
            )
    daily = next((limit for limit in limits if _hours(limit.period) == _DAY), None)
    others = [limit for limit in limits if limit is not daily]
    if len(others) == 2:
        first, second = others
        if _hours(first.period) != _hours(second.period):
            raise _Refused(
                second.element, f"a second limit over another period than {first.element}"
            )
        others = [_tighter(first, second)]
    other = others[0] if others else None
    return AsNeededDose(
        amount=amount,
        max_per_24h=None if daily is None else daily.most,
        max_per_period=None if other is None else other.most,
        period=None if other is None else other.period,
        min_interval=min_interval,
    )


def _tighter(first: _Limit, second: _Limit) -> _Limit:
    a = canonical(first.most.value, first.most.unit)
    b = canonical(second.most.value, second.most.unit)
    if a.unit != b.unit:
        raise _Refused(
            second.element, f"a second limit in {second.most.unit}, not {first.most.unit}"
        )
    return first if a.value <= b.value else second


# --- several Dosages ----------------------------------------------------------------------


def _in_sequence(instructions: Sequence[FhirDosage]) -> None:
    first = instructions[0].sequence
    for index, instruction in enumerate(instructions):
        if instruction.sequence != first:
            raise _Refused(
                f"{ROOT}[{index}].sequence",
                "instructions in sequence (a dose that changes over time) are not one dosage",
            )


def _concurrent(parts: list[_Part]) -> MappedDosage:
    first = parts[0]
    for index, part in enumerate(parts[1:], start=1):
        if part.as_needed != first.as_needed:
            raise _Refused(
                f"{ROOT}[{index}].asNeeded[x]", "regular and as-needed instructions together"
            )
        if (part.start, part.stop) != (first.start, first.stop):
            raise _Refused(
                f"{ROOT}[{index}].timing.repeat.bounds[x]", "the bounds differ from the first"
            )
    texts = [part.text for part in parts if part.text]
    if first.as_needed:
        use = Use.AS_NEEDED
    else:
        use = Use.REGULAR if first.stop is None else Use.COURSE
    dosage = Dosage(
        use=use,
        fixed=tuple(dose for part in parts for dose in part.fixed),
        as_needed=tuple(dose for part in parts for dose in part.prn),
        text="; ".join(texts) if texts else None,
    )
    return MappedDosage(dosage, first.start, first.stop)
