"""FHIR R4 Dosage → medloop's structured dosage (``medloop.api.fhir_dosage``): every element
that maps, every refusal with the element it names, and properties over arbitrary Dosages.
Pure: no database, no HTTP."""

from __future__ import annotations

from datetime import date, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fhir.resources.R4B.dosage import Dosage as FhirDosage
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from interactions.alerts import Alert, DoseNotCheckedDetail, Severity, Source
from interactions.dosage import (
    Dosage,
    DoseNotComputable,
    DoseTotals,
    Period,
    Quantity,
    TimeOfDay,
    TimeUnit,
    Use,
    Weekday,
    totals,
)
from interactions.units import Amount, canonical
from medloop.api.fhir_dosage import (
    DOSAGE_NOT_MAPPED,
    NO_DOSAGE,
    ROOT,
    UCUM,
    MappedDosage,
    NotMapped,
    dosage_of,
    explained,
)

TODAY = date(2026, 11, 20)


def ucum(value: float, code: str, unit: str | None = None) -> dict[str, Any]:
    return {"value": value, "system": UCUM, "code": code, **({"unit": unit} if unit else {})}


def dose(quantity: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [{"doseQuantity": quantity or ucum(500, "mg")}]


def repeat(**fields: Any) -> dict[str, Any]:
    return {"repeat": fields}


DAILY = repeat(frequency=1, period=1, periodUnit="d")


def instruction(**fields: Any) -> dict[str, Any]:
    """A regular 500 mg once-daily Dosage unless ``fields`` say otherwise."""
    return {"doseAndRate": dose(), "timing": DAILY, **fields}


def mapped(*instructions: dict[str, Any]) -> MappedDosage:
    found = dosage_of([FhirDosage.model_validate(d) for d in instructions], TODAY)
    assert isinstance(found, MappedDosage), found
    return found


def refused(*instructions: dict[str, Any]) -> NotMapped:
    found = dosage_of([FhirDosage.model_validate(d) for d in instructions], TODAY)
    assert isinstance(found, NotMapped), found
    return found


def same_unit(quantity: Quantity) -> Amount:
    """Every dose in its own canonical unit: totals in the unit the draft was dosed in."""
    return canonical(quantity.value, quantity.unit)


def totals_of(*instructions: dict[str, Any]) -> DoseTotals:
    return totals(mapped(*instructions).dosage, same_unit)


# --- doses and units ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "unit"),
    [
        (ucum(500, "mg"), "mg"),
        (ucum(1, "g"), "g"),
        (ucum(50, "ug"), "mcg"),
        (ucum(5, "mL"), "ml"),
        (ucum(10, "[iU]"), "IU"),
        (ucum(8, "U"), "U"),
        (ucum(2, "mmol"), "mmol"),
        (ucum(2, "{tbl}"), "tablett"),
        (ucum(2, "{tbl}/1"), "tablett"),
        (ucum(2, "{capsule}"), "kapsel"),
        (ucum(2, "1", "tablet"), "tablett"),
        (ucum(2, "{puff}"), "pust"),
        (ucum(2, "1"), "stk"),
        ({"value": 2, "unit": "tablets"}, "tablett"),
        (
            {"value": 2, "unit": "Tablet", "system": "http://snomed.info/sct", "code": "732936001"},
            "tablett",
        ),
        ({"value": 2, "unit": "tabletter"}, "tabletter"),
        ({"value": 500, "unit": "mg"}, "mg"),
        ({"value": 500, "code": "mg"}, "mg"),
    ],
)
def test_dose_quantity_maps_ucum_codes_and_spoken_units(
    quantity: dict[str, Any], unit: str
) -> None:
    [fixed] = mapped(instruction(doseAndRate=dose(quantity))).dosage.fixed
    assert fixed.amount == Quantity(value=float(quantity["value"]), unit=unit)


def test_text_is_kept_next_to_the_structured_dose() -> None:
    assert mapped(instruction(text="1 tablett daglig")).dosage.text == "1 tablett daglig"


def test_max_dose_per_administration_at_or_above_the_dose_adds_nothing() -> None:
    found = mapped(instruction(maxDosePerAdministration=ucum(1, "g")))
    assert found == mapped(instruction())


