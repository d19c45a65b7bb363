"""Bad input gets the precise domain error, leaves the state as it was, and is audited."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from medloop import queries
from medloop.domain.medication_list import EntryNotFound
from medloop.domain.patient import NationalId, Patient
from medloop.domain.prescription import PrescriptionExpired
from medloop.loop.catalogue import DrugOrder
from medloop.loop.change import hold
from medloop.loop.dispense import dispense
from medloop.loop.errors import UnknownDrug
from medloop.loop.patients import register_patient
from medloop.loop.prescribe import prescribe
from medloop.loop.runner import PatientNotFound, PrescriptionNotFound
from medloop.store import alerts, audit, list_changes, prescriptions
from medloop.store.patient_state import load_patient_state
from medloop.store.patients import read_patient
from tests.loop.helpers import (
    NOW,
    PHARMACIST,
    SIMVASTATIN_28,
    TODAY,
    call,
    demo_world,
    dispense_order,
    prescription_order,
)


def _counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (
                list_changes.list_change,
                list_changes.entry_version,
                prescriptions.prescription_version,
                prescriptions.dispense,
                alerts.alert,
            )
        }


def test_unknown_drug_is_refused_by_its_reference_and_changes_nothing(engine):
    patient_id = demo_world(engine)
    order = prescription_order(SIMVASTATIN_28).model_copy(
        update={"drug": DrugOrder(varenr="999999")}
    )
    with pytest.raises(UnknownDrug) as refused:
        prescribe(engine, patient_id, order, call(), based_on=0)
    assert refused.value.context == {"fest_id": None, "varenr": "999999", "catalogue_version": 1}
    assert set(_counts(engine).values()) == {0}


def test_dispensing_after_expiry_is_refused_and_the_prescription_is_untouched(engine):
    patient_id = demo_world(engine)
    order = prescription_order(SIMVASTATIN_28, expires=TODAY + timedelta(days=1))
    done = prescribe(engine, patient_id, order, call(), based_on=0)
    before = _counts(engine)
    late = dispense_order(
        done.response["prescription_id"], SIMVASTATIN_28, on=TODAY + timedelta(days=2)
    )
    with pytest.raises(PrescriptionExpired):
        dispense(engine, patient_id, late, call(PHARMACIST))
    assert _counts(engine) == before


def test_a_prescription_of_another_patient_is_not_found(engine):
    patient_id = demo_world(engine)
    done = prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    other = Patient(
        id=uuid.uuid4(),
        national_id=NationalId("01019000083"),
        given_name="Ola",
        family_name="Nordmann",
        birth_date=date(1990, 1, 1),
    )
    register_patient(engine, other, call())
    before = _counts(engine)
    with pytest.raises(PrescriptionNotFound) as refused:
        dispense(
            engine,
            other.id,
            dispense_order(done.response["prescription_id"], SIMVASTATIN_28),
            call(PHARMACIST),
        )
    assert refused.value.context["prescription_id"] == done.response["prescription_id"]
    assert _counts(engine) == before


def test_unknown_patient_and_unknown_entry_are_refused(engine):
    patient_id = demo_world(engine)
    with pytest.raises(PatientNotFound):
        hold(engine, uuid.uuid4(), uuid.uuid4(), call(), based_on=0)
    with pytest.raises(EntryNotFound):
        hold(engine, patient_id, uuid.uuid4(), call(), based_on=0)
    with engine.connect() as conn:
        log = audit.verify(conn)
        refused = [
            row.outcome
            for row in conn.execute(select(audit.audit_event)).all()
            if row.action == "medication-list.hold"
        ]
    assert log.ok and refused == ["refused", "refused"]


def test_the_database_refuses_a_second_change_with_the_same_list_version(engine):
    patient_id = demo_world(engine)
    prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    with engine.connect() as conn:
        (change,) = load_patient_state(conn, read_patient(conn, patient_id)).changes
    with pytest.raises(IntegrityError):
        with engine.execution_options(write=True).begin() as conn:
            list_changes.append_list_change(conn, change)
    with engine.connect() as conn:
        assert queries.current_list(conn, patient_id, NOW).list_version == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE list_change SET reason = 'rewritten'",
        "DELETE FROM entry_version",
        "UPDATE prescription_version SET to_status = 'E'",
    ],
)
def test_the_history_of_a_list_cannot_be_rewritten_with_sql(engine, statement):
    patient_id = demo_world(engine)
    prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.execution_options(write=True).begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert queries.current_list(conn, patient_id, NOW).list_version == 1
