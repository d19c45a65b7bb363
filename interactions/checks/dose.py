"""Dose limits: single, daily, weekly and per-course amounts per substance against the curated
rules, with the limits that depend on the patient (age, weight band, kidney function, hepatic
risk), accepted regimens, contraindications, days a week, treatment length and the pause between
courses.

For every entry component (a strength with an ATC level-5 code) that has a rule for the entry's
route, the structured dosage and the catalogue strength give the substance amount per dose. Daily
and weekly amounts of one substance are summed over the entries in use at the same time
(paracetamol in a combination product plus plain paracetamol), at the moment the sum peaks; the
tightest limit of the rules involved applies. Weekly-dosed substances dosed on more than one day a
week are flagged. Whatever cannot be computed without guessing — no structured dosage, no
strength, unknown route, units that do not convert, a weight-based limit without a weight —
becomes an explicit ``dose-not-checked`` alert with the reason.

A rule with a condition (``when``) applies to the patients it describes. When a fact it needs is
unknown — or a renal function value is older than the trusted age — and the dose would break the
rule if the condition held, the result is ``dose-not-checked`` naming the missing fact; a dose
within the conditional limit is fine whatever the fact, so it raises nothing. A rule for some
indications (subcutaneous methotrexate in rheumatoid arthritis) applies to the entries whose
indication starts with one of its ICPC-2 codes; an entry that records no such code gets an
``indication-unknown`` "not checked" for a dose above that rule's limit.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import partial

from interactions import atc
from interactions.alerts import (
    Alert,
    Contribution,
    DoseDetail,
    DoseMeasure,
    Severity,
    dose_not_checked_alert,
    shorten,
)
from interactions.checks.context import CheckContext, Entry
from interactions.dosage import Dosage, DoseNotComputable, DoseTotals, Quantity, Use, totals
from interactions.dose_rules import Condition, DoseRule, Limit, Measure, Regimen
from interactions.drugs import ResolvedDrug, ResolvedStrength
from interactions.medication import Patient
from interactions.units import HOURS_PER_TIME_UNIT, Amount, Dimension, canonical, unit_info

_SUBSTANCE_DIMENSIONS = frozenset(
    {Dimension.MASS, Dimension.INTERNATIONAL_UNIT, Dimension.UNIT, Dimension.AMOUNT_OF_SUBSTANCE}
)
_TOLERANCE = 1e-9
_MISSING_FACTS = frozenset(
    {
        "age-unknown",
        "weight-unknown",
        "renal-function-unknown",
        "renal-function-outdated",
        "hepatic-risk-unknown",
        "indication-unknown",
    }
)
_ICPC2_AT_START = re.compile(r"^\s*([A-Za-z]\d\d)\b")
_SUMMED: tuple[Measure, ...] = ("daily", "weekly")


@dataclass(frozen=True, slots=True)
class _Component:
    """One substance of a drug that dose rules can speak about."""

    atc: str
    strength: ResolvedStrength | None
    single_substance: bool


@dataclass(frozen=True, slots=True)
class _Dosed:
    """What one entry gives of one substance, under the rules for its route."""

    entry: Entry
    component: _Component
    rules: tuple[DoseRule, ...]
    totals: DoseTotals

    def amount(self, measure: Measure, rule: DoseRule) -> Amount | None:
        """The amount in the rule's basis (salt or base); for ``course`` the daily amount times
        the course's days, ``None`` when the entry is no course with a known end."""
        if measure == "course":
            days = self.course_days
            if days is None:
                return None
            raw = Amount(self.totals.daily.value * days, self.totals.daily.unit)
        else:
            raw = {
                "single": self.totals.single,
                "daily": self.totals.daily,
                "weekly": self.totals.weekly,
            }[measure]
        return _in_basis(raw, self.component, rule)

    @property
    def is_course(self) -> bool:
        dosage = self.entry.medication.dosage
        return dosage is not None and dosage.use is Use.COURSE

    @property
    def course_days(self) -> int | None:
        medication = self.entry.medication
        if not self.is_course or medication.start is None or medication.stop is None:
            return None
        return (medication.stop - medication.start).days + 1

    def in_use_on(self, day: date) -> bool:
        medication = self.entry.medication
        return (medication.start or date.min) <= day <= (medication.stop or date.max)


