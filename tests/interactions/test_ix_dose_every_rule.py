"""Every shipped dose rule, generated from the rule file itself: each absolute or per-kilogram
limit in mass or IE stays silent at the limit and fires just above it, each rule that depends on
age, weight, kidney function or the entry's indication is silent just outside its band, and each
contraindication fires inside its band and not outside.

The hand-written tests in test_ix_dose_patient_limits.py cover what a generated test cannot
(regimens, courses, patches, salts, treatment length); these keep a new or edited rule from
going untested. Patch (release-rate) and mmol limits need a catalogue strength and are left to
those tests."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from interactions.dosage import Dosage, Weekday
from interactions.dose_rules import Condition, DoseRule, load_dose_rules
from interactions.medication import Patient
from tests.interactions.dose_helpers import ADULT, TODAY, doses, exceeded, renal, run

RULES = load_dose_rules().rules
STOP = TODAY + timedelta(days=1)  # short enough for every treatment-length limit
DOSE_UNIT = {"mg": "mg", "IU": "IE"}  # canonical limit unit -> the unit a dose is written in


def inside(when: Condition | None) -> Patient:
    """An adult inside the rule's band, at its edge where the band has one."""
    if when is None:
        return ADULT
    update: dict[str, object] = {}
    if when.age_min is not None:
        update["age"] = when.age_min
    if when.weight_kg_max is not None:
        update["weight_kg"] = when.weight_kg_max
    elif when.weight_kg_above is not None:
        update["weight_kg"] = when.weight_kg_above + 1
    if when.renal_below is not None:
        update["renal"] = renal(when.renal_below - 1)
    elif when.renal_min is not None:
        update["renal"] = renal(when.renal_min)
    if when.hepatic_risk:
        update["hepatic_risk"] = True
    return ADULT.model_copy(update=update)


def outside(when: Condition) -> list[tuple[str, Patient]]:
    """A patient just outside each edge of the band, the other facts inside it."""
    edge = inside(when)
    found: list[tuple[str, Patient]] = []
    if when.age_min is not None:
        found.append((f"age {when.age_min - 1}", edge.model_copy(update={"age": when.age_min - 1})))
    if when.weight_kg_max is not None:
        heavier = when.weight_kg_max + 1
        found.append((f"{heavier:g} kg", edge.model_copy(update={"weight_kg": heavier})))
    if when.weight_kg_above is not None:
        at = when.weight_kg_above
        found.append((f"{at:g} kg", edge.model_copy(update={"weight_kg": at})))
    if when.renal_below is not None:
        at = when.renal_below
        found.append((f"renal {at:g}", edge.model_copy(update={"renal": renal(at)})))
    if when.renal_min is not None:
        below = when.renal_min - 1
        found.append((f"renal {below:g}", edge.model_copy(update={"renal": renal(below)})))
    return found


def limit_for(rule: DoseRule, measure: str, patient: Patient) -> tuple[float, str] | None:
    """The lowest limit of ``measure`` for this patient, as (value, dose unit)."""
    amounts = [limit.amount(patient.weight_kg) for limit in rule.limits(measure)]  # type: ignore[arg-type]
    amounts = [amount for amount in amounts if amount is not None]
    if not amounts or any(amount.unit not in DOSE_UNIT for amount in amounts):
        return None
    lowest = min(amounts, key=lambda amount: amount.value)
    return lowest.value, DOSE_UNIT[lowest.unit]


def dosage(rule: DoseRule, patient: Patient, measure: str, factor: float) -> Dosage | None:
    """A dosage at ``factor`` times the rule's ``measure`` limit, every other limit of the rule
    kept where it can be."""
    found = limit_for(rule, measure, patient)
    if found is None:
        return None
    value, unit = found
    if rule.schedule == "weekly":
        return doses(value * factor, unit, weekday=Weekday.MONDAY)
    if measure == "single":
        return doses(value * factor, unit)
    single = limit_for(rule, "single", patient)
    times = max(1, math.ceil(value / single[0] - 1e-9)) if single else 1
    return doses(value / times * factor, unit, times=times)


def indication(when: Condition | None) -> str | None:
    """An entry indication inside the rule's band: its first ICPC-2 code."""
    if when is None or when.indication_icpc2 is None:
        return None
    return f"{when.indication_icpc2[0]} (inside the rule's indications)"


def ours(rule: DoseRule, dosage: Dosage, patient: Patient) -> set[str]:
    """The measures of this rule the dosage exceeds, for an entry inside its indications."""
    alerts = run(
        rule.atc[0],
        rule.route,
        dosage,
        patient,
        start=TODAY,
        stop=STOP,
        indication=indication(rule.when),
    )
    return {measure for rule_id, measure in exceeded(alerts) if rule_id == rule.id}


CASES = [
    pytest.param(rule, measure, id=f"{rule.id}-{measure}")
    for rule in RULES
    if not rule.regimens
    for measure in ("single", "daily", "weekly")
    if limit_for(rule, measure, inside(rule.when)) is not None
]


def test_the_generated_cases_reach_most_rules() -> None:
    covered = {rule.id for rule, _ in (case.values for case in CASES)}
    contraindications = {rule.id for rule in RULES if rule.contraindicated}
    untested = {rule.id for rule in RULES} - covered - contraindications
    # regimens (dalteparin), patches (release rate), lithium (mmol) and rules with only a
    # course, pause or treatment length: each has its own test in test_ix_dose_patient_limits
    assert untested <= {
        "dalteparin-subcutaneous",
        "fentanyl-transdermal",
        "buprenorphine-transdermal",
        "lithium-oral",
        "metoclopramide-oral",
    }, sorted(untested)


@pytest.mark.parametrize(("rule", "measure"), CASES)
def test_each_limit_is_silent_at_the_limit_and_fires_just_above(
    rule: DoseRule, measure: str
) -> None:
    patient = inside(rule.when)
    at_limit = dosage(rule, patient, measure, 1.0)
    above = dosage(rule, patient, measure, 1.02)
    assert at_limit is not None and above is not None
    assert ours(rule, at_limit, patient) == set()
    assert measure in ours(rule, above, patient)


@pytest.mark.parametrize(
    "rule", [pytest.param(rule, id=rule.id) for rule in RULES if rule.when and not rule.regimens]
)
def test_each_patient_dependent_rule_is_silent_just_outside_its_band(rule: DoseRule) -> None:
    assert rule.when is not None
    measure = next(
        (m for m in ("single", "daily", "weekly") if limit_for(rule, m, inside(rule.when))), None
    )
    cases = [(label, patient, indication(rule.when)) for label, patient in outside(rule.when)]
    if rule.when.indication_icpc2 is not None:
        # another indication (a code no rule names) is outside the band
        cases.append(("indication Z99", inside(rule.when), "Z99 Annen indikasjon"))
    for label, patient, entry_indication in cases:
        if measure is None:  # a contraindication: any dose
            amount = doses(1)
        else:
            found = dosage(rule, inside(rule.when), measure, 1.02)
            assert found is not None
            amount = found
        alerts = run(
            rule.atc[0],
            rule.route,
            amount,
            patient,
            start=TODAY,
            stop=STOP,
            indication=entry_indication,
        )
        fired = {rule_id for rule_id, _ in exceeded(alerts)}
        assert rule.id not in fired, f"{rule.id} fired for a patient at {label}"


@pytest.mark.parametrize(
    "rule", [pytest.param(rule, id=rule.id) for rule in RULES if rule.contraindicated]
)
def test_each_contraindication_fires_inside_its_band(rule: DoseRule) -> None:
    assert ours(rule, doses(1), inside(rule.when)) == {"contraindicated"}
