"""Nursing-home administration: ward set-up, admissions, planning doses, charting and the
chart queries.

Commands (each one transaction, audited, with an optional idempotency key):

- ``create_ward`` / ``configure_ward``: a ward of the caller's organisation and its
  configuration (slot clock times, charting windows, witness policy); versions, never edits;
- ``admit`` / ``discharge``: a patient's stay on a ward (through ``run_command``); admitting
  plans the next 48 h at once;
- ``chart``: given / not given / refused / held, with the closed-loop rules of
  ``medloop.domain.administration`` and decision support run again on what was given in the
  last 24 h (alerts that need an override behave as in prescribing; the prescriber's earlier
  overrides come back for the nurse to see);
- ``mark_in_error``: an earlier charting is marked entered-in-error (kept, no longer counted).

System work for the scheduled jobs (``medloop.jobs``), idempotent: ``roll_forward`` keeps the
planned doses of every admitted patient generated ``HORIZON`` ahead (a changed dosage gets a new
schedule that takes over from the time of the change; charted doses stay charted),
``mark_missed`` charts as missed the doses whose window has passed.

Queries: ``ward_chart`` (a ward's day: per patient planned, due, overdue, missed, given …),
``administration_history`` and ``is_admitted``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import Field
from sqlalchemy import Connection, Engine

from interactions import Medication
from interactions.dosage import Quantity
from interactions.values import Moment
from medloop.domain._model import Frozen
from medloop.domain.administration import (
    PRN_WINDOW_MAX,
    Administration,
    AdministrationAlreadyInError,
    AdministrationCorrection,
    AdministrationNotFound,
    ChartingFacts,
    ChartRequest,
    DoseStatus,
    GivenDose,
    Outcome,
    PlannedDose,
    decide_charting,
    dose_status,
    effective_charting,
    is_as_needed,
    is_missed,
)
from medloop.domain.codes import EntryStatus
from medloop.domain.entry import ListEntry
from medloop.domain.errors import PatientNotFound, ReasonRequired
from medloop.domain.personnel import Actor
from medloop.domain.ward import (
    Admission,
    AdmissionNotFound,
    AdmissionReason,
    DecisionReference,
    PatientNotAdmitted,
    Ward,
    WardConfig,
    WardIdAlreadyUsed,
    WardNotFound,
    WardOfAnotherOrganisation,
    check_admission,
    check_discharge,
    local_day_bounds,
    plan_intakes,
    schedule_fingerprint,
)
from medloop.loop.runner import (
    Call,
    CommandResult,
    Context,
    Done,
    Effect,
    Note,
    Screening,
    WorkContext,
    medications_of,
    run_command,
    run_work,
)
from medloop.loop.scanning import read_pack_code
from medloop.store import administration as store
from medloop.store import medication_list as list_store
from medloop.store.db import reader
from medloop.store.medication_list import PatientState

HORIZON = timedelta(hours=48)
"""How far ahead planned doses are kept generated."""

PLAN_LOOK_BACK = timedelta(hours=24)
"""Planning never fills in doses due longer ago than this (a job that did not run for days
does not invent a backlog of missed doses)."""

MISSED_LOOK_BACK = timedelta(days=7)
"""``mark_missed`` looks this far back for doses nobody charted."""

_NAMESPACE = uuid.UUID("6f1d3c4e-2b7a-4f0e-9a51-3d8c0b6e7a21")


# -- wards -------------------------------------------------------------------------------------


class WardOrder(Frozen):
    """A new ward of the caller's organisation."""

    ward_id: UUID
    name: str = Field(min_length=1)
    config: WardConfig = WardConfig()


def create_ward(engine: Engine, order: WardOrder, call: Call) -> dict[str, Any]:
    """Create a ward of ``call.actor``'s organisation with its first configuration."""

    def compute(conn: Connection) -> dict[str, Any]:
        if store.read_ward(conn, order.ward_id) is not None:
            raise WardIdAlreadyUsed(f"ward id {order.ward_id} is taken", ward_id=order.ward_id)
        ward = Ward(
            id=order.ward_id, organisation_id=call.actor.organisation.id, name=order.name
        )
        store.add_ward(conn, ward, order.config, call.actor, call.at)
        return {"ward_id": str(ward.id), "organisation_id": ward.organisation_id,
                "name": ward.name, "config_version": 1}

    return _ward_command(engine, "create", call, order.model_dump(mode="json"), compute)


