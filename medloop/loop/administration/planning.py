"""Planning doses: the schedules and planned doses of an admitted patient's entries, and the
scheduled jobs' work (``roll_forward`` keeps ``HORIZON`` planned, topping up what
``plan_after_change`` planned in the transaction of each command that changed the list;
``mark_missed`` charts as missed the doses whose window passed), each patient one ``run_work``
of the system.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine

from medloop.domain.administration import Administration, Outcome, PlannedDose, is_missed
from medloop.domain.codes import EntryStatus
from medloop.domain.entry import ListEntry
from medloop.domain.patient import PatientNotFound
from medloop.domain.state import PatientState
from medloop.domain.ward import Admission, WardConfig, plan_intakes, schedule_fingerprint
from medloop.loop.administration.queries import chart_lines
from medloop.loop.runner import (
    Context,
    Done,
    Note,
    WorkContext,
    run_work,
    skip_patient,
    skipping_unreadable,
    with_skipped,
)
from medloop.store import administration as store
from medloop.store.columns import StoredRecordUnreadable
from medloop.store.db import reader

HORIZON = timedelta(hours=48)
"""How far ahead planned doses are kept generated."""


PLAN_LOOK_BACK = timedelta(hours=24)
"""Planning never fills in doses due longer ago than this (a job that did not run for days
does not invent a backlog of missed doses)."""


MISSED_LOOK_BACK = timedelta(days=7)
"""``mark_missed`` looks this far back for doses nobody charted."""


_NAMESPACE = uuid.UUID("6f1d3c4e-2b7a-4f0e-9a51-3d8c0b6e7a21")


@dataclass
class Plan:
    """New schedules and planned doses for one patient, generated at ``generated_at``."""

    generated_at: datetime
    schedules: list[tuple[UUID, store.ScheduleRow]] = field(default_factory=list)
    doses: list[PlannedDose] = field(default_factory=list)

    def write(self, conn: Connection) -> None:
        store.add_schedules(conn, self.schedules, self.generated_at)
        store.add_planned_doses(conn, self.doses)

    @property
    def empty(self) -> bool:
        return not self.schedules and not self.doses


def plan_doses(
    conn: Connection,
    state: PatientState,
    admission: Admission,
    ward: store.WardState,
    now: datetime,
    horizon: timedelta,
    entries: Collection[UUID] | None = None,
    *,
    new_entries: bool = False,
) -> Plan:
    """The schedules and planned doses missing for the patient's entries (those with an id in
    ``entries``, when given) from now to ``now + horizon`` (pure but for reading what is
    already planned; ``new_entries``: the entries were just added, so nothing of theirs is
    planned yet and nothing is read)."""
    patient_id = state.patient.id
    plan = Plan(now)
    end = now + horizon
    if admission.discharged_at is not None:
        end = min(end, admission.discharged_at)
    version_times = _entry_version_times(state)
    since = max(admission.admitted_at, now - PLAN_LOOK_BACK)
    schedules: dict[UUID, list[store.ScheduleRow]] = {}
    existing: set[tuple[str, int, str, int]] = set()
    charted_slots: set[tuple[str, str, int]] = set()
    if not new_entries:
        schedules = store.schedules_of(conn, [patient_id])
        # Keys of what is planned, and (entry, local time, dose index) of planned doses
        # already charted by a person: a new schedule does not plan the same intake again.
        existing, charted_slots = store.planned_since(conn, patient_id, since - PLAN_LOOK_BACK, end)
    for entry in state.medication_list.entries:
        if entries is not None and entry.id not in entries:
            continue
        known = schedules.get(entry.id, [])
        current = _schedule_for(entry, ward.config, known, version_times[entry.id], admission, now)
        if current is None:
            continue
        if not known or known[-1].version != current.version:
            plan.schedules.append((patient_id, current))
        start = max(current.effective_from, since)
        for intake in plan_intakes(entry, ward.config, start, end):
            local = intake.local_time.strftime("%Y-%m-%dT%H:%M")
            key = (str(entry.id), current.version, local, intake.dose_index)
            if key in existing or (str(entry.id), local, intake.dose_index) in charted_slots:
                continue
            plan.doses.append(
                PlannedDose(
                    id=uuid.uuid5(_NAMESPACE, "/".join(map(str, key))),
                    patient_id=patient_id,
                    ward_id=admission.ward_id,
                    entry_id=entry.id,
                    schedule_version=current.version,
                    drug=entry.drug.name,
                    **intake.model_dump(),
                )
            )
    return plan


def _schedule_for(
    entry: ListEntry,
    config: WardConfig,
    known: Sequence[store.ScheduleRow],
    versions: Sequence[tuple[int, datetime]],
    admission: Admission,
    now: datetime,
) -> store.ScheduleRow | None:
    """The entry's schedule in force: the last one, or a new version when what the plan
    depends on changed. A new schedule takes over from the first entry version after the last
    one planned (so doses of the old dosage before the change stay), or from now when only the
    ward's clock changed."""
    fingerprint = schedule_fingerprint(entry, config, admission.ward_id)
    if known and known[-1].fingerprint == fingerprint:
        return known[-1]
    plans_something = entry.dosage is not None and bool(entry.dosage.fixed)
    if not known:
        if not plans_something or entry.status is EntryStatus.ENTERED_IN_ERROR:
            return None
        effective = max(versions[0][1], admission.admitted_at)
        return store.ScheduleRow(entry.id, 1, entry.version, fingerprint, effective)
    last = known[-1]
    newer = [at for version, at in versions if version > last.entry_version]
    effective = min(newer) if newer else now
    return store.ScheduleRow(
        entry.id, last.version + 1, entry.version, fingerprint, max(effective, last.effective_from)
    )


