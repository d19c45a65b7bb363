"""Which entries go into bags and when (``placement``, ``expected_doses``), and the production
plan of a period: its bags, the entries given outside multidose, and the later changes that
reach the next period or an urgent pack."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from enum import StrEnum
from uuid import UUID

from pydantic import AwareDatetime

from interactions.dosage import FixedDose, Quantity, Use, Weekday
from interactions.units import unit_info
from interactions.values import Count
from medloop.domain._model import Frozen
from medloop.domain.codes import EntryStatus
from medloop.domain.drug_reference import CatalogueDrug
from medloop.domain.entry import ListEntry
from medloop.domain.medication_list import EntryVersion, ListChange
from medloop.domain.multidose.periods import PackingPeriod, UrgentPack, cutoff, list_at
from medloop.domain.multidose.rules import PackingRules
from medloop.domain.oslo import local_date


class OutsideReason(StrEnum):
    """Why an entry in use is given outside multidose."""

    NOT_FLAGGED = "not-flagged-multidose"
    NOT_REGULAR = "not-regular-use"
    NOT_PACKABLE = "form-not-packable"
    NON_CATALOGUE = "non-catalogue-item"
    NO_STRUCTURED_DOSAGE = "no-structured-dosage"
    NO_INTAKE_TIME = "no-intake-time"
    MIXED_UNITS = "doses-in-different-units"


def placement(entry: ListEntry, rules: PackingRules) -> OutsideReason | None:
    """``None`` when the entry goes into bags, else why it is given outside multidose."""
    if not entry.multidose:
        return OutsideReason.NOT_FLAGGED
    if entry.use is not Use.REGULAR:
        return OutsideReason.NOT_REGULAR
    if not isinstance(entry.drug, CatalogueDrug):
        return OutsideReason.NON_CATALOGUE
    if not rules.packable_form(entry.drug.resolved.form_code):
        return OutsideReason.NOT_PACKABLE
    if entry.dosage is None or not entry.dosage.fixed:
        return OutsideReason.NO_STRUCTURED_DOSAGE
    if any(not _intakes(dose) for dose in entry.dosage.fixed):
        return OutsideReason.NO_INTAKE_TIME
    first = entry.dosage.fixed[0].amount.unit
    if any(not _same_unit(first, dose.amount.unit) for dose in entry.dosage.fixed):
        return OutsideReason.MIXED_UNITS
    return None


def _intakes(dose: FixedDose) -> tuple[str, ...]:
    """The bag times of one fixed dose on a dosing day: its slot or clock time(s)."""
    hours = None if dose.interval is None else dose.interval.hours
    if dose.clock_time is not None:
        if hours is None or hours >= 24:
            return (dose.clock_time.strftime("%H:%M"),)
        start = dose.clock_time.hour * 60 + dose.clock_time.minute
        step = round(hours * 60)
        return tuple(f"{m // 60:02d}:{m % 60:02d}" for m in range(start, 24 * 60, step))
    if dose.time_of_day is not None and (hours is None or hours >= 24):
        return (dose.time_of_day.value,)
    return ()


def _dosing_day(dose: FixedDose, start: date, day: date) -> bool:
    offset = (day - start).days
    if dose.weekdays and _WEEKDAYS[day.weekday()] not in dose.weekdays:
        return False
    if dose.days_on is not None and dose.days_off is not None:
        if offset % (dose.days_on + dose.days_off) >= dose.days_on:
            return False
    if dose.interval is not None and dose.interval.hours > 24:
        every = max(1, round(dose.interval.hours / 24))
        if offset % every:
            return False
    return True


_WEEKDAYS = tuple(Weekday)

Slot = tuple[date, str, UUID]
"""One bag (day, intake time) and one entry in it."""


def expected_doses(
    entries: Iterable[ListEntry], days: Iterable[date], rules: PackingRules
) -> dict[Slot, Quantity]:
    """What the bags should hold: for each day, intake time and packable entry in use that
    day, the amount (doses at the same time add up)."""
    found: dict[Slot, Quantity] = {}
    days = tuple(days)
    for entry in entries:
        if placement(entry, rules) is not None:
            continue
        assert entry.dosage is not None
        for day in days:
            if not taken_on(entry, day):
                continue
            for dose in entry.dosage.fixed:
                if not _dosing_day(dose, entry.start, day):
                    continue
                for intake in _intakes(dose):
                    key = (day, intake, entry.id)
                    found[key] = _add(found.get(key), dose.amount)
    return found


def taken_on(entry: ListEntry, day: date) -> bool:
    """Whether the entry is meant to be taken on ``day``; a discontinued entry counts up to
    the day before its discontinuation (Oslo time), so bags already given stay right."""
    if entry.status is EntryStatus.DISCONTINUED and entry.discontinuation is not None:
        ended = local_date(entry.discontinuation.at)
        return entry.start <= day < ended and (entry.stop is None or day <= entry.stop)
    return entry.in_use(day)


def _add(total: Quantity | None, amount: Quantity) -> Quantity:
    # ``placement`` keeps entries whose doses mix units out of the bags.
    return amount if total is None else Quantity(value=total.value + amount.value, unit=total.unit)


def _same_unit(a: str, b: str) -> bool:
    if a.strip().lower() == b.strip().lower():
        return True
    ia, ib = unit_info(a), unit_info(b)
    return (
        ia is not None
        and ib is not None
        and ia.canonical == ib.canonical
        and (ia.factor == ib.factor)
    )


def same_amount(a: Quantity, b: Quantity) -> bool:
    return _same_unit(a.unit, b.unit) and abs(a.value - b.value) < 1e-9


# -- the production plan -----------------------------------------------------------------------


class PlanLine(Frozen):
    entry_id: UUID
    drug: str
    varenr: str | None
    quantity: Quantity


class Bag(Frozen):
    """One bag: a dosing day and intake time (a slot such as ``morning`` or a clock time)."""

    day: date
    intake: str
    lines: tuple[PlanLine, ...]


class OutsideEntry(Frozen):
    """An entry in use that is given outside multidose, and why."""

    entry_id: UUID
    drug: str
    reason: OutsideReason


class LateChange(Frozen):
    """A list change after the order deadline that touches a multidose entry: it reaches the
    next period, or this one through an urgent pack."""

    list_version: Count
    at: AwareDatetime
    entry_ids: tuple[UUID, ...]
    reaches: str


class ProductionPlan(Frozen):
    """What to pack for a period, from the list version in force at the cutoff."""

    period_id: UUID
    patient_id: UUID
    first_day: date
    last_day: date
    order_deadline: AwareDatetime
    cutoff: AwareDatetime
    urgent: bool
    list_version: Count
    bags: tuple[Bag, ...]
    outside: tuple[OutsideEntry, ...]
    late_changes: tuple[LateChange, ...]


def production_plan(
    period: PackingPeriod,
    changes: Sequence[ListChange],
    urgent_packs: Iterable[UrgentPack],
    rules: PackingRules,
) -> ProductionPlan:
    """The plan of ``period``: one bag per day and intake time with its lines, derived from the
    list as it stood at the cutoff (deadline or latest urgent pack), the entries in use given
    outside multidose, and the later changes that reach the next period."""
    packs = [u for u in urgent_packs if u.period_id == period.id]
    moment = cutoff(period, packs)
    listed = list_at(period.patient_id, changes, moment)
    doses = expected_doses(listed.entries, period.days, rules)
    by_bag: dict[tuple[date, str], list[PlanLine]] = defaultdict(list)
    entries = {e.id: e for e in listed.entries}
    for (day, intake, entry_id), quantity in doses.items():
        entry = entries[entry_id]
        by_bag[(day, intake)].append(
            PlanLine(
                entry_id=entry_id, drug=entry.drug.name, varenr=varenr_of(entry), quantity=quantity
            )
        )
    bags = tuple(
        Bag(day=day, intake=intake, lines=tuple(sorted(lines, key=lambda x: x.drug)))
        for (day, intake), lines in sorted(by_bag.items(), key=lambda kv: bag_order(*kv[0]))
    )
    outside = tuple(
        OutsideEntry(entry_id=e.id, drug=e.drug.name, reason=reason)
        for e in listed.entries
        if any(e.in_use(day) for day in period.days) and (reason := placement(e, rules)) is not None
    )
    return ProductionPlan(
        period_id=period.id,
        patient_id=period.patient_id,
        first_day=period.first_day,
        last_day=period.last_day,
        order_deadline=period.order_deadline,
        cutoff=moment,
        urgent=moment > period.order_deadline,
        list_version=listed.version,
        bags=bags,
        outside=outside,
        late_changes=late_changes(period, changes, packs),
    )


def late_changes(
    period: PackingPeriod, changes: Iterable[ListChange], urgent_packs: Iterable[UrgentPack]
) -> tuple[LateChange, ...]:
    """Changes after the deadline and before the period ends that touch a multidose entry."""
    packs = sorted(u.at for u in urgent_packs if u.period_id == period.id)
    found = []
    for change in changes:
        if not period.order_deadline < change.at < period.ends_at:
            continue
        touched = tuple(v.entry_id for v in change.entry_versions if touches_multidose(v))
        if touched:
            urgent = any(at >= change.at for at in packs)
            found.append(
                LateChange(
                    list_version=change.list_version,
                    at=change.at,
                    entry_ids=touched,
                    reaches="urgent-pack" if urgent else "next-period",
                )
            )
    return tuple(found)


def touches_multidose(version: EntryVersion) -> bool:
    """Whether an entry version concerns multidose: the entry is flagged, or the flag moved."""
    return version.entry.multidose or any(
        d.field == "multidose" and bool(d.before) != bool(d.after) for d in version.diff
    )


def varenr_of(entry: ListEntry) -> str | None:
    return entry.drug.varenr if isinstance(entry.drug, CatalogueDrug) else None


_SLOT_ORDER = {
    "morning": "06:00",
    "forenoon": "10:00",
    "midday": "12:00",
    "afternoon": "15:00",
    "evening": "18:00",
    "night": "22:00",
}


def bag_order(day: date, intake: str) -> tuple[date, str, str]:
    return day, _SLOT_ORDER.get(intake, intake), intake
