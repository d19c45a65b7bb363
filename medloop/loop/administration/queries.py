"""The chart queries: a ward's day (``ward_chart``) and a patient's administration history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection

from interactions.dosage import Quantity, Use
from medloop.domain.administration import (
    PRN_WINDOW_MAX,
    Administration,
    AdministrationNotFound,
    DoseStatus,
    Intake,
    Outcome,
    PlannedDose,
    PrnStatus,
    dose_in_force,
    dose_status,
    effective_charting,
    prn_status,
)
from medloop.domain.codes import EntryStatus
from medloop.domain.oslo import local_date, local_day_bounds
from medloop.domain.patient import PatientNotFound
from medloop.domain.ward import Admission, AdmissionNotFound, WardNotFound
from medloop.store import administration as store
from medloop.store import state_cache
from medloop.store.columns import StoredRecordUnreadable
from medloop.store.list_changes import current_entries_for_use
from medloop.store.patients import national_id_of
from medloop.store.plan_cache import plan_cache_for


@dataclass(frozen=True)
class _Line:
    dose: PlannedDose
    in_force: bool
    charting: Administration | None
    shown: dict[DoseStatus, ChartLine] | None = field(default=None, compare=False, repr=False)
    """For a line kept between reads (``ward_lines``), the ``ChartLine`` the ward chart made of
    it per status so far: the same for every read that finds it in that state."""
    charted: dict[str, _Line] | None = field(default=None, compare=False, repr=False)
    """For a line kept between reads, not charted: its line with each charting that stood for
    it so far, by charting id (a stored charting never changes; one entered in error no longer
    stands, and another or none is shown)."""

    def chart_line(self, status: DoseStatus) -> ChartLine:
        """The line on a chart with ``status`` (a dose not in force shows as superseded)."""
        return ChartLine(
            planned_dose_id=self.dose.id,
            entry_id=self.dose.entry_id,
            drug=self.dose.drug,
            local_time=self.dose.local_time,
            due_at=self.dose.due_at,
            amount=self.dose.amount,
            status=status,
            late=self.charting is not None and self.charting.late,
            multidose=self.dose.multidose,
            charting=self.charting,
            superseded=not self.in_force,
        )


def chart_lines(
    conn: Connection,
    patient_ids: Sequence[UUID],
    start: datetime,
    end: datetime,
    ward_id: UUID | None = None,
) -> list[_Line]:
    """The planned doses due in ``[start, end)`` of the ward (or else of the patients), each
    with whether it is in force and the charting that stands for it. One query reads the doses
    with their chartings, one the schedules; only the standing charting of each dose is
    validated into an ``Administration`` (the records were validated when written)."""
    doses = store.doses_on_chart(
        conn,
        patient_ids=None if ward_id is not None else patient_ids,
        ward_id=ward_id,
        start=start,
        end=end,
    )
    schedules = store.schedules_of(conn, sorted({d.dose.patient_id for d in doses}))
    lines = []
    for found in doses:
        standing = effective_charting(found.chartings)
        lines.append(
            _Line(
                found.dose,
                dose_in_force(
                    found.dose,
                    schedules.get(found.dose.entry_id, []),
                    charted=standing is not None,
                ),
                None if standing is None else standing.administration(),
            )
        )
    return lines


@dataclass(frozen=True, slots=True)
class _KeptPlan:
    """A resident's planned doses of a ward-day as ``ward_lines`` keeps them (``store.plan_cache``):
    the plan mark they were read at and a line per dose before any charting (in force unless a
    newer schedule took over at or before its due time)."""

    mark: tuple[int, int]
    lines: tuple[_Line, ...]


def _kept_plan(found: store.PlannedOnWard) -> _KeptPlan:
    return _KeptPlan(
        found.mark,
        tuple(
            _Line(
                dose,
                dose_in_force(dose, found.schedules.get(dose.entry_id, ()), False),
                None,
                {},
                {},
            )
            for dose in found.doses
        ),
    )


def ward_lines(
    conn: Connection,
    ward_id: UUID,
    start: datetime,
    end: datetime,
    only: Collection[UUID] | None = None,
) -> dict[UUID, Sequence[_Line]]:
    """Per patient: the planned doses on the ward due in ``[start, end)``, in due order, each with
    whether it is in force and the charting that stands for it (``chart_lines`` of the ward, by
    patient). What the doses and schedules are is kept between reads per ward-day
    (``store.plan_cache``) and read again only for the patients whose plan mark moved; the
    chartings are read every time. Two queries when no mark moved, four when one did. Call it
    only in a transaction that has written no planned dose or schedule (a read). ``only``: those
    patients' lines alone (``ward_chart`` one resident at a time), what is kept left as it is."""
    marks = store.ward_plan_marks(conn, ward_id, start, end)
    if only is not None:
        marks = {p: mark for p, mark in marks.items() if p in only}
    cache = plan_cache_for(conn.engine)
    key = (ward_id, start, end)
    kept: Mapping[UUID, _KeptPlan] = cache.get(key) or {}
    stale = [p for p, mark in marks.items() if p not in kept or kept[p].mark != mark]
    plans = {p: kept[p] for p in marks if p not in stale}
    wanted = list(marks) if state_cache.VERIFY else stale
    if wanted:
        fresh = {
            p: _kept_plan(found)
            for p, found in store.planned_on_ward(conn, ward_id, wanted, start, end).items()
        }
        for p, plan in plans.items():  # only with VERIFY: the kept plans against the tables
            again = fresh.get(p)
            if again is not None and again.mark == plan.mark and again != plan:
                raise state_cache.StateCacheDiverged(
                    f"the kept plan of patient {p} on ward {ward_id} differs from the stored one"
                )
        plans.update((p, fresh[p]) for p in stale if p in fresh)
        if stale and only is None:
            cache.put(key, plans)
    chartings = store.chartings_on_ward(conn, ward_id, start, end)
    if not chartings:
        return {p: plan.lines for p, plan in plans.items()}
    found: dict[UUID, Sequence[_Line]] = {}
    for p, plan in plans.items():
        lines = []
        for line in plan.lines:
            charted_for = chartings.get(line.dose.id)
            standing = None if charted_for is None else effective_charting(charted_for)
            if standing is None:
                lines.append(line)
                continue
            assert line.charted is not None  # a kept line
            charted = line.charted.get(standing.id)
            if charted is None:
                charted = _Line(line.dose, True, standing.administration(), {})
                line.charted[standing.id] = charted
            elif state_cache.VERIFY and charted.charting != standing.administration():
                raise state_cache.StateCacheDiverged(
                    f"the kept charting {standing.id} differs from the stored one"
                )
            lines.append(charted)
        found[p] = lines
    return found


