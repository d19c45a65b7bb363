"""The ward chart keeps each resident's planned doses of a ward-day between reads
(``store.plan_cache``, issue #16's overview): an unchanged plan is not read again, a resident
whose plan mark moved (a new resident's prescription, a changed dosage) is read again alone,
the chartings are read every time, and the chart is always the one a read with nothing kept
gives. With the suite's check on (``MEDLOOP_VERIFY_STATE_CACHE``), a kept plan that differs
from the tables is found."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event

from interactions.dosage import TimeOfDay
from medloop import demo
from medloop.domain.administration import DoseStatus
from medloop.domain.oslo import local_day_bounds
from medloop.domain.patient import NationalId, Patient
from medloop.loop import administration as nursing
from medloop.loop.patients import register_patient
from medloop.store import state_cache
from medloop.store.plan_cache import PlanCache, plan_cache_for
from tests.loop.administration.helpers import (
    ADMITTED,
    NURSE,
    SIMVASTATIN,
    admission_order,
    change_dosage_at,
    daily,
    give,
    nursing_home,
    prescribe_with,
    ward_chart,
)
from tests.loop.helpers import call

DAY = date(2026, 11, 20)
MORNING_ROUND = datetime(2026, 11, 20, 7, 5, tzinfo=UTC)  # 08:05 in Oslo
LEVOTYROKSIN = "090606"


@pytest.fixture
def unchecked(monkeypatch):
    """The suite's check of kept plans off: it reads every plan again, which is what these
    tests count."""
    monkeypatch.setattr(state_cache, "VERIFY", False)


@contextlib.contextmanager
def plan_reads(engine, ward_id):
    """The patient ids of each read of planned doses' records (``planned_on_ward``)."""
    seen: list[list[str]] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if re.match(r"\s*SELECT planned_dose\.record\b", statement):
            values = parameters.values() if isinstance(parameters, dict) else parameters
            ids = {str(v) for v in values if re.fullmatch(r"[0-9a-f-]{36}", str(v))}
            seen.append(sorted(ids - {str(ward_id)}))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def chart(engine, ward_id, now=MORNING_ROUND, day=DAY):
    return ward_chart(engine, ward_id, day, now)


def chart_kept_nothing(engine, ward_id, now=MORNING_ROUND, day=DAY):
    """The chart as a process that has kept nothing reads it."""
    plan_cache_for(engine).clear()
    return chart(engine, ward_id, now, day)


def statuses(found) -> dict[str, list[tuple[str, str]]]:
    return {
        str(p.patient_id): [(d.local_time.strftime("%H:%M"), d.status.value) for d in p.doses]
        for p in found.patients
    }


def resident_with_plan(engine, ward_id, n: int) -> uuid.UUID:
    """Another resident of the ward, with a morning and evening medicine planned."""
    born = date(1931, 3, 1 + n)
    patient = Patient(
        id=uuid.uuid4(),
        national_id=NationalId(demo.national_id(born, 300 + 37 * n)),
        given_name=f"Ny{n}",
        family_name="Beboer",
        birth_date=born,
    )
    register_patient(engine, patient, call())
    nursing.admit(engine, patient.id, admission_order(ward_id), call(NURSE, at=ADMITTED))
    prescribe_with(engine, patient.id, LEVOTYROKSIN, daily(TimeOfDay.MORNING, TimeOfDay.EVENING))
    return patient.id


def ward_with_two_residents(engine):
    kari, ward_id = nursing_home(engine)
    entry_id = prescribe_with(
        engine, kari, SIMVASTATIN, daily(TimeOfDay.MORNING, TimeOfDay.EVENING)
    )
    ola = resident_with_plan(engine, ward_id, 0)
    nursing.roll_forward(engine, ADMITTED + timedelta(minutes=30))
    return kari, ola, ward_id, entry_id


def test_an_unchanged_ward_day_is_read_once_and_shown_the_same(engine, unchecked):
    _, _, ward_id, _ = ward_with_two_residents(engine)
    with plan_reads(engine, ward_id) as reads:
        first = chart(engine, ward_id)
        again = chart(engine, ward_id, MORNING_ROUND + timedelta(hours=1))
    assert len(reads) == 1 and len(reads[0]) == 2  # both residents, once
    assert again == chart_kept_nothing(engine, ward_id, MORNING_ROUND + timedelta(hours=1))
    assert statuses(first) != statuses(again)  # time moved on: the statuses are computed anew
    assert all(len(p.doses) == 2 for p in again.patients)