def _in_basis(raw: Amount, component: _Component, rule: DoseRule) -> Amount:
    """``raw`` (an amount of the catalogue substance) expressed as the rule counts it."""
    strength = component.strength
    name = (strength.substance_name or "").strip().lower() if strength is not None else ""
    conversion = rule.convert_from.get(name)
    if conversion is None:
        return raw
    unit = raw.unit if conversion.unit is None else canonical(1, conversion.unit).unit
    return Amount(raw.value * conversion.factor, unit)


@dataclass(frozen=True, slots=True)
class _Exceeded:
    """A limit exceeded, with what each entry contributed to ``total``."""

    measure: DoseMeasure
    total: float | None
    allowed: Amount
    limit: str
    rule: DoseRule
    contributions: tuple[tuple[Entry, float | None], ...]


@dataclass(frozen=True, slots=True)
class _Missing:
    """A condition that cannot be judged: the fact missing (or not trusted), and why."""

    code: str
    reason: str


@dataclass
class _NotChecked:
    """Why doses were not checked, per focus entry, rule and reason."""

    found: dict[tuple[str, str, str], tuple[Entry, DoseRule, str, str, str]] = field(
        default_factory=dict
    )

    def add(self, entry: Entry, rule: DoseRule, atc_code: str, code: str, reason: str) -> None:
        """One alert per entry, rule and reason; a missing patient fact gives one alert per
        entry and substance, naming every limit it keeps from being checked."""
        if not entry.in_focus:
            return
        if code not in _MISSING_FACTS:
            self.found.setdefault((entry.id, rule.id, code), (entry, rule, atc_code, code, reason))
            return
        key = (entry.id, atc_code, code)
        known = self.found.get(key)
        if known is None:
            self.found[key] = (entry, rule, atc_code, code, reason)
        else:
            limit = reason.partition("; ")[2] or reason
            if limit not in known[4]:
                self.found[key] = (*known[:4], f"{known[4]}; {limit}")

    def alerts(self, context: CheckContext) -> Iterator[Alert]:
        for key in sorted(self.found):
            entry, rule, atc_code, code, reason = self.found[key]
            yield dose_not_checked_alert(
                entry.id,
                rule.substance,
                atc_code,
                code,
                reason,
                rule.id,
                shorten(f"Dose of {rule.substance} not checked ({entry.name}): {reason}"),
                context.source(rule_id=rule.id),
            )


def dose_alerts(context: CheckContext) -> Iterator[Alert]:
    ruled = _ruled(context)
    if not ruled:  # no focus substance has a rule: nothing to find (issue #20)
        return iter(())
    return _dose_alerts(context, ruled)


def _ruled(context: CheckContext) -> set[str]:
    """The substances of the focus entries that dose rules cover: only these are judged."""
    rules_for = context.knowledge.dose_rules_for
    return {
        c.atc
        for entry in context.focus
        for c in _components(entry.medication.drug)
        if rules_for(c.atc)
    }


def _dose_alerts(context: CheckContext, ruled: set[str]) -> Iterator[Alert]:
    not_checked = _NotChecked()
    dosed = _dosed_by_substance(context, not_checked, ruled)
    for code, items in sorted(dosed.items()):
        for exceeded in _findings(context, code, items, not_checked):
            yield _dose_alert(context, code, exceeded)
    yield from not_checked.alerts(context)


def _findings(
    context: CheckContext, code: str, items: list[_Dosed], not_checked: _NotChecked
) -> list[_Exceeded]:
    """Every limit of the substance's rules that the focus entries break: the tightest per
    amount measure, and each other finding per rule and entry."""
    tightest: dict[Measure, _Exceeded] = {}
    others: list[_Exceeded] = []
    rules = sorted({rule.id: rule for item in items for rule in item.rules}.items())
    for _, rule in rules:
        applies = _applies(rule.when, context)
        if applies is False:
            continue
        all_users = [item for item in items if any(r.id == rule.id for r in item.rules)]
        patient_missing = applies if isinstance(applies, _Missing) else None
        for users, missing in _by_indication(rule, all_users, patient_missing):
            focus = [item for item in users if item.entry.in_focus]
            for measure, groups_of in _MEASURES:
                if not rule.limits(measure):
                    continue
                items_for = focus if groups_of is _each else users
                exceeded = _exceeded(
                    context, code, rule, items_for, measure, missing, not_checked, groups_of
                )
                if exceeded is None:
                    continue
                known = tightest.get(measure)
                if known is None or exceeded.allowed.value < known.allowed.value:
                    tightest[measure] = exceeded
            for item in focus:
                others.extend(_per_entry(context, code, rule, item, users, missing, not_checked))
    return [
        *(tightest[m] for m in ("single", "daily", "weekly", "course") if m in tightest),
        *others,
    ]


