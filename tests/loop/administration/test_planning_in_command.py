"""A command that changes an admitted resident's list plans the doses in its own transaction
(issue #15): the ward chart shows a new, held or discontinued entry at once, not when the
roll-forward job next runs; a refused or failed command leaves the plan as it was; a patient
never admitted pays no planning query."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from interactions.dosage import TimeOfDay
from medloop.domain.codes import DiscontinuationReason
from medloop.domain.entry import Discontinuation
from medloop.loop import administration as nursing
from medloop.loop import runner
from medloop.loop.change import discontinue, hold
from medloop.loop.errors import OverrideRequired
from medloop.store import administration
from tests.loop.administration.helpers import (
    ADMITTED,
    NURSE,
    SIMVASTATIN,
    admission_order,
    daily,
    nursing_home,
    prescribe_with,
    reads_of,
    statements,
    version_of,
    ward_chart,
)
from tests.loop.helpers import GP, KLARITROMYCIN, call, demo_world

DAY = datetime(2026, 11, 20).date()
CHANGED = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)  # 12:00 in Oslo


def chart(engine, ward_id, day=DAY, now=CHANGED):
    (patient,) = ward_chart(engine, ward_id, day, now).patients
    return patient.doses


def entry_times(engine, ward_id, entry_id, day=DAY) -> list[str]:
    return [
        line.local_time.strftime("%H:%M")
        for line in chart(engine, ward_id, day)
        if line.entry_id == entry_id
    ]


def stored_doses(engine, patient_id, entry_id=None) -> list:
    with engine.connect() as conn:
        doses = administration.planned_doses(
            conn,
            patient_ids=[patient_id],
            ward_id=None,
            start=ADMITTED - timedelta(days=1),
            end=ADMITTED + timedelta(days=7),
        )
    return [d for d in doses if entry_id is None or d.entry_id == entry_id]


PLANNING_TABLES = ("admission", "ward_config", "schedule", "planned_dose")


def planning_statements(seen: list[str]) -> list[str]:
    """Statements that read or write a planning table (the patient's lock, which asks in one
    subquery whether the patient was ever admitted, is the UPDATE of ``patient``)."""
    return [
        s
        for s in seen
        if not s.upper().startswith("UPDATE PATIENT")
        and any(re.search(rf"\b{t}\b", s) for t in PLANNING_TABLES)
    ]


def test_a_prescription_for_an_admitted_resident_is_on_the_chart_without_the_job(engine):
    patient_id, ward_id = nursing_home(engine)
    entry_id = prescribe_with(
        engine, patient_id, SIMVASTATIN, daily(TimeOfDay.MORNING, TimeOfDay.EVENING)
    )
    # No roll_forward ran: the prescription planned the next 48 h itself.
    assert entry_times(engine, ward_id, entry_id) == ["08:00", "18:00"]
    due = [d.due_at for d in stored_doses(engine, patient_id, entry_id)]
    assert min(due) >= ADMITTED and max(due) < ADMITTED + nursing.HORIZON
    assert len(due) == 4  # two a day over 48 h
    assert nursing.roll_forward(engine, ADMITTED)["planned"] == 0


def test_holding_an_entry_takes_its_later_doses_off_the_chart_at_once(engine):
    patient_id, ward_id = nursing_home(engine)
    entry_id = prescribe_with(
        engine, patient_id, SIMVASTATIN, daily(TimeOfDay.MORNING, TimeOfDay.EVENING)
    )
    assert entry_times(engine, ward_id, entry_id) == ["08:00", "18:00"]
    hold(
        engine, patient_id, entry_id, call(GP, at=CHANGED), based_on=version_of(engine, patient_id)
    )
    # 08:00 was due before the hold and stays; 18:00 is after it and is gone.
    assert entry_times(engine, ward_id, entry_id) == ["08:00"]
    assert entry_times(engine, ward_id, entry_id, DAY + timedelta(days=1)) == []


def test_discontinuing_an_entry_takes_its_later_doses_off_the_chart_at_once(engine):
    patient_id, ward_id = nursing_home(engine)
    entry_id = prescribe_with(
        engine, patient_id, SIMVASTATIN, daily(TimeOfDay.MORNING, TimeOfDay.EVENING)
    )
    discontinue(
        engine,
        patient_id,
        entry_id,
        Discontinuation(at=CHANGED, reason=DiscontinuationReason.TREATMENT_ENDED),
        call(GP, at=CHANGED),
        based_on=version_of(engine, patient_id),
    )
    assert entry_times(engine, ward_id, entry_id) == ["08:00"]
    assert entry_times(engine, ward_id, entry_id, DAY + timedelta(days=1)) == []


def test_a_prescription_refused_for_want_of_an_override_plans_nothing(engine):
    patient_id, ward_id = nursing_home(engine)
    prescribe_with(engine, patient_id, SIMVASTATIN, daily(TimeOfDay.EVENING))
    before = stored_doses(engine, patient_id)
    with pytest.raises(OverrideRequired):
        prescribe_with(engine, patient_id, KLARITROMYCIN, daily(TimeOfDay.MORNING))
    assert stored_doses(engine, patient_id) == before


def test_a_command_that_fails_after_planning_rolls_the_plan_back_with_the_list(engine, monkeypatch):
    patient_id, ward_id = nursing_home(engine)
    version = version_of(engine, patient_id)
    planned: list[int] = []
    real = runner._with_plan

    def plan_then_fail(conn, after, at, changed):
        real(conn, after, at, changed)  # entry versions of the change
        planned.append(len(stored_in(conn, patient_id)))
        raise RuntimeError("the audit store went away")

    monkeypatch.setattr(runner, "_with_plan", plan_then_fail)
    with pytest.raises(RuntimeError):
        prescribe_with(engine, patient_id, SIMVASTATIN, daily(TimeOfDay.EVENING))
    assert planned == [2]  # planned inside the command's transaction …
    assert stored_doses(engine, patient_id) == []  # … and rolled back with it
    assert version_of(engine, patient_id) == version


def stored_in(conn, patient_id) -> list:
    return administration.planned_doses(
        conn,
        patient_ids=[patient_id],
        ward_id=None,
        start=ADMITTED - timedelta(days=1),
        end=ADMITTED + timedelta(days=7),
    )


def test_a_discharged_resident_gets_no_plan_from_a_later_prescription(engine):
    patient_id, ward_id = nursing_home(engine)
    with engine.connect() as conn:
        (stay,) = administration.admissions_of(conn, patient_id)
    nursing.discharge(engine, patient_id, stay.id, ADMITTED + timedelta(hours=1), call(NURSE))
    prescribe_with(
        engine, patient_id, SIMVASTATIN, daily(TimeOfDay.EVENING), at=ADMITTED + timedelta(hours=2)
    )
    assert stored_doses(engine, patient_id) == []


def test_a_patient_never_admitted_pays_no_planning_query(engine):
    patient_id = demo_world(engine)
    with statements(engine) as seen:
        prescribe_with(engine, patient_id, SIMVASTATIN, daily(TimeOfDay.EVENING))
    # (On PostgreSQL the lock and the appends go out through the batch pipeline, unseen here;
    # the test below shows that the reads of planning are seen on both databases.)
    assert any("list_change" in s for s in seen), seen
    assert planning_statements(seen) == []


def test_an_admitted_patient_is_known_from_the_lock_and_planned(engine):
    patient_id, _ = nursing_home(engine)
    with statements(engine) as seen:
        prescribe_with(engine, patient_id, SIMVASTATIN, daily(TimeOfDay.EVENING))
    assert planning_statements(seen)  # the counter above sees planning when there is some
    assert stored_doses(engine, patient_id)


def test_a_patient_admitted_elsewhere_in_time_is_not_planned_before_the_stay(engine):
    patient_id = demo_world(engine)
    ward_id = uuid.uuid4()
    later = ADMITTED + timedelta(days=3)
    nursing.create_ward(engine, nursing.WardOrder(ward_id=ward_id, name="A"), call(NURSE))
    nursing.admit(engine, patient_id, admission_order(ward_id, later), call(NURSE, at=later))
    prescribe_with(engine, patient_id, SIMVASTATIN, daily(TimeOfDay.EVENING))
    # The stay begins after the 48 h horizon of the prescription: nothing planned now.
    assert [d for d in stored_doses(engine, patient_id) if d.due_at < later] == []


def test_a_new_entry_is_planned_without_reading_schedules_or_planned_doses(engine):
    patient_id, ward_id = nursing_home(engine)
    with statements(engine) as seen:
        entry_id = prescribe_with(engine, patient_id, SIMVASTATIN, daily(TimeOfDay.EVENING))
    # Nothing of a new entry can be planned or charted yet: only the stay is read.
    assert reads_of(seen, "schedule") == 0 and reads_of(seen, "planned_dose") == 0, seen
    assert entry_times(engine, ward_id, entry_id) == ["18:00"]
    with statements(engine) as seen:
        hold(
            engine,
            patient_id,
            entry_id,
            call(GP, at=CHANGED),
            based_on=version_of(engine, patient_id),
        )
    # A changed entry's plan is read and superseded.
    assert reads_of(seen, "schedule") == 1 and reads_of(seen, "planned_dose") == 1, seen
    assert entry_times(engine, ward_id, entry_id) == []