@dataclass(frozen=True)
class ChartLine:
    """One planned dose on the chart."""

    planned_dose_id: UUID
    entry_id: UUID
    drug: str
    local_time: datetime
    due_at: datetime
    amount: Quantity
    status: DoseStatus
    late: bool
    multidose: bool
    charting: Administration | None
    superseded: bool = False
    """A dose of an older schedule that a changed dosage took over (only ``resident_chart``
    lists these; the ward's chart leaves them out)."""


@dataclass(frozen=True)
class PrnLine:
    """An active as-needed entry's dose on the chart, with its limits and what remains now
    (``status``: ``medloop.domain.administration.prn_status``)."""

    entry_id: UUID
    drug: str
    status: PrnStatus


@dataclass(frozen=True)
class PatientChart:
    patient_id: UUID
    admission_id: UUID
    doses: tuple[ChartLine, ...]
    as_needed: tuple[Administration, ...]
    prn: tuple[PrnLine, ...] = ()
    unreadable: StoredRecordUnreadable | None = None
    """A stored record of this resident's day that no longer loads (the admission, a planned
    dose, a charting, an as-needed entry): the error naming it, and nothing of the day shown
    (``doses``, ``as_needed`` and ``prn`` empty), so that no one takes a part for the whole.
    The other residents' charts are read as ever."""

    def count(self, status: DoseStatus) -> int:
        return sum(1 for line in self.doses if line.status is status)


@dataclass(frozen=True)
class WardChart:
    """A ward's administration chart for one Oslo calendar day."""

    ward_id: UUID
    day: date
    patients: tuple[PatientChart, ...]


