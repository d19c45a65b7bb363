"""Multidose (``multidose``, dose-bag packing): who is responsible, which entries go into bags,
packing periods with their order deadline (``bestillingsfrist``) and urgent packs
(``hastepakk``), the production plan of a period, reconciliation of what the pharmacy packed
against the list, and pharmacy proposals (M25.2) that only a prescriber can accept.

Everything here is pure: the loop (``medloop.loop.multidose``) loads the records and stores
what these functions decide. The packing rules (which FEST dosage forms are packable, the
period length, the deadline horizon, which discrepancies need a prescriber) are configurable;
the loop reads them from ``medloop/rules/multidose.json``
(``medloop.loop.multidose.load_packing_rules``).

Reconciliation classifies every line, never merges silently (``LineClass``): each packed line
gets exactly one class, the most serious that applies, in this order — packed-but-not-on-list,
packed-but-discontinued, not-packable-item-packed, product-not-in-substitution-group,
prescription-expired-or-recalled, then the timing classes (change-after-deadline,
time-mismatch, dose-mismatch) and finally ok / ok-substituted; every dose the list expects and
no packed line covers becomes missing-from-bags (or change-after-deadline when the list gained
it after the plan was fixed, or prescription-expired-or-recalled when nothing backs it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, Field, model_validator

from interactions.catalogue import Package, SubstitutionGroup
from interactions.dosage import Dosage, FixedDose, Quantity, Use, Weekday
from interactions.units import unit_info
from interactions.values import MAX_ITEMS, Count, DayCount, Hours, PositiveCount
from medloop.domain._model import Frozen
from medloop.domain.codes import (
    EntryStatus,
    OrganisationKind,
    PersonnelRole,
    PrescriptionStatus,
)
from medloop.domain.drug_reference import CatalogueDrug
from medloop.domain.entry import Discontinuation, ListEntry
from medloop.domain.errors import DomainError
from medloop.domain.medication_list import EntryVersion, ListChange, MedicationList
from medloop.domain.personnel import Actor, Organisation
from medloop.domain.prescription import Prescription

OSLO = ZoneInfo("Europe/Oslo")

# -- errors ------------------------------------------------------------------------------------


class MultidoseError(DomainError):
    """A multidose command is refused."""


class InvalidResponsibility(MultidoseError):
    code = "multidose-responsibility-invalid"


class NoMultidoseResponsibility(MultidoseError):
    code = "no-multidose-responsibility"


class NotTheMultidosePharmacy(MultidoseError):
    code = "not-the-multidose-pharmacy"


class InvalidPackingPeriod(MultidoseError):
    code = "multidose-period-invalid"


class PackingPeriodOverlaps(MultidoseError):
    code = "multidose-period-overlaps"


class PackingPeriodNotFound(MultidoseError):
    code = "multidose-period-not-found"


class UrgentPackRefused(MultidoseError):
    code = "multidose-urgent-pack-refused"


class InvalidPackReport(MultidoseError):
    code = "multidose-pack-report-invalid"


class PharmacistRequired(MultidoseError):
    code = "pharmacist-required"


class PrescriberRequired(MultidoseError):
    """Only a prescriber (``PersonnelRole.DOCTOR``) may do this."""

    code = "prescriber-required"


class InvalidProposal(MultidoseError):
    code = "multidose-proposal-invalid"


class ProposalNotFound(MultidoseError):
    code = "multidose-proposal-not-found"


class ProposalAlreadyDecided(MultidoseError):
    code = "multidose-proposal-already-decided"


class TaskNotFound(MultidoseError):
    code = "multidose-task-not-found"


class TaskAlreadyResolved(MultidoseError):
    code = "multidose-task-already-resolved"


class TaskNoteRequired(MultidoseError):
    code = "multidose-task-note-required"


# -- rules -------------------------------------------------------------------------------------


class LineClass(StrEnum):
    """How one line of a packing report (or one expected dose) compares with the list."""

    OK = "ok"
    OK_SUBSTITUTED = "ok-substituted"
    MISSING_FROM_BAGS = "missing-from-bags"
    PACKED_NOT_ON_LIST = "packed-but-not-on-list"
    PACKED_DISCONTINUED = "packed-but-discontinued"
    DOSE_MISMATCH = "dose-mismatch"
    TIME_MISMATCH = "time-mismatch"
    NOT_IN_SUBSTITUTION_GROUP = "product-not-in-substitution-group"
    NOT_PACKABLE_PACKED = "not-packable-item-packed"
    PRESCRIPTION_NOT_VALID = "prescription-expired-or-recalled"
    CHANGE_AFTER_DEADLINE = "change-after-deadline"


class PackingRules(Frozen):
    """Which FEST dosage forms (``LegemiddelformKort``, CV 7448) go into bags, the packing
    period's length, how far ahead deadlines are flagged, and which discrepancies open a task
    for the multidose doctor."""

    packable_form_codes: dict[str, str] = Field(min_length=1)
    period_days: DayCount = 14
    deadline_horizon_hours: Hours = 48
    prescriber_task_classes: frozenset[LineClass] = frozenset()
    about: str | None = None

    @property
    def deadline_horizon(self) -> timedelta:
        return timedelta(hours=self.deadline_horizon_hours)

    def packable_form(self, form_code: str | None) -> bool:
        return form_code is not None and form_code in self.packable_form_codes


# -- responsibility ----------------------------------------------------------------------------


class Responsibility(Frozen):
    """The patient's multidose doctor and multidose pharmacy (M27.1), one version of it."""

    patient_id: UUID
    version: PositiveCount
    doctor: Actor
    pharmacy: Organisation
    valid_from: date
    valid_to: date | None = None
    recorded_at: AwareDatetime
    recorded_by: Actor
    reason: str | None = None

    def in_force(self, on: date) -> bool:
        return self.valid_from <= on and (self.valid_to is None or on <= self.valid_to)


