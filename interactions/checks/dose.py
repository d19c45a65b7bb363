"""Dose limits: single, daily and weekly amounts per substance against the curated rules.

For every entry component (a strength with an ATC level-5 code) that has a rule for the entry's
route, the structured dosage and the catalogue strength give the substance amount per dose. Daily
and weekly amounts of one substance are summed over the entries in use at the same time
(paracetamol in a combination product plus plain paracetamol), at the moment the sum peaks; the
tightest limit of the rules involved applies. Weekly-dosed substances dosed on more than one day a
week are flagged. Whatever cannot be computed without guessing — no structured dosage, no
strength, unknown route, units that do not convert, a weight-based limit without a weight —
becomes an explicit ``dose-not-checked`` alert with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import partial

from interactions import atc
from interactions.alerts import (
    Alert,
    Contribution,
    DoseDetail,
    DoseMeasure,
    DoseNotCheckedDetail,
    Severity,
    shorten,
)
from interactions.checks.context import CheckContext, Entry
from interactions.dosage import DoseNotComputable, DoseTotals, Quantity, totals
from interactions.dose_rules import DoseRule, Limit, Measure
from interactions.drugs import ResolvedDrug, ResolvedStrength
from interactions.units import Amount, Dimension, canonical, unit_info

_SUBSTANCE_DIMENSIONS = frozenset(
    {Dimension.MASS, Dimension.INTERNATIONAL_UNIT, Dimension.UNIT, Dimension.AMOUNT_OF_SUBSTANCE}
)
_TOLERANCE = 1e-9
_SUMMED: tuple[Measure, ...] = ("daily", "weekly")


@dataclass(frozen=True, slots=True)
class _Component:
    """One substance of a drug that dose rules can speak about."""

    atc: str
    strength: ResolvedStrength | None
    single_substance: bool


@dataclass(frozen=True, slots=True)
class _Dosed:
    """What one entry gives of one substance, under the rule for its route."""

    entry: Entry
    rule: DoseRule
    totals: DoseTotals

    def amount(self, measure: Measure) -> Amount:
        return {
            "single": self.totals.single,
            "daily": self.totals.daily,
            "weekly": self.totals.weekly,
        }[measure]

    def in_use_on(self, day: date) -> bool:
        medication = self.entry.medication
        return (medication.start or date.min) <= day <= (medication.stop or date.max)


@dataclass(frozen=True, slots=True)
class _Exceeded:
    """A limit exceeded, with what each entry contributed to ``total``."""

    measure: DoseMeasure
    total: float
    allowed: Amount
    limit: str
    rule: DoseRule
    contributions: tuple[tuple[Entry, float], ...]


@dataclass
class _NotChecked:
    """Why doses were not checked, per focus entry, rule and reason."""

    found: dict[tuple[str, str, str], tuple[Entry, DoseRule, str, str, str]] = field(
        default_factory=dict
    )

    def add(self, entry: Entry, rule: DoseRule, atc_code: str, code: str, reason: str) -> None:
        if entry.in_focus:
            self.found.setdefault((entry.id, rule.id, code), (entry, rule, atc_code, code, reason))

    def alerts(self, context: CheckContext) -> Iterator[Alert]:
        for key in sorted(self.found):
            entry, rule, atc_code, code, reason = self.found[key]
            detail = DoseNotCheckedDetail(
                substance=rule.substance,
                atc=atc_code,
                reason_code=code,
                reason=reason,
                rule_id=rule.id,
            )
            yield Alert(
                severity=Severity.INFO,
                medications=(entry.id,),
                summary=shorten(f"Dose of {rule.substance} not checked ({entry.name}): {reason}"),
                detail=detail,
                source=context.source(rule_id=rule.id),
            )


def dose_alerts(context: CheckContext) -> Iterator[Alert]:
    not_checked = _NotChecked()
    dosed = _dosed_by_substance(context, not_checked)
    weight = context.patient.weight_kg
    for code, items in sorted(dosed.items()):
        focus = [item for item in items if item.entry.in_focus]
        found = [
            *(_exceeded(code, [item], "single", weight, not_checked, _each) for item in focus),
            *(_exceeded(code, items, m, weight, not_checked, _peak) for m in _SUMMED),
            *(_dosed_too_often(item) for item in focus),
        ]
        for exceeded in found:
            if exceeded is not None:
                yield _dose_alert(context, code, exceeded, weight)
    yield from not_checked.alerts(context)


def _dosed_too_often(item: _Dosed) -> _Exceeded | None:
    """A once-weekly substance dosed on more than one day a week."""
    days = item.totals.dosing_days_per_week
    if item.rule.schedule != "weekly" or days <= 1:
        return None
    return _Exceeded(
        "schedule", days, Amount(1, "days/week"), "1 day a week", item.rule, ((item.entry, days),)
    )


def _dose_alert(
    context: CheckContext, code: str, exceeded: _Exceeded, weight: float | None
) -> Alert:
    rule, unit = exceeded.rule, exceeded.allowed.unit
    contributions = sorted(exceeded.contributions, key=lambda contribution: contribution[0].id)
    names = " + ".join(entry.name for entry, _ in contributions)
    if exceeded.measure == "schedule":
        summary = (
            f"{rule.substance} is a once-weekly drug but is dosed on "
            f"{exceeded.total:g} days a week ({names})"
        )
    else:
        summary = (
            f"{exceeded.measure.capitalize()} dose of {rule.substance} {exceeded.total:g} {unit} "
            f"exceeds the maximum {exceeded.limit} ({names})"
        )
    return Alert(
        severity=Severity.AVOID,
        medications=tuple(entry.id for entry, _ in contributions),
        summary=shorten(summary),
        detail=DoseDetail(
            measure=exceeded.measure,
            substance=rule.substance,
            atc=code,
            amount=exceeded.total,
            limit=exceeded.limit,
            limit_amount=exceeded.allowed.value,
            unit=unit,
            contributions=tuple(
                Contribution(medication=entry.id, amount=amount) for entry, amount in contributions
            ),
            weight_kg=weight,
            rule_id=rule.id,
            citation=rule.source.citation,
            url=rule.source.url,
            note=rule.note,
        ),
        source=context.source(rule_id=rule.id),
    )


def _dosed_by_substance(
    context: CheckContext, not_checked: _NotChecked
) -> dict[str, list[_Dosed]]:
    """What every entry gives of each substance a focus entry contains and rules cover."""
    wanted = {c.atc for entry in context.focus for c in _components(entry.medication.drug)}
    dosed: defaultdict[str, list[_Dosed]] = defaultdict(list)
    for entry in context.entries:
        drug, dosage = entry.medication.drug, entry.medication.dosage
        for component in _components(drug):
            if component.atc not in wanted:
                continue
            rules = context.knowledge.dose_rules_for(component.atc)
            if not rules:
                continue
            if not drug.route_codes:
                not_checked.add(
                    entry, rules[0], component.atc, "route-unknown", "the route is not known"
                )
                continue
            rule = next((r for r in rules if r.route in drug.route_codes), None)
            if rule is None:
                continue
            if dosage is None:
                not_checked.add(entry, rule, component.atc, "no-dosage", "the entry has no dosage")
                continue
            try:
                amounts = totals(dosage, partial(_substance_per_dose, component))
            except DoseNotComputable as reason:
                not_checked.add(entry, rule, component.atc, reason.code, str(reason))
                continue
            dosed[component.atc].append(_Dosed(entry, rule, amounts))
    return dosed


def _components(drug: ResolvedDrug) -> tuple[_Component, ...]:
    """The drug's substances with an ATC level-5 code, with their strengths where known."""
    if drug.strengths:
        return tuple(
            _Component(code, strength, single_substance=len(drug.strengths) == 1)
            for strength in drug.strengths
            if (code := atc.normalise(strength.atc)) and atc.is_substance_code(code)
        )
    codes = [c for c in map(atc.normalise, drug.atc_codes) if c and atc.is_substance_code(c)]
    return tuple(_Component(code, None, single_substance=len(codes) == 1) for code in codes)