def ward_chart(
    conn: Connection,
    ward_id: UUID,
    day: date,
    now: datetime,
    *,
    prn_limits: bool = True,
) -> WardChart:
    """Per admitted patient: the day's planned doses in force with their status at ``now``
    (planned, due, overdue, missed, given, not given, refused, held), the PRN doses given that
    day, and every as-needed entry in use now with its limits and what remains at ``now``
    (``prn``; ``prn_limits=False`` leaves ``prn`` empty and reads no list entries, for a view
    that does not show them).

    The ward is read in a few queries for all its residents. When a stored record among them
    no longer loads (``StoredRecordUnreadable``), the residents are read again one at a time:
    a resident whose own records do not load is charted with ``unreadable`` naming the record
    and nothing else, every other resident as ever. One resident's corrupt record never takes
    the whole ward's round away (the ward's own record or configuration still does: without
    them no dose has a status)."""
    found = store.read_ward(conn, ward_id)
    if found is None:
        raise WardNotFound(f"there is no ward {ward_id}", ward_id=ward_id)
    start, end = local_day_bounds(day)
    unreadable: list[tuple[str, StoredRecordUnreadable]] = []
    admissions = [
        a
        for a in store.admissions_to(conn, ward_id, unreadable=unreadable, within=(start, end))
        if a.admitted_at < end and (a.discharged_at is None or a.discharged_at > start)
    ]
    day_of = _WardDay(ward_id, found.config, start, end, now, prn_limits)
    # An admission whose record does not load, of a stay on the ward that day (by the row's
    # admission and discharge times), is charted as unreadable. The resident's other stays on
    # the ward are not charted either: no part of their day is shown.
    unread = [
        PatientChart(UUID(patient_id), UUID(error.key["id"]), (), (), unreadable=error)
        for patient_id, error in unreadable
    ]
    if unread:
        errors = {c.patient_id: c.unreadable for c in unread}
        unread += [
            PatientChart(a.patient_id, a.id, (), (), unreadable=errors[a.patient_id])
            for a in admissions
            if a.patient_id in errors
        ]
        admissions = [a for a in admissions if a.patient_id not in errors]
    try:
        read = day_of.charts(conn, admissions)
    except StoredRecordUnreadable:
        read = _one_at_a_time(conn, day_of, admissions, unread)
    # Those that cannot be read first, where the nurse sees them before anything else.
    return WardChart(ward_id, day, (*unread, *read))


def _one_at_a_time(
    conn: Connection, day_of: _WardDay, admissions: Sequence[Admission], unread: list[PatientChart]
) -> list[PatientChart]:
    """``day_of.charts`` of each resident alone, in the admissions' order; a resident whose
    records do not load is added to ``unread`` instead."""
    by_resident: dict[UUID, list[Admission]] = defaultdict(list)
    for a in admissions:
        by_resident[a.patient_id].append(a)
    charted: dict[UUID, PatientChart] = {}
    for patient_id, stays in by_resident.items():
        try:
            charted.update((c.admission_id, c) for c in day_of.charts(conn, stays, {patient_id}))
        except StoredRecordUnreadable as error:
            unread.extend(PatientChart(patient_id, a.id, (), (), unreadable=error) for a in stays)
    return [charted[a.id] for a in admissions if a.id in charted]


@dataclass(frozen=True)
class _WardDay:
    """What ``ward_chart`` reads its residents' charts with (a ward, its configuration, the
    day's bounds, now)."""

    ward_id: UUID
    config: Any
    start: datetime
    end: datetime
    now: datetime
    prn_limits: bool

    def charts(
        self,
        conn: Connection,
        admissions: Sequence[Admission],
        only: Collection[UUID] | None = None,
    ) -> list[PatientChart]:
        """A ``PatientChart`` per admission, in their order; ``only``: the admissions' patients,
        when they are not the whole ward's (read for them alone)."""
        start, end, now = self.start, self.end, self.now
        stays = {a.patient_id: a for a in admissions}
        by_patient: dict[UUID, list[ChartLine]] = defaultdict(list)
        for patient_id, lines in ward_lines(conn, self.ward_id, start, end, only).items():
            stay = stays.get(patient_id)
            if stay is None:
                continue
            for line in lines:
                if not line.in_force or not stay.covers(line.dose.due_at):
                    continue
                status = dose_status(line.dose.due_at, line.charting, self.config, now)
                shown = None if line.shown is None else line.shown.get(status)
                if shown is None:
                    shown = line.chart_line(status)
                    if line.shown is not None:
                        line.shown[status] = shown
                by_patient[patient_id].append(shown)
        prn: dict[UUID, list[Administration]] = defaultdict(list)
        patients = [a.patient_id for a in admissions]
        for charted in store.chartings_of_patients(conn, patients, start, end, as_needed_only=True):
            given = charted.administration
            # Only what was given during a stay on this ward: a PRN dose charted earlier that
            # day by another ward (of another organisation, maybe) is not this ward's to see.
            if (
                charted.stands
                and given.planned_dose_id is None
                and any(a.patient_id == given.patient_id and a.covers(given.at) for a in admissions)
            ):
                prn[given.patient_id].append(given)
        current = [a for a in admissions if a.covers(now)]
        limits = _prn_lines(conn, [a.patient_id for a in current], now) if self.prn_limits else {}
        return [
            PatientChart(
                a.patient_id,
                a.id,
                tuple(by_patient.get(a.patient_id, ())),
                tuple(prn.get(a.patient_id, ())),
                tuple(limits.get(a.patient_id, ())),
            )
            for a in admissions
        ]