def assign_responsibility(
    current: Responsibility | None,
    patient_id: UUID,
    *,
    doctor: Actor | None,
    pharmacy: Organisation | None,
    valid_from: date,
    valid_to: date | None,
    at: datetime,
    by: Actor,
    reason: str | None = None,
) -> Responsibility:
    """The next version of the responsibility: a new doctor, a new pharmacy, or both (what is
    not given is kept). Only health personnel acting for a GP practice, hospital, nursing
    home or pharmacy register it; the doctor must be a doctor, the pharmacy a pharmacy."""
    if by.personnel.role not in (PersonnelRole.DOCTOR, PersonnelRole.PHARMACIST):
        raise InvalidResponsibility(
            f"a {by.personnel.role} cannot change the multidose responsibility",
            role=by.personnel.role,
        )
    doctor = doctor or (current.doctor if current else None)
    pharmacy = pharmacy or (current.pharmacy if current else None)
    if doctor is None or pharmacy is None:
        raise InvalidResponsibility("a first registration names both doctor and pharmacy")
    if doctor.personnel.role is not PersonnelRole.DOCTOR:
        raise InvalidResponsibility(
            f"{doctor.personnel.name} is not a doctor", hpr_number=doctor.personnel.hpr_number
        )
    if pharmacy.kind is not OrganisationKind.PHARMACY:
        raise InvalidResponsibility(f"{pharmacy.name} is not a pharmacy", organisation=pharmacy.id)
    if valid_to is not None and valid_to < valid_from:
        raise InvalidResponsibility(
            f"valid to {valid_to} is before valid from {valid_from}",
            valid_from=valid_from,
            valid_to=valid_to,
        )
    if current is not None and (current.doctor, current.pharmacy, current.valid_from,
                                current.valid_to) == (doctor, pharmacy, valid_from, valid_to):
        raise InvalidResponsibility("the responsibility is already registered like this")
    return Responsibility(
        patient_id=patient_id,
        version=1 if current is None else current.version + 1,
        doctor=doctor,
        pharmacy=pharmacy,
        valid_from=valid_from,
        valid_to=valid_to,
        recorded_at=at,
        recorded_by=by,
        reason=reason,
    )


def responsibility_on(history: Iterable[Responsibility], on: date) -> Responsibility | None:
    """The newest version of the responsibility that is in force on ``on``."""
    return max((r for r in history if r.in_force(on)), key=lambda r: r.version, default=None)


def require_pharmacist_of(responsibility: Responsibility | None, by: Actor, on: date) -> None:
    """Refuse unless ``by`` is a pharmacist of the patient's multidose pharmacy on ``on``."""
    if by.personnel.role is not PersonnelRole.PHARMACIST:
        raise PharmacistRequired(
            f"{by.personnel.name} is a {by.personnel.role}, not a pharmacist",
            role=by.personnel.role,
        )
    if responsibility is None or not responsibility.in_force(on):
        raise NoMultidoseResponsibility(f"the patient has no multidose pharmacy on {on}", on=on)
    if responsibility.pharmacy.id != by.organisation.id:
        raise NotTheMultidosePharmacy(
            f"{by.organisation.name} is not the patient's multidose pharmacy "
            f"({responsibility.pharmacy.name})",
            organisation=by.organisation.id,
            multidose_pharmacy=responsibility.pharmacy.id,
        )