def _substance_per_dose(component: _Component, dose: Quantity) -> Amount:
    """How much of the component one dose holds, from the dose unit and the strength."""
    dose_unit = unit_info(dose.unit)
    if dose_unit is None:
        raise DoseNotComputable("unknown-unit", f"the dose unit {dose.unit!r} is not known")
    if dose_unit.dimension in _SUBSTANCE_DIMENSIONS:
        if not component.single_substance:
            raise DoseNotComputable(
                "combination-dosed-by-amount",
                f"a combination product dosed in {dose.unit} does not say how much of each part",
            )
        return canonical(dose.value, dose.unit)
    strength = component.strength
    if strength is None:
        raise DoseNotComputable("strength-unknown", "the catalogue gives no strength for the drug")
    per_unit = _strength_amount(strength)
    if strength.denominator_unit is None:
        if dose_unit.dimension is not Dimension.COUNT:
            raise DoseNotComputable(
                "unit-incompatible", f"a dose in {dose.unit} does not fit a strength per unit"
            )
        return Amount(dose.value * per_unit.value, per_unit.unit)
    per = unit_info(strength.denominator_unit)
    if per is None or per.canonical != dose_unit.canonical:
        raise DoseNotComputable(
            "unit-incompatible",
            f"a dose in {dose.unit} does not fit a strength per {strength.denominator_unit}",
        )
    doses_per_denominator = dose.value * dose_unit.factor / (
        (strength.denominator_value or 1.0) * per.factor
    )
    return Amount(doses_per_denominator * per_unit.value, per_unit.unit)