def configure_ward(
    engine: Engine, ward_id: UUID, config: WardConfig, call: Call
) -> dict[str, Any]:
    """A new configuration version for a ward of the caller's organisation; planned doses
    follow it from the next roll-forward."""

    def compute(conn: Connection) -> dict[str, Any]:
        found = _own_ward(conn, ward_id, call.actor)
        version = found.config_version + 1
        store.add_ward_config(conn, ward_id, version, config, call.actor, call.at)
        return {"ward_id": str(ward_id), "config_version": version}

    request = {"ward_id": str(ward_id), "config": config.model_dump(mode="json")}
    return _ward_command(engine, "configure", call, request, compute)


def _own_ward(conn: Connection, ward_id: UUID, actor: Actor) -> store.WardState:
    found = store.read_ward(conn, ward_id)
    if found is None:
        raise WardNotFound(f"there is no ward {ward_id}", ward_id=ward_id)
    if found.ward.organisation_id != actor.organisation.id:
        raise WardOfAnotherOrganisation(
            f"ward {ward_id} belongs to organisation {found.ward.organisation_id}",
            ward_id=ward_id, organisation_id=found.ward.organisation_id,
        )
    return found


def _ward_command(
    engine: Engine,
    action: str,
    call: Call,
    request: Mapping[str, Any],
    compute: Callable[[Connection], dict[str, Any]],
) -> dict[str, Any]:
    """A ward command through the runner's variant for work beside a list (audited as
    ``ward.<action>``)."""
    return dict(
        run_work(
            engine, f"ward.{action}", lambda ctx: Done(response=compute(ctx.conn)),
            call=call, request=request,
        )
    )


# -- admissions --------------------------------------------------------------------------------


class AdmissionOrder(Frozen):
    """An admission: the ward (of the caller's organisation), when it began, why, and the
    municipal decision (``vedtak``) it rests on."""

    admission_id: UUID
    ward_id: UUID
    admitted_at: Moment
    reason: AdmissionReason
    decision_reference: DecisionReference


def admit(
    engine: Engine, patient_id: UUID, order: AdmissionOrder, call: Call,
    *, horizon: timedelta = HORIZON,
) -> CommandResult:
    """Admit the patient to a ward of the caller's organisation and plan the next ``horizon``
    of doses; refused while the patient is admitted anywhere, before an earlier stay ended, or
    at a time too far from the call (``medloop.domain.ward.check_admission``). The admission's
    reason is the command's reason (the audit record and the patient's access log show it, with
    the decision reference)."""
    call = call.model_copy(update={"reason": order.reason})

    def decide(ctx: Context) -> Effect:
        ward = _own_ward(ctx.conn, order.ward_id, call.actor)
        record = Admission(
            id=order.admission_id, patient_id=patient_id, ward_id=order.ward_id,
            organisation_id=ward.ward.organisation_id, admitted_at=order.admitted_at,
            reason=order.reason, decision_reference=order.decision_reference,
        )
        check_admission(record, store.admissions_of(ctx.conn, patient_id), call.at)
        plan = _plan(ctx.conn, ctx.state, record, ward, max(call.at, order.admitted_at), horizon)
        return Effect(
            writes=(lambda conn: store.add_admission(conn, record), plan.write),
            response={"admission_id": str(record.id), "ward_id": str(record.ward_id),
                      "admitted_at": record.admitted_at.isoformat(),
                      "decision_reference": record.decision_reference,
                      "planned": len(plan.doses)},
        )

    return run_command(
        engine, "admit", patient_id, call, decide,
        based_on=None, request=order.model_dump(mode="json"),
    )