def _by_indication(
    rule: DoseRule, users: list[_Dosed], missing: _Missing | None
) -> Iterator[tuple[list[_Dosed], _Missing | None]]:
    """The entries a rule is judged on, with the fact that cannot be judged for them. A rule
    for some indications applies to the entries whose indication starts with one of its ICPC-2
    codes; an entry that records none is judged as if it had one, so that a dose above the
    rule's limit becomes a "not checked" (``indication-unknown``), never a silent pass."""
    codes = rule.when.indication_icpc2 if rule.when is not None else None
    if codes is None:
        yield users, missing
        return
    matched: list[_Dosed] = []
    unknown: list[_Dosed] = []
    for item in users:
        found = _ICPC2_AT_START.match(item.entry.medication.indication or "")
        if found is None:
            unknown.append(item)
        elif found.group(1).upper() in codes:
            matched.append(item)
    if matched:
        yield matched, missing
    if unknown:
        yield (
            unknown,
            missing
            or _Missing(
                "indication-unknown",
                "the entry records no indication with an ICPC-2 code "
                f"(this limit is for {' or '.join(codes)})",
            ),
        )


def _applies(when: Condition | None, context: CheckContext) -> bool | _Missing:
    """Whether the condition holds for the patient: ``False`` as soon as one known fact rules
    it out, a ``_Missing`` when a needed fact is unknown or too old, else ``True``. The entry's
    indication is judged per entry (``_by_indication``)."""
    if when is None:
        return True
    patient = context.patient
    verdicts: list[bool | _Missing] = []
    if when.age_min is not None:
        verdicts.append(
            _Missing("age-unknown", "the patient's age is not known")
            if patient.age is None
            else patient.age >= when.age_min
        )
    if when.weight_kg_above is not None or when.weight_kg_max is not None:
        weight = patient.weight_kg
        verdicts.append(
            _Missing("weight-unknown", "the patient's weight is not known")
            if weight is None
            else (when.weight_kg_above is None or weight > when.weight_kg_above)
            and (when.weight_kg_max is None or weight <= when.weight_kg_max)
        )
    if when.renal_min is not None or when.renal_below is not None:
        verdicts.append(_renal_verdict(when, context))
    if when.hepatic_risk is not None:
        verdicts.append(
            _Missing(
                "hepatic-risk-unknown",
                "whether the patient has risk factors for liver injury is not recorded",
            )
            if patient.hepatic_risk is None
            else patient.hepatic_risk
        )
    if any(verdict is False for verdict in verdicts):
        return False
    return next((v for v in verdicts if isinstance(v, _Missing)), True)


def _renal_verdict(when: Condition, context: CheckContext) -> bool | _Missing:
    renal = context.patient.renal
    if renal is None:
        return _Missing("renal-function-unknown", "the patient's kidney function is not known")
    today, max_age = context.today, context.renal_max_age_days
    if today is not None and max_age is not None and (today - renal.measured).days > max_age:
        return _Missing(
            "renal-function-outdated",
            f"the kidney function ({_renal_text(context.patient)}) is more than {max_age} days "
            "old and is not trusted",
        )
    value = renal.value
    return (when.renal_min is None or value >= when.renal_min) and (
        when.renal_below is None or value < when.renal_below
    )


def _renal_text(patient: Patient) -> str:
    renal = patient.renal
    if renal is None:
        return "not known"
    name = "eGFR" if renal.kind == "egfr" else "CrCl"
    return f"{name} {renal.value:g} ml/min measured {renal.measured.isoformat()}"


def _patient_text(patient: Patient, rule: DoseRule) -> str | None:
    """The facts a conditional rule was judged on."""
    if rule.when is None:
        return None
    facts = rule.when.facts
    parts = []
    if "age" in facts:
        parts.append(f"age {patient.age}")
    if "weight" in facts:
        parts.append(f"weight {patient.weight_kg:g} kg" if patient.weight_kg else "weight ?")
    if "renal function" in facts:
        parts.append(_renal_text(patient))
    if "hepatic risk factors" in facts:
        parts.append(f"hepatic risk factors: {'yes' if patient.hepatic_risk else 'no'}")
    return ", ".join(parts) or None


