"""Charting: given / not given / refused / held. What the decision needs is read first
(``_charting_facts``), ``medloop.domain.administration.decide_charting`` decides, the runner
writes; decision support runs again on what was given in the last 24 h. ``mark_in_error``
corrects an earlier charting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine

from interactions import Medication
from medloop.domain.administration import (
    PRN_WINDOW_MAX,
    AdministrationAlreadyInError,
    AdministrationCorrection,
    AdministrationNotFound,
    ChartingFacts,
    ChartRequest,
    GivenDose,
    Outcome,
    WitnessSignatureUsed,
    decide_charting,
    dose_in_force,
    effective_charting,
    is_as_needed,
)
from medloop.domain.entry import ListEntry
from medloop.domain.personnel import Actor
from medloop.domain.ward import Admission
from medloop.loop.administration.admissions import admission_of
from medloop.loop.administration.planning import Plan, replan_if_stale
from medloop.loop.errors import ReasonRequired
from medloop.loop.runner import (
    Call,
    CommandResult,
    Context,
    Effect,
    Screening,
    medications_of,
    run_command,
)
from medloop.loop.scanning import read_pack_code
from medloop.store import administration as store


def chart(
    engine: Engine,
    patient_id: UUID,
    request: ChartRequest,
    call: Call,
    *,
    witness: Actor | None = None,
    witness_signature: Callable[[Connection], bool] | None = None,
) -> CommandResult:
    """Chart a dose for a patient admitted to a ward of the caller's organisation. ``witness``
    is the second, authenticated person the ward's policy may demand. ``witness_signature``
    consumes the one-use proof that the witness signed (the pages' grant) in this command's
    transaction: it answers whether the proof was still there, and when it was not the
    charting is refused (``WitnessSignatureUsed``) with nothing saved."""

    def consume(conn: Connection) -> None:
        if witness_signature is not None and not witness_signature(conn):
            raise WitnessSignatureUsed(
                "the witness's signature was used for another charting or has expired"
            )

    def decide(ctx: Context) -> Effect:
        facts, replan, recent = _charting_facts(ctx, patient_id, request, witness)
        decided = decide_charting(
            facts, read_pack=read_pack_code, packages_by_gtin=ctx.catalogue.packages_by_gtin
        )
        record, entry = decided.record, facts.medication_list.entry(request.entry_id)
        given = record.outcome is Outcome.GIVEN
        return Effect(
            screening=_screening(ctx, entry, request.given_at, recent) if given else None,
            writes=(consume, replan.write, lambda conn: store.add_administration(conn, record)),
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
        admission = admission_of(ctx.conn, patient_id, call.actor, call.at)
        found = store.administration_by_id(ctx.conn, patient_id, administration_id)
        # Only a charting of this stay: another organisation's (or an earlier stay's) record
        # is not the caller's to correct, and is answered as if it did not exist.
        if (
            found is None
            or found.administration.patient_id != patient_id
            or not admission.covers(found.administration.at)
        ):
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
            writes=(lambda conn: store.add_correction(conn, patient_id, correction),),
            response={"administration_id": str(administration_id), "entered_in_error": True},
        )

    return run_command(
        engine,
        "administration-entered-in-error",
        patient_id,
        call,
        decide,
        based_on=None,
        request={"administration_id": str(administration_id)},
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
                None if version is None else store.ward_at_version(conn, admission.ward_id, version)
            )
            return admission, ward
    return None, None


def _charting_facts(
    ctx: Context, patient_id: UUID, request: ChartRequest, witness: Actor | None
) -> tuple[ChartingFacts, Plan, list[store.RecentCharting]]:
    """Everything charting decides on, read before the decision (``decide_charting``), with
    the patient's plan brought up to date when the charted entry changed since it was last
    planned, and the patient's recent chartings (for decision support). Reads only what the
    request can use; refuses nothing (the decision does, in its own order)."""
    call, medication_list = ctx.call, ctx.state.medication_list
    moment = request.given_at or call.at
    facts = ChartingFacts(
        patient_id=patient_id,
        request=request,
        now=call.at,
        performer=call.actor,
        witness=witness,
        medication_list=medication_list,
        admission=None,
        config=None,
    )
    entry = medication_list.find(request.entry_id)
    if entry is None or request.outcome is Outcome.MISSED:
        return facts, Plan(call.at), []
    admission, ward = _stay(ctx.conn, patient_id, call.actor, moment)
    if admission is None or ward is None:
        return replace(facts, admission=admission), Plan(call.at), []
    known = store.schedules_of_entry(ctx.conn, patient_id, entry.id)
    replan = replan_if_stale(ctx, entry, admission, ward, known)
    schedules = [*known, *(s for _, s in replan.schedules if s.entry_id == entry.id)]
    given = request.outcome is Outcome.GIVEN and request.given_at is not None
    since = _recent_since(entry, request.given_at) if given else None
    planned = None
    if not is_as_needed(entry) and request.planned_dose_id is not None:
        planned = store.planned_dose_by_id(ctx.conn, patient_id, request.planned_dose_id)
        if planned is not None and planned.patient_id != patient_id:
            planned = None
    chartings, recent = store.chartings_for_charting(
        ctx.conn, patient_id, None if planned is None else planned.id, since
    )
    charted = effective_charting(c.administration for c in chartings if c.stands)
    in_force = planned is not None and dose_in_force(
        planned, schedules, charted=charted is not None
    )
    earlier = tuple(
        GivenDose(c.entry_id, c.at, c.dose[0], c.dose[1])
        for c in recent
        if c.stands and c.outcome is Outcome.GIVEN and c.dose is not None
    )
    return (
        replace(
            facts,
            admission=admission,
            config=ward.config,
            planned=planned,
            in_force=in_force,
            charted=charted,
            earlier=earlier,
        ),
        replan,
        recent,
    )


def _recent_since(entry: ListEntry, given_at: datetime) -> datetime:
    """From when a given dose's checks need the patient's chartings: the 24 h screened again,
    and for an as-needed dose the PRN limits' longest period."""
    look_back = PRN_WINDOW_MAX if is_as_needed(entry) else timedelta(hours=24)
    return given_at - max(look_back, timedelta(hours=24))


def _screening(
    ctx: Context,
    entry: ListEntry,
    given_at: datetime | None,
    recent: Sequence[store.RecentCharting],
) -> Screening:
    """The list as decision support sees it, plus every entry given in the 24 h before this
    dose as still in use (also when stopped since); ``recent`` are the patient's chartings
    from at least 24 h before the dose on."""
    at = given_at or ctx.call.at
    since = at - timedelta(hours=24)
    listed = {m.id: m for m in medications_of(ctx.state.medication_list)}
    given = {
        str(c.entry_id) for c in recent if c.at >= since and c.stands and c.outcome is Outcome.GIVEN
    }
    for entry_id in given:
        known = listed.get(entry_id)
        if known is not None:
            listed[entry_id] = Medication(
                id=known.id,
                drug=known.drug,
                dosage=known.dosage,
                start=known.start,
                stop=None,
                indication=known.indication,
            )
    return Screening(tuple(listed.values()), (str(entry.id),) if str(entry.id) in listed else ())


def _overrides_on_record(
    conn: Connection, patient_id: UUID, entry_id: UUID
) -> list[dict[str, Any]]:
    """The overrides on record that involve the entry (the prescriber's, the pharmacist's),
    shown to the nurse."""
    return [
        {
            "key": row.key,
            "by": row.override_by["personnel"]["name"],
            "reason": row.override_reason,
            "at": row.raised_at.isoformat(),
            "action": row.action,
        }
        for row in store.overridden_alerts(conn, patient_id)
        if row.override_reason is not None and str(entry_id) in row.record["medications"]
    ]