def prn_lines(conn: Connection, patient_id: UUID, now: datetime) -> list[PrnLine]:
    """One resident's ``PrnLine``s now, as the ward chart shows them (the charting page shows
    them before a PRN dose is saved)."""
    return _prn_lines(conn, [patient_id], now).get(patient_id, [])


def _prn_lines(
    conn: Connection, patient_ids: Sequence[UUID], now: datetime
) -> dict[UUID, list[PrnLine]]:
    """Per patient on the ward now: each as-needed dose of the entries in use today, with its
    ``prn_status`` over the doses of the entry given within ``PRN_WINDOW_MAX`` (wherever).
    The entries are the current versions of the patients' as-needed entries, read in one query
    for all of them (``current_entries_for_use``) instead of a list replayed per patient."""
    today = local_date(now)
    as_needed = current_entries_for_use(conn, patient_ids, Use.AS_NEEDED.value)
    entries = {}
    for stay_patient in patient_ids:
        found = [
            e for e in as_needed.get(stay_patient, ()) if e.in_use(today) and e.dosage is not None
        ]
        if found:
            entries[stay_patient] = found
    if not entries:
        return {}
    given: dict[UUID, list[tuple[datetime, Quantity]]] = defaultdict(list)
    since, until = now - PRN_WINDOW_MAX, now + timedelta(microseconds=1)  # a dose given now counts
    for charted in store.chartings_of_patients(conn, list(entries), since, until):
        record = charted.administration
        if charted.stands and record.outcome is Outcome.GIVEN and record.dose is not None:
            given[record.entry_id].append((record.at, record.dose))
    lines: dict[UUID, list[PrnLine]] = defaultdict(list)
    for patient_id, found in entries.items():
        for entry in found:
            assert entry.dosage is not None
            for dose in entry.dosage.as_needed:
                intakes = [
                    Intake(at, amount.value)
                    for at, amount in given.get(entry.id, ())
                    if amount.unit == dose.amount.unit
                ]
                lines[patient_id].append(
                    PrnLine(entry.id, entry.drug.name, prn_status(dose, intakes, now))
                )
    return lines