def test_a_resident_whose_plan_changed_is_read_again_alone(engine, unchecked):
    kari, ola, ward_id, entry_id = ward_with_two_residents(engine)
    chart(engine, ward_id)
    changed_at = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    change_dosage_at(
        engine,
        kari,
        entry_id,
        daily(TimeOfDay.MORNING, TimeOfDay.MIDDAY, TimeOfDay.NIGHT),
        changed_at,
    )
    now = changed_at + timedelta(minutes=10)
    with plan_reads(engine, ward_id) as reads:
        after = chart(engine, ward_id, now)
    assert reads == [[str(kari)]]
    assert after == chart_kept_nothing(engine, ward_id, now)
    shown = statuses(after)
    assert [t for t, _ in shown[str(kari)]] == ["08:00", "13:00", "22:00"]  # 18:00 superseded
    assert [t for t, _ in shown[str(ola)]] == ["08:00", "18:00"]

    newcomer = resident_with_plan(engine, ward_id, 1)  # planned by the prescription itself
    with plan_reads(engine, ward_id) as reads:
        later = chart(engine, ward_id, now)
    assert reads == [[str(newcomer)]]
    assert later == chart_kept_nothing(engine, ward_id, now)
    assert len(later.patients) == 3


def give_morning_dose(engine, ward_id, patient_id, entry_id) -> tuple[uuid.UUID, uuid.UUID]:
    """The resident's 08:00 dose charted as given at the round; (planned dose id, charting id)."""
    (morning,) = [
        d
        for p in chart(engine, ward_id).patients
        if p.patient_id == patient_id
        for d in p.doses
        if d.local_time.hour == 8
    ]
    return morning.planned_dose_id, give(engine, patient_id, entry_id, morning, MORNING_ROUND)


def line_of(found, planned_dose_id):
    (line,) = [d for p in found.patients for d in p.doses if d.planned_dose_id == planned_dose_id]
    return line


def test_a_charting_is_shown_at_the_next_read_without_reading_the_plan_again(engine, unchecked):
    kari, _, ward_id, entry_id = ward_with_two_residents(engine)
    dose_id, charting_id = give_morning_dose(engine, ward_id, kari, entry_id)
    with plan_reads(engine, ward_id) as reads:
        after = chart(engine, ward_id)
        again = chart(engine, ward_id)  # the validated charting kept from the read before
    assert reads == []
    line = line_of(after, dose_id)
    assert line.status is DoseStatus.GIVEN and line.charting.id == charting_id
    assert after == again == chart_kept_nothing(engine, ward_id)


def test_a_charting_entered_in_error_is_no_longer_shown_at_the_next_read(engine, unchecked):
    kari, _, ward_id, entry_id = ward_with_two_residents(engine)
    dose_id, charting_id = give_morning_dose(engine, ward_id, kari, entry_id)
    assert line_of(chart(engine, ward_id), dose_id).status is DoseStatus.GIVEN
    corrected_at = MORNING_ROUND + timedelta(minutes=10)
    nursing.mark_in_error(
        engine, kari, charting_id, call(NURSE, at=corrected_at, reason="Feil pasient")
    )
    after = chart(engine, ward_id, corrected_at)
    line = line_of(after, dose_id)
    assert line.status is DoseStatus.DUE and line.charting is None
    assert after == chart_kept_nothing(engine, ward_id, corrected_at)


def test_a_kept_plan_is_what_the_chart_shows_and_the_check_finds_one_that_differs(
    engine, monkeypatch
):
    _, _, ward_id, _ = ward_with_two_residents(engine)
    chart(engine, ward_id)
    start, end = local_day_bounds(DAY)
    cache = plan_cache_for(engine)
    kept = cache.get((ward_id, start, end))
    assert kept is not None and len(kept) == 2
    # A kept plan with every dose taken for superseded, under the same marks:
    cache.put(
        (ward_id, start, end),
        {
            patient_id: dataclasses.replace(
                plan,
                lines=tuple(dataclasses.replace(line, in_force=False) for line in plan.lines),
            )
            for patient_id, plan in kept.items()
        },
    )
    monkeypatch.setattr(state_cache, "VERIFY", True)
    with pytest.raises(state_cache.StateCacheDiverged):
        chart(engine, ward_id)
    monkeypatch.setattr(state_cache, "VERIFY", False)
    assert all(p.doses == () for p in chart(engine, ward_id).patients)  # what was kept is used


def test_the_plan_cache_keeps_the_most_recently_used_ward_days():
    cache = PlanCache(capacity=2)
    cache.put("monday", {1: "a"})
    cache.put("tuesday", {1: "b"})
    assert cache.get("monday") == {1: "a"}  # now the most recently used
    cache.put("wednesday", {1: "c"})
    assert cache.get("tuesday") is None
    assert cache.get("monday") == {1: "a"} and cache.get("wednesday") == {1: "c"}
    assert len(cache) == 2
