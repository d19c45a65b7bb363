"""Dose checks against the shipped rule file."""

from datetime import date

from interactions import Alert, Kind, Medication, Patient, Severity, check
from interactions.alerts import DoseDetail, DoseNotCheckedDetail
from interactions.dosage import TimeOfDay, Weekday
from tests.interactions.helpers import as_needed, detail, fixed, knowledge, med, weekly

MORNING, EVENING = TimeOfDay.MORNING, TimeOfDay.EVENING
FOUR_TIMES = (TimeOfDay.MORNING, TimeOfDay.MIDDAY, TimeOfDay.EVENING, TimeOfDay.NIGHT)
# Paracetamol has a lower limit at 50 kg or less: these adults' weight rules it out.
ADULT = Patient(weight_kg=70, age=50)


def dose_alerts(
    medications: list[Medication],
    patient: Patient | None = None,
    proposed: list[str] | None = None,
) -> list[Alert]:
    alerts = check(knowledge(), medications, patient=patient, proposed=proposed)
    return [a for a in alerts if a.kind in (Kind.DOSE, Kind.DOSE_NOT_CHECKED)]


def measured(alerts: list[Alert]) -> dict[str, float]:
    """Exceeded measure → amount."""
    return {detail(a, DoseDetail).measure: detail(a, DoseDetail).amount for a in alerts}


def reasons(alerts: list[Alert]) -> set[tuple[str, str]]:
    return {
        (a.medications[0], detail(a, DoseNotCheckedDetail).reason_code)
        for a in alerts
        if a.kind is Kind.DOSE_NOT_CHECKED
    }


def test_paracetamol_is_summed_across_combination_and_plain_products() -> None:
    combination = med("PK_PARALGIN_FORTE", dosage=fixed(2, "tabletter", *FOUR_TIMES))
    plain = med("PK_PARACET", dosage=fixed(1, "tablett", MORNING, EVENING))
    [alert] = dose_alerts([combination, plain], patient=ADULT)
    assert alert.kind is Kind.DOSE
    assert alert.severity is Severity.AVOID and alert.requires_override
    assert alert.medications == ("PK_PARACET", "PK_PARALGIN_FORTE")
    found = detail(alert, DoseDetail)
    assert (found.measure, found.atc, found.amount, found.unit) == ("daily", "N02BE01", 4200, "mg")
    assert {c.medication: c.amount for c in found.contributions} == {
        "PK_PARACET": 1000,
        "PK_PARALGIN_FORTE": 3200,
    }
    assert (found.limit, found.limit_amount) == ("4 g", 4000)
    assert found.rule_id == alert.source.rule_id == "paracetamol-oral"
    assert "4.2" in found.citation


def test_a_sum_within_the_limit_raises_nothing() -> None:
    combination = med("PK_PARALGIN_FORTE", dosage=fixed(2, "tablett", MORNING, EVENING))
    plain = med("PK_PARACET", dosage=fixed(2, "tablett", MORNING, EVENING))
    assert dose_alerts([combination, plain], patient=ADULT) == []


def test_doses_are_summed_only_while_entries_are_in_use_together() -> None:
    combination = med(
        "PK_PARALGIN_FORTE", dosage=fixed(2, "tablett", *FOUR_TIMES), stop=date(2026, 1, 31)
    )
    plain = med("PK_PARACET", dosage=fixed(1, "tablett", MORNING, EVENING), start=date(2026, 2, 1))
    assert dose_alerts([combination, plain], patient=ADULT) == []


def test_single_dose_above_the_maximum() -> None:
    assert measured(dose_alerts([med("PK_PARACET", dosage=fixed(3))])) == {"single": 1500}


def test_as_needed_maximum_per_24h_comes_from_the_dosage() -> None:
    too_much = med("PK_PARACET", dosage=as_needed(2, max_per_24h=10))
    assert measured(dose_alerts([too_much], patient=ADULT)) == {"daily": 5000}
    just_below = med("PK_PARACET", dosage=as_needed(2, max_per_24h=8))
    assert dose_alerts([just_below], patient=ADULT) == []


def test_as_needed_without_a_maximum_is_not_checked() -> None:
    alerts = dose_alerts([med("PK_PARACET", dosage=as_needed(1))])
    assert reasons(alerts) == {("PK_PARACET", "as-needed-without-maximum")}