def discharge(
    engine: Engine, patient_id: UUID, admission_id: UUID, at: datetime, call: Call
) -> CommandResult:
    """End an admission at ``at`` (after it began, at most ``DISCHARGE_AHEAD`` from the call);
    nothing is planned or marked missed after it, and the organisation's nurses lose access to
    the patient from then on."""

    def decide(ctx: Context) -> Effect:
        found = next(
            (a for a in store.admissions_of(ctx.conn, patient_id) if a.id == admission_id), None
        )
        if found is None or found.discharged_at is not None:
            raise AdmissionNotFound(
                f"patient {patient_id} has no current admission {admission_id}",
                admission_id=admission_id,
            )
        _own_ward(ctx.conn, found.ward_id, call.actor)
        check_discharge(found, at, call.at)
        return Effect(
            writes=(lambda conn: store.add_discharge(conn, admission_id, at, call.actor),),
            response={"admission_id": str(admission_id), "discharged_at": at.isoformat()},
        )

    return run_command(
        engine, "discharge", patient_id, call, decide, based_on=None,
        request={"admission_id": str(admission_id), "at": at.isoformat()},
    )


def is_admitted(conn: Connection, patient_id: UUID, organisation_id: str, at: datetime) -> bool:
    """Whether the patient is admitted to a ward of ``organisation_id`` at ``at`` (nurses see
    and chart only such patients)."""
    return store.is_admitted(conn, patient_id, organisation_id, at)


# -- planning ----------------------------------------------------------------------------------


@dataclass
class _Plan:
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


def _plan(
    conn: Connection,
    state: PatientState,
    admission: Admission,
    ward: store.WardState,
    now: datetime,
    horizon: timedelta,
) -> _Plan:
    """The schedules and planned doses missing for the patient's entries from now to
    ``now + horizon`` (pure but for reading what is already planned)."""
    patient_id = state.patient.id
    plan = _Plan(now)
    end = now + horizon
    if admission.discharged_at is not None:
        end = min(end, admission.discharged_at)
    schedules = store.schedules_of(conn, [patient_id])
    version_times = _entry_version_times(state)
    since = max(admission.admitted_at, now - PLAN_LOOK_BACK)
    # Keys of what is planned, and (entry, local time, dose index) of planned doses already
    # charted by a person: a new schedule does not plan the same intake again.
    existing, charted_slots = store.planned_since(conn, patient_id, since - PLAN_LOOK_BACK, end)
    for entry in state.medication_list.entries:
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
                    patient_id=patient_id, ward_id=admission.ward_id, entry_id=entry.id,
                    schedule_version=current.version, drug=entry.drug.name,
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


def roll_forward(engine: Engine, now: datetime, horizon: timedelta = HORIZON) -> dict[str, int]:
    """Keep every admitted patient's doses planned ``horizon`` ahead; a second run at the same
    moment plans nothing."""
    with reader(engine).connect() as conn:
        admissions = store.current_admissions(conn, now)
        wards = store.ward_configs(conn, {a.ward_id for a in admissions})
    schedules = doses = patients = 0
    for admission in admissions:
        ward = wards[admission.ward_id]

        def work(ctx: WorkContext, admission: Admission = admission,
                 ward: store.WardState = ward) -> Done:
            assert ctx.state is not None
            plan = _plan(ctx.conn, ctx.state, admission, ward, now, horizon)
            if plan.empty:
                return Done()
            plan.write(ctx.conn)
            return Done(
                response={"schedules": len(plan.schedules), "planned": len(plan.doses)},
                notes=(_plan_note(ctx.state, plan, until=now + horizon),),
            )

        done = _system_work(engine, "administration.plan", admission.patient_id, work)
        if done:
            patients += 1
            schedules += done["schedules"]
            doses += done["planned"]
    return {"patients": patients, "schedules": schedules, "planned": doses}