def _per_entry(
    context: CheckContext,
    code: str,
    rule: DoseRule,
    item: _Dosed,
    users: list[_Dosed],
    missing: _Missing | None,
    not_checked: _NotChecked,
) -> list[_Exceeded]:
    """What one focus entry breaks beyond amounts: a contraindication, every accepted regimen,
    days a week, treatment length, the pause after the previous course."""
    found: list[_Exceeded] = []
    entry = item.entry
    if rule.contraindicated:
        daily = item.amount("daily", rule)
        if missing is not None:
            not_checked.add(
                entry,
                rule,
                code,
                missing.code,
                f"{missing.reason}; {rule.substance} is contraindicated at {rule.when}",
            )
        else:
            found.append(
                _Exceeded(
                    "contraindicated",
                    daily.value if daily else None,
                    Amount(0, daily.unit if daily else ""),
                    f"contraindicated at {rule.when}",
                    rule,
                    ((entry, daily.value if daily else None),),
                )
            )
    if rule.regimens:
        outside = _outside_regimens(context, rule, item, users)
        if outside is not None:
            if missing is not None:
                not_checked.add(
                    entry,
                    rule,
                    code,
                    missing.code,
                    f"{missing.reason}; the regimens at {rule.when} are {outside}",
                )
            elif outside == "weight":
                not_checked.add(
                    entry,
                    rule,
                    code,
                    "weight-unknown",
                    "the accepted regimens are per kg and need the patient's weight",
                )
            else:
                single = item.amount("single", rule)
                found.append(
                    _Exceeded(
                        "regimen",
                        single.value if single else None,
                        Amount(0, single.unit if single else ""),
                        outside,
                        rule,
                        ((entry, single.value if single else None),),
                    )
                )
    days = item.totals.dosing_days_per_week
    allowed_days = rule.days_per_week
    if allowed_days is not None and days > allowed_days:
        limit = "1 day a week" if allowed_days == 1 else f"{allowed_days} days a week"
        if missing is not None:
            not_checked.add(
                entry, rule, code, missing.code, f"{missing.reason}; at {rule.when} at most {limit}"
            )
        else:
            found.append(
                _Exceeded(
                    "schedule",
                    days,
                    Amount(allowed_days, "days/week"),
                    limit,
                    rule,
                    ((entry, days),),
                )
            )
    if rule.max_treatment_days is not None:
        found.extend(_too_long(rule, item, missing, code, not_checked))
    if rule.min_days_between_courses is not None and item.is_course and missing is None:
        found.extend(_too_soon(rule, item, users))
    return found


def _outside_regimens(
    context: CheckContext, rule: DoseRule, item: _Dosed, users: list[_Dosed]
) -> str | None:
    """``None`` when the dose fits one of the rule's regimens, ``"weight"`` when per-kg limits
    cannot be judged, else a text naming every regimen's limits."""
    weight = context.patient.weight_kg
    single = item.amount("single", rule)
    peak = _peak(users, "daily", rule)
    daily_total = sum(
        (i.amount("daily", rule) or Amount(0, "")).value for i in (peak[0] if peak else [item])
    )
    needs_weight = False
    for regimen in rule.regimens:
        verdict = _fits(regimen, single, daily_total, weight)
        if verdict is True:
            return None
        if verdict is None:
            needs_weight = True
    if needs_weight:
        return "weight"
    return "; ".join(
        f"{r.label}: "
        + ", ".join(
            [
                *(f"single {limit}" for limit in r.max_single),
                *(f"daily {limit}" for limit in r.max_daily),
            ]
        )
        for r in rule.regimens
    )


def _fits(
    regimen: Regimen, single: Amount | None, daily: float, weight: float | None
) -> bool | None:
    if single is None:
        return None
    for measure, limits, amount in (
        ("single", regimen.max_single, single.value),
        ("daily", regimen.max_daily, daily),
    ):
        for limit in limits:
            allowed = limit.amount(weight)
            if allowed is None:
                return None
            if allowed.unit != single.unit:
                return None
            if amount > allowed.value * (1 + _TOLERANCE):
                return False
        del measure
    return True


