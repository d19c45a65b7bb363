"""Admissions: a patient's stay on a ward (``admit`` plans the next 48 h at once) and its end."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import Connection, Engine

from interactions.values import Moment
from medloop.domain._model import Frozen
from medloop.domain.administration import GsrnInUse
from medloop.domain.personnel import Actor
from medloop.domain.ward import (
    Admission,
    AdmissionNotFound,
    AdmissionReason,
    DecisionReference,
    PatientNotAdmitted,
    check_admission,
    check_discharge,
)
from medloop.loop.administration.planning import HORIZON, plan_doses
from medloop.loop.administration.wards import own_ward
from medloop.loop.runner import Call, CommandResult, Context, Effect, run_command
from medloop.store import administration as store


class AdmissionOrder(Frozen):
    """An admission: the ward (of the caller's organisation), when it began, why, and the
    municipal decision (``vedtak``) it rests on."""

    admission_id: UUID
    ward_id: UUID
    admitted_at: Moment
    reason: AdmissionReason
    decision_reference: DecisionReference


def admit(
    engine: Engine,
    patient_id: UUID,
    order: AdmissionOrder,
    call: Call,
    *,
    horizon: timedelta = HORIZON,
) -> CommandResult:
    """Admit the patient to a ward of the caller's organisation and plan the next ``horizon``
    of doses; refused while the patient is admitted anywhere, before an earlier stay ended, or
    at a time too far from the call (``medloop.domain.ward.check_admission``). The admission's
    reason is the command's reason (the audit record and the patient's access log show it, with
    the decision reference)."""
    call = call.model_copy(update={"reason": order.reason})

    def decide(ctx: Context) -> Effect:
        ward = own_ward(ctx.conn, order.ward_id, call.actor)
        record = Admission(
            id=order.admission_id,
            patient_id=patient_id,
            ward_id=order.ward_id,
            organisation_id=ward.ward.organisation_id,
            admitted_at=order.admitted_at,
            reason=order.reason,
            decision_reference=order.decision_reference,
        )
        check_admission(record, store.admissions_of(ctx.conn, patient_id), call.at)
        plan = plan_doses(
            ctx.conn, ctx.state, record, ward, max(call.at, order.admitted_at), horizon
        )
        return Effect(
            writes=(lambda conn: store.add_admission(conn, record), plan.write),
            response={
                "admission_id": str(record.id),
                "ward_id": str(record.ward_id),
                "admitted_at": record.admitted_at.isoformat(),
                "decision_reference": record.decision_reference,
                "planned": len(plan.doses),
            },
        )

    return run_command(
        engine,
        "admit",
        patient_id,
        call,
        decide,
        based_on=None,
        request=order.model_dump(mode="json"),
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
        own_ward(ctx.conn, found.ward_id, call.actor)
        check_discharge(found, at, call.at)
        return Effect(
            writes=(
                lambda conn: store.add_discharge(conn, patient_id, admission_id, at, call.actor),
            ),
            response={"admission_id": str(admission_id), "discharged_at": at.isoformat()},
        )

    return run_command(
        engine,
        "discharge",
        patient_id,
        call,
        decide,
        based_on=None,
        request={"admission_id": str(admission_id), "at": at.isoformat()},
    )


def register_wristband(engine: Engine, patient_id: UUID, code: str, call: Call) -> CommandResult:
    """Register the GS1 GSRN on the resident's wristband for their current stay in the caller's
    organisation (``code``: the bare 18 digits or the AI 8018 element string, check digit
    checked); the bedside scan then matches it. A new wristband is a new registration (the
    latest counts); a GSRN registered for another stay is refused (``GsrnInUse``)."""
    from medloop.loop.scanning import gsrn_of

    gsrn = gsrn_of(code)

    def decide(ctx: Context) -> Effect:
        found = admission_of(ctx.conn, patient_id, call.actor, call.at)
        holder = store.gsrn_admission(ctx.conn, gsrn)
        if holder is not None and holder != found.id:
            raise GsrnInUse("the GSRN is registered for another stay", gsrn=gsrn)
        current = store.wristband_gsrn(ctx.conn, patient_id, found.id)
        writes = (
            ()
            if current == gsrn
            else (
                lambda conn: store.add_wristband(
                    conn, patient_id, found.id, gsrn, call.at, call.actor
                ),
            )
        )
        return Effect(
            writes=writes,
            response={"admission_id": str(found.id), "gsrn": gsrn},
        )

    return run_command(
        engine,
        "register-wristband",
        patient_id,
        call,
        decide,
        based_on=None,
        request={"gsrn": gsrn},
    )


def wristband_gsrn(conn: Connection, patient_id: UUID, actor: Actor, at: datetime) -> str | None:
    """The GSRN registered for the resident's current stay in ``actor``'s organisation."""
    return store.wristband_gsrn(conn, patient_id, admission_of(conn, patient_id, actor, at).id)


def is_admitted(conn: Connection, patient_id: UUID, organisation_id: str, at: datetime) -> bool:
    """Whether the patient is admitted to a ward of ``organisation_id`` at ``at`` (nurses see
    and chart only such patients)."""
    return store.is_admitted(conn, patient_id, organisation_id, at)


def admission_of(conn: Connection, patient_id: UUID, actor: Actor, at: datetime) -> Admission:
    for admission in store.admissions_of(conn, patient_id):
        if admission.organisation_id == actor.organisation.id and admission.covers(at):
            return admission
    raise PatientNotAdmitted(
        f"patient {patient_id} is not admitted to a ward of organisation "
        f"{actor.organisation.id} at {at.isoformat()}",
        patient_id=patient_id,
        organisation_id=actor.organisation.id,
    )