def mark_missed(engine: Engine, now: datetime) -> dict[str, int]:
    """Chart as missed every planned dose in force whose ward window has passed without a
    charting; a second run marks nothing."""
    with reader(engine).connect() as conn:
        admissions = store.current_admissions(conn, now)
        wards = store.ward_configs(conn, {a.ward_id for a in admissions})
    missed = 0
    for admission in admissions:
        ward = wards[admission.ward_id]

        def work(ctx: WorkContext, admission: Admission = admission,
                 ward: store.WardState = ward) -> Done:
            assert ctx.state is not None
            notes = []
            # A dose of a dosage changed since the last roll-forward must be superseded, not
            # missed: bring the plan up to date first.
            plan = _plan(ctx.conn, ctx.state, admission, ward, now, HORIZON)
            if not plan.empty:
                plan.write(ctx.conn)
                notes.append(_plan_note(ctx.state, plan))
            records = _missed(ctx.conn, admission, ward.config, now)
            if records:
                store.add_administrations(ctx.conn, records)
                notes.append(Note("administration.mark-missed", {
                    "patient_id": str(admission.patient_id),
                    "planned_dose_ids": [str(r.planned_dose_id) for r in records],
                }))
            return Done(response={"missed": len(records)}, notes=tuple(notes))

        done = _system_work(engine, "administration.mark-missed", admission.patient_id, work)
        missed += done.get("missed", 0)
    return {"missed": missed}


def _missed(
    conn: Connection, admission: Admission, config: WardConfig, now: datetime
) -> list[Administration]:
    """The missed-dose records of the admission's planned doses in force whose window passed
    without a charting."""
    start = max(admission.admitted_at, now - MISSED_LOOK_BACK)
    return [
        Administration(
            id=uuid.uuid5(_NAMESPACE, f"missed/{line.dose.id}"),
            patient_id=line.dose.patient_id, entry_id=line.dose.entry_id,
            planned_dose_id=line.dose.id, outcome=Outcome.MISSED,
            at=line.dose.due_at + config.missed_after, recorded_at=now,
        )
        for line in _lines(conn, [admission.patient_id], start, now)
        if line.in_force and line.charting is None
        and line.dose.ward_id == admission.ward_id and admission.covers(line.dose.due_at)
        and is_missed(line.dose.due_at, config, now)
    ]


def _system_work(
    engine: Engine, action: str, patient_id: UUID, work: Callable[[WorkContext], Done]
) -> Mapping[str, Any]:
    """The system's work on one patient through the runner (nothing for a patient not found)."""
    try:
        return run_work(engine, action, work, patient_id=patient_id)
    except PatientNotFound:
        return {}


def _plan_note(state: PatientState, plan: _Plan, *, until: datetime | None = None) -> Note:
    detail: dict[str, Any] = {"patient_id": str(state.patient.id),
                              "schedules": len(plan.schedules), "planned": len(plan.doses)}
    if until is not None:
        detail["until"] = until.isoformat()
    return Note("administration.plan", detail)


# -- charting ----------------------------------------------------------------------------------


def chart(
    engine: Engine,
    patient_id: UUID,
    request: ChartRequest,
    call: Call,
    *,
    witness: Actor | None = None,
) -> CommandResult:
    """Chart a dose for a patient admitted to a ward of the caller's organisation. ``witness``
    is the second, authenticated person the ward's policy may demand."""

    def decide(ctx: Context) -> Effect:
        facts, replan, recent = _charting_facts(ctx, patient_id, request, witness)
        decided = decide_charting(
            facts, read_pack=read_pack_code, packages_by_gtin=ctx.catalogue.packages_by_gtin
        )
        record, entry = decided.record, facts.medication_list.entry(request.entry_id)
        given = record.outcome is Outcome.GIVEN
        return Effect(
            screening=_screening(ctx, entry, request.given_at, recent) if given else None,
            writes=(replan.write, lambda conn: store.add_administration(conn, record)),
            response={
                "administration_id": str(record.id),
                "entry_id": str(entry.id),
                "planned_dose_id": None if facts.planned is None else str(facts.planned.id),
                "outcome": record.outcome.value,
                "late": decided.late,
                "limits_exceeded": list(record.limits_exceeded),
                "limits_not_checked": list(decided.not_checked),
                "scan": None if record.scan is None else record.scan.model_dump(mode="json"),
                "witness": None if record.witness is None else record.witness.personnel.name,
                "overrides_on_record": _overrides_on_record(ctx.conn, patient_id, entry.id),
            },
        )

    payload = {
        **request.model_dump(mode="json"),
        "witness": None if witness is None else witness.personnel.hpr_number,
    }
    return run_command(
        engine, "administer", patient_id, call, decide, based_on=None, request=payload
    )