def _too_long(
    rule: DoseRule, item: _Dosed, missing: _Missing | None, code: str, not_checked: _NotChecked
) -> list[_Exceeded]:
    medication, limit_days = item.entry.medication, rule.max_treatment_days or 0
    limit = f"{limit_days} days of treatment"
    if missing is not None:
        known = medication.start is not None and medication.stop is not None
        if not known or (medication.stop - medication.start).days + 1 > limit_days:
            not_checked.add(
                item.entry,
                rule,
                code,
                missing.code,
                f"{missing.reason}; at {rule.when} at most {limit}",
            )
        return []
    if medication.stop is None:
        return [
            _Exceeded(
                "duration", None, Amount(limit_days, "days"), limit, rule, ((item.entry, None),)
            )
        ]
    if medication.start is None:
        not_checked.add(
            item.entry, rule, code, "start-unknown", "the treatment length needs the start date"
        )
        return []
    days = (medication.stop - medication.start).days + 1
    if days <= limit_days:
        return []
    return [
        _Exceeded("duration", days, Amount(limit_days, "days"), limit, rule, ((item.entry, days),))
    ]


def _too_soon(rule: DoseRule, item: _Dosed, users: list[_Dosed]) -> list[_Exceeded]:
    """A course started less than ``min_days_between_courses`` full days after another ended."""
    start = item.entry.medication.start
    pause = rule.min_days_between_courses or 0
    if start is None:
        return []
    for other in users:
        stop = other.entry.medication.stop
        if other is item or not other.is_course or stop is None:
            continue
        other_start = other.entry.medication.start or date.min
        if other_start > start or stop >= start:
            continue
        gap = (start - stop).days - 1
        if gap < pause:
            return [
                _Exceeded(
                    "pause",
                    gap,
                    Amount(pause, "days"),
                    f"{pause} days between courses",
                    rule,
                    ((other.entry, None), (item.entry, gap)),
                )
            ]
    return []


def _dose_alert(context: CheckContext, code: str, exceeded: _Exceeded) -> Alert:
    rule, unit = exceeded.rule, exceeded.allowed.unit
    contributions = sorted(exceeded.contributions, key=lambda contribution: contribution[0].id)
    names = " + ".join(entry.name for entry, _ in contributions)
    who = f" at {rule.when}" if rule.when is not None else ""
    total = "?" if exceeded.total is None else f"{exceeded.total:g}"
    summaries = {
        "schedule": (
            f"{rule.substance} is a once-weekly drug but is dosed on {total} days a week ({names})"
            if exceeded.allowed.value == 1
            else f"{rule.substance} may be given on {exceeded.limit}{who} but is dosed on "
            f"{total} days a week ({names})"
        ),
        "contraindicated": f"{rule.substance} is contraindicated{who} ({names})",
        "regimen": f"Dose of {rule.substance} fits none of the accepted regimens{who} ({names})",
        "duration": (
            f"{rule.substance}: at most {exceeded.limit}{who}; "
            + ("no stop date" if exceeded.total is None else f"{total} days prescribed")
            + f" ({names})"
        ),
        "pause": f"New course of {rule.substance} {total} days after the last; at least "
        f"{exceeded.limit}{who} ({names})",
    }
    summary = summaries.get(
        exceeded.measure,
        f"{exceeded.measure.capitalize()} dose of {rule.substance} {total} {unit} exceeds the "
        f"maximum {exceeded.limit}{who} ({names})",
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
                Contribution(medication=entry.id, amount=amount or 0.0)
                for entry, amount in contributions
            ),
            weight_kg=context.patient.weight_kg,
            rule_id=rule.id,
            citation=rule.source.citation,
            url=rule.source.url,
            note=rule.note,
            condition=None if rule.when is None else str(rule.when),
            patient=_patient_text(context.patient, rule),
            section=rule.source.section,
            amount_of=rule.amount_of,
            reviewed=rule.reviewed_by is not None and rule.reviewed_on is not None,
        ),
        source=context.source(rule_id=rule.id),
    )


