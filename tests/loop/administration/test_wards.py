"""Ward set-up and admissions are audited commands: ward configuration versions, organisation
scope, one admission at a time, idempotent retries, and a moved slot time replanning."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from interactions.dosage import TimeOfDay
from medloop.domain.ward import (
    InvalidWardConfig,
    PatientAlreadyAdmitted,
    WardConfig,
    WardIdAlreadyUsed,
    WardOfAnotherOrganisation,
)
from medloop.loop import administration as nursing
from medloop.store import administration
from medloop.store.audit import audit_event
from medloop.store.columns import StoredRecordUnreadable
from medloop.store.idempotency import idempotency_key
from tests.loop.administration.helpers import (
    ADMITTED,
    NURSE,
    OTHER_NURSE,
    SIMVASTATIN,
    admission_order,
    daily,
    nursing_home,
    prescribe_with,
)
from tests.loop.helpers import call
from tests.store.helpers import intruded


def test_a_ward_is_created_once_and_audited_and_a_retry_replays(engine):
    order = nursing.WardOrder(ward_id=uuid.uuid4(), name="Avdeling 1")
    first = nursing.create_ward(engine, order, call(NURSE, idempotency_key="ward-1"))
    again = nursing.create_ward(engine, order, call(NURSE, idempotency_key="ward-1"))
    assert (
        first
        == again
        == {
            "ward_id": str(order.ward_id),
            "organisation_id": "8012345",
            "name": "Avdeling 1",
            "config_version": 1,
        }
    )
    with pytest.raises(WardIdAlreadyUsed):
        nursing.create_ward(engine, order, call(NURSE))
    with engine.connect() as conn:
        outcomes = [
            r.outcome
            for r in conn.execute(select(audit_event).where(audit_event.c.action == "ward.create"))
        ]
    assert outcomes == ["ok", "ok", "refused"]


def test_a_retry_whose_stored_answer_no_longer_loads_names_the_key(engine):
    """A ward command's retry is answered from the response stored with its idempotency key,
    loaded again as the command's answer: one that no longer loads (a mistyped field, a field
    too many, not an object at all) is named by the key's row, never handed on as stored."""
    order = nursing.WardOrder(ward_id=uuid.uuid4(), name="Avdeling 1")
    first = nursing.create_ward(engine, order, call(NURSE, idempotency_key="ward-1"))
    with engine.connect() as conn:
        claimed = conn.execute(select(idempotency_key)).one()
    where = idempotency_key.c.key == "ward-1"
    for broken, named in [
        ({**first, "config_version": "1"}, "config_version"),
        ({**first, "note": "kept by hand"}, "note"),
        ([first], "not a JSON object"),
    ]:
        intruded(engine, idempotency_key, where, response=broken)
        with pytest.raises(StoredRecordUnreadable) as error:
            nursing.create_ward(engine, order, call(NURSE, idempotency_key="ward-1"))
        assert error.value.table == "idempotency_key"
        assert error.value.key == {"scope": claimed.scope, "key": "ward-1"}
        assert named in error.value.reason and "kept by hand" not in error.value.reason
    intruded(engine, idempotency_key, where, response=first)
    assert nursing.create_ward(engine, order, call(NURSE, idempotency_key="ward-1")) == first
    configured = nursing.configure_ward(
        engine, order.ward_id, WardConfig(), call(NURSE, idempotency_key="config-1")
    )
    intruded(
        engine,
        idempotency_key,
        idempotency_key.c.key == "config-1",
        response={**configured, "ward_id": "ward one"},
    )
    with pytest.raises(StoredRecordUnreadable, match="ward_id"):
        nursing.configure_ward(
            engine, order.ward_id, WardConfig(), call(NURSE, idempotency_key="config-1")
        )
    with engine.connect() as conn:  # a retry that failed was not audited: it rolled back
        audited = conn.execute(
            select(audit_event.c.action)
            .where(audit_event.c.action.like("ward.%"))
            .order_by(audit_event.c.seq)
        ).all()
    assert [a.action for a in audited] == ["ward.create", "ward.create", "ward.configure"]


def test_only_the_wards_own_organisation_configures_it(engine):
    ward_id = uuid.uuid4()
    nursing.create_ward(engine, nursing.WardOrder(ward_id=ward_id, name="A"), call(NURSE))
    with pytest.raises(WardOfAnotherOrganisation):
        nursing.configure_ward(engine, ward_id, WardConfig(), call(OTHER_NURSE))
    assert nursing.configure_ward(engine, ward_id, WardConfig(), call(NURSE)) == {
        "ward_id": str(ward_id),
        "config_version": 2,
    }


def test_windows_must_be_ordered():
    with pytest.raises(ValidationError, match="late_after < missed_after") as refused:
        WardConfig(late_after=timedelta(hours=2), missed_after=timedelta(hours=1))
    assert isinstance(refused.value.errors()[0]["ctx"]["error"], InvalidWardConfig)


def test_a_patient_is_admitted_to_one_ward_at_a_time(engine):
    patient_id, ward_id = nursing_home(engine)
    with pytest.raises(PatientAlreadyAdmitted):
        nursing.admit(
            engine,
            patient_id,
            admission_order(
                ward_id,
                ADMITTED + timedelta(hours=1),
            ),
            call(NURSE, at=ADMITTED + timedelta(hours=1)),
        )


def test_moving_a_slot_time_replans_the_future_doses(engine):
    patient_id, ward_id = nursing_home(engine)
    prescribe_with(engine, patient_id, SIMVASTATIN, daily(TimeOfDay.EVENING))
    nursing.roll_forward(engine, ADMITTED + timedelta(minutes=30))
    moved = WardConfig(slot_times={**WardConfig().slot_times, TimeOfDay.EVENING: time(19, 0)})
    at = ADMITTED + timedelta(hours=1)
    nursing.configure_ward(engine, ward_id, moved, call(NURSE, at=at))
    nursing.roll_forward(engine, at)
    with engine.connect() as conn:
        chart = nursing.ward_chart(conn, ward_id, datetime(2026, 11, 20).date(), at)
        assert administration.read_ward(conn, ward_id).config_version == 2
    assert [line.local_time.time() for line in chart.patients[0].doses] == [time(19, 0)]