def require_prescriber(by: Actor) -> None:
    if by.personnel.role is not PersonnelRole.DOCTOR:
        raise PrescriberRequired(
            f"{by.personnel.name} is a {by.personnel.role}; only a prescriber may do this",
            role=by.personnel.role,
        )


# -- packing periods ---------------------------------------------------------------------------


class PackingPeriod(Frozen):
    """One packing period (roll): first and last dosing day and the order deadline set by the
    pharmacy for this patient."""

    id: UUID
    patient_id: UUID
    first_day: date
    last_day: date
    order_deadline: AwareDatetime
    pharmacy: Organisation
    opened_at: AwareDatetime
    opened_by: Actor

    @property
    def days(self) -> tuple[date, ...]:
        count = (self.last_day - self.first_day).days + 1
        return tuple(self.first_day + timedelta(days=n) for n in range(count))

    @property
    def ends_at(self) -> datetime:
        """The end of the last dosing day, Oslo time."""
        return datetime.combine(self.last_day + timedelta(days=1), time(), OSLO)

    @property
    def starts_at(self) -> datetime:
        return datetime.combine(self.first_day, time(), OSLO)


def open_period(
    existing: Iterable[PackingPeriod],
    responsibility: Responsibility | None,
    rules: PackingRules,
    *,
    period_id: UUID,
    patient_id: UUID,
    first_day: date,
    order_deadline: datetime,
    days: int | None,
    at: datetime,
    by: Actor,
) -> PackingPeriod:
    """A new packing period of ``days`` (default ``rules.period_days``) by the patient's
    multidose pharmacy; the deadline lies before the first dosing day and periods never
    overlap."""
    require_pharmacist_of(responsibility, by, first_day)
    length = rules.period_days if days is None else days
    if length < 1:
        raise InvalidPackingPeriod(f"a period has at least one day, not {length}", days=length)
    period = PackingPeriod(
        id=period_id,
        patient_id=patient_id,
        first_day=first_day,
        last_day=first_day + timedelta(days=length - 1),
        order_deadline=order_deadline,
        pharmacy=by.organisation,
        opened_at=at,
        opened_by=by,
    )
    if order_deadline >= period.starts_at:
        raise InvalidPackingPeriod(
            f"the order deadline {order_deadline.isoformat()} is not before the first dosing "
            f"day {first_day}",
            order_deadline=order_deadline,
            first_day=first_day,
        )
    for other in existing:
        if other.id == period_id:
            raise InvalidPackingPeriod(f"period {period_id} already exists", period_id=period_id)
        if other.first_day <= period.last_day and period.first_day <= other.last_day:
            raise PackingPeriodOverlaps(
                f"{first_day}–{period.last_day} overlaps period {other.first_day}–"
                f"{other.last_day}",
                period_id=other.id,
            )
    return period


class UrgentPack(Frozen):
    """An urgent pack (``hastepakk``): the list as it stands at ``at`` is packed for the rest
    of the period, so changes after the deadline reach this period."""

    id: UUID
    period_id: UUID
    at: AwareDatetime
    by: Actor
    reason: str = Field(min_length=1)


def order_urgent_pack(
    period: PackingPeriod,
    responsibility: Responsibility | None,
    *,
    pack_id: UUID,
    at: datetime,
    by: Actor,
    reason: str | None,
) -> UrgentPack:
    """An urgent pack, ordered by a prescriber or by the multidose pharmacy after the order
    deadline and before the period ends."""
    if by.personnel.role is not PersonnelRole.DOCTOR:
        require_pharmacist_of(responsibility, by, period.first_day)
    if not (reason or "").strip():
        raise UrgentPackRefused("an urgent pack needs a reason")
    if at <= period.order_deadline:
        raise UrgentPackRefused(
            "the order deadline has not passed: the change reaches the period anyway",
            order_deadline=period.order_deadline,
        )
    if at >= period.ends_at:
        raise UrgentPackRefused(f"the period ended on {period.last_day}", last_day=period.last_day)
    return UrgentPack(id=pack_id, period_id=period.id, at=at, by=by, reason=reason or "")


def cutoff(period: PackingPeriod, urgent_packs: Iterable[UrgentPack]) -> datetime:
    """The moment whose list the period is packed from: the deadline, or the latest urgent
    pack."""
    return max([period.order_deadline, *(u.at for u in urgent_packs if u.period_id == period.id)])


def list_at(patient_id: UUID, changes: Sequence[ListChange], moment: datetime) -> MedicationList:
    """The list version in force at ``moment``: the changes made up to then, in version order
    (the first change made later ends the prefix, so versions are never skipped)."""
    taken = []
    for change in changes:
        if change.at > moment:
            break
        taken.append(change)
    return MedicationList.replay(patient_id, taken)