def _dosed_by_substance(
    context: CheckContext, not_checked: _NotChecked, wanted: set[str] | None = None
) -> dict[str, list[_Dosed]]:
    """What every entry gives of each substance a focus entry contains and rules cover
    (``wanted``: those substances, ``_ruled``'s, when the caller has them)."""
    if wanted is None:
        wanted = _ruled(context)
    dosed: defaultdict[str, list[_Dosed]] = defaultdict(list)
    for entry in context.entries:
        drug, dosage = entry.medication.drug, entry.medication.dosage
        # ``_components(drug)``, its memo read here: a call saved per entry of every check.
        known = _COMPONENTS.get(id(drug))
        components = known[1] if known is not None and known[0] is drug else _components(drug)
        for component in components:
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
            on_route = tuple(r for r in rules if r.route in drug.route_codes)
            if not on_route:
                continue
            rule = on_route[0]
            if dosage is None:
                not_checked.add(entry, rule, component.atc, "no-dosage", "the entry has no dosage")
                continue
            try:
                amounts = totals(dosage, partial(_substance_per_dose, component))
            except DoseNotComputable as reason:
                not_checked.add(entry, rule, component.atc, reason.code, str(reason))
                continue
            dosed[component.atc].append(_Dosed(entry, component, on_route, amounts))
    return dosed


def _components(drug: ResolvedDrug) -> tuple[_Component, ...]:
    """The drug's substances with an ATC level-5 code, with their strengths where known.

    Kept per drug object (a frozen value, and so are its components): every check of a list
    asks for each entry's, and a patient's entries keep their drug objects from command to
    command (issue #20). By identity, not by value: hashing a drug hashes all its fields."""
    known = _COMPONENTS.get(id(drug))
    if known is not None and known[0] is drug:
        return known[1]
    found = _components_of(drug)
    if len(_COMPONENTS) >= _COMPONENTS_KEPT:
        _COMPONENTS.clear()
    # The drug is kept beside its id, so the id cannot name another object meanwhile.
    _COMPONENTS[id(drug)] = (drug, found)
    return found


_COMPONENTS: dict[int, tuple[ResolvedDrug, tuple[_Component, ...]]] = {}
_COMPONENTS_KEPT = 8_192


def _components_of(drug: ResolvedDrug) -> tuple[_Component, ...]:
    if drug.strengths:
        return tuple(
            _Component(code, strength, single_substance=len(drug.strengths) == 1)
            for strength in drug.strengths
            if (code := atc.normalise(strength.atc)) and atc.is_substance_code(code)
        )
    codes = [c for c in map(atc.normalise, drug.atc_codes) if c and atc.is_substance_code(c)]
    return tuple(_Component(code, None, single_substance=len(codes) == 1) for code in codes)


