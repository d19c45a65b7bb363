"""A command's "today" is the Oslo calendar day of its moment, not the UTC date: from Oslo's
midnight to UTC's (23:00-24:00 UTC in winter) they differ, and a prescription issued then is
issued on the Oslo day, and one that expired the Oslo day before can no longer be taken for
dispensing."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from medloop import queries
from medloop.domain.prescription import PrescriptionExpired
from medloop.loop.dispense import lock_for_dispensing
from medloop.loop.prescribe import prescribe
from tests.loop.helpers import (
    PHARMACIST,
    SIMVASTATIN_28,
    call,
    demo_world,
    prescription_order,
)

# Sunday 6 December 2026: 23:30 UTC is 00:30 on Monday the 7th in Oslo (UTC+1); 22:30 UTC is
# still Sunday there.
AFTER_OSLO_MIDNIGHT = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
BEFORE_OSLO_MIDNIGHT = datetime(2026, 12, 6, 22, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "issued"),
    [(AFTER_OSLO_MIDNIGHT, date(2026, 12, 7)), (BEFORE_OSLO_MIDNIGHT, date(2026, 12, 6))],
)
def test_a_prescription_is_issued_on_the_oslo_day_of_its_moment(engine, at, issued):
    patient_id = demo_world(engine)
    done = prescribe(
        engine, patient_id, prescription_order(SIMVASTATIN_28), call(at=at), based_on=0
    )
    prescription_id = uuid.UUID(done.response["prescription_id"])
    with engine.connect() as conn:
        state = queries.patient_state(conn, patient_id)
    assert state.prescriptions[prescription_id].issued == issued


def test_a_prescription_expired_on_the_oslo_day_before_is_not_taken_after_oslos_midnight(engine):
    patient_id = demo_world(engine)
    done = prescribe(
        engine,
        patient_id,
        prescription_order(SIMVASTATIN_28, expires=date(2026, 12, 6)),
        call(),
        based_on=0,
    )
    prescription_id = uuid.UUID(done.response["prescription_id"])
    with pytest.raises(PrescriptionExpired):
        lock_for_dispensing(
            engine, patient_id, prescription_id, call(PHARMACIST, at=AFTER_OSLO_MIDNIGHT)
        )
    # Half an hour earlier it is still the last day of its validity in Oslo.
    locked = lock_for_dispensing(
        engine, patient_id, prescription_id, call(PHARMACIST, at=BEFORE_OSLO_MIDNIGHT)
    )
    assert not locked.replayed


@pytest.mark.parametrize(
    ("at", "day"),
    [
        (AFTER_OSLO_MIDNIGHT, date(2026, 12, 7)),
        (BEFORE_OSLO_MIDNIGHT, date(2026, 12, 6)),
        # summer time (UTC+2): 22:30 UTC on 30 June is already 1 July in Oslo
        (datetime(2026, 6, 30, 22, 30, tzinfo=UTC), date(2026, 7, 1)),
        (datetime(2026, 6, 30, 21, 30, tzinfo=UTC), date(2026, 6, 30)),
    ],
)
def test_a_calls_day_is_the_oslo_day_of_its_moment(at, day):
    assert call(at=at).day == day
