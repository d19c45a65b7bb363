"""Dispensing (``utlevering``) against a prescription, with the closed-loop rules of
``medloop.domain.dispense.check_dispensable`` (architecture invariant 4), and annulment
(``annullering``) of an earlier dispense; a pharmacy may first lock a prescription for itself
(status U) and release it again.

Decision support runs again on the list with the package actually handed out in place of the
entry's drug, plus whatever was dispensed to the patient in the last twelve months; safety
notices (``VarselSlv``) on the package come back as alerts, and the overrides recorded earlier
for the entry are returned so the pharmacist sees them. A substitution within a group FEST marks
with a substitution remark (``MerknadTilByttbarhet``) raises an alert that needs the
pharmacist's reasoned decision (``interactions.checks.substitution``); the response's
``substitution`` names the group, the remark and the decision on record.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any
from uuid import UUID

from pydantic import Field
from sqlalchemy import Engine

from interactions import Medication, UnknownReference
from interactions.checks.substitution import restriction_key
from interactions.medication import Substitution
from interactions.values import Day
from medloop.domain._model import Frozen
from medloop.domain.codes import EntryStatus
from medloop.domain.dispense import (
    Dispense,
    DispenseOutcome,
    DispenseQuantity,
    DispenseRequest,
    annul,
    tally,
)
from medloop.domain.dispense import dispense as record_dispense
from medloop.domain.drug_reference import CatalogueDrug
from medloop.domain.entry import ListEntry
from medloop.domain.prescription import Prescription, lock, unlock
from medloop.loop.catalogue import DrugOrder
from medloop.loop.runner import (
    Call,
    CommandResult,
    Context,
    DispenseNotFound,
    Effect,
    PrescriptionNotFound,
    Screening,
    medications_of,
    run_command,
)

LOOK_BACK = timedelta(days=365)
"""Dispenses this far back count as medication the patient may still take."""


class DispenseOrder(Frozen):
    """What the pharmacy hands out: the package by varenr, against ``prescription_id``."""

    dispense_id: UUID
    prescription_id: UUID
    varenr: str = Field(min_length=1)
    dispensed_on: Day
    quantity: DispenseQuantity
    batch: str = Field(min_length=1)
    expiry: Day
    patient_refused_substitution: bool = False
    finished: bool = False


def dispense(
    engine: Engine,
    patient_id: UUID,
    order: DispenseOrder,
    call: Call,
    *,
    based_on: int | None = None,
) -> CommandResult:
    """Record a dispense; refused with the precise ``NotDispensable`` error when the closed-loop
    rules do not allow it."""

    def decide(ctx: Context) -> Effect:
        state = ctx.state
        prescription = _prescription(ctx, patient_id, order.prescription_id)
        entry = state.medication_list.entry(prescription.entry_id)
        package = ctx.catalogue.package(order.varenr)
        outcome = record_dispense(
            prescription,
            entry,
            package,
            ctx.catalogue.substitution_groups,
            state.dispenses_of(prescription.id),
            DispenseRequest(
                id=order.dispense_id,
                dispensed_on=order.dispensed_on,
                quantity=order.quantity,
                batch=order.batch,
                expiry=order.expiry,
                patient_refused_substitution=order.patient_refused_substitution,
                finished=order.finished,
            ),
            at=call.at,
            by=call.actor,
        )
        handed_out = ctx.catalogue.resolve(DrugOrder(varenr=order.varenr))
        earlier = state.dispenses_of(prescription.id)
        remaining = tally(outcome.prescription, (*earlier, outcome.dispense))
        substitution = _substitution(ctx, prescription, entry, outcome)
        return Effect(
            dispenses=(outcome.dispense,),
            prescription_versions=(
                () if outcome.prescription_version is None else (outcome.prescription_version,)
            ),
            screening=_screening(ctx, entry, handed_out, order.dispensed_on, substitution),
            response={
                "dispense_id": str(order.dispense_id),
                "prescription_id": str(prescription.id),
                "entry_id": str(entry.id),
                "package": outcome.dispense.package.model_dump(mode="json"),
                "substituted": outcome.dispense.substituted,
                "substitution": _substitution_view(ctx, entry, outcome, prescription),
                "prescription_status": outcome.prescription.status.value,
                "remaining": remaining.remaining,
                "unit": remaining.unit,
                "overrides_on_record": _overrides_on_record(ctx, patient_id, entry.id),
            },
        )

    return run_command(
        engine,
        "dispense",
        patient_id,
        call,
        decide,
        based_on=based_on,
        request=order.model_dump(mode="json"),
    )


def annul_dispense(
    engine: Engine, patient_id: UUID, dispense_id: UUID, call: Call
) -> CommandResult:
    """Annul an earlier dispense (``call.reason`` says why); it stops counting and a fully
    dispensed prescription reopens."""

    def decide(ctx: Context) -> Effect:
        state = ctx.state
        earlier = next((d for d in state.dispenses if d.id == dispense_id), None)
        if earlier is None:
            raise DispenseNotFound(
                f"patient {patient_id} has no dispense {dispense_id}",
                dispense_id=dispense_id,
                patient_id=patient_id,
            )
        prescription = state.prescriptions[earlier.prescription_id]
        outcome = annul(
            earlier,
            prescription,
            state.dispenses_of(prescription.id),
            reason=call.reason or "",
            at=call.at,
            by=call.actor,
        )
        assert outcome.dispense.annulment is not None
        return Effect(
            annulments=((dispense_id, outcome.dispense.annulment),),
            prescription_versions=(
                () if outcome.prescription_version is None else (outcome.prescription_version,)
            ),
            response={
                "dispense_id": str(dispense_id),
                "prescription_id": str(prescription.id),
                "prescription_status": outcome.prescription.status.value,
            },
        )

    return run_command(
        engine,
        "annul-dispense",
        patient_id,
        call,
        decide,
        based_on=None,
        request={"dispense_id": str(dispense_id), "reason": call.reason},
    )


def lock_for_dispensing(
    engine: Engine, patient_id: UUID, prescription_id: UUID, call: Call
) -> CommandResult:
    """The caller's pharmacy takes the prescription (E → U, ``under ekspedering``): no other
    pharmacy may dispense it and the prescriber cannot recall it until it is dispensed or
    released."""

    def decide(ctx: Context) -> Effect:
        prescription = _prescription(ctx, patient_id, prescription_id)
        locked, version = lock(
            prescription, call.actor.organisation, on=call.day, at=call.at, by=call.actor
        )
        return Effect(
            prescription_versions=(version,),
            response={
                "prescription_id": str(prescription_id),
                "prescription_status": locked.status.value,
            },
        )

    return run_command(
        engine,
        "lock-prescription",
        patient_id,
        call,
        decide,
        based_on=None,
        request={"prescription_id": str(prescription_id)},
    )


def release(engine: Engine, patient_id: UUID, prescription_id: UUID, call: Call) -> CommandResult:
    """The pharmacy holding the prescription gives it back undispensed (U → E)."""

    def decide(ctx: Context) -> Effect:
        prescription = _prescription(ctx, patient_id, prescription_id)
        released, version = unlock(prescription, call.actor.organisation, at=call.at, by=call.actor)
        return Effect(
            prescription_versions=(version,),
            response={
                "prescription_id": str(prescription_id),
                "prescription_status": released.status.value,
            },
        )

    return run_command(
        engine,
        "release-prescription",
        patient_id,
        call,
        decide,
        based_on=None,
        request={"prescription_id": str(prescription_id)},
    )


def _prescription(ctx: Context, patient_id: UUID, prescription_id: UUID) -> Prescription:
    found = ctx.state.prescriptions.get(prescription_id)
    if found is None:
        raise PrescriptionNotFound(
            f"patient {patient_id} has no prescription {prescription_id}",
            prescription_id=prescription_id,
            patient_id=patient_id,
        )
    return found


def _screening(
    ctx: Context,
    entry: ListEntry,
    handed_out: CatalogueDrug,
    on: date,
    substitution: Substitution | None = None,
) -> Screening:
    listed = medications_of(ctx.state.medication_list, replace={entry.id: handed_out})
    by_id = {m.id: m for m in listed}
    for medication in _recently_dispensed(ctx, by_id, on):
        by_id[medication.id] = medication
    key = str(entry.id)
    if substitution is not None and key in by_id:
        by_id[key] = replace(by_id[key], substitution=substitution)
    return Screening(tuple(by_id.values()), (key,))


def _substitution(
    ctx: Context, prescription: Prescription, entry: ListEntry, outcome: DispenseOutcome
) -> Substitution | None:
    """The substitution this dispense makes, with how often the patient had the drug (this
    entry) or the group dispensed before: a restricted group may allow substitution only at the
    first prescription."""
    group = outcome.substitution_group
    if group is None:
        return None
    earlier = 0
    for dispensed in ctx.state.dispenses:
        if not dispensed.counts:
            continue
        if dispensed.entry_id == entry.id or group.id in _groups_of(ctx, dispensed):
            earlier += 1
    return Substitution(
        prescribed=prescription.drug.name,
        group_id=group.id,
        prescription=str(prescription.id),
        earlier_dispenses=earlier,
    )


def _groups_of(ctx: Context, dispensed: Dispense) -> tuple[str, ...]:
    try:
        drug = ctx.catalogue.knowledge.resolve(fest_id=dispensed.package.package_id)
    except UnknownReference:
        return ()
    return drug.substitution_group_ids


def _substitution_view(
    ctx: Context, entry: ListEntry, outcome: DispenseOutcome, prescription: Prescription
) -> dict[str, Any] | None:
    """The group a substitution was made within, its remark, and for a restricted group the
    pharmacist's decision: given with this call or recorded at an earlier dispense of the same
    prescription."""
    group = outcome.substitution_group
    if group is None:
        return None
    decision = None
    if group.restricted:
        key = restriction_key(str(entry.id), group.code, str(prescription.id))
        call = ctx.call
        if (call.overrides.get(key) or "").strip():
            decision = {
                "key": key,
                "reason": call.overrides[key],
                "by": call.actor.personnel.name,
                "hpr_number": call.actor.personnel.hpr_number,
                "at": call.at.isoformat(),
            }
        else:
            recorded = next(
                (
                    row
                    for row in ctx.state.alerts
                    if row.key == key and row.override_reason is not None
                ),
                None,
            )
            if recorded is not None:
                decision = {
                    "key": key,
                    "reason": recorded.override_reason,
                    "by": recorded.override_by["personnel"]["name"],
                    "hpr_number": recorded.override_by["personnel"]["hpr_number"],
                    "at": recorded.raised_at.isoformat(),
                }
    return {
        "substitution_group_id": group.id,
        "code": group.code,
        "name": group.description,
        "restricted": group.restricted,
        "restriction": group.restriction_text,
        "decision": decision,
    }


def _recently_dispensed(ctx: Context, listed: dict[str, Medication], on: date) -> list[Medication]:
    """The entries dispensed within ``LOOK_BACK`` as medication the patient may still have:
    from the dispense on with no end, even when the entry has since been stopped. Entries
    entered in error never count."""
    entered_in_error = {
        str(e.id)
        for e in ctx.state.medication_list.entries
        if e.status is EntryStatus.ENTERED_IN_ERROR
    }
    found: dict[str, Medication] = {}
    for earlier in ctx.state.dispenses:
        key = str(earlier.entry_id)
        if key in entered_in_error or not earlier.counts:
            continue
        if not on - LOOK_BACK <= earlier.dispensed_on <= on:
            continue
        known = found.get(key) or listed.get(key)
        if known is not None:
            start = min(earlier.dispensed_on, known.start or earlier.dispensed_on)
            found[key] = replace(known, start=start, stop=None)
            continue
        try:
            drug = ctx.catalogue.knowledge.resolve(fest_id=earlier.package.package_id)
        except UnknownReference:
            continue
        found[key] = Medication(id=key, drug=drug, start=earlier.dispensed_on)
    return list(found.values())


def _overrides_on_record(ctx: Context, patient_id: UUID, entry_id: UUID) -> list[dict[str, Any]]:
    return [
        {
            "key": row.key,
            "by": row.override_by["personnel"]["name"],
            "reason": row.override_reason,
            "raised_at": row.raised_at.isoformat(),
        }
        for row in ctx.state.alerts
        if row.override_reason is not None and str(entry_id) in row.record["medications"]
    ]
