"""Registering a patient: the row every later command of the loop locks and hangs off; and
recording the patient's measurements (weight, kidney function) that dose checks use."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from medloop.domain.patient import Observation, Patient, PatientAlreadyRegistered
from medloop.loop.runner import (
    Call,
    CommandResult,
    Context,
    Done,
    Effect,
    WorkContext,
    run_command,
    run_work,
)
from medloop.store.patient_state import registered_state
from medloop.store.patients import FIRST_REVISION, add_patient, find_patient_id
from medloop.store.state_cache import cache_for


def register_patient(engine: Engine, patient: Patient, call: Call) -> None:
    """Store ``patient`` with an empty list (version 0); refuses a second patient with the same
    national id (also when two registrations race: the unique key decides)."""
    try:
        _register(engine, patient, call)
    except IntegrityError as error:
        raise PatientAlreadyRegistered(
            "a patient with this national id (or this id) is already registered",
            patient_id=patient.id,
        ) from error


def _register(engine: Engine, patient: Patient, call: Call) -> None:
    def work(ctx: WorkContext) -> Done:
        if find_patient_id(ctx.conn, str(patient.national_id)) is not None:
            raise PatientAlreadyRegistered(
                "a patient with this national id is already registered", patient_id=patient.id
            )
        add_patient(ctx.conn, patient, call.at)
        return Done(response={"patient_id": str(patient.id)}, patient=str(patient.national_id))

    run_work(
        engine,
        "medication-list.register-patient",
        work,
        call=call,
        request={"patient_id": str(patient.id)},
    )
    if call.idempotency_key is None:  # not the replay of an earlier registration
        # What the first command on the new patient would read back (the record as stored, an
        # empty list, nothing else), cached for the first revision: a list received for a
        # patient just registered is the common first command. (Another process knows it from
        # the revision: ``store.patient_state.patient_state_at``.)
        stored = Patient.model_validate(patient.model_dump(mode="json"))
        cache_for(engine).put(patient.id, FIRST_REVISION, registered_state(stored))


def record_observation(
    engine: Engine, patient_id: UUID, observation: Observation, call: Call
) -> CommandResult:
    """Record new measurements of the patient (weight, kidney function with the time each was
    measured, hepatic risk factors) through the command layer: one transaction, the patient
    locked, audited like every command. Dose checks from then on judge the new values. The
    list is not changed, so no list version is needed."""

    def decide(ctx: Context) -> Effect:
        changed = ctx.state.patient.with_observation(observation, ctx.call.at)
        return Effect(patient=changed, response={"patient": facts_of(changed)})

    return run_command(
        engine,
        RECORD_OBSERVATION,
        patient_id,
        call,
        decide,
        based_on=None,
        request=observation.model_dump(mode="json"),
    )


RECORD_OBSERVATION = "record-observation"


def facts_of(patient: Patient) -> dict[str, Any]:
    """The patient's recorded facts dose checks use, as JSON."""
    dumped = patient.model_dump(mode="json")
    return {
        "birth_date": dumped["birth_date"],
        "weight": dumped.get("weight"),
        "renal_function": dumped.get("renal_function"),
        "hepatic_risk": dumped.get("hepatic_risk"),
    }