# --- timing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timing", "single", "daily", "weekly", "days"),
    [
        (DAILY, 500, 500, 3500, 7),
        (repeat(frequency=3, period=1, periodUnit="d"), 500, 1500, 10500, 7),
        (repeat(frequency=1, period=8, periodUnit="h"), 500, 1500, 10500, 7),
        (repeat(frequency=2, period=12, periodUnit="h"), 500, 2000, 14000, 7),
        (repeat(frequency=1, period=30, periodUnit="min"), 500, 24000, 168000, 7),
        (repeat(frequency=1, period=2, periodUnit="d"), 500, 500, 2000, 4),
        (repeat(frequency=1, period=1, periodUnit="wk"), 500, 500, 500, 1),
        (repeat(frequency=1, period=1, periodUnit="mo"), 500, 500, 500, 1),
        (repeat(when=["MORN", "EVE"]), 500, 1000, 7000, 7),
        (
            repeat(when=["MORN", "NOON", "EVE"], frequency=3, period=1, periodUnit="d"),
            500,
            1500,
            10500,
            7,
        ),
        (repeat(when=["MORN", "EVE"], frequency=1, period=12, periodUnit="h"), 500, 1000, 7000, 7),
        (repeat(when=["AC"], frequency=3, period=1, periodUnit="d"), 500, 1500, 10500, 7),
        (repeat(timeOfDay=["08:00:00", "20:00:00"]), 500, 1000, 7000, 7),
        (
            repeat(dayOfWeek=["mon", "thu"], frequency=1, period=1, periodUnit="d"),
            500,
            500,
            1000,
            2,
        ),
        (repeat(dayOfWeek=["mon"], frequency=1, period=1, periodUnit="wk"), 500, 500, 500, 1),
        (
            repeat(dayOfWeek=["mon", "fri"], frequency=4, period=1, periodUnit="wk"),
            500,
            1000,
            2000,
            2,
        ),
        (repeat(dayOfWeek=["sat"], when=["MORN", "EVE"]), 500, 1000, 1000, 1),
        (repeat(when=["MORN"], frequency=1, period=1, periodUnit="wk"), 500, 500, 500, 1),
    ],
)
def test_frequency_period_when_time_of_day_and_day_of_week_give_the_amounts(
    timing: dict[str, Any], single: float, daily: float, weekly: float, days: int
) -> None:
    found = totals_of(instruction(timing=timing))
    assert (found.single.value, found.daily.value, found.weekly.value) == pytest.approx(
        (single, daily, weekly)
    )
    assert found.single.unit == "mg" and found.dosing_days_per_week == days


@pytest.mark.parametrize(
    ("code", "slot"),
    [
        ("MORN", TimeOfDay.MORNING),
        ("MORN.early", TimeOfDay.MORNING),
        ("MORN.late", TimeOfDay.FORENOON),
        ("NOON", TimeOfDay.MIDDAY),
        ("AFT", TimeOfDay.AFTERNOON),
        ("EVE", TimeOfDay.EVENING),
        ("EVE.late", TimeOfDay.EVENING),
        ("NIGHT", TimeOfDay.NIGHT),
        ("HS", TimeOfDay.NIGHT),
        ("CV", None),
        ("WAKE", None),
    ],
)
def test_when_codes_name_the_time_of_day_slot_or_none(code: str, slot: TimeOfDay | None) -> None:
    [fixed] = mapped(instruction(timing=repeat(when=[code]))).dosage.fixed
    assert fixed.time_of_day is slot and fixed.interval is None


def test_time_of_day_becomes_clock_times_and_day_of_week_weekdays() -> None:
    timing = repeat(timeOfDay=["08:00:00"], dayOfWeek=["mon", "wed"])
    [fixed] = mapped(instruction(timing=timing)).dosage.fixed
    assert fixed.clock_time == time(8, 0)
    assert fixed.weekdays == (Weekday.MONDAY, Weekday.WEDNESDAY)


def test_a_timing_code_next_to_a_repeat_is_not_needed() -> None:
    timing = {**repeat(frequency=2, period=1, periodUnit="d"), "code": {"text": "BID"}}
    assert totals_of(instruction(timing=timing)).daily.value == 1000


