"""Registering a patient: the row every later command of the loop locks and hangs off."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from medloop.domain.errors import PatientAlreadyRegistered
from medloop.domain.patient import Patient
from medloop.loop.runner import Call
from medloop.store import audit
from medloop.store import medication_list as store
from medloop.store.db import writer


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
    with writer(engine).begin() as conn:
        if store.find_patient_id(conn, str(patient.national_id)) is not None:
            raise PatientAlreadyRegistered(
                "a patient with this national id is already registered", patient_id=patient.id
            )
        store.add_patient(conn, patient, call.at)
        audit.append(
            conn,
            audit.AuditEvent(
                actor=call.actor.personnel.hpr_number,
                actor_role=call.actor.personnel.role.value,
                organisation=call.actor.organisation.id,
                patient=str(patient.national_id),
                action="medication-list.register-patient",
                request_id=call.request_id,
                reason=call.reason,
                detail={"patient_id": str(patient.id)},
            ),
        )
