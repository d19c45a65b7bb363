"""As-needed (PRN) doses: rolling maximum per 24 h and per period, minimum interval, at the
window edges (hypothesis against a brute-force reference) and through the charting command."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interactions.dosage import AsNeededDose, Period, Quantity
from medloop.domain.administration import (
    AsNeededDoseIsNotPlanned,
    ChartRequest,
    Intake,
    Outcome,
    PrnLimitExceeded,
    ScanSkipReason,
    WitnessRequired,
    check_prn_limits,
    prn_status,
)
from medloop.loop import administration
from tests.loop.administration.helpers import (
    ADMITTED,
    NURSE,
    OKSYKODON,
    OKSYKODON_EAN,
    SECOND_NURSE,
    as_needed,
    nursing_home,
    prescribe_with,
)
from tests.loop.helpers import call

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
ONE = Quantity(value=1, unit="kapsel")


def prn(max_24h=None, min_hours=None, max_period=None, period_hours=None) -> AsNeededDose:
    unit = "kapsel"
    return AsNeededDose(
        amount=Quantity(value=1, unit=unit),
        max_per_24h=None if max_24h is None else Quantity(value=max_24h, unit=unit),
        min_interval=None if min_hours is None else Period(value=min_hours, unit="hour"),
        max_per_period=None if max_period is None else Quantity(value=max_period, unit=unit),
        period=None if period_hours is None else Period(value=period_hours, unit="hour"),
    )


def one(at: datetime) -> Intake:
    return Intake(at, 1.0)


def test_a_dose_exactly_24_hours_after_the_oldest_in_the_window_is_allowed():
    earlier = [one(T0 + timedelta(hours=h)) for h in (0, 6, 12, 18)]
    at_edge = T0 + timedelta(hours=24)
    assert check_prn_limits(prn(max_24h=4), earlier, at_edge, ONE).exceeded == ()
    just_inside = at_edge - MINUTE
    assert check_prn_limits(prn(max_24h=4), earlier, just_inside, ONE).exceeded == ("max-per-24h",)


def test_the_minimum_interval_allows_exactly_the_interval_and_not_a_minute_less():
    earlier = [one(T0)]
    dose = prn(min_hours=4)
    assert check_prn_limits(dose, earlier, T0 + timedelta(hours=4), ONE).exceeded == ()
    assert check_prn_limits(dose, earlier, T0 + timedelta(hours=4) - MINUTE, ONE).exceeded == (
        "min-interval",
    )


def test_a_late_charted_dose_is_checked_against_the_doses_after_it_too():
    later = [one(T0 + timedelta(hours=h)) for h in (10, 14, 18)]
    result = check_prn_limits(prn(max_24h=3), later, T0, ONE)
    assert result.exceeded == ("max-per-24h",)


def test_a_limit_in_another_unit_is_reported_not_checked_never_guessed():
    dose = AsNeededDose(amount=ONE, max_per_24h=Quantity(value=20, unit="mg"))
    result = check_prn_limits(dose, [], T0, ONE)
    assert result.exceeded == () and result.not_checked == ("max-per-24h",)


def _reference(limit: float, window: timedelta, intakes: list[datetime], at: datetime) -> bool:
    """Brute force: is there any moment t with more than ``limit`` intakes in (t - window, t]?
    Only windows containing ``at`` matter, and such a window's total only changes at intakes,
    so minutes from ``at`` to ``at + window`` cover every case at this resolution."""
    every = [*intakes, at]
    for step in range(int(window / MINUTE)):
        end = at + step * MINUTE
        if sum(1 for t in every if end - window < t <= end) > limit:
            return True
    return False


offsets = st.lists(st.integers(min_value=-36 * 60, max_value=36 * 60), max_size=8)


@settings(max_examples=60, deadline=None)
@given(offsets, st.integers(min_value=1, max_value=4), st.sampled_from([2, 6, 24]))
def test_rolling_maximum_matches_a_brute_force_reference(minutes, limit, hours):
    intakes = [T0 + m * MINUTE for m in minutes]
    window = timedelta(hours=hours)
    dose = prn(max_period=limit, period_hours=hours)
    result = check_prn_limits(dose, [one(t) for t in intakes], T0, ONE)
    assert ("max-per-period" in result.exceeded) == _reference(limit, window, intakes, T0)


@settings(max_examples=60, deadline=None)
@given(offsets, st.integers(min_value=1, max_value=8 * 60))
def test_minimum_interval_is_refused_exactly_when_another_dose_is_closer(minutes, gap_minutes):
    intakes = [T0 + m * MINUTE for m in minutes]
    dose = prn(min_hours=gap_minutes / 60)
    result = check_prn_limits(dose, [one(t) for t in intakes], T0, ONE)
    closer = any(abs(t - T0) < timedelta(minutes=gap_minutes) for t in intakes)
    assert ("min-interval" in result.exceeded) == closer


# -- through the command ------------------------------------------------------------------------


def prn_given(entry_id, at, *, override=None):
    return ChartRequest(
        administration_id=uuid.uuid4(),
        entry_id=entry_id,
        outcome=Outcome.GIVEN,
        given_at=at,
        dose=ONE,
        scan=OKSYKODON_EAN,
        limit_override=override,
    )


def test_prn_limits_are_enforced_at_charting_and_an_override_reason_lets_one_through(engine):
    patient_id, ward_id = nursing_home(engine)
    entry_id = prescribe_with(engine, patient_id, OKSYKODON, as_needed(max_24h=2, min_hours=4))
    first = ADMITTED + timedelta(hours=1)
    administration.chart(
        engine, patient_id, prn_given(entry_id, first), call(NURSE, at=first), witness=SECOND_NURSE
    )
    too_soon = first + timedelta(hours=3)
    with pytest.raises(PrnLimitExceeded) as refused:
        administration.chart(
            engine,
            patient_id,
            prn_given(entry_id, too_soon),
            call(NURSE, at=too_soon),
            witness=SECOND_NURSE,
        )
    assert refused.value.context["limits"] == ["min-interval"]
    second = first + timedelta(hours=4)
    administration.chart(
        engine,
        patient_id,
        prn_given(entry_id, second),
        call(NURSE, at=second),
        witness=SECOND_NURSE,
    )
    third = second + timedelta(hours=4)
    with pytest.raises(PrnLimitExceeded):
        administration.chart(
            engine,
            patient_id,
            prn_given(entry_id, third),
            call(NURSE, at=third),
            witness=SECOND_NURSE,
        )
    result = administration.chart(
        engine,
        patient_id,
        prn_given(entry_id, third, override="sterke smerter, lege varslet"),
        call(NURSE, at=third),
        witness=SECOND_NURSE,
    )
    assert result.response["limits_exceeded"] == ["max-per-24h"]
    with engine.connect() as conn:
        chart = administration.ward_chart(conn, ward_id, third.date(), third)
    assert len(chart.patients[0].as_needed) == 3
    assert chart.patients[0].doses == ()  # PRN entries have no planned rows


def test_a_prn_dose_names_no_planned_dose_and_a_narcotic_needs_a_witness(engine):
    patient_id, _ = nursing_home(engine)
    entry_id = prescribe_with(engine, patient_id, OKSYKODON, as_needed())
    at = ADMITTED + timedelta(hours=1)
    request = prn_given(entry_id, at).model_copy(update={"planned_dose_id": uuid.uuid4()})
    with pytest.raises(AsNeededDoseIsNotPlanned):
        administration.chart(engine, patient_id, request, call(NURSE, at=at), witness=SECOND_NURSE)
    skipped = prn_given(entry_id, at).model_copy(
        update={"scan": None, "scan_skipped": ScanSkipReason.EMERGENCY}
    )
    with pytest.raises(WitnessRequired):
        administration.chart(engine, patient_id, skipped, call(NURSE, at=at))


# -- what remains, as the ward chart shows it -----------------------------------------------------


def test_prn_status_with_nothing_given_allows_a_dose_now_and_the_24h_maximum():
    status = prn_status(prn(max_24h=4, min_hours=4), [], T0)
    assert status.given_last_24h == 0
    assert status.doses_remaining == 4
    assert status.next_allowed_at == T0
    assert status.not_checked == ()


def test_prn_status_waits_for_the_minimum_interval_and_counts_what_the_maximum_leaves():
    given = [one(T0 - timedelta(hours=5)), one(T0 - timedelta(hours=1))]
    status = prn(max_24h=4, min_hours=4)
    found = prn_status(status, given, T0)
    assert found.given_last_24h == 2
    assert found.doses_remaining == 2
    assert found.next_allowed_at == T0 + timedelta(hours=3)  # 4 h after the last dose


def test_prn_status_at_the_24h_maximum_waits_until_the_oldest_dose_leaves_the_window():
    given = [one(T0 - timedelta(hours=h)) for h in (20, 15, 10, 5)]
    found = prn_status(prn(max_24h=4, min_hours=4), given, T0)
    assert found.doses_remaining == 0
    assert found.next_allowed_at == T0 + timedelta(hours=4)  # 24 h after the dose at -20 h
    # The answer is the rule's: a dose then passes check_prn_limits, a minute earlier it fails.
    assert check_prn_limits(prn(max_24h=4, min_hours=4), given, T0 + timedelta(hours=4), ONE) == (
        check_prn_limits(prn(max_24h=4, min_hours=4), [], T0, ONE)
    )
    early = check_prn_limits(prn(max_24h=4), given, T0 + timedelta(hours=4) - MINUTE, ONE)
    assert early.exceeded == ("max-per-24h",)


def test_prn_status_honours_a_period_maximum_beside_the_24h_one():
    given = [one(T0 - timedelta(hours=h)) for h in (60, 30)]
    found = prn_status(prn(max_24h=3, max_period=2, period_hours=72), given, T0)
    assert found.doses_remaining == 0
    assert found.next_allowed_at == T0 + timedelta(hours=12)  # 72 h after the dose at -60 h


def test_prn_status_without_limits_allows_now_and_counts_nothing_remaining():
    found = prn_status(prn(), [one(T0 - timedelta(hours=1))], T0)
    assert found.doses_remaining is None
    assert found.next_allowed_at == T0
    assert found.given_last_24h == 1


def test_prn_status_with_a_limit_in_another_unit_says_it_cannot_be_checked():
    dose = prn(max_24h=4).model_copy(update={"max_per_24h": Quantity(value=400, unit="mg")})
    found = prn_status(dose, [], T0)
    assert found.not_checked == ("max-per-24h",)
    assert found.doses_remaining is None and found.next_allowed_at is None


@settings(max_examples=60)
@given(
    hours=st.lists(st.integers(min_value=1, max_value=47), max_size=6, unique=True),
    max_24h=st.integers(min_value=1, max_value=5),
    min_hours=st.integers(min_value=1, max_value=8),
)
def test_prn_status_next_allowed_is_the_first_whole_hour_the_rule_allows(hours, max_24h, min_hours):
    dose = prn(max_24h=max_24h, min_hours=min_hours)
    given = [one(T0 - timedelta(hours=h)) for h in hours]
    found = prn_status(dose, given, T0)
    # All intakes are on whole hours, so the first allowed moment is one too: brute force.
    first = next(
        T0 + timedelta(hours=h)
        for h in range(0, 100)
        if not check_prn_limits(dose, given, T0 + timedelta(hours=h), ONE).exceeded
    )
    assert found.next_allowed_at == first


def test_the_ward_chart_shows_every_active_prn_entry_before_any_dose_is_given(engine):
    patient_id, ward_id = nursing_home(engine)
    entry_id = prescribe_with(engine, patient_id, OKSYKODON, as_needed(max_24h=2, min_hours=4))
    now = ADMITTED + timedelta(hours=1)
    with engine.connect() as conn:
        (patient,) = administration.ward_chart(conn, ward_id, now.date(), now).patients
    (line,) = patient.prn
    assert line.entry_id == entry_id
    assert line.status.doses_remaining == 2
    assert line.status.next_allowed_at == now
    assert line.status.dose.max_per_24h == Quantity(value=2, unit="kapsel")


def test_the_ward_chart_prn_line_follows_the_doses_given(engine):
    patient_id, ward_id = nursing_home(engine)
    entry_id = prescribe_with(engine, patient_id, OKSYKODON, as_needed(max_24h=2, min_hours=4))
    first = ADMITTED + timedelta(hours=1)
    administration.chart(
        engine, patient_id, prn_given(entry_id, first), call(NURSE, at=first), witness=SECOND_NURSE
    )
    now = first + timedelta(hours=1)
    with engine.connect() as conn:
        (patient,) = administration.ward_chart(conn, ward_id, now.date(), now).patients
    (line,) = patient.prn
    assert line.status.given_last_24h == 1
    assert line.status.doses_remaining == 1
    assert line.status.next_allowed_at == first + timedelta(hours=4)