def test_bounds_period_gives_the_days_of_use_and_makes_it_a_course() -> None:
    timing = repeat(
        frequency=1,
        period=1,
        periodUnit="d",
        boundsPeriod={"start": "2026-11-23T08:00:00+01:00", "end": "2026-11-29"},
    )
    found = mapped(instruction(timing=timing))
    assert (found.start, found.stop) == (date(2026, 11, 23), date(2026, 11, 29))
    assert found.dosage.use is Use.COURSE
    assert mapped(instruction()).dosage.use is Use.REGULAR


def test_bounds_duration_counts_from_today() -> None:
    timing = repeat(
        frequency=1,
        period=1,
        periodUnit="d",
        boundsDuration={"value": 2, "system": UCUM, "code": "wk"},
    )
    found = mapped(instruction(timing=timing))
    assert (found.start, found.stop) == (None, TODAY + timedelta(days=13))


def test_concurrent_instructions_are_summed_and_their_texts_joined() -> None:
    morning = instruction(timing=repeat(when=["MORN"]), text="1 om morgenen")
    evening = instruction(
        timing=repeat(when=["EVE"]), doseAndRate=dose(ucum(1, "g")), text="2 om kvelden"
    )
    found = mapped(morning, evening)
    assert totals(found.dosage, same_unit).daily == Amount(1500, "mg")
    assert found.dosage.text == "1 om morgenen; 2 om kvelden"
    same_sequence = mapped({**morning, "sequence": 1}, {**evening, "sequence": 1})
    assert same_sequence.dosage.fixed == found.dosage.fixed


# --- as needed ----------------------------------------------------------------------------


def prn(**fields: Any) -> dict[str, Any]:
    return {"asNeededBoolean": True, "doseAndRate": dose(ucum(2, "{tbl}")), **fields}


def per(value: float, code: str, amount: float = 8, unit: str = "{tbl}") -> dict[str, Any]:
    return {"numerator": ucum(amount, unit), "denominator": ucum(value, code)}


def test_as_needed_with_a_maximum_per_day() -> None:
    found = mapped(prn(maxDosePerPeriod=per(1, "d")))
    [dose_] = found.dosage.as_needed
    assert found.dosage.use is Use.AS_NEEDED
    assert dose_.amount == Quantity(value=2, unit="tablett")
    assert dose_.max_per_24h == Quantity(value=8, unit="tablett")
    assert totals(found.dosage, same_unit).daily == Amount(8, "tablett")


def test_as_needed_with_a_maximum_per_other_period_and_a_reason_concept() -> None:
    found = mapped(
        {
            **prn(maxDosePerPeriod=per(8, "h", 4)),
            "asNeededBoolean": None,
            "asNeededCodeableConcept": {"text": "smerter"},
        }
    )
    [dose_] = found.dosage.as_needed
    assert (dose_.max_per_period, dose_.period) == (
        Quantity(value=4, unit="tablett"),
        Period(value=8, unit=TimeUnit.HOUR),
    )
    assert totals(found.dosage, same_unit).daily == Amount(12, "tablett")


def test_as_needed_timing_is_a_minimum_interval_or_a_maximum_per_period() -> None:
    every_4_to_6_hours = prn(timing=repeat(frequency=1, period=4, periodMax=6, periodUnit="h"))
    [dose_] = mapped(every_4_to_6_hours).dosage.as_needed
    assert dose_.min_interval == Period(value=4, unit=TimeUnit.HOUR)
    up_to_3_times_a_day = prn(timing=repeat(frequency=1, frequencyMax=3, period=1, periodUnit="d"))
    [dose_] = mapped(up_to_3_times_a_day).dosage.as_needed
    assert dose_.max_per_24h == Quantity(value=6, unit="tablett")
    at_night = prn(timing=repeat(when=["HS"]))
    assert totals(mapped(at_night).dosage, same_unit).daily == Amount(2, "tablett")


def test_as_needed_timing_and_max_dose_per_period_both_apply() -> None:
    both = prn(
        timing=repeat(frequency=4, period=1, periodUnit="d"), maxDosePerPeriod=per(1, "d", 3, "g")
    )
    [dose_] = mapped(both).dosage.as_needed
    assert dose_.max_per_24h == Quantity(value=8, unit="tablett")
    assert (dose_.max_per_period, dose_.period) == (
        Quantity(value=3, unit="g"),
        Period(value=1, unit=TimeUnit.DAY),
    )
    same_period = prn(
        timing=repeat(frequency=3, period=8, periodUnit="h"), maxDosePerPeriod=per(8, "h", 4)
    )
    [dose_] = mapped(same_period).dosage.as_needed
    assert dose_.max_per_period == Quantity(value=4, unit="tablett")