def mark_in_error(
    engine: Engine, patient_id: UUID, administration_id: UUID, call: Call
) -> CommandResult:
    """Mark a charting entered-in-error (``call.reason`` says why): it stays on record but no
    longer counts, and the dose can be charted again."""

    def decide(ctx: Context) -> Effect:
        reason = (call.reason or "").strip()
        if not reason:
            raise ReasonRequired("marking a charting entered-in-error needs a reason")
        admission = _admission(ctx.conn, patient_id, call.actor, call.at)
        found = store.administration_by_id(ctx.conn, administration_id)
        # Only a charting of this stay: another organisation's (or an earlier stay's) record
        # is not the caller's to correct, and is answered as if it did not exist.
        if (found is None or found.administration.patient_id != patient_id
                or not admission.covers(found.administration.at)):
            raise AdministrationNotFound(
                f"patient {patient_id} has no administration {administration_id} in this stay",
                administration_id=administration_id,
            )
        if not found.stands:
            raise AdministrationAlreadyInError(
                f"administration {administration_id} is already entered in error",
                administration_id=administration_id,
            )
        correction = AdministrationCorrection(
            administration_id=administration_id, at=call.at, by=call.actor, reason=reason
        )
        return Effect(
            writes=(lambda conn: store.add_correction(conn, correction),),
            response={"administration_id": str(administration_id),
                      "entered_in_error": True},
        )

    return run_command(
        engine, "administration-entered-in-error", patient_id, call, decide, based_on=None,
        request={"administration_id": str(administration_id)},
    )


def _admission(conn: Connection, patient_id: UUID, actor: Actor, at: datetime) -> Admission:
    for admission in store.admissions_of(conn, patient_id):
        if admission.organisation_id == actor.organisation.id and admission.covers(at):
            return admission
    raise PatientNotAdmitted(
        f"patient {patient_id} is not admitted to a ward of organisation "
        f"{actor.organisation.id} at {at.isoformat()}",
        patient_id=patient_id, organisation_id=actor.organisation.id,
    )


def _stay(
    conn: Connection, patient_id: UUID, actor: Actor, at: datetime
) -> tuple[Admission | None, store.WardState | None]:
    """The patient's admission to a ward of the actor's organisation at ``at`` (``None``: not
    admitted there) and that ward with its configuration in force (``None``: no such ward),
    in one query when the ward's configuration version is known to this process."""
    for admission, version in store.admissions_with_config(conn, patient_id):
        if admission.organisation_id == actor.organisation.id and admission.covers(at):
            ward = (
                None if version is None
                else store.ward_at_version(conn, admission.ward_id, version)
            )
            return admission, ward
    return None, None