def _substance_per_dose(component: _Component, dose: Quantity) -> Amount:
    """How much of the component one dose holds, from the dose unit and the strength; for a
    strength per time (a patch) the release rate of one application."""
    dose_unit = unit_info(dose.unit)
    if dose_unit is None:
        raise DoseNotComputable("unknown-unit", f"the dose unit {dose.unit!r} is not known")
    if dose_unit.dimension in _SUBSTANCE_DIMENSIONS or dose_unit.dimension is Dimension.MASS_RATE:
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
    hours = HOURS_PER_TIME_UNIT.get(strength.denominator_unit.strip().lower())
    if hours is not None:
        if dose_unit.dimension is not Dimension.COUNT or per_unit.unit != "mg":
            raise DoseNotComputable(
                "unit-incompatible",
                f"a dose in {dose.unit} does not fit a rate per {strength.denominator_unit}",
            )
        per_hour = per_unit.value / ((strength.denominator_value or 1.0) * hours)
        return Amount(dose.value * per_hour, "mg/h")
    per = unit_info(strength.denominator_unit)
    if per is None or per.canonical != dose_unit.canonical:
        raise DoseNotComputable(
            "unit-incompatible",
            f"a dose in {dose.unit} does not fit a strength per {strength.denominator_unit}",
        )
    doses_per_denominator = (
        dose.value * dose_unit.factor / ((strength.denominator_value or 1.0) * per.factor)
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


Groups = Callable[[list[_Dosed], Measure, DoseRule], list[list[_Dosed]]]


def _each(items: list[_Dosed], measure: Measure, rule: DoseRule) -> list[list[_Dosed]]:
    """Single doses and courses are judged entry by entry."""
    return [[item] for item in items]


def _peak(items: list[_Dosed], measure: Measure, rule: DoseRule) -> list[list[_Dosed]]:
    """The entries in use together when their sum peaks, among moments a focus entry is in use.
    (A sum over overlapping date ranges peaks at some entry's start.)"""
    moments = sorted({item.entry.medication.start or date.min for item in items})
    best: list[_Dosed] = []
    best_total = 0.0
    for moment in moments:
        active = [item for item in items if item.in_use_on(moment)]
        total = sum((item.amount(measure, rule) or Amount(0, "")).value for item in active)
        if any(item.entry.in_focus for item in active) and total > best_total:
            best, best_total = active, total
    return [best] if best else []


def _exceeded(
    context: CheckContext,
    code: str,
    rule: DoseRule,
    items: list[_Dosed],
    measure: Measure,
    missing: _Missing | None,
    not_checked: _NotChecked,
    groups_of: Groups,
) -> _Exceeded | None:
    """The tightest ``measure`` limit of ``rule`` that a group of ``items`` exceeds, if any.
    Under a condition that cannot be judged (``missing``) an exceeded limit becomes a "not
    checked" naming the missing fact instead."""
    limits = rule.limits(measure)
    if not limits:
        return None
    tightest: _Exceeded | None = None
    if measure == "course":
        for item in items:
            if rule.max_course and item.is_course and item.course_days is None:
                not_checked.add(
                    item.entry,
                    rule,
                    code,
                    "course-length-unknown",
                    "the course limit needs the course's start and stop dates",
                )
        items = [item for item in items if item.course_days is not None]
    for limit in limits:
        allowed = _allowed(limit, rule, context.patient.weight_kg, missing)
        if allowed is None:
            for item in items:
                not_checked.add(
                    item.entry,
                    rule,
                    code,
                    "weight-unknown",
                    f"the {measure} limit {limit} needs the patient's weight",
                )
            continue
        comparable: list[_Dosed] = []
        for item in items:
            amount = item.amount(measure, rule)
            if amount is not None and amount.unit == allowed.unit:
                comparable.append(item)
            elif amount is not None and not _has_rule_in(item, amount.unit):
                not_checked.add(
                    item.entry,
                    rule,
                    code,
                    "unit-incompatible",
                    f"the limit {limit} and the dose in {amount.unit} do not "
                    "convert (IU is never converted to a mass)",
                )
        for group in groups_of(comparable, measure, rule):
            amounts = tuple(
                (item.entry, (item.amount(measure, rule) or Amount(0, "")).value) for item in group
            )
            total = sum(amount for _, amount in amounts)
            if total <= allowed.value * (1 + _TOLERANCE):
                continue
            if missing is not None:
                for item in group:
                    not_checked.add(
                        item.entry,
                        rule,
                        code,
                        missing.code,
                        f"{missing.reason}; the {measure} limit {limit} at {rule.when} "
                        f"would be exceeded ({total:g} {allowed.unit})",
                    )
                continue
            if tightest is None or allowed.value < tightest.allowed.value:
                tightest = _Exceeded(measure, total, allowed, str(limit), rule, amounts)
    return tightest


_MEASURES: tuple[tuple[Measure, Groups], ...] = (
    ("single", _each),
    ("daily", _peak),
    ("weekly", _peak),
    ("course", _each),
)
"""Each measure with how entries are grouped for it (used by ``_findings``)."""


def _has_rule_in(item: _Dosed, unit: str) -> bool:
    """Whether another rule of the entry's route limits the substance in ``unit`` (enoxaparin
    has rules in mg and in IE: a syringe labelled in IE is judged by the IE rule only)."""
    return any(
        canonical(limit.value, limit.unit).unit == unit
        for rule in item.rules
        for measure in ("single", "daily", "weekly", "course")
        for limit in rule.limits(measure)  # type: ignore[arg-type]
    )


def _allowed(
    limit: Limit, rule: DoseRule, weight_kg: float | None, missing: _Missing | None
) -> Amount | None:
    """The limit for this patient; under a weight band that cannot be judged, a per-kg limit
    counts at the heaviest weight of the band (the most it could allow)."""
    if weight_kg is None and missing is not None and limit.per_kg:
        heaviest = rule.when.weight_kg_max if rule.when is not None else None
        return None if heaviest is None else limit.amount(heaviest)
    return limit.amount(weight_kg)


def substance_totals(drug: ResolvedDrug, dosage: Dosage, code: str) -> DoseTotals:
    """What ``dosage`` of ``drug`` gives of its substance with ATC code ``code`` (or under the
    group ``code``), in canonical units; raises ``DoseNotComputable`` when the dosage or the
    catalogue does not say (the medication review's dose criteria use this)."""
    for component in _components(drug):
        if atc.covers(code, component.atc):
            return totals(dosage, partial(_substance_per_dose, component))
    raise DoseNotComputable(
        "substance-not-in-drug", f"the drug has no substance under ATC {code} with a strength"
    )