def test_as_needed_without_any_limit_maps_and_is_left_to_the_dose_check() -> None:
    found = mapped(prn())
    with pytest.raises(DoseNotComputable) as reason:
        totals(found.dosage, same_unit)
    assert reason.value.code == "as-needed-without-maximum"


# --- refusals -----------------------------------------------------------------------------

REFUSALS = [
    ("no dose", instruction(doseAndRate=None, text="som avtalt"), "[0].doseAndRate", "absent"),
    (
        "dose range",
        instruction(
            doseAndRate=[{"doseRange": {"low": ucum(1, "{tbl}"), "high": ucum(2, "{tbl}")}}]
        ),
        "[0].doseAndRate[0].doseRange",
        "single dose",
    ),
    (
        "infusion rate",
        instruction(doseAndRate=[{"rateQuantity": ucum(5, "mL/h")}]),
        "[0].doseAndRate[0].rateQuantity",
        "infusion",
    ),
    (
        "rate ratio",
        instruction(
            doseAndRate=[
                {
                    "doseQuantity": ucum(1, "g"),
                    "rateRatio": {"numerator": ucum(1, "g"), "denominator": ucum(30, "min")},
                }
            ]
        ),
        "[0].doseAndRate[0].rateRatio",
        "infusion",
    ),
    (
        "ordered and calculated",
        instruction(doseAndRate=dose() + dose()),
        "[0].doseAndRate",
        "2 entries",
    ),
    (
        "weight-based unit",
        instruction(doseAndRate=dose(ucum(10, "mg/kg"))),
        "[0].doseAndRate[0].doseQuantity.code",
        "'mg/kg'",
    ),
    (
        "unknown spoken unit",
        instruction(doseAndRate=dose({"value": 1, "unit": "scoop"})),
        "[0].doseAndRate[0].doseQuantity.unit",
        "'scoop'",
    ),
    (
        "coded unit only",
        instruction(
            doseAndRate=dose({"value": 1, "system": "http://snomed.info/sct", "code": "732936001"})
        ),
        "[0].doseAndRate[0].doseQuantity.unit",
        "732936001",
    ),
    (
        "no unit",
        instruction(doseAndRate=dose({"value": 1})),
        "[0].doseAndRate[0].doseQuantity.unit",
        "no unit",
    ),
    (
        "comparator",
        instruction(doseAndRate=dose({**ucum(1, "g"), "comparator": "<"})),
        "[0].doseAndRate[0].doseQuantity.comparator",
        "single amount",
    ),
    (
        "zero dose",
        instruction(doseAndRate=dose(ucum(0, "mg"))),
        "[0].doseAndRate[0].doseQuantity.value",
        "positive",
    ),
    (
        "cap below the dose",
        instruction(maxDosePerAdministration=ucum(250, "mg")),
        "[0].maxDosePerAdministration",
        "less than the dose",
    ),
    ("no timing", instruction(timing=None), "[0].timing", "how often"),
    ("event dates", instruction(timing={"event": ["2026-11-20"]}), "[0].timing.event", "dates"),
    ("code only", instruction(timing={"code": {"text": "BID"}}), "[0].timing.code", "repeat"),
    ("empty repeat", instruction(timing=repeat()), "[0].timing.repeat", "how often"),
    (
        "count",
        instruction(timing=repeat(frequency=1, period=1, periodUnit="d", count=5)),
        "[0].timing.repeat.count",
        "in all",
    ),
    (
        "frequency range",
        instruction(timing=repeat(frequency=1, frequencyMax=3, period=1, periodUnit="d")),
        "[0].timing.repeat.frequencyMax",
        "range",
    ),
    (
        "period range",
        instruction(timing=repeat(frequency=1, period=4, periodMax=6, periodUnit="h")),
        "[0].timing.repeat.periodMax",
        "range",
    ),
    (
        "years",
        instruction(timing=repeat(frequency=1, period=1, periodUnit="a")),
        "[0].timing.repeat.periodUnit",
        "'a'",
    ),
    (
        "seconds",
        instruction(timing=repeat(frequency=1, period=30, periodUnit="s")),
        "[0].timing.repeat.periodUnit",
        "'s'",
    ),
    (
        "no period unit",
        instruction(timing=repeat(frequency=1, period=1)),
        "[0].timing.repeat.periodUnit",
        "absent",
    ),
    (
        "negative period",
        instruction(timing=repeat(frequency=1, period=-1, periodUnit="d")),
        "[0].timing.repeat.period",
        "positive",
    ),
    (
        "period without frequency",
        instruction(timing=repeat(period=1, periodUnit="d")),
        "[0].timing.repeat.frequency",
        "absent",
    ),
    (
        "frequency without period",
        instruction(timing=repeat(frequency=2)),
        "[0].timing.repeat.period",
        "absent",
    ),
    (
        "twice per longer period",
        instruction(timing=repeat(frequency=2, period=1, periodUnit="wk")),
        "[0].timing.repeat.frequency",
        "one day",
    ),
    (
        "frequency against when",
        instruction(timing=repeat(when=["MORN"], frequency=3, period=1, periodUnit="d")),
        "[0].timing.repeat.frequency",
        "1 time(s) a day",
    ),
    (
        "several times once a week",
        instruction(timing=repeat(when=["MORN", "EVE"], frequency=1, period=1, periodUnit="wk")),
        "[0].timing.repeat.when",
        "once per period",
    ),
    (
        "several clock times once a week",
        instruction(
            timing=repeat(
                timeOfDay=["08:00:00", "20:00:00"], frequency=1, period=1, periodUnit="wk"
            )
        ),
        "[0].timing.repeat.timeOfDay",
        "once per period",
    ),
    (
        "weekdays with odd frequency",
        instruction(
            timing=repeat(dayOfWeek=["mon", "tue"], frequency=3, period=1, periodUnit="wk")
        ),
        "[0].timing.repeat.period",
        "each",
    ),
    (
        "weekdays every other day",
        instruction(timing=repeat(dayOfWeek=["mon"], frequency=1, period=2, periodUnit="d")),
        "[0].timing.repeat.period",
        "each",
    ),
    ("immediately", instruction(timing=repeat(when=["IMD"])), "[0].timing.repeat.when[0]", "'IMD'"),
    (
        "any meal with named times",
        instruction(timing=repeat(when=["AC", "MORN"])),
        "[0].timing.repeat.when",
        "any meal",
    ),
    (
        "any meal without frequency",
        instruction(timing=repeat(when=["PC"])),
        "[0].timing.repeat.frequency",
        "any meal",
    ),
    (
        "when and time of day",
        instruction(timing=repeat(when=["MORN"], timeOfDay=["08:00:00"])),
        "[0].timing.repeat.timeOfDay",
        "tim-10",
    ),
    (
        "unknown weekday",
        instruction(timing=repeat(dayOfWeek=["mon", "xyz"])),
        "[0].timing.repeat.dayOfWeek[1]",
        "'xyz'",
    ),
    (
        "bounds range",
        instruction(
            timing={
                "repeat": {
                    **DAILY["repeat"],
                    "boundsRange": {"low": ucum(5, "d"), "high": ucum(10, "d")},
                }
            }
        ),
        "[0].timing.repeat.boundsRange",
        "range",
    ),
    (
        "bounds backwards",
        instruction(
            timing={
                "repeat": {
                    **DAILY["repeat"],
                    "boundsPeriod": {"start": "2026-12-01", "end": "2026-11-01"},
                }
            }
        ),
        "[0].timing.repeat.boundsPeriod",
        "before it starts",
    ),
    (
        "bounds over before today",
        instruction(timing={"repeat": {**DAILY["repeat"], "boundsPeriod": {"end": "2026-11-19"}}}),
        "[0].timing.repeat.boundsPeriod",
        "before it starts",
    ),
    (
        "bounds month only",
        instruction(timing={"repeat": {**DAILY["repeat"], "boundsPeriod": {"start": "2026-12"}}}),
        "[0].timing.repeat.boundsPeriod.start",
        "day",
    ),
    (
        "bounds in months",
        instruction(timing={"repeat": {**DAILY["repeat"], "boundsDuration": ucum(3, "mo")}}),
        "[0].timing.repeat.boundsDuration",
        "whole days or weeks",
    ),
    (
        "bounds in half days",
        instruction(timing={"repeat": {**DAILY["repeat"], "boundsDuration": ucum(1.5, "d")}}),
        "[0].timing.repeat.boundsDuration",
        "whole days or weeks",
    ),
    (
        "modifier extension",
        instruction(
            modifierExtension=[{"url": "https://example.org/not-really", "valueBoolean": True}]
        ),
        "[0].modifierExtension",
        "meaning",
    ),
    (
        "as needed on weekdays",
        prn(timing=repeat(dayOfWeek=["mon"])),
        "[0].timing.repeat.dayOfWeek",
        "named days",
    ),
    (
        "as needed against when",
        prn(timing=repeat(when=["HS"], frequency=2, period=1, periodUnit="d")),
        "[0].timing.repeat.frequency",
        "times named",
    ),
    (
        "as needed limits over two periods",
        prn(timing=repeat(frequency=3, period=8, periodUnit="h"), maxDosePerPeriod=per(12, "h")),
        "[0].maxDosePerPeriod",
        "another period",
    ),
    (
        "as needed limit below one dose",
        prn(maxDosePerPeriod=per(1, "d", 1)),
        "[0].maxDosePerPeriod",
        "less than one dose",
    ),
    (
        "as needed limit in seconds",
        prn(maxDosePerPeriod=per(30, "s")),
        "[0].maxDosePerPeriod.denominator",
        "'s'",
    ),
]