def _entry_version_times(state: PatientState) -> dict[UUID, list[tuple[int, datetime]]]:
    found: dict[UUID, list[tuple[int, datetime]]] = defaultdict(list)
    for change in state.changes:
        for version in change.entry_versions:
            found[version.entry_id].append((version.version, version.at))
    return found


def roll_forward(engine: Engine, now: datetime, horizon: timedelta = HORIZON) -> dict[str, Any]:
    """Keep every admitted patient's doses planned ``horizon`` ahead; a second run at the same
    moment plans nothing."""
    skipped: list[str] = []
    with reader(engine).connect() as conn:
        admissions, wards = _admitted(conn, now, "administration.plan", skipped)
    schedules = doses = patients = 0
    for admission in admissions:
        ward = wards[admission.ward_id]

        def work(
            ctx: WorkContext, admission: Admission = admission, ward: store.WardState = ward
        ) -> Done:
            assert ctx.state is not None
            plan = plan_doses(ctx.conn, ctx.state, admission, ward, now, horizon)
            if plan.empty:
                return Done()
            plan.write(ctx.conn)
            return Done(
                response={"schedules": len(plan.schedules), "planned": len(plan.doses)},
                notes=(_plan_note(ctx.state, plan, until=now + horizon),),
            )

        done = _system_work(engine, "administration.plan", admission.patient_id, work, skipped)
        if done:
            patients += 1
            schedules += done["schedules"]
            doses += done["planned"]
    return with_skipped({"patients": patients, "schedules": schedules, "planned": doses}, skipped)


def mark_missed(engine: Engine, now: datetime) -> dict[str, Any]:
    """Chart as missed every planned dose in force whose ward window has passed without a
    charting; a second run marks nothing."""
    skipped: list[str] = []
    with reader(engine).connect() as conn:
        admissions, wards = _admitted(conn, now, "administration.mark-missed", skipped)
    missed = 0
    for admission in admissions:
        ward = wards[admission.ward_id]

        def work(
            ctx: WorkContext, admission: Admission = admission, ward: store.WardState = ward
        ) -> Done:
            assert ctx.state is not None
            notes = []
            # A dose of a dosage changed since the last roll-forward must be superseded, not
            # missed: bring the plan up to date first.
            plan = plan_doses(ctx.conn, ctx.state, admission, ward, now, HORIZON)
            if not plan.empty:
                plan.write(ctx.conn)
                notes.append(_plan_note(ctx.state, plan))
            records = _missed(ctx.conn, admission, ward.config, now)
            if records:
                store.add_administrations(ctx.conn, records)
                notes.append(
                    Note(
                        "administration.mark-missed",
                        {
                            "patient_id": str(admission.patient_id),
                            "planned_dose_ids": [str(r.planned_dose_id) for r in records],
                        },
                    )
                )
            return Done(response={"missed": len(records)}, notes=tuple(notes))

        done = _system_work(
            engine, "administration.mark-missed", admission.patient_id, work, skipped
        )
        missed += done.get("missed", 0)
    return with_skipped({"missed": missed}, skipped)


def _missed(
    conn: Connection, admission: Admission, config: WardConfig, now: datetime
) -> list[Administration]:
    """The missed-dose records of the admission's planned doses in force whose window passed
    without a charting."""
    start = max(admission.admitted_at, now - MISSED_LOOK_BACK)
    return [
        Administration(
            id=uuid.uuid5(_NAMESPACE, f"missed/{line.dose.id}"),
            patient_id=line.dose.patient_id,
            entry_id=line.dose.entry_id,
            planned_dose_id=line.dose.id,
            outcome=Outcome.MISSED,
            at=line.dose.due_at + config.missed_after,
            recorded_at=now,
        )
        for line in chart_lines(conn, [admission.patient_id], start, now)
        if line.in_force
        and line.charting is None
        and line.dose.ward_id == admission.ward_id
        and admission.covers(line.dose.due_at)
        and is_missed(line.dose.due_at, config, now)
    ]