# -- which entries go into bags, and when ------------------------------------------------------


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
        return tuple(
            f"{m // 60:02d}:{m % 60:02d}" for m in range(start, 24 * 60, step)
        )
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
            if not _taken_on(entry, day):
                continue
            for dose in entry.dosage.fixed:
                if not _dosing_day(dose, entry.start, day):
                    continue
                for intake in _intakes(dose):
                    key = (day, intake, entry.id)
                    found[key] = _add(found.get(key), dose.amount)
    return found


def _taken_on(entry: ListEntry, day: date) -> bool:
    """Whether the entry is meant to be taken on ``day``; a discontinued entry counts up to
    the day before its discontinuation (Oslo time), so bags already given stay right."""
    if entry.status is EntryStatus.DISCONTINUED and entry.discontinuation is not None:
        ended = entry.discontinuation.at.astimezone(OSLO).date()
        return entry.start <= day < ended and (entry.stop is None or day <= entry.stop)
    return entry.in_use(day)


def _add(total: Quantity | None, amount: Quantity) -> Quantity:
    # ``placement`` keeps entries whose doses mix units out of the bags.
    return amount if total is None else Quantity(value=total.value + amount.value, unit=total.unit)


def _same_unit(a: str, b: str) -> bool:
    if a.strip().lower() == b.strip().lower():
        return True
    ia, ib = unit_info(a), unit_info(b)
    return ia is not None and ib is not None and ia.canonical == ib.canonical and (
        ia.factor == ib.factor
    )


