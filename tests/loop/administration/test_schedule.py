"""Planned doses from structured dosages on the ward's clock (pure): time-of-day slots, exact
times, intervals, weekdays, days on/off, start/stop, and the Europe/Oslo DST policy."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

from interactions.dosage import Dosage, FixedDose, Period, Quantity, TimeOfDay, Use, Weekday
from medloop.domain.codes import EntryStatus
from medloop.domain.drug_reference import NonCatalogueItem
from medloop.domain.entry import ListEntry
from medloop.domain.ward import WardConfig, local_instant, plan_intakes, schedule_fingerprint
from tests.loop.administration.helpers import as_needed, at_clock, daily

CONFIG = WardConfig()


def entry(
    dosage: Dosage,
    *,
    start: date = date(2026, 1, 1),
    stop: date | None = None,
    status: EntryStatus = EntryStatus.ACTIVE,
) -> ListEntry:
    return ListEntry(
        id=uuid.uuid4(),
        version=1,
        drug=NonCatalogueItem(name="Tran"),
        dosage=dosage,
        use=dosage.use,
        start=start,
        stop=stop,
        status=status,
        changed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local_times(planned) -> list[str]:
    return [p.local_time.strftime("%m-%d %H:%M") for p in planned]


def test_spring_forward_moves_a_dose_in_the_missing_hour_forward_and_flags_it():
    planned = plan_intakes(
        entry(at_clock(time(2, 30))), CONFIG, utc(2026, 3, 28, 0), utc(2026, 3, 31, 0)
    )
    assert local_times(planned) == ["03-28 02:30", "03-29 02:30", "03-30 02:30"]
    on_the_night = planned[1]
    assert on_the_night.shifted
    # 02:30 does not exist on 29 March: given at 03:30 summer time = 01:30 UTC
    assert on_the_night.due_at == utc(2026, 3, 29, 1, 30)
    assert planned[0].due_at == utc(2026, 3, 28, 1, 30)  # 02:30 CET
    assert planned[2].due_at == utc(2026, 3, 30, 0, 30)  # 02:30 CEST
    assert not planned[0].shifted and not planned[2].shifted


def test_autumn_repeated_hour_is_planned_once_at_its_first_occurrence():
    planned = plan_intakes(
        entry(at_clock(time(2, 30))), CONFIG, utc(2026, 10, 24, 0), utc(2026, 10, 27, 0)
    )
    assert local_times(planned) == ["10-24 02:30", "10-25 02:30", "10-26 02:30"]
    assert planned[1].due_at == utc(2026, 10, 25, 0, 30)  # first 02:30, still summer time
    assert not planned[1].shifted
    assert planned[2].due_at == utc(2026, 10, 26, 1, 30)


def _every(hours: float, start: time = time(0, 0)) -> Dosage:
    """One tablet every ``hours`` from the clock time ``start``."""
    return Dosage(
        use=Use.REGULAR,
        fixed=(
            FixedDose(
                amount=Quantity(value=1, unit="tablett"),
                clock_time=start,
                interval=Period(value=hours, unit="hour"),
            ),
        ),
    )


def test_a_dose_repeating_within_the_spring_gap_is_not_doubled_at_its_shifted_instant():
    """Hourly: 02:00 does not exist on 29 March, and moved forward it would fall on the
    dose's own 03:00, two tablets at once; it is planned once, at 03:00. Half-hourly: 02:00 and
    02:30 likewise. The Oslo day of 23 hours has 23 hourly intakes, each at its own instant;
    the autumn day of 25 hours has 24 (the repeated hour once)."""
    night = (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))  # the Oslo day of 29 March
    hourly = plan_intakes(entry(_every(1)), CONFIG, *night)
    assert len(hourly) == 23
    assert len({p.due_at for p in hourly}) == 23
    assert "03-29 02:00" not in local_times(hourly)
    assert not any(p.shifted for p in hourly)
    at_three = [p for p in hourly if p.due_at == utc(2026, 3, 29, 1)]
    assert [p.local_time for p in at_three] == [datetime(2026, 3, 29, 3, 0)]
    half_hourly = plan_intakes(entry(_every(0.5)), CONFIG, *night)
    assert len(half_hourly) == 46 and len({p.due_at for p in half_hourly}) == 46
    assert not {"03-29 02:00", "03-29 02:30"} & set(local_times(half_hourly))
    autumn_day = (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))  # the Oslo day of 25 October
    autumn = plan_intakes(entry(_every(1)), CONFIG, *autumn_day)
    assert len(autumn) == 24 and len({p.due_at for p in autumn}) == 24


def test_a_three_hourly_dose_in_the_gap_is_still_moved_forward_and_flagged():
    """Every 3 hours from 02:00: the 02:00 of 29 March is no other time of the dose, so it is
    moved forward (03:00 summer time) and flagged, as a once-daily 02:30 is."""
    moved = plan_intakes(
        entry(_every(3, time(2, 0))), CONFIG, utc(2026, 3, 28, 23), utc(2026, 3, 29, 4)
    )
    assert [(p.local_time.strftime("%H:%M"), p.due_at, p.shifted) for p in moved] == [
        ("02:00", utc(2026, 3, 29, 1), True),
        ("05:00", utc(2026, 3, 29, 3), False),
    ]


def test_local_instant_policy_directly():
    assert local_instant(datetime(2026, 3, 29, 2, 0)) == (utc(2026, 3, 29, 1, 0), True)
    assert local_instant(datetime(2026, 3, 29, 3, 0)) == (utc(2026, 3, 29, 1, 0), False)
    assert local_instant(datetime(2026, 10, 25, 2, 0)) == (utc(2026, 10, 25, 0, 0), False)
    assert local_instant(datetime(2026, 10, 25, 3, 0)) == (utc(2026, 10, 25, 2, 0), False)


def test_an_eight_hourly_dose_keeps_its_wall_clock_times_across_both_dst_nights():
    every_8h = _every(8, time(8, 0))
    for night in (date(2026, 3, 29), date(2026, 10, 25)):
        start = datetime.combine(night, time(0), tzinfo=UTC) - timedelta(hours=3)
        planned = plan_intakes(entry(every_8h), CONFIG, start, start + timedelta(hours=24))
        assert [p.local_time.time() for p in planned] == [time(0), time(8), time(16)]
        assert all(p.local_time.date() == night for p in planned)
    spring = plan_intakes(entry(every_8h), CONFIG, utc(2026, 3, 28, 22), utc(2026, 3, 29, 22))
    assert spring[1].due_at - spring[0].due_at == timedelta(hours=7)  # the short night
    autumn = plan_intakes(entry(every_8h), CONFIG, utc(2026, 10, 24, 21), utc(2026, 10, 25, 23))
    assert autumn[1].due_at - autumn[0].due_at == timedelta(hours=9)  # the long night


def test_slots_map_to_the_wards_clock_and_a_ward_may_move_them():
    dosage = daily(TimeOfDay.MORNING, TimeOfDay.MIDDAY, TimeOfDay.EVENING, TimeOfDay.NIGHT)
    window = (utc(2026, 11, 20, 0), utc(2026, 11, 21, 0))
    planned = plan_intakes(entry(dosage), CONFIG, *window)
    assert [p.local_time.strftime("%H:%M") for p in planned] == ["08:00", "13:00", "18:00", "22:00"]
    assert [p.time_of_day for p in planned] == [
        TimeOfDay.MORNING,
        TimeOfDay.MIDDAY,
        TimeOfDay.EVENING,
        TimeOfDay.NIGHT,
    ]
    early_ward = WardConfig(slot_times={**CONFIG.slot_times, TimeOfDay.MORNING: time(7, 30)})
    moved = plan_intakes(entry(dosage), early_ward, *window)
    assert moved[0].local_time.strftime("%H:%M") == "07:30"
    assert schedule_fingerprint(entry(dosage), early_ward) != schedule_fingerprint(
        entry(dosage), CONFIG
    )


def test_weekdays_days_on_off_and_whole_day_intervals_choose_the_dosing_days():
    mondays = Dosage(
        use=Use.REGULAR,
        fixed=(
            FixedDose(
                amount=Quantity(value=70, unit="mg"),
                time_of_day=TimeOfDay.MORNING,
                weekdays=(Weekday.MONDAY,),
            ),
        ),
    )
    two_weeks = (utc(2026, 11, 1, 0), utc(2026, 11, 15, 0))
    planned = plan_intakes(entry(mondays), CONFIG, *two_weeks)
    assert [p.local_time.date() for p in planned] == [date(2026, 11, 2), date(2026, 11, 9)]

    on_off = Dosage(
        use=Use.REGULAR,
        fixed=(
            FixedDose(
                amount=Quantity(value=1, unit="tablett"),
                clock_time=time(9, 0),
                days_on=2,
                days_off=1,
            ),
        ),
    )
    planned = plan_intakes(entry(on_off, start=date(2026, 11, 1)), CONFIG, *two_weeks)
    days = [(p.local_time.date() - date(2026, 11, 1)).days for p in planned]
    assert days == [d for d in range(14) if d % 3 < 2]

    every_other_day = Dosage(
        use=Use.REGULAR,
        fixed=(
            FixedDose(
                amount=Quantity(value=1, unit="tablett"),
                clock_time=time(9, 0),
                interval=Period(value=2, unit="day"),
            ),
        ),
    )
    planned = plan_intakes(entry(every_other_day, start=date(2026, 11, 1)), CONFIG, *two_weeks)
    days = [(p.local_time.date() - date(2026, 11, 1)).days for p in planned]
    assert days == list(range(0, 14, 2))


def test_start_and_stop_dates_bound_the_plan():
    planned = plan_intakes(
        entry(daily(TimeOfDay.MORNING), start=date(2026, 11, 3), stop=date(2026, 11, 5)),
        CONFIG,
        utc(2026, 11, 1, 0),
        utc(2026, 11, 10, 0),
    )
    assert [p.local_time.date().day for p in planned] == [3, 4, 5]


def test_as_needed_on_hold_and_unstructured_entries_plan_nothing():
    window = (utc(2026, 11, 1, 0), utc(2026, 11, 3, 0))
    assert plan_intakes(entry(as_needed()), CONFIG, *window) == []
    held = entry(daily(TimeOfDay.MORNING), status=EntryStatus.ON_HOLD)
    assert plan_intakes(held, CONFIG, *window) == []
    text_only = Dosage(use=Use.REGULAR, text="etter avtale")
    assert plan_intakes(entry(text_only), CONFIG, *window) == []


def test_a_multidose_entry_is_planned_per_bag_time():
    bagged = entry(daily(TimeOfDay.MORNING, TimeOfDay.EVENING)).model_copy(
        update={"multidose": True}
    )
    planned = plan_intakes(bagged, CONFIG, utc(2026, 11, 20, 0), utc(2026, 11, 21, 0))
    assert [p.local_time.strftime("%H:%M") for p in planned] == ["08:00", "18:00"]
    assert all(p.multidose for p in planned)
