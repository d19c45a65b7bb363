"""The pure multidose rules: which entries go into bags (configurable by FEST form code) and
on which days and at which intake times a structured dosage puts them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta

from interactions.dosage import Dosage, FixedDose, Period, Quantity, TimeOfDay, TimeUnit, Use
from interactions.drugs import ReferenceKind, ResolvedDrug
from medloop.domain.drug_reference import CatalogueDrug
from medloop.domain.entry import ListEntry
from medloop.domain.multidose.plan import OutsideReason, expected_doses, placement
from medloop.loop.multidose import load_packing_rules

START = date(2026, 11, 30)  # a Monday
TABLET = Quantity(value=1, unit="tablett")


def _entry(form_code: str | None = "53", *, fixed=(), use=Use.REGULAR, multidose=True):
    drug = CatalogueDrug(
        resolved=ResolvedDrug(
            reference_kind=ReferenceKind.PACKAGE,
            reference_id="ID_P",
            name="Testtablett",
            form_code=form_code,
        ),
        catalogue_version=1,
    )
    return ListEntry(
        id=uuid.uuid4(),
        version=1,
        drug=drug,
        use=use,
        start=START,
        multidose=multidose,
        dosage=Dosage(use=use, fixed=fixed) if fixed else None,
        changed_at=datetime(2026, 11, 20, tzinfo=UTC),
    )


def _slots(entry, days=14):
    rules = load_packing_rules()
    found = expected_doses([entry], [START + timedelta(days=n) for n in range(days)], rules)
    return sorted((day, intake) for day, intake, _ in found)


def test_only_flagged_regular_oral_solid_entries_with_intake_times_go_into_bags():
    rules = load_packing_rules()
    morning = (FixedDose(amount=TABLET, time_of_day=TimeOfDay.MORNING),)
    assert placement(_entry(fixed=morning), rules) is None
    assert placement(_entry("25", fixed=morning), rules) is None  # depot tablet
    assert placement(_entry("9", fixed=morning), rules) is OutsideReason.NOT_PACKABLE  # mixture
    assert placement(_entry(None, fixed=morning), rules) is OutsideReason.NOT_PACKABLE
    assert placement(_entry(fixed=morning, multidose=False), rules) is OutsideReason.NOT_FLAGGED
    assert placement(_entry(fixed=morning, use=Use.COURSE), rules) is OutsideReason.NOT_REGULAR
    assert placement(_entry(), rules) is OutsideReason.NO_STRUCTURED_DOSAGE
    untimed = (FixedDose(amount=TABLET),)
    assert placement(_entry(fixed=untimed), rules) is OutsideReason.NO_INTAKE_TIME


def test_the_packable_forms_come_from_a_rules_file_that_can_be_replaced(tmp_path):
    mixture = _entry("9", fixed=(FixedDose(amount=TABLET, time_of_day=TimeOfDay.MORNING),))
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"packable_form_codes": {"9": "Mikstur"}, "period_days": 7}))
    rules = load_packing_rules(path)
    assert placement(mixture, rules) is None and rules.period_days == 7
    assert placement(mixture, load_packing_rules()) is OutsideReason.NOT_PACKABLE


def test_weekdays_day_patterns_intervals_and_clock_times_decide_the_bags():
    weekly = FixedDose(amount=TABLET, time_of_day=TimeOfDay.MORNING, weekdays=("monday",))
    assert _slots(_entry(fixed=(weekly,))) == [
        (START, "morning"),
        (START + timedelta(days=7), "morning"),
    ]
    on_off = FixedDose(amount=TABLET, time_of_day=TimeOfDay.EVENING, days_on=2, days_off=5)
    assert [d for d, _ in _slots(_entry(fixed=(on_off,)))] == [
        START,
        START + timedelta(days=1),
        START + timedelta(days=7),
        START + timedelta(days=8),
    ]
    every_third = FixedDose(
        amount=TABLET, time_of_day=TimeOfDay.NIGHT, interval=Period(value=3, unit=TimeUnit.DAY)
    )
    assert len(_slots(_entry(fixed=(every_third,)))) == 5
    eight_hourly = FixedDose(
        amount=TABLET, clock_time=time(6, 0), interval=Period(value=8, unit=TimeUnit.HOUR)
    )
    assert {i for _, i in _slots(_entry(fixed=(eight_hourly,)), days=1)} == {
        "06:00",
        "14:00",
        "22:00",
    }


def test_two_doses_at_the_same_intake_time_add_up_in_one_bag_line():
    doses = (
        FixedDose(amount=TABLET, time_of_day=TimeOfDay.MORNING),
        FixedDose(amount=Quantity(value=1, unit="tabletter"), time_of_day=TimeOfDay.MORNING),
    )
    found = expected_doses([_entry(fixed=doses)], [START], load_packing_rules())
    [(_, quantity)] = found.items()
    assert quantity.value == 2