def _charting_facts(
    ctx: Context, patient_id: UUID, request: ChartRequest, witness: Actor | None
) -> tuple[ChartingFacts, _Plan, list[store.RecentCharting]]:
    """Everything charting decides on, read before the decision (``decide_charting``), with
    the patient's plan brought up to date when the charted entry changed since it was last
    planned, and the patient's recent chartings (for decision support). Reads only what the
    request can use; refuses nothing (the decision does, in its own order)."""
    call, medication_list = ctx.call, ctx.state.medication_list
    moment = request.given_at or call.at
    facts = ChartingFacts(
        patient_id=patient_id, request=request, now=call.at, performer=call.actor,
        witness=witness, medication_list=medication_list, admission=None, config=None,
    )
    entry = medication_list.find(request.entry_id)
    if entry is None or request.outcome is Outcome.MISSED:
        return facts, _Plan(call.at), []
    admission, ward = _stay(ctx.conn, patient_id, call.actor, moment)
    if admission is None or ward is None:
        return replace(facts, admission=admission), _Plan(call.at), []
    known = store.schedules_of_entry(ctx.conn, patient_id, entry.id)
    replan = _replan_if_stale(ctx, entry, admission, ward, known)
    schedules = [*known, *(s for _, s in replan.schedules if s.entry_id == entry.id)]
    given = request.outcome is Outcome.GIVEN and request.given_at is not None
    since = _recent_since(entry, request.given_at) if given else None
    planned = None
    if not is_as_needed(entry) and request.planned_dose_id is not None:
        planned = store.planned_dose_by_id(ctx.conn, request.planned_dose_id)
        if planned is not None and planned.patient_id != patient_id:
            planned = None
    chartings, recent = store.chartings_for_charting(
        ctx.conn, patient_id, None if planned is None else planned.id, since
    )
    charted = effective_charting(c.administration for c in chartings if c.stands)
    in_force = planned is not None and store.in_force(
        planned, schedules, charted=charted is not None
    )
    earlier = tuple(
        GivenDose(c.entry_id, c.at, c.dose[0], c.dose[1])
        for c in recent
        if c.stands and c.outcome is Outcome.GIVEN and c.dose is not None
    )
    return (
        replace(facts, admission=admission, config=ward.config, planned=planned,
                in_force=in_force, charted=charted, earlier=earlier),
        replan,
        recent,
    )


def _replan_if_stale(
    ctx: Context,
    entry: ListEntry,
    admission: Admission,
    ward: store.WardState,
    known: Sequence[store.ScheduleRow],
) -> _Plan:
    """The patient's plan brought up to date in this transaction when the charted entry changed
    since it was last planned (the roll-forward job may not have run yet), so a dose of a
    dosage that no longer holds is never charted; an empty plan otherwise. ``known`` are the
    entry's stored schedules."""
    fingerprint = schedule_fingerprint(entry, ward.config, admission.ward_id)
    if not known or known[-1].fingerprint == fingerprint:
        return _Plan(ctx.call.at)
    return _plan(ctx.conn, ctx.state, admission, ward, ctx.call.at, HORIZON)


def _recent_since(entry: ListEntry, given_at: datetime) -> datetime:
    """From when a given dose's checks need the patient's chartings: the 24 h screened again,
    and for an as-needed dose the PRN limits' longest period."""
    look_back = PRN_WINDOW_MAX if is_as_needed(entry) else timedelta(hours=24)
    return given_at - max(look_back, timedelta(hours=24))


def _screening(
    ctx: Context, entry: ListEntry, given_at: datetime | None,
    recent: Sequence[store.RecentCharting],
) -> Screening:
    """The list as decision support sees it, plus every entry given in the 24 h before this
    dose as still in use (also when stopped since); ``recent`` are the patient's chartings
    from at least 24 h before the dose on."""
    at = given_at or ctx.call.at
    since = at - timedelta(hours=24)
    listed = {m.id: m for m in medications_of(ctx.state.medication_list)}
    given = {
        str(c.entry_id) for c in recent
        if c.at >= since and c.stands and c.outcome is Outcome.GIVEN
    }
    for entry_id in given:
        known = listed.get(entry_id)
        if known is not None:
            listed[entry_id] = Medication(
                id=known.id, drug=known.drug, dosage=known.dosage, start=known.start, stop=None
            )
    return Screening(tuple(listed.values()), (str(entry.id),) if str(entry.id) in listed else ())


def _overrides_on_record(
    conn: Connection, patient_id: UUID, entry_id: UUID
) -> list[dict[str, Any]]:
    """The overrides on record that involve the entry (the prescriber's, the pharmacist's),
    shown to the nurse."""
    return [
        {"key": row.key, "by": row.override_by["personnel"]["name"],
         "reason": row.override_reason, "at": row.raised_at.isoformat(), "action": row.action}
        for row in store.overridden_alerts(conn, patient_id)
        if row.override_reason is not None and str(entry_id) in row.record["medications"]
    ]


# -- queries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    dose: PlannedDose
    in_force: bool
    charting: Administration | None


