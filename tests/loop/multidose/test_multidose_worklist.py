"""The multidose pharmacy's worklist: periods of its own patients with a near order deadline,
those whose list changed since the plan was taken first (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from interactions.dosage import TimeOfDay
from medloop.loop import multidose
from medloop.loop.change import change_dosage
from tests.loop.helpers import PHARMACIST, call, demo_world
from tests.loop.multidose.helpers import (
    DEADLINE,
    FIRST_DAY,
    OTHER_PHARMACIST,
    SIMVASTATIN,
    dosage,
    multidose_order,
    open_period,
    prescribe_all,
    with_responsibility,
)

SOON = DEADLINE - timedelta(hours=24)


def worklist(engine, pharmacy_id: str, at=SOON, hours: int = 48):
    with engine.connect() as conn:
        return multidose.pharmacy_worklist(conn, pharmacy_id, at, at + timedelta(hours=hours))


def test_a_period_due_soon_is_listed_with_the_entries_changed_since_its_plan(engine):
    patient_id = demo_world(engine)
    with_responsibility(engine, patient_id)
    order = multidose_order(SIMVASTATIN, dosage(TimeOfDay.EVENING))
    version = prescribe_all(engine, patient_id, [order])
    period_id = open_period(engine, patient_id)

    (item,) = worklist(engine, PHARMACIST.organisation.id)
    assert (item.period.id, item.patient.id) == (period_id, patient_id)
    assert item.plan_list_version is None and item.changed_entries == (order.entry_id,)

    multidose.take_production_plan(engine, patient_id, period_id, call(PHARMACIST, at=SOON))
    (item,) = worklist(engine, PHARMACIST.organisation.id)
    assert item.plan_list_version == version and not item.changed_since_plan

    change_dosage(
        engine, patient_id, order.entry_id, dosage(TimeOfDay.MORNING), call(at=SOON), based_on=1
    )
    (item,) = worklist(engine, PHARMACIST.organisation.id)
    assert item.changed_entries == (order.entry_id,)


def test_another_pharmacy_and_a_far_deadline_see_nothing(engine):
    patient_id = demo_world(engine)
    with_responsibility(engine, patient_id)
    prescribe_all(engine, patient_id, [multidose_order(SIMVASTATIN, dosage(TimeOfDay.EVENING))])
    open_period(engine, patient_id)

    assert worklist(engine, OTHER_PHARMACIST.organisation.id) == []
    assert worklist(engine, PHARMACIST.organisation.id, at=DEADLINE - timedelta(days=5)) == []


def test_a_passed_deadline_stays_on_the_list_until_the_period_begins(engine):
    patient_id = demo_world(engine)
    with_responsibility(engine, patient_id)
    prescribe_all(engine, patient_id, [multidose_order(SIMVASTATIN, dosage(TimeOfDay.EVENING))])
    period_id = open_period(engine, patient_id)

    overdue = DEADLINE + timedelta(days=2)  # FIRST_DAY is 30 Nov, five days after the deadline
    assert [i.period.id for i in worklist(engine, PHARMACIST.organisation.id, at=overdue)] == [
        period_id
    ]
    begun = datetime.combine(FIRST_DAY, time(9), UTC)
    assert worklist(engine, PHARMACIST.organisation.id, at=begun) == []
