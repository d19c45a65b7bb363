"""The multidose pharmacy's worklist: periods of its own patients with a near order deadline,
those whose list changed since the plan was taken first (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from uuid import UUID

import pytest
from sqlalchemy import select

from interactions.dosage import TimeOfDay
from medloop.loop import multidose
from medloop.loop.change import change_dosage
from medloop.store import multidose as store
from medloop.store.columns import StoredRecordUnreadable
from medloop.store.list_changes import entry_version
from tests.loop.helpers import PHARMACIST, another_patient, call, demo_world
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
from tests.store.helpers import intruded

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


def _two_patients_due(engine) -> tuple[UUID, UUID, UUID]:
    """Kari and Ola, both the demo pharmacy's multidose patients with a period due soon;
    returns (Kari's id, her period's id, Ola's id)."""
    kari = demo_world(engine)
    ola = another_patient(engine)
    periods = []
    for patient_id in (kari, ola):
        with_responsibility(engine, patient_id)
        order = multidose_order(SIMVASTATIN, dosage(TimeOfDay.EVENING))
        prescribe_all(engine, patient_id, [order])
        periods.append(open_period(engine, patient_id))
    return kari, periods[0], ola


def _spoiled(engine, table, row_id: str, **changes) -> None:
    with engine.connect() as conn:
        record = conn.execute(select(table.c.record).where(table.c.id == row_id)).scalar_one()
    intruded(engine, table, table.c.id == row_id, record={**record, **changes})


def test_a_patient_whose_period_does_not_load_is_listed_apart_naming_it(engine):
    """One patient's packing period no longer loads: the worklist asked for what cannot be read
    lists that patient apart, naming the record (the pharmacy is theirs by their
    responsibility); every other patient is listed as ever. Asked without, it fails named."""
    kari, period_id, ola = _two_patients_due(engine)
    _spoiled(engine, store.period, str(period_id), first_day="not a day")
    with pytest.raises(StoredRecordUnreadable):
        worklist(engine, PHARMACIST.organisation.id)
    unreadable: list[multidose.UnreadableOnWorklist] = []
    with engine.connect() as conn:
        items = multidose.pharmacy_worklist(
            conn, PHARMACIST.organisation.id, SOON, SOON + timedelta(hours=48), unreadable
        )
    assert [i.patient.id for i in items] == [ola]
    (apart,) = unreadable
    assert (apart.patient_id, apart.patient.given_name) == (kari, "Kari")
    assert (apart.error.table, apart.error.key) == ("multidose_period", {"id": str(period_id)})
    assert "first_day" in str(apart.error) and "not a day" not in str(apart.error)

    other: list[multidose.UnreadableOnWorklist] = []
    with engine.connect() as conn:
        multidose.pharmacy_worklist(
            conn, OTHER_PHARMACIST.organisation.id, SOON, SOON + timedelta(hours=48), other
        )
    assert other == [], "another pharmacy's patient is not named to it"


def test_a_patient_whose_list_does_not_load_is_listed_apart_naming_it(engine):
    """The period loads but the patient's list changes since the plan do not: listed apart by
    the period's pharmacy, the record named; the others as ever."""
    kari, _, ola = _two_patients_due(engine)
    with engine.connect() as conn:
        (version_row,) = conn.execute(
            select(entry_version).where(entry_version.c.patient_id == str(kari))
        ).all()
    table = entry_version
    where = (table.c.entry_id == version_row.entry_id) & (table.c.version == version_row.version)
    intruded(engine, table, where, record={**version_row.record, "entry": None})
    unreadable: list[multidose.UnreadableOnWorklist] = []
    with engine.connect() as conn:
        items = multidose.pharmacy_worklist(
            conn, PHARMACIST.organisation.id, SOON, SOON + timedelta(hours=48), unreadable
        )
    assert [i.patient.id for i in items] == [ola]
    assert [(u.patient_id, u.error.table) for u in unreadable] == [(kari, "entry_version")]