def _admitted(
    conn: Connection, now: datetime, job: str, skipped: list[str]
) -> tuple[list[Admission], dict[UUID, store.WardState]]:
    """The admissions covering ``now`` for a job over every resident, and their wards: an
    admission whose stored record does not load is left out, and so are the residents of a
    ward whose record or configuration does not load, each patient skipped
    (``skip_patient``)."""
    unreadable: list[tuple[str, StoredRecordUnreadable]] = []
    admissions = store.current_admissions(conn, now, unreadable=unreadable)
    for patient_id, named in unreadable:
        skip_patient(job, patient_id, named, skipped)
    ward_ids = {a.ward_id for a in admissions}
    try:
        return admissions, store.ward_configs(conn, ward_ids)
    except StoredRecordUnreadable:
        pass  # one ward at a time, to leave out only the wards that do not load
    wards: dict[UUID, store.WardState] = {}
    for ward_id in sorted(ward_ids, key=str):
        try:
            wards.update(store.ward_configs(conn, [ward_id]))
        except StoredRecordUnreadable as named:
            for admission in admissions:
                if admission.ward_id == ward_id:
                    skip_patient(job, admission.patient_id, named, skipped)
    return [a for a in admissions if a.ward_id in wards], wards


def _system_work(
    engine: Engine,
    action: str,
    patient_id: UUID,
    work: Callable[[WorkContext], Done],
    skipped: list[str],
) -> Mapping[str, Any]:
    """The system's work on one patient through the runner (nothing for a patient not found,
    nor for one whose stored record cannot be read: ``skipping_unreadable``)."""
    try:
        done = skipping_unreadable(
            action,
            patient_id,
            lambda: run_work(engine, action, work, patient_id=patient_id),
            skipped,
        )
    except PatientNotFound:
        return {}
    return {} if done is None else done


def _plan_note(state: PatientState, plan: Plan, *, until: datetime | None = None) -> Note:
    detail: dict[str, Any] = {
        "patient_id": str(state.patient.id),
        "schedules": len(plan.schedules),
        "planned": len(plan.doses),
    }
    if until is not None:
        detail["until"] = until.isoformat()
    return Note("administration.plan", detail)


def plan_after_change(
    conn: Connection,
    state: PatientState,
    at: datetime,
    changed: Collection[UUID],
    *,
    new_entries: bool = False,
) -> Plan:
    """The plan of the entries ``changed`` by a command (``state``: the patient's state after
    the change), brought up to date and written in the command's transaction, so the ward chart
    never shows a plan older than the list: the doses of the admission in force at ``at`` (or
    of one that begins within ``HORIZON``) planned ``HORIZON`` ahead with ``plan_doses``, as the
    roll-forward job would, which then only tops up. An empty plan when the patient is not on
    a ward (the runner asks only for patients ever admitted). ``new_entries``: every changed
    entry was just added (a prescription), so nothing of theirs is planned or charted yet and
    only the admission is read."""
    stay = store.stay_to_plan(conn, state.patient.id, at, at + HORIZON)
    if stay is None or stay[1] is None:
        return Plan(at)
    admission, version = stay
    ward = store.ward_at_version(conn, admission.ward_id, version)
    if ward is None:
        return Plan(at)
    now = max(at, admission.admitted_at)
    plan = plan_doses(
        conn, state, admission, ward, now, HORIZON, entries=changed, new_entries=new_entries
    )
    if not plan.empty:
        plan.write(conn)
    return plan


def replan_if_stale(
    ctx: Context,
    entry: ListEntry,
    admission: Admission,
    ward: store.WardState,
    known: Sequence[store.ScheduleRow],
) -> Plan:
    """The patient's plan brought up to date in this transaction when the charted entry changed
    since it was last planned (the roll-forward job may not have run yet), so a dose of a
    dosage that no longer holds is never charted; an empty plan otherwise. ``known`` are the
    entry's stored schedules."""
    fingerprint = schedule_fingerprint(entry, ward.config, admission.ward_id)
    if not known or known[-1].fingerprint == fingerprint:
        return Plan(ctx.call.at)
    return plan_doses(ctx.conn, ctx.state, admission, ward, ctx.call.at, HORIZON)