def _lines(
    conn: Connection, patient_ids: Sequence[UUID], start: datetime, end: datetime,
    ward_id: UUID | None = None,
) -> list[_Line]:
    doses = store.planned_doses(
        conn, patient_ids=None if ward_id is not None else patient_ids, ward_id=ward_id,
        start=start, end=end,
    )
    chartings = store.chartings_of_doses(conn, [d.id for d in doses])
    schedules = store.schedules_of(conn, sorted({d.patient_id for d in doses}))
    lines = []
    for dose in doses:
        standing = effective_charting(
            c.administration for c in chartings.get(dose.id, ()) if c.stands
        )
        lines.append(
            _Line(dose, store.in_force(dose, schedules.get(dose.entry_id, []),
                                       charted=standing is not None), standing)
        )
    return lines


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


@dataclass(frozen=True)
class PatientChart:
    patient_id: UUID
    admission_id: UUID
    doses: tuple[ChartLine, ...]
    as_needed: tuple[Administration, ...]

    def count(self, status: DoseStatus) -> int:
        return sum(1 for line in self.doses if line.status is status)


@dataclass(frozen=True)
class WardChart:
    """A ward's administration chart for one Oslo calendar day."""

    ward_id: UUID
    day: date
    patients: tuple[PatientChart, ...]


def ward_chart(conn: Connection, ward_id: UUID, day: date, now: datetime) -> WardChart:
    """Per admitted patient: the day's planned doses in force with their status at ``now``
    (planned, due, overdue, missed, given, not given, refused, held) and the PRN doses given."""
    found = store.read_ward(conn, ward_id)
    if found is None:
        raise WardNotFound(f"there is no ward {ward_id}", ward_id=ward_id)
    start, end = local_day_bounds(day)
    admissions = [
        a for a in store.admissions_to(conn, ward_id)
        if a.admitted_at < end and (a.discharged_at is None or a.discharged_at > start)
    ]
    lines = _lines(conn, [a.patient_id for a in admissions], start, end, ward_id=ward_id)
    stays = {a.patient_id: a for a in admissions}
    by_patient: dict[UUID, list[ChartLine]] = defaultdict(list)
    for line in lines:
        stay = stays.get(line.dose.patient_id)
        if not line.in_force or stay is None or not stay.covers(line.dose.due_at):
            continue
        by_patient[line.dose.patient_id].append(
            ChartLine(
                planned_dose_id=line.dose.id, entry_id=line.dose.entry_id,
                drug=line.dose.drug, local_time=line.dose.local_time, due_at=line.dose.due_at,
                amount=line.dose.amount,
                status=dose_status(line.dose.due_at, line.charting, found.config, now),
                late=line.charting is not None and line.charting.late,
                multidose=line.dose.multidose, charting=line.charting,
            )
        )
    prn: dict[UUID, list[Administration]] = defaultdict(list)
    patients = [a.patient_id for a in admissions]
    for charted in store.chartings_of_patients(conn, patients, start, end):
        given = charted.administration
        # Only what was given during a stay on this ward: a PRN dose charted earlier that
        # day by another ward (of another organisation, maybe) is not this ward's to see.
        if charted.stands and given.planned_dose_id is None and any(
            a.patient_id == given.patient_id and a.covers(given.at) for a in admissions
        ):
            prn[given.patient_id].append(given)
    return WardChart(
        ward_id=ward_id,
        day=day,
        patients=tuple(
            PatientChart(a.patient_id, a.id, tuple(by_patient.get(a.patient_id, ())),
                         tuple(prn.get(a.patient_id, ())))
            for a in admissions
        ),
    )


def administration_history(
    conn: Connection, patient_id: UUID, since: datetime | None = None,
    until: datetime | None = None,
) -> list[store.Charted]:
    """Every charting of the patient (also those entered in error, with their correction),
    oldest first."""
    if list_store.national_id_of(conn, patient_id) is None:
        raise PatientNotFound(f"there is no patient {patient_id}", patient_id=patient_id)
    return store.chartings_of_patient(conn, patient_id, since, until)