@pytest.mark.parametrize(
    ("instructions", "element", "reason"),
    [pytest.param([d], element, reason, id=name) for name, d, element, reason in REFUSALS],
)
def test_what_cannot_be_mapped_faithfully_is_refused_naming_the_element(
    instructions: list[dict[str, Any]], element: str, reason: str
) -> None:
    found = refused(*instructions)
    assert found.element == ROOT + element
    assert reason in found.reason
    assert found.code == DOSAGE_NOT_MAPPED


def test_instructions_in_sequence_are_refused() -> None:
    first, second = instruction(sequence=1), instruction(sequence=2)
    assert refused(first, second).element == f"{ROOT}[1].sequence"


def test_regular_and_as_needed_instructions_together_are_refused() -> None:
    found = refused(instruction(), prn(maxDosePerPeriod=per(1, "d")))
    assert found.element == f"{ROOT}[1].asNeeded[x]"


def test_concurrent_instructions_with_different_bounds_are_refused() -> None:
    later = instruction(
        timing={"repeat": {**DAILY["repeat"], "boundsPeriod": {"start": "2026-12-01"}}}
    )
    assert refused(instruction(), later).element == f"{ROOT}[1].timing.repeat.bounds[x]"


def test_a_draft_without_dosage_instructions_says_so() -> None:
    assert dosage_of([], TODAY) == NotMapped(
        ROOT, "the draft has no dosage instruction", code=NO_DOSAGE
    )
    assert dosage_of(None, TODAY) == dosage_of([], TODAY)


