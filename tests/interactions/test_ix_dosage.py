"""The structured dosage model and its arithmetic."""

from datetime import time
from typing import Any

import pytest
from pydantic import ValidationError

from interactions.dosage import (
    AsNeededDose,
    Dosage,
    DoseNotComputable,
    FixedDose,
    Period,
    Quantity,
    ShortDose,
    TimeOfDay,
    Use,
    Weekday,
    totals,
)
from interactions.units import Amount, canonical


def as_mg(quantity: Quantity) -> Amount:
    """Counts one dose-form unit as 100 mg, so arithmetic is easy to read."""
    if quantity.unit == "tablett":
        return Amount(quantity.value * 100, "mg")
    return canonical(quantity.value, quantity.unit)


def dose(amount: float = 1, unit: str = "tablett", **fields: Any) -> FixedDose:
    return FixedDose(amount=Quantity(value=amount, unit=unit), **fields)


def test_dosage_round_trips_through_json() -> None:
    dosage = Dosage(
        use=Use.REGULAR,
        fixed=(
            dose(time_of_day=TimeOfDay.MORNING),
            dose(2, clock_time=time(20, 0), exact=True, weekdays=(Weekday.MONDAY,)),
        ),
        short_dose=ShortDose(code="5559", text="1+0+0+1"),
        text="1 tablett morgen",
    )
    assert Dosage.model_validate_json(dosage.model_dump_json()) == dosage


def test_time_of_day_and_weekday_map_to_e_resept_codes() -> None:
    assert TimeOfDay.MORNING.code == "1"
    assert TimeOfDay.from_code("5") is TimeOfDay.EVENING
    assert Weekday.from_code("7") is Weekday.SUNDAY


def test_fixed_and_as_needed_doses_do_not_mix() -> None:
    with pytest.raises(ValidationError):
        Dosage(
            use=Use.REGULAR,
            fixed=(dose(),),
            as_needed=(AsNeededDose(amount=Quantity(value=1, unit="tablett")),),
        )
    with pytest.raises(ValidationError):
        Dosage(use=Use.REGULAR, as_needed=(AsNeededDose(amount=Quantity(value=1, unit="tablett")),))


def test_day_on_off_pattern_needs_both_halves() -> None:
    with pytest.raises(ValidationError):
        dose(days_on=5)


def test_daily_amount_sums_time_of_day_slots() -> None:
    dosage = Dosage(use=Use.REGULAR, fixed=(dose(2), dose(1), dose(1)))
    result = totals(dosage, as_mg)
    assert (result.single, result.daily, result.weekly) == (
        Amount(200, "mg"),
        Amount(400, "mg"),
        Amount(2800, "mg"),
    )
    assert result.dosing_days_per_week == 7


def test_hourly_interval_multiplies_the_daily_amount() -> None:
    dosage = Dosage(use=Use.REGULAR, fixed=(dose(interval=Period(value=8, unit="hour")),))
    assert totals(dosage, as_mg).daily == Amount(300, "mg")
    every_five = Dosage(use=Use.REGULAR, fixed=(dose(interval=Period(value=5, unit="hour")),))
    assert totals(every_five, as_mg).daily == Amount(500, "mg")


def test_weekday_doses_peak_on_the_busiest_day() -> None:
    dosage = Dosage(
        use=Use.REGULAR,
        fixed=(dose(3, weekdays=(Weekday.MONDAY,)), dose(1, weekdays=(Weekday.THURSDAY,))),
    )
    result = totals(dosage, as_mg)
    assert result.daily == Amount(300, "mg")
    assert result.weekly == Amount(400, "mg")
    assert result.dosing_days_per_week == 2


def test_day_intervals_and_on_off_patterns_count_dosing_days() -> None:
    every_other = Dosage(use=Use.REGULAR, fixed=(dose(interval=Period(value=2, unit="day")),))
    assert totals(every_other, as_mg).dosing_days_per_week == 4
    weekly = Dosage(use=Use.REGULAR, fixed=(dose(interval=Period(value=1, unit="week")),))
    assert totals(weekly, as_mg).dosing_days_per_week == 1
    three_on_three_off = Dosage(use=Use.REGULAR, fixed=(dose(days_on=3, days_off=3),))
    assert totals(three_on_three_off, as_mg).dosing_days_per_week == 4
    five_on_two_off = Dosage(use=Use.REGULAR, fixed=(dose(days_on=5, days_off=2),))
    assert totals(five_on_two_off, as_mg).weekly == Amount(500, "mg")


def test_as_needed_maximum_comes_from_the_dosage_itself() -> None:
    capped = Dosage(
        use=Use.AS_NEEDED,
        as_needed=(
            AsNeededDose(
                amount=Quantity(value=2, unit="tablett"),
                max_per_24h=Quantity(value=6, unit="tablett"),
                min_interval=Period(value=4, unit="hour"),
            ),
        ),
    )
    result = totals(capped, as_mg)
    assert (result.single, result.daily) == (Amount(200, "mg"), Amount(600, "mg"))
    by_interval = Dosage(
        use=Use.AS_NEEDED,
        as_needed=(
            AsNeededDose(
                amount=Quantity(value=1, unit="tablett"), min_interval=Period(value=6, unit="hour")
            ),
        ),
    )
    assert totals(by_interval, as_mg).daily == Amount(400, "mg")
    by_period = Dosage(
        use=Use.AS_NEEDED,
        as_needed=(
            AsNeededDose(
                amount=Quantity(value=1, unit="tablett"),
                max_per_period=Quantity(value=1, unit="tablett"),
                period=Period(value=7, unit="day"),
            ),
        ),
    )
    assert totals(by_period, as_mg).weekly == Amount(100, "mg")
    assert totals(by_period, as_mg).dosing_days_per_week == 1


def test_as_needed_without_any_limit_is_not_computable() -> None:
    open_ended = Dosage(
        use=Use.AS_NEEDED, as_needed=(AsNeededDose(amount=Quantity(value=1, unit="tablett")),)
    )
    with pytest.raises(DoseNotComputable) as raised:
        totals(open_ended, as_mg)
    assert raised.value.code == "as-needed-without-maximum"


def test_short_dose_or_text_alone_is_not_computable() -> None:
    coded = Dosage(use=Use.REGULAR, short_dose=ShortDose(code="93", text="1 daglig"))
    with pytest.raises(DoseNotComputable) as raised:
        totals(coded, as_mg)
    assert raised.value.code == "no-structured-dosage"


def test_units_that_cannot_be_added_are_not_computable() -> None:
    mixed = Dosage(use=Use.REGULAR, fixed=(dose(1, "mg"), dose(1, "IE")))
    with pytest.raises(DoseNotComputable) as raised:
        totals(mixed, as_mg)
    assert raised.value.code == "mixed-units"


def test_units_convert_within_a_dimension_only() -> None:
    assert canonical(0.5, "g") == Amount(500, "mg")
    assert canonical(250, "mikrog") == Amount(0.25, "mg")
    assert canonical(2, "mill IE") == Amount(2_000_000, "IU")
    assert canonical(1, "IE") != canonical(1, "E")
