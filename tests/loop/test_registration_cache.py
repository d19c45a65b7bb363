"""A registration caches the new patient's state for the first revision, so the first command on
the patient does not read back an empty history; the cached state is exactly the one a fresh read
gives. A registration that may be the replay of an earlier one (it carries an idempotency key)
caches nothing. SQLite and PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

import uuid

from medloop.domain.patient import NationalId, Patient
from medloop.loop.patients import FIRST_REVISION, register_patient
from medloop.store.patient_state import load_patient_state
from medloop.store.patients import lock_patient_revision
from medloop.store.state_cache import cache_for
from tests.loop.helpers import call


def _patient(national_id: str) -> Patient:
    nid = NationalId(national_id)
    return Patient(
        id=uuid.uuid4(),
        national_id=nid,
        given_name="Kari",
        family_name="Nordmann",
        birth_date=nid.birth_date,
    )


def test_a_registration_caches_the_state_a_fresh_read_of_the_new_patient_gives(engine):
    patient = _patient("21014605158")
    register_patient(engine, patient, call())
    cached = cache_for(engine).get(patient.id, FIRST_REVISION)
    assert cached is not None
    with engine.connect() as conn:
        record, revision = lock_patient_revision(conn, patient.id)
        fresh = load_patient_state(conn, Patient.model_validate(record))
    assert revision == FIRST_REVISION
    assert cached == fresh
    assert cached.medication_list.version == 0 and not cached.medication_list.entries


def test_a_registration_with_an_idempotency_key_caches_nothing(engine):
    patient = _patient("01019000083")
    register_patient(engine, patient, call(idempotency_key="register-once"))
    assert cache_for(engine).get(patient.id, FIRST_REVISION) is None