# --- telling why in the alerts ------------------------------------------------------------


def not_checked(medication: str, reason_code: str = NO_DOSAGE) -> Alert:
    return Alert(
        severity=Severity.INFO,
        medications=(medication,),
        summary="Dose of paracetamol not checked (Paracet): the entry has no dosage",
        detail=DoseNotCheckedDetail(
            substance="paracetamol",
            atc="N02BE01",
            reason_code=reason_code,
            reason="the entry has no dosage",
            rule_id="paracetamol-oral",
        ),
        source=Source(catalogue_version=1, hentet_dato="2026-11-02"),
    )


def test_explained_names_the_fhir_element_in_the_no_dosage_alert_of_that_draft_only() -> None:
    why = refused(instruction(doseAndRate=[{"rateQuantity": ucum(5, "mL/h")}]))
    other, unrelated = not_checked("rx2"), not_checked("rx1", "strength-unknown")
    [told, *rest] = explained(
        [not_checked("rx1"), other, unrelated], {"rx1": why}, {"rx1": "Paracet"}
    )
    assert rest == [other, unrelated]
    detail = told.detail
    assert isinstance(detail, DoseNotCheckedDetail)
    assert detail.reason_code == DOSAGE_NOT_MAPPED
    assert f"{ROOT}[0].doseAndRate[0].rateQuantity" in detail.reason
    assert told.summary.startswith("Dose of paracetamol not checked (Paracet): the FHIR dosage")
    assert told.key == "dose-not-checked/paracetamol-oral:dosage-not-mapped/rx1"


