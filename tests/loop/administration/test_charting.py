"""Charting doses through the loop (SQLite and PostgreSQL): given / not given / refused / held,
windows, corrections, idempotent retries, witness policy, pack scanning, admission scope and
decision support at the bedside."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from interactions.dosage import TimeOfDay
from medloop.domain.administration import (
    AdministeredDoseAbovePrescribed,
    AdministrationAlreadyInError,
    ChartedInTheFuture,
    ChartingIncomplete,
    ChartRequest,
    DoseAlreadyCharted,
    DoseNotYetDue,
    DoseStatus,
    Outcome,
    ScannedPackExpired,
    ScannedPackMismatch,
    ScanRequired,
    ScanSkipReason,
    ScanUnreadable,
    WitnessOfAnotherOrganisation,
    WitnessRequired,
    WitnessSamePerson,
)
from medloop.domain.ward import PatientNotAdmitted
from medloop.loop import administration as nursing
from medloop.loop.errors import OverrideRequired
from medloop.store import administration
from tests.loop.administration.helpers import (
    ADMITTED,
    ATORVASTATIN_EAN,
    GLARGIN,
    NURSE,
    OTHER_NURSE,
    PLANNED_AT,
    SECOND_NURSE,
    SIMVASTATIN_EAN,
    SIMVASTATIN_GENERIC_EAN,
    daily,
    given,
    nursing_home,
    planned_doses,
    prescribe_with,
    simvastatin_world,
)
from tests.loop.helpers import KLARITROMYCIN, call


def test_a_planned_dose_given_on_time_shows_as_given_on_the_ward_chart(engine):
    patient_id, ward_id, entry_id, dose = simvastatin_world(engine)
    result = nursing.chart(
        engine,
        patient_id,
        given(entry_id, dose),
        call(NURSE, at=dose.due_at + timedelta(minutes=5)),
    )
    assert result.response["outcome"] == "given" and not result.response["late"]
    with engine.connect() as conn:
        chart = nursing.ward_chart(
            conn, ward_id, dose.local_time.date(), dose.due_at + timedelta(hours=1)
        )
    (patient,) = chart.patients
    line = next(line for line in patient.doses if line.planned_dose_id == dose.id)
    assert line.status is DoseStatus.GIVEN
    assert line.charting is not None and line.charting.performer == NURSE


def test_a_dose_given_after_the_late_window_is_charted_late(engine):
    patient_id, _, entry_id, dose = simvastatin_world(engine)
    at = dose.due_at + timedelta(minutes=90)
    result = nursing.chart(engine, patient_id, given(entry_id, dose, at=at), call(NURSE, at=at))
    assert result.response["late"] is True


def test_charting_a_future_dose_as_given_is_refused(engine):
    patient_id, _, entry_id, dose = simvastatin_world(engine)
    now = dose.due_at - timedelta(hours=3)
    with pytest.raises(ChartedInTheFuture):
        nursing.chart(engine, patient_id, given(entry_id, dose), call(NURSE, at=now))
    with pytest.raises(DoseNotYetDue):
        nursing.chart(engine, patient_id, given(entry_id, dose, at=now), call(NURSE, at=now))
    with engine.connect() as conn:
        assert administration.chartings_of_patient(conn, patient_id) == []


def test_not_given_refused_and_held_need_a_reason(engine):
    patient_id, ward_id, entry_id, dose = simvastatin_world(engine)
    now = dose.due_at + timedelta(minutes=10)
    for outcome in (Outcome.NOT_GIVEN, Outcome.REFUSED, Outcome.HELD):
        with pytest.raises(ChartingIncomplete):
            nursing.chart(
                engine,
                patient_id,
                ChartRequest(
                    administration_id=uuid.uuid4(),
                    entry_id=entry_id,
                    planned_dose_id=dose.id,
                    outcome=outcome,
                ),
                call(NURSE, at=now),
            )
    nursing.chart(
        engine,
        patient_id,
        ChartRequest(
            administration_id=uuid.uuid4(),
            entry_id=entry_id,
            planned_dose_id=dose.id,
            outcome=Outcome.REFUSED,
            reason="pasienten ville ikke",
        ),
        call(NURSE, at=now),
    )
    with engine.connect() as conn:
        chart = nursing.ward_chart(conn, ward_id, dose.local_time.date(), now)
    statuses = {line.planned_dose_id: line.status for line in chart.patients[0].doses}
    assert statuses[dose.id] is DoseStatus.REFUSED


def test_a_charted_dose_cannot_be_charted_twice_until_the_first_is_entered_in_error(engine):
    patient_id, _, entry_id, dose = simvastatin_world(engine)
    now = dose.due_at + timedelta(minutes=5)
    first = given(entry_id, dose)
    nursing.chart(engine, patient_id, first, call(NURSE, at=now))
    with pytest.raises(DoseAlreadyCharted):
        nursing.chart(engine, patient_id, given(entry_id, dose), call(NURSE, at=now))
    nursing.mark_in_error(
        engine, patient_id, first.administration_id, call(NURSE, at=now, reason="feil pasient")
    )
    with pytest.raises(AdministrationAlreadyInError):
        nursing.mark_in_error(
            engine, patient_id, first.administration_id, call(NURSE, at=now, reason="igjen")
        )
    later = now + timedelta(minutes=1)
    nursing.chart(engine, patient_id, given(entry_id, dose, at=later), call(NURSE, at=later))
    with engine.connect() as conn:
        history = nursing.administration_history(conn, patient_id)
    assert [h.stands for h in history] == [False, True]
    assert history[0].correction is not None and history[0].correction.reason == "feil pasient"


def test_a_retried_charting_with_the_same_idempotency_key_charts_once(engine):
    patient_id, _, entry_id, dose = simvastatin_world(engine)
    now = dose.due_at + timedelta(minutes=5)
    request = given(entry_id, dose)
    first = nursing.chart(
        engine, patient_id, request, call(NURSE, at=now, idempotency_key="chart-1")
    )
    again = nursing.chart(
        engine, patient_id, request, call(NURSE, at=now, idempotency_key="chart-1")
    )
    assert again.replayed and again.response == first.response
    with engine.connect() as conn:
        assert len(administration.chartings_of_patient(conn, patient_id)) == 1


def test_the_administration_tables_are_append_only(engine):
    patient_id, _, entry_id, dose = simvastatin_world(engine)
    nursing.chart(
        engine,
        patient_id,
        given(entry_id, dose),
        call(NURSE, at=dose.due_at + timedelta(minutes=5)),
    )
    for statement in (
        "UPDATE administration SET outcome = 'held'",
        "DELETE FROM planned_dose",
        "DELETE FROM admission",
    ):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))


def test_a_nurse_of_another_organisation_cannot_chart(engine):
    patient_id, _, entry_id, dose = simvastatin_world(engine)
    with pytest.raises(PatientNotAdmitted):
        nursing.chart(
            engine,
            patient_id,
            given(entry_id, dose),
            call(OTHER_NURSE, at=dose.due_at + timedelta(minutes=5)),
        )
    with engine.connect() as conn:
        assert nursing.is_admitted(conn, patient_id, NURSE.organisation.id, dose.due_at)
        assert not nursing.is_admitted(conn, patient_id, OTHER_NURSE.organisation.id, dose.due_at)
        assert not nursing.is_admitted(
            conn, patient_id, NURSE.organisation.id, ADMITTED - timedelta(days=1)
        )


def test_a_dose_above_the_prescribed_amount_needs_an_override_reason(engine):
    patient_id, _, entry_id, dose = simvastatin_world(engine)
    now = dose.due_at + timedelta(minutes=5)
    with pytest.raises(AdministeredDoseAbovePrescribed):
        nursing.chart(engine, patient_id, given(entry_id, dose, amount=2), call(NURSE, at=now))
    result = nursing.chart(
        engine,
        patient_id,
        given(entry_id, dose, amount=2, override="legen ba om dobbel dose"),
        call(NURSE, at=now),
    )
    assert result.response["limits_exceeded"] == ["above-prescribed"]


# -- scanning ------------------------------------------------------------------------------------


def test_a_scan_of_another_product_is_refused_with_the_reason(engine):
    patient_id, _, entry_id, dose = simvastatin_world(engine)
    with pytest.raises(ScannedPackMismatch) as refused:
        nursing.chart(
            engine,
            patient_id,
            given(entry_id, dose, scan=ATORVASTATIN_EAN),
            call(NURSE, at=dose.due_at),
        )
    assert refused.value.context["varenr"] == "090487"
    assert "substitution group" in refused.value.detail


def test_an_expired_pack_is_refused(engine):
    patient_id, _, entry_id, dose = simvastatin_world(engine)
    expired = f"(01)0{SIMVASTATIN_EAN}(17)261031(10)LOT7(21)SER1"
    with pytest.raises(ScannedPackExpired):
        nursing.chart(
            engine, patient_id, given(entry_id, dose, scan=expired), call(NURSE, at=dose.due_at)
        )


def test_a_same_group_generic_pack_is_accepted_as_a_substitution(engine):
    patient_id, _, entry_id, dose = simvastatin_world(engine)
    element_string = f"010{SIMVASTATIN_GENERIC_EAN}17271231" + "10LOT7\x1d21SER1"
    result = nursing.chart(
        engine, patient_id, given(entry_id, dose, scan=element_string), call(NURSE, at=dose.due_at)
    )
    scan = result.response["scan"]
    assert scan["varenr"] == "090470" and scan["substituted"] is True
    assert scan["batch"] == "LOT7" and scan["expiry"] == "2027-12-31"


def test_an_unreadable_scan_is_refused(engine):
    patient_id, _, entry_id, dose = simvastatin_world(engine)
    with pytest.raises(ScanUnreadable):
        nursing.chart(
            engine, patient_id, given(entry_id, dose, scan="hello"), call(NURSE, at=dose.due_at)
        )


def test_skipping_the_scan_needs_a_reason_code(engine):
    patient_id, _, entry_id, dose = simvastatin_world(engine)
    with pytest.raises(ScanRequired):
        nursing.chart(
            engine, patient_id, given(entry_id, dose, scan=None), call(NURSE, at=dose.due_at)
        )
    result = nursing.chart(
        engine,
        patient_id,
        given(entry_id, dose, skipped=ScanSkipReason.BARCODE_UNREADABLE),
        call(NURSE, at=dose.due_at),
    )
    assert result.response["scan"] is None


# -- witness -------------------------------------------------------------------------------------


def insulin_world(engine):
    patient_id, _ = nursing_home(engine)
    entry_id = prescribe_with(
        engine, patient_id, GLARGIN, daily(TimeOfDay.EVENING, amount=10, unit="E")
    )
    nursing.roll_forward(engine, PLANNED_AT)
    return patient_id, entry_id, planned_doses(engine, patient_id, entry_id)[0]


def test_insulin_needs_a_witness_by_the_default_policy(engine):
    patient_id, entry_id, dose = insulin_world(engine)
    request = given(entry_id, dose, amount=10, unit="E", skipped=ScanSkipReason.NO_BARCODE)
    with pytest.raises(WitnessRequired):
        nursing.chart(engine, patient_id, request, call(NURSE, at=dose.due_at))
    result = nursing.chart(
        engine, patient_id, request, call(NURSE, at=dose.due_at), witness=SECOND_NURSE
    )
    assert result.response["witness"] == SECOND_NURSE.personnel.name


def test_the_witness_must_be_another_person_of_the_same_organisation(engine):
    patient_id, entry_id, dose = insulin_world(engine)
    request = given(entry_id, dose, amount=10, unit="E", skipped=ScanSkipReason.NO_BARCODE)
    with pytest.raises(WitnessSamePerson):
        nursing.chart(engine, patient_id, request, call(NURSE, at=dose.due_at), witness=NURSE)
    with pytest.raises(WitnessOfAnotherOrganisation):
        nursing.chart(engine, patient_id, request, call(NURSE, at=dose.due_at), witness=OTHER_NURSE)


# -- decision support ----------------------------------------------------------------------------


def test_charting_runs_decision_support_and_shows_the_prescribers_overrides(engine):
    patient_id, _, entry_id, dose = simvastatin_world(engine)
    antibiotic = uuid.uuid4()
    with pytest.raises(OverrideRequired) as needed:
        prescribe_with(
            engine, patient_id, KLARITROMYCIN, daily(TimeOfDay.MORNING), entry_id=antibiotic
        )
    keys = dict.fromkeys(needed.value.context["alert_keys"], "kort kur, statin pauses ikke")
    prescribe_with(
        engine,
        patient_id,
        KLARITROMYCIN,
        daily(TimeOfDay.MORNING),
        overrides=keys,
        entry_id=antibiotic,
    )
    result = nursing.chart(engine, patient_id, given(entry_id, dose), call(NURSE, at=dose.due_at))
    shown = result.response["overrides_on_record"]
    assert [o["reason"] for o in shown] == ["kort kur, statin pauses ikke"]
    assert result.response["alerts"] == []  # the handled pair does not re-alert


def test_a_dose_marked_missed_can_still_be_charted_as_given_late(engine):
    patient_id, ward_id, entry_id, dose = simvastatin_world(engine)
    after_window = dose.due_at + timedelta(hours=3)
    assert nursing.mark_missed(engine, after_window)["missed"] >= 1
    result = nursing.chart(
        engine, patient_id, given(entry_id, dose, at=dose.due_at), call(NURSE, at=after_window)
    )
    assert result.response["late"] is False  # given on time, charted late
    with engine.connect() as conn:
        chart = nursing.ward_chart(conn, ward_id, dose.local_time.date(), after_window)
    statuses = {line.planned_dose_id: line.status for line in chart.patients[0].doses}
    assert statuses[dose.id] is DoseStatus.GIVEN