def _same_amount(a: Quantity, b: Quantity) -> bool:
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
            PlanLine(entry_id=entry_id, drug=entry.drug.name, varenr=_varenr(entry),
                     quantity=quantity)
        )
    bags = tuple(
        Bag(day=day, intake=intake, lines=tuple(sorted(lines, key=lambda x: x.drug)))
        for (day, intake), lines in sorted(by_bag.items(), key=lambda kv: _bag_order(*kv[0]))
    )
    outside = tuple(
        OutsideEntry(entry_id=e.id, drug=e.drug.name, reason=reason)
        for e in listed.entries
        if any(e.in_use(day) for day in period.days)
        and (reason := placement(e, rules)) is not None
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


def _varenr(entry: ListEntry) -> str | None:
    return entry.drug.varenr if isinstance(entry.drug, CatalogueDrug) else None


_SLOT_ORDER = {"morning": "06:00", "forenoon": "10:00", "midday": "12:00",
               "afternoon": "15:00", "evening": "18:00", "night": "22:00"}


def _bag_order(day: date, intake: str) -> tuple[date, str, str]:
    return day, _SLOT_ORDER.get(intake, intake), intake


# -- reconciliation of a packing report ---------------------------------------------------------


class PackedLine(Frozen):
    """One line of a bag as packed: the package (varenr) and how much; ``entry_id`` when the
    pharmacy names the list entry (M25.3 does)."""

    varenr: str = Field(min_length=6, max_length=6)
    quantity: Quantity
    entry_id: UUID | None = None


class PackedBag(Frozen):
    day: date
    intake: str = Field(min_length=1)
    lines: tuple[PackedLine, ...] = Field(max_length=MAX_ITEMS)


class PackReport(Frozen):
    """What the pharmacy reports it packed for a period (M25.3)."""

    report_id: UUID
    period_id: UUID
    bags: tuple[PackedBag, ...] = Field(max_length=4 * MAX_ITEMS)

    @model_validator(mode="after")
    def _bags_are_distinct(self) -> PackReport:
        seen = set()
        for bag in self.bags:
            if (bag.day, bag.intake) in seen:
                raise ValueError(f"bag {bag.day} {bag.intake} is reported twice")
            seen.add((bag.day, bag.intake))
        return self


@dataclass(frozen=True, slots=True)
class PackedProduct:
    """A packed varenr as the catalogue in force knows it."""

    package: Package
    form_code: str | None
    name: str


class ReconciledLine(Frozen):
    """One classified line: a packed line, or an expected dose nothing covered."""

    line_class: LineClass
    day: date
    intake: str
    entry_id: UUID | None = None
    varenr: str | None = None
    packed: Quantity | None = None
    expected: Quantity | None = None
    expected_intake: str | None = None
    detail: str | None = None


class PackReconciliation(Frozen):
    """The result of reconciling one packing report against the list (stored, shown to the
    pharmacy and the GP)."""

    id: UUID
    patient_id: UUID
    period_id: UUID
    report_id: UUID
    list_version: Count
    plan_list_version: Count
    reconciled_at: AwareDatetime
    reconciled_by: Actor
    lines: tuple[ReconciledLine, ...]
    counts: dict[LineClass, Count]

    @property
    def discrepancies(self) -> tuple[ReconciledLine, ...]:
        return tuple(
            line for line in self.lines
            if line.line_class not in (LineClass.OK, LineClass.OK_SUBSTITUTED)
        )


def reconcile_report(
    report: PackReport,
    period: PackingPeriod,
    changes: Sequence[ListChange],
    current: MedicationList,
    prescriptions: Mapping[UUID, Prescription],
    urgent_packs: Iterable[UrgentPack],
    products: Mapping[str, PackedProduct],
    substitution_groups: Iterable[SubstitutionGroup],
    rules: PackingRules,
    *,
    reconciliation_id: UUID,
    at: datetime,
    by: Actor,
) -> PackReconciliation:
    """Classify every packed line and every expected dose (see the module docstring).

    ``current`` is the list now; the plan is the list at the cutoff. ``products`` maps each
    reported varenr to the catalogue's package and form."""
    if report.period_id != period.id:
        raise InvalidPackReport(
            f"the report is for period {report.period_id}, not {period.id}",
            period_id=report.period_id,
        )
    days = set(period.days)
    for bag in report.bags:
        if bag.day not in days:
            raise InvalidPackReport(
                f"bag {bag.day} {bag.intake} lies outside the period {period.first_day}–"
                f"{period.last_day}",
                day=bag.day,
            )
        for line in bag.lines:
            if line.varenr not in products:
                raise InvalidPackReport(
                    f"varenr {line.varenr} is not in the catalogue", varenr=line.varenr
                )
    packs = [u for u in urgent_packs if u.period_id == period.id]
    planned_list = list_at(period.patient_id, changes, cutoff(period, packs))
    planned = expected_doses(planned_list.entries, period.days, rules)
    now = expected_doses(current.entries, period.days, rules)
    groups = {g.id: g for g in substitution_groups}
    context = _Context(current, prescriptions, products, groups, rules, planned, now,
                       changed_after={e.id for e in current.entries}
                       - _unchanged(planned_list, current))
    lines: list[ReconciledLine] = []
    unmatched: list[tuple[date, str, PackedLine, ListEntry]] = []
    covered: set[Slot] = set()
    for bag in sorted(report.bags, key=lambda b: _bag_order(b.day, b.intake)):
        for line in bag.lines:
            entry = context.entry_for(line, bag.day, bag.intake)
            verdict = context.classify_product(line, entry, bag.day)
            if verdict is not None:
                lines.append(verdict.model_copy(update={"day": bag.day, "intake": bag.intake}))
                if entry is not None:
                    covered.add((bag.day, bag.intake, entry.id))
                continue
            assert entry is not None
            key = (bag.day, bag.intake, entry.id)
            if key in now or key in planned:
                covered.add(key)
                lines.append(context.classify_amount(line, entry, key))
            else:
                unmatched.append((bag.day, bag.intake, line, entry))
    for day, intake, line, entry in unmatched:
        lines.append(context.classify_time(day, intake, line, entry, covered))
    for key in sorted(now, key=lambda k: (*_bag_order(k[0], k[1]), str(k[2]))):
        if key not in covered:
            lines.append(context.classify_missing(key))
    counts: dict[LineClass, int] = dict.fromkeys(LineClass, 0)
    for line in lines:
        counts[line.line_class] += 1
    return PackReconciliation(
        id=reconciliation_id,
        patient_id=period.patient_id,
        period_id=period.id,
        report_id=report.report_id,
        list_version=current.version,
        plan_list_version=planned_list.version,
        reconciled_at=at,
        reconciled_by=by,
        lines=tuple(lines),
        counts=counts,
    )


def _unchanged(before: MedicationList, after: MedicationList) -> set[UUID]:
    versions = {e.id: e.version for e in before.entries}
    return {e.id for e in after.entries if versions.get(e.id) == e.version}


class _Context:
    """The lookups one reconciliation shares."""

    def __init__(
        self,
        current: MedicationList,
        prescriptions: Mapping[UUID, Prescription],
        products: Mapping[str, PackedProduct],
        groups: Mapping[str, SubstitutionGroup],
        rules: PackingRules,
        planned: Mapping[Slot, Quantity],
        now: Mapping[Slot, Quantity],
        changed_after: set[UUID],
    ) -> None:
        self.entries = {e.id: e for e in current.entries}
        self.prescriptions = prescriptions
        self.products = products
        self.groups = groups
        self.rules = rules
        self.planned = planned
        self.now = now
        self.changed_after = changed_after
        self.placements: dict[UUID, OutsideReason | None] = {}
        self.now_by_entry_day: dict[tuple[UUID, date], list[Slot]] = defaultdict(list)
        for key in now:
            self.now_by_entry_day[(key[2], key[0])].append(key)

    def placement(self, entry: ListEntry) -> OutsideReason | None:
        if entry.id not in self.placements:
            self.placements[entry.id] = placement(entry, self.rules)
        return self.placements[entry.id]

    def entry_for(self, line: PackedLine, day: date, intake: str) -> ListEntry | None:
        if line.entry_id is not None:
            entry = self.entries.get(line.entry_id)
            return None if entry is None or entry.status is EntryStatus.ENTERED_IN_ERROR else entry
        package = self.products[line.varenr].package
        candidates = [
            e for e in self.entries.values()
            if e.status is not EntryStatus.ENTERED_IN_ERROR
            and isinstance(e.drug, CatalogueDrug)
            and (e.drug.names_package(package) or (
                package.substitution_group_id is not None
                and package.substitution_group_id in e.drug.resolved.substitution_group_ids
            ))
        ]
        if not candidates:
            return None

        def rank(e: ListEntry) -> tuple[int, int, int]:
            assert isinstance(e.drug, CatalogueDrug)
            return (
                0 if (day, intake, e.id) in self.now or (day, intake, e.id) in self.planned else 1,
                0 if e.status.is_live else 1,
                0 if e.drug.names_package(package) else 1,
            )

        return min(candidates, key=rank)

    def classify_product(
        self, line: PackedLine, entry: ListEntry | None, day: date
    ) -> ReconciledLine | None:
        """The class of a packed line decided by the entry and product alone, if any."""
        base = {"day": day, "intake": "", "varenr": line.varenr, "packed": line.quantity}
        product = self.products[line.varenr]
        if entry is None:
            return ReconciledLine(
                line_class=LineClass.PACKED_NOT_ON_LIST, **base,
                detail=f"{product.name} is not on the list",
            )
        base["entry_id"] = entry.id
        if entry.status is not EntryStatus.ACTIVE and not _taken_on(entry, day):
            late = entry.id in self.changed_after
            when = "after the order deadline" if late else "before the order deadline"
            return ReconciledLine(
                line_class=LineClass.PACKED_DISCONTINUED, **base,
                detail=f"{entry.drug.name} is {entry.status} ({when})",
            )
        reason = self.placement(entry)
        if reason is not None or not self.rules.packable_form(product.form_code):
            why = (
                f"{product.name} has a form that is not packable"
                if not self.rules.packable_form(product.form_code)
                else f"{entry.drug.name} is given outside multidose ({reason})"
            )
            return ReconciledLine(line_class=LineClass.NOT_PACKABLE_PACKED, **base, detail=why)
        assert isinstance(entry.drug, CatalogueDrug)
        substituted = not entry.drug.names_package(product.package)
        if substituted and not self._substitutable(entry, product.package, day):
            return ReconciledLine(
                line_class=LineClass.NOT_IN_SUBSTITUTION_GROUP, **base,
                detail=f"{product.name} is not substitutable for {entry.drug.name} on {day}",
            )
        if not self._backed(entry, day):
            return ReconciledLine(
                line_class=LineClass.PRESCRIPTION_NOT_VALID, **base,
                detail=f"no valid prescription backs {entry.drug.name} on {day}",
            )
        return None

    def classify_amount(self, line: PackedLine, entry: ListEntry, key: Slot) -> ReconciledLine:
        day, intake, _ = key
        product = self.products[line.varenr]
        assert isinstance(entry.drug, CatalogueDrug)
        substituted = not entry.drug.names_package(product.package)
        expected_now, expected_plan = self.now.get(key), self.planned.get(key)
        base = {"day": day, "intake": intake, "entry_id": entry.id, "varenr": line.varenr,
                "packed": line.quantity, "expected": expected_now}
        if expected_now is not None and _same_amount(expected_now, line.quantity):
            cls = LineClass.OK_SUBSTITUTED if substituted else LineClass.OK
            detail = f"{product.name} for {entry.drug.name}" if substituted else None
            return ReconciledLine(line_class=cls, **base, detail=detail)
        if (expected_plan is not None and _same_amount(expected_plan, line.quantity)
                and entry.id in self.changed_after):
            return ReconciledLine(
                line_class=LineClass.CHANGE_AFTER_DEADLINE, **base,
                detail=f"packed as planned; {entry.drug.name} changed after the order deadline",
            )
        if expected_now is None:
            return ReconciledLine(
                line_class=LineClass.TIME_MISMATCH, **base,
                detail=f"{entry.drug.name} has no dose at {intake} on {day}",
            )
        return ReconciledLine(
            line_class=LineClass.DOSE_MISMATCH, **base,
            detail=f"packed {line.quantity.value:g} {line.quantity.unit}, the list says "
            f"{expected_now.value:g} {expected_now.unit}",
        )

    def classify_time(
        self, day: date, intake: str, line: PackedLine, entry: ListEntry, covered: set[Slot]
    ) -> ReconciledLine:
        """A packed line in a bag where the entry has no dose: paired, when possible, with a
        dose of the same entry that day that no line covered."""
        base = {"day": day, "intake": intake, "entry_id": entry.id, "varenr": line.varenr,
                "packed": line.quantity}
        for key in self.now_by_entry_day.get((entry.id, day), ()):
            if key not in covered:
                covered.add(key)
                return ReconciledLine(
                    line_class=LineClass.TIME_MISMATCH, **base, expected=self.now[key],
                    expected_intake=key[1],
                    detail=f"{entry.drug.name} is due at {key[1]}, packed at {intake}",
                )
        return ReconciledLine(
            line_class=LineClass.TIME_MISMATCH, **base,
            detail=f"{entry.drug.name} has no dose at {intake} on {day}",
        )

    def classify_missing(self, key: Slot) -> ReconciledLine:
        day, intake, entry_id = key
        entry = self.entries[entry_id]
        base = {"day": day, "intake": intake, "entry_id": entry_id, "varenr": _varenr(entry),
                "expected": self.now[key]}
        if not self._backed(entry, day):
            return ReconciledLine(
                line_class=LineClass.PRESCRIPTION_NOT_VALID, **base,
                detail=f"not packed; no valid prescription backs {entry.drug.name} on {day}",
            )
        if key not in self.planned and entry_id in self.changed_after:
            return ReconciledLine(
                line_class=LineClass.CHANGE_AFTER_DEADLINE, **base,
                detail=f"{entry.drug.name} changed after the order deadline; not in this roll",
            )
        return ReconciledLine(
            line_class=LineClass.MISSING_FROM_BAGS, **base,
            detail=f"{entry.drug.name} is on the list but not in the bag",
        )

    def _substitutable(self, entry: ListEntry, package: Package, day: date) -> bool:
        assert isinstance(entry.drug, CatalogueDrug)
        group_id = package.substitution_group_id
        if group_id is None or group_id not in entry.drug.resolved.substitution_group_ids:
            return False
        if any(self.prescriptions[p].reserved_against_substitution
               for p in entry.prescription_ids if p in self.prescriptions):
            return False
        group = self.groups.get(group_id)
        if group is None:
            return False
        return all(
            (start is None or start <= day) and (end is None or day <= end)
            for start, end in ((group.valid_from, group.valid_to),
                               (package.substitution_valid_from, package.substitution_valid_to))
        )

    def _backed(self, entry: ListEntry, day: date) -> bool:
        """An entry with prescriptions needs one that is not recalled or expired on ``day``;
        an entry used without prescription needs none."""
        if not entry.prescription_ids:
            return True
        return any(
            _prescription_valid(p, day)
            for p in (self.prescriptions.get(i) for i in entry.prescription_ids)
            if p is not None
        )


def _prescription_valid(prescription: Prescription, day: date) -> bool:
    """Valid on ``day``: within issue and expiry, and not yet recalled on that day."""
    if not prescription.valid_on(day):
        return False
    if prescription.status is PrescriptionStatus.RECALLED and prescription.recall is not None:
        return day < prescription.recall.at.astimezone(OSLO).date()
    return True


# -- tasks for the prescriber ------------------------------------------------------------------


class MultidoseTask(Frozen):
    """An open question for the multidose doctor from one reconciliation: one per class and
    entry (or packed varenr when no entry matched)."""

    id: UUID
    patient_id: UUID
    period_id: UUID
    reconciliation_id: UUID
    kind: LineClass
    entry_id: UUID | None
    varenr: str | None
    lines: PositiveCount
    first_day: date
    summary: str
    assigned_to: str | None
    opened_at: AwareDatetime


def tasks_for(
    result: PackReconciliation, rules: PackingRules, responsibility: Responsibility | None
) -> tuple[MultidoseTask, ...]:
    grouped: dict[tuple[LineClass, str], list[ReconciledLine]] = defaultdict(list)
    for line in result.lines:
        if line.line_class in rules.prescriber_task_classes:
            subject = str(line.entry_id) if line.entry_id is not None else f"varenr:{line.varenr}"
            grouped[(line.line_class, subject)].append(line)
    doctor = None if responsibility is None else responsibility.doctor.personnel.hpr_number
    return tuple(
        MultidoseTask(
            id=uuid5(result.id, f"{kind}/{subject}"),
            patient_id=result.patient_id,
            period_id=result.period_id,
            reconciliation_id=result.id,
            kind=kind,
            entry_id=lines[0].entry_id,
            varenr=lines[0].varenr,
            lines=len(lines),
            first_day=min(line.day for line in lines),
            summary=f"{kind.value}: {lines[0].detail or ''} ({len(lines)} line(s))",
            assigned_to=doctor,
            opened_at=result.reconciled_at,
        )
        for (kind, subject), lines in sorted(grouped.items())
    )


class TaskResolution(Frozen):
    task_id: UUID
    at: AwareDatetime
    by: Actor
    note: str = Field(min_length=1)


def resolve_task(
    task: MultidoseTask | None, resolved: bool, *, task_id: UUID, note: str | None,
    at: datetime, by: Actor,
) -> TaskResolution:
    require_prescriber(by)
    if task is None:
        raise TaskNotFound(f"there is no multidose task {task_id}", task_id=task_id)
    if resolved:
        raise TaskAlreadyResolved(f"task {task_id} is already resolved", task_id=task_id)
    if not (note or "").strip():
        raise TaskNoteRequired("resolving a task needs a note", task_id=task_id)
    return TaskResolution(task_id=task_id, at=at, by=by, note=note or "")


# -- pharmacy proposals (M25.2) ----------------------------------------------------------------


class ProposalKind(StrEnum):
    NEW_ENTRY = "new-entry"
    CHANGE_DOSAGE = "change-dosage"
    DISCONTINUE = "discontinue"
    RENEW = "renew"
    QUESTION = "question"


class Proposal(Frozen):
    """A pharmacy's proposal: a new entry (``new_entry``: a prescribe order), a dosage change,
    a discontinuation, a renewal (``renewal``: a renew order) or a question. Orders are kept as
    JSON so the domain does not depend on the command layer that validates them."""

    id: UUID
    patient_id: UUID
    kind: ProposalKind
    proposed_at: AwareDatetime
    proposed_by: Actor
    note: str | None = None
    entry_id: UUID | None = None
    dosage: Dosage | None = None
    discontinuation: Discontinuation | None = None
    new_entry: dict[str, Any] | None = None
    renewal: dict[str, Any] | None = None
    question: str | None = None

    @model_validator(mode="after")
    def _has_what_its_kind_needs(self) -> Proposal:
        needs = {
            ProposalKind.NEW_ENTRY: ("new_entry",),
            ProposalKind.CHANGE_DOSAGE: ("entry_id", "dosage"),
            ProposalKind.DISCONTINUE: ("entry_id", "discontinuation"),
            ProposalKind.RENEW: ("renewal",),
            ProposalKind.QUESTION: ("question",),
        }[self.kind]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} proposal needs {', '.join(missing)}")
        return self