def administration_history(
    conn: Connection,
    patient_id: UUID,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[store.Charted]:
    """Every charting of the patient (also those entered in error, with their correction),
    oldest first."""
    if national_id_of(conn, patient_id) is None:
        raise PatientNotFound(f"there is no patient {patient_id}", patient_id=patient_id)
    return store.chartings_of_patient(conn, patient_id, since, until)


@dataclass(frozen=True)
class ResidentDay:
    """One Oslo calendar day of a resident's administration chart (MAR)."""

    day: date
    doses: tuple[ChartLine, ...]
    as_needed: tuple[Administration, ...]


def resident_chart(
    conn: Connection,
    patient_id: UUID,
    first_day: date,
    days: int,
    now: datetime,
    *,
    organisation_id: str | None = None,
) -> tuple[ResidentDay, ...]:
    """The patient's administration chart for ``days`` Oslo days from ``first_day``: every
    planned dose of their stays on wards (with its status at ``now`` by that ward's windows,
    the charting that stands, superseded doses marked) and the PRN doses given. With
    ``organisation_id`` only what lies within that organisation's stays (a nursing home sees
    its own stays, never another's)."""
    if national_id_of(conn, patient_id) is None:
        raise PatientNotFound(f"there is no patient {patient_id}", patient_id=patient_id)
    start, _ = local_day_bounds(first_day)
    _, end = local_day_bounds(first_day + timedelta(days=days - 1))
    stays = [
        a
        for a in store.admissions_of(conn, patient_id)
        if a.admitted_at < end
        and (a.discharged_at is None or a.discharged_at > start)
        and (organisation_id is None or a.organisation_id == organisation_id)
    ]
    wards = store.ward_configs(conn, {a.ward_id for a in stays})
    lines = chart_lines(conn, [patient_id], start, end)
    by_day: dict[date, list[ChartLine]] = defaultdict(list)
    for line in lines:
        stay = next((a for a in stays if a.covers(line.dose.due_at)), None)
        ward = None if stay is None else wards.get(stay.ward_id)
        if ward is None:
            continue
        by_day[local_date(line.dose.due_at)].append(
            line.chart_line(dose_status(line.dose.due_at, line.charting, ward.config, now))
        )
    prn: dict[date, list[Administration]] = defaultdict(list)
    for charted in store.chartings_of_patient(conn, patient_id, start, end, as_needed_only=True):
        given = charted.administration
        if (
            charted.stands
            and given.planned_dose_id is None
            and any(a.covers(given.at) for a in stays)
        ):
            prn[local_date(given.at)].append(given)
    return tuple(
        ResidentDay(
            day,
            tuple(sorted(by_day.get(day, ()), key=lambda c: (c.due_at, c.drug))),
            tuple(prn.get(day, ())),
        )
        for day in (first_day + timedelta(days=n) for n in range(days))
    )


def as_needed_given(
    conn: Connection,
    patient_ids: Sequence[UUID],
    since: datetime,
    until: datetime,
    *,
    organisation_id: str | None = None,
) -> dict[UUID, list[Administration]]:
    """The PRN doses that stand, given to each patient in ``[since, until)``; with
    ``organisation_id`` only those given during that organisation's stays."""
    found: dict[UUID, list[Administration]] = defaultdict(list)
    charted = [
        c
        for c in store.chartings_of_patients(conn, patient_ids, since, until, as_needed_only=True)
        if c.stands and c.administration.planned_dose_id is None
    ]
    stays: dict[UUID, list[Any]] = {}
    if organisation_id is not None and charted:
        # the stays of every patient given one, read together (a ward's overview: one query)
        found_stays = store.admissions_of_patients(
            conn, sorted({c.administration.patient_id for c in charted})
        )
        stays = {
            patient_id: [a for a in admissions if a.organisation_id == organisation_id]
            for patient_id, admissions in found_stays.items()
        }
    for c in charted:
        given = c.administration
        if organisation_id is None or any(a.covers(given.at) for a in stays[given.patient_id]):
            found[given.patient_id].append(given)
    return found


@dataclass(frozen=True)
class PrnMedicine:
    """The medicine of a PRN dose's entry as the list holds it now: its name, and whether the
    entry has since been marked entered in error (the dose given stands; the name is still
    what was given)."""

    name: str
    entered_in_error: bool


def prn_medicines(
    conn: Connection, given: Mapping[UUID, Sequence[Administration]]
) -> dict[UUID, PrnMedicine]:
    """By entry id, the medicine of each PRN dose of ``given`` (``as_needed_given``'s answer):
    the current version of the doses' entries of every patient, read in one query
    (``current_entries_for_use``), whatever their status or use now — not the patients'
    states replayed one by one."""
    entry_ids = sorted({dose.entry_id for doses in given.values() for dose in doses}, key=str)
    if not entry_ids:
        return {}
    found = current_entries_for_use(conn, list(given), None, entry_ids=entry_ids)
    return {
        entry.id: PrnMedicine(entry.drug.name, entry.status is EntryStatus.ENTERED_IN_ERROR)
        for entries in found.values()
        for entry in entries
    }


def patient_of_administration(conn: Connection, administration_id: UUID) -> UUID | None:
    """The patient a charting belongs to (``None``: no such charting); reads no patient data."""
    return store.patient_of_administration(conn, administration_id)


def admission(
    conn: Connection, patient_id: UUID, admission_id: UUID, organisation_id: str | None = None
) -> Admission:
    """One of the patient's admissions with its discharge, if any; with ``organisation_id``
    only an admission to a ward of that organisation (a nurse sees her own organisation's
    stays). ``AdmissionNotFound`` otherwise."""
    if national_id_of(conn, patient_id) is None:
        raise PatientNotFound(f"there is no patient {patient_id}", patient_id=patient_id)
    for found in store.admissions_of(conn, patient_id):
        if found.id == admission_id and organisation_id in (None, found.organisation_id):
            return found
    raise AdmissionNotFound(
        f"patient {patient_id} has no admission {admission_id}", admission_id=admission_id
    )


def charting(
    conn: Connection,
    patient_id: UUID,
    administration_id: UUID,
    since: datetime | None = None,
    until: datetime | None = None,
) -> store.Charted:
    """One of the patient's chartings (also one entered in error, with its correction), when
    it was charted for a moment in ``[since, until)`` (the window the reader may see);
    ``AdministrationNotFound`` otherwise."""
    if national_id_of(conn, patient_id) is None:
        raise PatientNotFound(f"there is no patient {patient_id}", patient_id=patient_id)
    found = store.administration_by_id(conn, patient_id, administration_id)
    record = None if found is None else found.administration
    if (
        record is None
        or record.patient_id != patient_id
        or (since is not None and record.at < since)
        or (until is not None and record.at >= until)
    ):
        raise AdministrationNotFound(
            f"patient {patient_id} has no charting {administration_id}",
            administration_id=administration_id,
        )
    return found
