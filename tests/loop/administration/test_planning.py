"""Planning through the database: versioned schedules (a dosage changed mid-day regenerates the
future only; what was charted stays charted and never becomes missed), the DST nights stored
as intended local time plus UTC instant, and marking missed doses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import pytest

from interactions.dosage import Quantity, TimeOfDay
from medloop.domain.administration import (
    ChartRequest,
    DoseStatus,
    EntryNotAdministrable,
    Outcome,
    PlannedDoseSuperseded,
    ScanSkipReason,
)
from medloop.domain.prescription import PrescribedQuantity
from medloop.loop import administration as nursing
from medloop.loop.change import hold
from medloop.loop.prescribe import PrescriptionTerms, RenewOrder, renew
from medloop.queries import prescriptions
from medloop.store import administration
from medloop.store.list_changes import list_version
from tests.loop.administration.helpers import (
    ADMITTED,
    NURSE,
    OKSYKODON,
    SECOND_NURSE,
    SIMVASTATIN,
    as_needed,
    at_clock,
    change_dosage_at,
    daily,
    give,
    nursing_home,
    prescribe_with,
    simvastatin_planned,
    version_of,
    ward_chart,
)
from tests.loop.helpers import GP, call


def chart_of(engine, ward_id, day, now):
    (patient,) = ward_chart(engine, ward_id, day, now).patients
    return {line.local_time.strftime("%H:%M"): line for line in patient.doses}


def test_a_dosage_changed_mid_day_replans_the_future_and_keeps_what_was_charted(engine):
    patient_id, ward_id, entry_id = simvastatin_planned(
        engine, TimeOfDay.MORNING, TimeOfDay.EVENING
    )
    day = datetime(2026, 11, 20).date()
    morning = chart_of(engine, ward_id, day, ADMITTED)["08:00"]
    give(engine, patient_id, entry_id, morning, morning.due_at + timedelta(minutes=5))

    changed_at = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)  # 12:00 in Oslo
    change_dosage_at(
        engine,
        patient_id,
        entry_id,
        daily(TimeOfDay.MORNING, TimeOfDay.MIDDAY, TimeOfDay.NIGHT),
        changed_at,
    )
    # The change planned its new schedule in its own transaction: the job has nothing to add.
    with engine.connect() as conn:
        assert len(administration.schedules_of_entry(conn, patient_id, entry_id)) == 2
    assert nursing.roll_forward(engine, changed_at + timedelta(minutes=5)) == {
        "patients": 0,
        "schedules": 0,
        "planned": 0,
    }

    lines = chart_of(engine, ward_id, day, changed_at + timedelta(minutes=10))
    assert sorted(lines) == ["08:00", "13:00", "22:00"]  # 18:00 of the old dosage is gone
    assert lines["08:00"].status is DoseStatus.GIVEN
    assert lines["13:00"].status is DoseStatus.DUE

    night = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    nursing.mark_missed(engine, night)
    lines = chart_of(engine, ward_id, day, night)
    assert lines["08:00"].status is DoseStatus.GIVEN
    assert lines["13:00"].status is DoseStatus.MISSED
    assert lines["22:00"].status is DoseStatus.MISSED
    tomorrow = chart_of(engine, ward_id, day + timedelta(days=1), night)
    assert sorted(tomorrow) == ["08:00", "13:00", "22:00"]


def test_a_renewal_that_leaves_the_schedule_alone_makes_no_new_schedule(engine):
    patient_id, _, _ = simvastatin_planned(engine, TimeOfDay.EVENING)
    with engine.connect() as conn:
        version = list_version(conn, patient_id)
        (old,) = prescriptions(conn, patient_id)
    renew(
        engine,
        patient_id,
        RenewOrder(
            prescription_id=old.id,
            terms=PrescriptionTerms(
                prescription_id=uuid.uuid4(),
                quantity=PrescribedQuantity(packages=1),
            ),
        ),
        call(GP, at=ADMITTED + timedelta(hours=1)),
        based_on=version,
    )
    with engine.connect() as conn:
        assert list_version(conn, patient_id) == version + 1
    assert nursing.roll_forward(engine, ADMITTED + timedelta(hours=2))["schedules"] == 0


def _night_doses(engine, night_start):
    patient_id, _ = nursing_home(engine, admitted=night_start)
    entry_id = prescribe_with(
        engine, patient_id, SIMVASTATIN, at_clock(time(2, 30)), at=night_start
    )
    nursing.roll_forward(engine, night_start + timedelta(minutes=1))
    with engine.connect() as conn:
        return [
            d
            for d in administration.planned_doses(
                conn,
                patient_ids=[patient_id],
                start=night_start,
                end=night_start + timedelta(days=2),
            )
            if d.entry_id == entry_id
        ]


def test_the_spring_forward_night_is_stored_as_intended_local_time_and_shifted_instant(engine):
    doses = _night_doses(engine, datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    night = next(d for d in doses if d.local_time.day == 29)
    assert night.local_time == datetime(2026, 3, 29, 2, 30)
    assert night.due_at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC) and night.shifted


def test_the_autumn_night_plans_the_repeated_hour_once(engine):
    doses = _night_doses(engine, datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    on_the_night = [d for d in doses if d.local_time.day == 25]
    assert len(on_the_night) == 1
    assert on_the_night[0].due_at == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_nothing_is_planned_or_missed_after_discharge(engine):
    patient_id, ward_id = nursing_home(engine)
    prescribe_with(engine, patient_id, SIMVASTATIN, daily(TimeOfDay.MORNING))
    with engine.connect() as conn:
        (admission,) = administration.admissions_of(conn, patient_id)
    leaving = ADMITTED + timedelta(hours=2)
    nursing.discharge(engine, patient_id, admission.id, leaving, call(NURSE, at=leaving))
    assert nursing.roll_forward(engine, leaving + timedelta(minutes=5))["planned"] == 0
    assert nursing.mark_missed(engine, leaving + timedelta(days=2))["missed"] == 0


def test_a_dose_of_a_changed_dosage_is_superseded_even_before_the_roll_forward_runs(engine):
    patient_id, ward_id, entry_id = simvastatin_planned(
        engine, TimeOfDay.MORNING, TimeOfDay.EVENING
    )
    day = datetime(2026, 11, 20).date()
    evening = chart_of(engine, ward_id, day, ADMITTED)["18:00"]
    changed_at = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    change_dosage_at(
        engine, patient_id, entry_id, daily(TimeOfDay.MORNING, TimeOfDay.NIGHT), changed_at
    )
    with pytest.raises(PlannedDoseSuperseded):
        give(engine, patient_id, entry_id, evening, evening.due_at)
    night = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    nursing.mark_missed(engine, night)  # no roll-forward in between
    lines = chart_of(engine, ward_id, day, night)
    assert sorted(lines) == ["08:00", "22:00"]
    assert lines["22:00"].status is DoseStatus.MISSED
    with engine.connect() as conn:
        missed = [
            c
            for c in administration.chartings_of_patient(conn, patient_id)
            if c.administration.planned_dose_id == evening.planned_dose_id
        ]
    assert missed == []


def test_an_entry_on_hold_cannot_be_given(engine):
    patient_id, ward_id, entry_id = simvastatin_planned(engine, TimeOfDay.MORNING)
    morning = chart_of(engine, ward_id, datetime(2026, 11, 20).date(), ADMITTED)["08:00"]
    hold(
        engine,
        patient_id,
        entry_id,
        call(GP, at=morning.due_at - timedelta(hours=1)),
        based_on=version_of(engine, patient_id),
    )
    with pytest.raises(PlannedDoseSuperseded):  # holding replans: the dose is gone
        give(engine, patient_id, entry_id, morning, morning.due_at)


def test_an_as_needed_entry_on_hold_cannot_be_given(engine):
    patient_id, _ = nursing_home(engine)
    entry_id = prescribe_with(engine, patient_id, OKSYKODON, as_needed())
    held_at = ADMITTED + timedelta(hours=1)
    hold(
        engine, patient_id, entry_id, call(GP, at=held_at), based_on=version_of(engine, patient_id)
    )
    request = ChartRequest(
        administration_id=uuid.uuid4(),
        entry_id=entry_id,
        outcome=Outcome.GIVEN,
        given_at=held_at + timedelta(minutes=5),
        dose=Quantity(value=1, unit="kapsel"),
        scan_skipped=ScanSkipReason.NO_BARCODE,
    )
    with pytest.raises(EntryNotAdministrable):
        nursing.chart(
            engine,
            patient_id,
            request,
            call(NURSE, at=held_at + timedelta(minutes=5)),
            witness=SECOND_NURSE,
        )