def test_explained_keeps_the_no_dosage_key_when_the_draft_has_no_dosage() -> None:
    [told] = explained([not_checked("rx1")], {"rx1": dosage_of([], TODAY)}, {})
    assert told.key == not_checked("rx1").key
    assert isinstance(told.detail, DoseNotCheckedDetail)
    assert told.detail.reason == f"{ROOT}: the draft has no dosage instruction"


# --- properties ---------------------------------------------------------------------------

UNIT_CODES = ("mg", "g", "ug", "mL", "[iU]", "{tbl}", "1", "mg/kg", "mL/h", "xyz", "{puff}")
PERIOD_UNITS = ("s", "min", "h", "d", "wk", "mo", "a", "zz")
WHEN = (
    "MORN",
    "MORN.late",
    "NOON",
    "AFT",
    "EVE",
    "NIGHT",
    "HS",
    "WAKE",
    "C",
    "AC",
    "PCV",
    "IMD",
    "FOO",
)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "xyz")
values = st.decimals(min_value=Decimal("-1"), max_value=Decimal("1e6"), places=3, allow_nan=False)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


good_quantities = st.builds(
    ucum,
    st.decimals(min_value=Decimal("0.1"), max_value=Decimal("2000"), places=1),
    st.sampled_from(("mg", "g", "mL", "{tbl}", "1")),
)
odd_quantities = st.fixed_dictionaries(
    {"value": values},
    optional={
        "system": st.sampled_from((UCUM, "http://snomed.info/sct")),
        "code": st.sampled_from(UNIT_CODES),
        "unit": st.sampled_from(("tablet", "mg", "mL", "scoop", "kapsler", "d", "hours")),
        "comparator": st.sampled_from(("<", ">=")),
    },
)
quantities = st.one_of(good_quantities, good_quantities, good_quantities, odd_quantities)
durations = st.fixed_dictionaries(
    {
        "value": st.one_of(st.sampled_from((1, 4, 8, 12, 24)), values),
        "system": st.just(UCUM),
        "code": st.sampled_from(("h", "d", "d", "wk", *PERIOD_UNITS)),
    }
)


