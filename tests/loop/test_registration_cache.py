"""A registration caches the new patient's state for the first revision, so the first command on
the patient does not read back an empty history; the cached state is exactly the one a fresh read
gives. A registration that may be the replay of an earlier one (it carries an idempotency key)
caches nothing. SQLite and PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

import uuid

from fest.loader import import_catalogue
from medloop.domain.patient import NationalId, Patient
from medloop.loop.patients import FIRST_REVISION, register_patient
from medloop.store.patient_state import load_patient_state
from medloop.store.patients import lock_patient_revision
from medloop.store.state_cache import cache_for
from tests.loop.helpers import call
from tests.reference import DEMO


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


def test_the_first_command_on_a_patient_registered_elsewhere_reads_no_state(engine, monkeypatch):
    """Another process registered the patient (nothing cached here): at the first revision its
    state is known without reading the tables; at the next one it is read."""
    from medloop.loop.prescribe import prescribe
    from medloop.store import patient_state, state_cache
    from tests.loop.helpers import SIMVASTATIN_28, SIMVASTATIN_98, prescription_order

    monkeypatch.setattr(state_cache, "VERIFY", False)  # its check reads the state
    loads = []
    load = patient_state.load_patient_state
    monkeypatch.setattr(
        patient_state,
        "load_patient_state",
        lambda conn, found: loads.append(found.id) or load(conn, found),
    )
    import_catalogue(engine, DEMO)
    patient = _patient("21014605158")
    register_patient(engine, patient, call())
    cache_for(engine).clear()
    first = prescribe(engine, patient.id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    assert first.list_version == 1
    assert loads == []
    cache_for(engine).clear()
    second = prescribe(engine, patient.id, prescription_order(SIMVASTATIN_98), call(), based_on=1)
    assert second.list_version == 2
    assert loads == [patient.id]


def test_the_state_known_at_the_first_revision_is_the_one_a_fresh_read_gives(engine):
    """With the cache checked against the tables (the tests' setting), a first command on a
    patient registered elsewhere, with and without an idempotency key, and the state it leaves
    cached, are the stored ones."""
    from medloop.loop.prescribe import prescribe
    from medloop.store import state_cache
    from tests.loop.helpers import SIMVASTATIN_28, prescription_order

    assert state_cache.VERIFY
    import_catalogue(engine, DEMO)
    for national_id, key in (("21014605158", None), ("01019000083", "first-command")):
        patient = _patient(national_id)
        register_patient(engine, patient, call(idempotency_key=key and f"register-{key}"))
        cache_for(engine).clear()
        order = prescription_order(SIMVASTATIN_28)
        prescribe(engine, patient.id, order, call(idempotency_key=key), based_on=0)
        cached = cache_for(engine).get(patient.id, 1)
        with engine.connect() as conn:
            record, revision = lock_patient_revision(conn, patient.id)
            fresh = load_patient_state(conn, Patient.model_validate(record))
        assert revision == 1
        assert cached == fresh
        assert [e.id for e in cached.medication_list.entries] == [order.entry_id]