class ProposalDecision(Frozen):
    proposal_id: UUID
    accepted: bool
    at: AwareDatetime
    by: Actor
    reason: str | None = None
    list_version: Count | None = None
    result: dict[str, Any] = {}


def propose(
    responsibility: Responsibility | None, proposal: Proposal, entries: MedicationList
) -> Proposal:
    """A proposal may come only from a pharmacist of the multidose pharmacy and must name an
    entry of the list when it is about one."""
    require_pharmacist_of(responsibility, proposal.proposed_by, proposal.proposed_at.date())
    if proposal.entry_id is not None and entries.find(proposal.entry_id) is None:
        raise InvalidProposal(
            f"the list has no entry {proposal.entry_id}", entry_id=proposal.entry_id
        )
    return proposal


def decide_proposal(
    proposal: Proposal | None,
    decided: ProposalDecision | None,
    *,
    proposal_id: UUID,
    accepted: bool,
    at: datetime,
    by: Actor,
    reason: str | None,
) -> ProposalDecision:
    """Only a prescriber decides, once; a rejection gives a reason."""
    require_prescriber(by)
    if proposal is None:
        raise ProposalNotFound(f"there is no proposal {proposal_id}", proposal_id=proposal_id)
    if decided is not None:
        raise ProposalAlreadyDecided(
            f"proposal {proposal_id} was already "
            f"{'accepted' if decided.accepted else 'rejected'} at {decided.at.isoformat()}",
            proposal_id=proposal_id,
        )
    if not accepted and not (reason or "").strip():
        raise InvalidProposal("a rejection needs a reason", proposal_id=proposal_id)
    return ProposalDecision(proposal_id=proposal_id, accepted=accepted, at=at, by=by,
                            reason=reason)