def one_of_keys(**choices: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """At most one of a FHIR choice type's elements (``bounds[x]``, ``asNeeded[x]`` …)."""
    return st.one_of(
        st.just({}), *(st.builds(lambda v, k=k: {k: v}, value) for k, value in choices.items())
    )


def merged(*parts: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(*parts).map(lambda found: {k: v for part in found for k, v in part.items()})


# Mostly plausible schedules, with every oddity possible but rarer.
repeats = merged(
    st.fixed_dictionaries(
        {},
        optional={
            "frequency": st.integers(1, 6),
            "period": st.one_of(st.sampled_from((1, 1, 2, 8, 12)), values),
            "periodUnit": st.sampled_from(("d", "d", "h", "wk", *PERIOD_UNITS)),
        },
    ),
    st.one_of(
        st.just({}),
        st.just({}),
        st.fixed_dictionaries({"when": st.lists(st.sampled_from(WHEN), min_size=1, max_size=4)}),
        st.fixed_dictionaries(
            {
                "timeOfDay": st.lists(
                    st.sampled_from(("08:00:00", "14:00:00", "22:00:00")), min_size=1, max_size=3
                )
            }
        ),
    ),
    st.one_of(
        st.just({}),
        st.just({}),
        st.fixed_dictionaries(
            {"dayOfWeek": st.lists(st.sampled_from(DAYS), min_size=1, max_size=4)}
        ),
        st.fixed_dictionaries(
            {},
            optional={
                "frequencyMax": st.integers(1, 30),
                "periodMax": values,
                "count": st.integers(1, 5),
            },
        ),
    ),
    one_of_keys(
        boundsDuration=durations,
        boundsPeriod=st.fixed_dictionaries(
            {},
            optional={
                "start": st.sampled_from(("2026-11-01", "2026-12", "2026-11-25T10:00:00+01:00")),
                "end": st.sampled_from(("2026-11-30", "2026-10-01")),
            },
        ),
    ),
)
single_doses = st.builds(lambda q: [{"doseQuantity": q}], quantities)
doses_and_rates = st.one_of(
    single_doses,
    single_doses,
    single_doses,
    st.lists(
        merged(
            one_of_keys(
                doseQuantity=quantities,
                doseRange=st.fixed_dictionaries({"low": quantities, "high": quantities}),
            ),
            one_of_keys(rateQuantity=quantities),
        ),
        min_size=1,
        max_size=2,
    ),
)
fhir_dosages = merged(
    st.fixed_dictionaries(
        {"doseAndRate": doses_and_rates},
        optional={
            "timing": st.fixed_dictionaries({"repeat": repeats}),
            "text": st.sampled_from(("1 tablett", "ved behov")),
            "maxDosePerPeriod": st.fixed_dictionaries(
                {"numerator": quantities, "denominator": durations}
            ),
            "maxDosePerAdministration": quantities,
        },
    ),
    one_of_keys(
        asNeededBoolean=st.booleans(), asNeededCodeableConcept=st.just({"text": "smerter"})
    ),
)
plausible = st.fixed_dictionaries(
    {
        "doseAndRate": single_doses.filter(lambda d: "comparator" not in d[0]["doseQuantity"]),
        "timing": st.fixed_dictionaries(
            {
                "repeat": merged(
                    st.fixed_dictionaries(
                        {
                            "frequency": st.integers(1, 4),
                            "period": st.sampled_from((1, 2, 6, 8, 12)),
                            "periodUnit": st.sampled_from(("h", "d", "wk")),
                        }
                    ),
                    st.one_of(
                        st.just({}),
                        st.fixed_dictionaries(
                            {"when": st.lists(st.sampled_from(WHEN[:8]), min_size=1, max_size=3)}
                        ),
                        st.fixed_dictionaries(
                            {
                                "dayOfWeek": st.lists(
                                    st.sampled_from(DAYS[:7]), min_size=1, max_size=3, unique=True
                                )
                            }
                        ),
                    ),
                )
            }
        ),
    },
    optional={
        "asNeededBoolean": st.booleans(),
        "maxDosePerPeriod": st.fixed_dictionaries(
            {"numerator": good_quantities, "denominator": durations}
        ),
    },
)
several = st.one_of(
    st.lists(plausible, min_size=1, max_size=1),
    st.lists(plausible, min_size=1, max_size=1),
    st.lists(plausible, min_size=1, max_size=2),
    st.lists(fhir_dosages, min_size=1, max_size=1),
    st.lists(fhir_dosages, max_size=3),
    st.lists(
        st.builds(lambda d, n: {**d, "sequence": n}, fhir_dosages, st.integers(1, 2)), max_size=3
    ),
)


def validated(instructions: list[dict[str, Any]]) -> list[FhirDosage]:
    try:
        return [FhirDosage.model_validate(d) for d in instructions]
    except ValidationError:
        assume(False)
        raise


@settings(max_examples=400)
@given(several)
def test_mapping_never_raises_and_gives_a_dosage_the_arithmetic_accepts_or_a_reason(
    instructions: list[dict[str, Any]],
) -> None:
    found = dosage_of(validated(instructions), TODAY)
    if isinstance(found, NotMapped):
        assert found.element.startswith(ROOT) and found.reason
        return
    assert isinstance(found.dosage, Dosage)
    assert found.start is None or found.stop is None or found.start <= found.stop
    try:
        amounts = totals(found.dosage, same_unit)
    except DoseNotComputable:
        return
    assert 0 < amounts.single.value <= amounts.daily.value <= amounts.weekly.value
    assert 1 <= amounts.dosing_days_per_week <= 7


@settings(max_examples=200)
@given(
    st.integers(1, 24),
    st.sampled_from((1, 2, 3, 4, 6, 8, 12, 24)),
    st.decimals(min_value=Decimal("0.5"), max_value=Decimal("2000"), places=1),
)
def test_regular_frequency_per_period_of_hours_gives_exactly_that_many_intakes_a_day(
    frequency: int, hours: int, amount: Decimal
) -> None:
    timing = repeat(frequency=frequency, period=hours, periodUnit="h")
    found = totals_of(instruction(timing=timing, doseAndRate=dose(ucum(float(amount), "mg"))))
    assert found.daily.value == pytest.approx(float(amount) * (frequency * 24 // hours))
    assert found.weekly.value == pytest.approx(found.daily.value * 7)