def _strength_amount(strength: ResolvedStrength) -> Amount:
    """The strength's amount: an interval counts at its upper bound, "less than" at its bound;
    "greater than" has no upper bound and cannot be used."""
    operator = strength.operator or "L"
    if operator in ("L", "M"):
        value = strength.value
    elif operator == "I" and strength.upper_value is not None:
        value = strength.upper_value
    else:
        raise DoseNotComputable(
            "strength-open", f"the strength ({operator} {strength.value:g}) has no upper bound"
        )
    info = unit_info(strength.unit)
    if info is None or info.dimension not in _SUBSTANCE_DIMENSIONS:
        raise DoseNotComputable(
            "strength-unit", f"the strength unit {strength.unit!r} is not an amount of substance"
        )
    return Amount(value * info.factor, info.canonical)


def _each(items: list[_Dosed], measure: Measure) -> list[list[_Dosed]]:
    """Single doses are judged entry by entry."""
    return [[item] for item in items]


def _peak(items: list[_Dosed], measure: Measure) -> list[list[_Dosed]]:
    """The entries in use together when their sum peaks, among moments a focus entry is in use.
    (A sum over overlapping date ranges peaks at some entry's start.)"""
    moments = sorted({item.entry.medication.start or date.min for item in items})
    best: list[_Dosed] = []
    best_total = 0.0
    for moment in moments:
        active = [item for item in items if item.in_use_on(moment)]
        total = sum(item.amount(measure).value for item in active)
        if any(item.entry.in_focus for item in active) and total > best_total:
            best, best_total = active, total
    return [best] if best else []


def _exceeded(
    code: str,
    items: list[_Dosed],
    measure: Measure,
    weight_kg: float | None,
    not_checked: _NotChecked,
    groups_of: Callable[[list[_Dosed], Measure], list[list[_Dosed]]],
) -> _Exceeded | None:
    """The tightest ``measure`` limit that a group of ``items`` exceeds, if any."""
    tightest: _Exceeded | None = None
    for rule, limit in _limits(items, measure):
        allowed = limit.amount(weight_kg)
        users = [item for item in items if item.rule.id == rule.id]
        if allowed is None:
            for item in users:
                not_checked.add(
                    item.entry, rule, code, "weight-unknown",
                    f"the {measure} limit {limit} needs the patient's weight",
                )
            continue
        comparable = [item for item in items if item.amount(measure).unit == allowed.unit]
        for item in users:
            if item not in comparable:
                not_checked.add(
                    item.entry, rule, code, "unit-incompatible",
                    f"the limit {limit} and the dose in {item.amount(measure).unit} do not "
                    "convert (IU is never converted to a mass)",
                )
        for group in groups_of(comparable, measure):
            amounts = tuple((item.entry, item.amount(measure).value) for item in group)
            total = sum(amount for _, amount in amounts)
            exceeds = total > allowed.value * (1 + _TOLERANCE)
            if exceeds and (tightest is None or allowed.value < tightest.allowed.value):
                tightest = _Exceeded(measure, total, allowed, str(limit), rule, amounts)
    return tightest


def _limits(items: Iterable[_Dosed], measure: Measure) -> list[tuple[DoseRule, Limit]]:
    """Every ``measure`` limit of the rules behind ``items``, in rule-id order."""
    rules = {item.rule.id: item.rule for item in items}
    return [(rule, limit) for _, rule in sorted(rules.items()) for limit in rule.limits(measure)]