def test_international_units_are_never_converted_to_mass() -> None:
    alerts = dose_alerts([med("P_DIVISUN", dosage=fixed(10))])
    assert reasons(alerts) == {("P_DIVISUN", "unit-incompatible")}
    assert all(a.kind is Kind.DOSE_NOT_CHECKED for a in alerts)
    assert "IU" in detail(alerts[0], DoseNotCheckedDetail).reason


def test_weight_based_limit_without_weight_is_not_checked_and_no_weight_is_assumed() -> None:
    enoxaparin = med("PK_INHIXA", dosage=fixed(1, "ml", MORNING, EVENING))
    assert reasons(dose_alerts([enoxaparin])) == {("PK_INHIXA", "weight-unknown")}


def test_weight_based_limit_uses_the_patient_weight() -> None:
    enoxaparin = med("PK_INHIXA", dosage=fixed(1, "ml", MORNING, EVENING))
    alerts = dose_alerts([enoxaparin], patient=Patient(weight_kg=60))
    limits = {detail(a, DoseDetail).measure: detail(a, DoseDetail).limit_amount for a in alerts}
    assert limits == {"single": 90, "daily": 120}
    assert all(detail(a, DoseDetail).weight_kg == 60 for a in alerts)
    assert dose_alerts([enoxaparin], patient=Patient(weight_kg=100)) == []


def test_missing_strength_is_not_checked_unless_the_dose_is_a_substance_amount() -> None:
    by_tablet = med("P_PARACETAMOL_NO_STRENGTH", dosage=fixed(1))
    assert reasons(dose_alerts([by_tablet])) == {("P_PARACETAMOL_NO_STRENGTH", "strength-unknown")}
    by_mass = med("P_PARACETAMOL_NO_STRENGTH", dosage=fixed(1.5, "g"))
    assert measured(dose_alerts([by_mass])) == {"single": 1500}


def test_unknown_route_is_not_checked() -> None:
    alerts = dose_alerts([med("P_PARACET_NO_ROUTE", dosage=fixed(1))])
    assert reasons(alerts) == {("P_PARACET_NO_ROUTE", "route-unknown")}


def test_a_dose_unit_that_does_not_fit_the_strength_is_not_checked() -> None:
    alerts = dose_alerts([med("PK_PARACET", dosage=fixed(5, "ml"))])
    assert reasons(alerts) == {("PK_PARACET", "unit-incompatible")}


def test_a_combination_product_dosed_by_mass_is_not_checked() -> None:
    alerts = dose_alerts([med("PK_PARALGIN_FORTE", dosage=fixed(500, "mg"))])
    assert ("PK_PARALGIN_FORTE", "combination-dosed-by-amount") in reasons(alerts)


def test_an_entry_without_dosage_is_reported_as_not_checked() -> None:
    assert reasons(dose_alerts([med("PK_PARACET")])) == {("PK_PARACET", "no-dosage")}


def test_weekly_substance_dosed_daily_is_flagged() -> None:
    [alert] = dose_alerts([med("PK_METHOTREXATE", dosage=fixed(1))])
    assert measured([alert]) == {"schedule": 7}
    assert alert.requires_override


def test_weekly_substance_dosed_weekly_is_fine_until_the_weekly_maximum() -> None:
    assert dose_alerts([med("PK_METHOTREXATE", dosage=weekly(6, "tablett", Weekday.FRIDAY))]) == []
    too_much = med("PK_METHOTREXATE", dosage=weekly(14, "tablett", Weekday.FRIDAY))
    assert measured(dose_alerts([too_much])) == {"single": 35, "weekly": 35}


def test_proposed_drug_is_checked_with_the_sum_over_the_list() -> None:
    existing = med("PK_PARALGIN_FORTE", dosage=fixed(2, "tablett", *FOUR_TIMES))
    new = med("PK_PARACET", dosage=fixed(1, "tablett", MORNING, EVENING))
    [alert] = dose_alerts([existing, new], patient=ADULT, proposed=["PK_PARACET"])
    assert alert.medications == ("PK_PARACET", "PK_PARALGIN_FORTE")
    unrelated = med("PK_MAREVAN", dosage=fixed(1))
    assert dose_alerts([existing, new, unrelated], proposed=["PK_MAREVAN"]) == []
