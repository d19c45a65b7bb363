"""The medication review: a resident's list evaluated against criteria made for the frail elderly.

``review(medications, patient, today=…)`` evaluates the criteria files of
``interactions.review_rules`` (NORGEP-NH, STOPP/START) plus the renal rules of the dose-limit
file (``RENAL:<rule id>``: every rule whose condition is a kidney-function range), sums the
anticholinergic burden (ACB) and counts the nursing-home quality indicators (psychotropics,
antipsychotics, fall-risk drugs). Pure: no database, no ``medloop``.

What cannot be decided is never guessed: a criterion that needs a fact the request does not give
(the use of an entry, its dose, its start date, the kidney function or a recent one, or clinical
information such as a diagnosis) is listed in ``not_assessed`` with what is missing. Only
entries in use on ``today`` (no stop date before it) are reviewed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from interactions import atc
from interactions.checks.dose import substance_totals
from interactions.dosage import DoseNotComputable
from interactions.dose_rules import DoseRule, DoseRuleSet, load_dose_rules
from interactions.medication import Medication, Patient
from interactions.review_rules import (
    AtcGroup,
    CriteriaSet,
    Criterion,
    ReviewCriteria,
    shipped_review_criteria,
)
from interactions.units import canonical

RENAL_SET = "RENAL"
_NUMBERED = re.compile(r"([A-Z]?)([0-9]+)")


@dataclass(frozen=True, slots=True)
class Finding:
    """A criterion that fires: ``medications`` are the request's ids, sorted."""

    criterion: str
    set: str
    medications: tuple[str, ...]
    summary: str
    detail: str
    source: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "set": self.set,
            "medications": list(self.medications),
            "summary": self.summary,
            "detail": self.detail,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class NotAssessed:
    """A criterion that could not be decided, and what is missing to decide it."""

    criterion: str
    set: str
    summary: str
    missing: tuple[str, ...]
    medications: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "set": self.set,
            "summary": self.summary,
            "missing": list(self.missing),
            "medications": list(self.medications),
        }


@dataclass(frozen=True, slots=True)
class AcbContribution:
    medication: str
    substance: str
    atc: str
    score: int


@dataclass(frozen=True, slots=True)
class Acb:
    """The anticholinergic burden: the sum of each entry's highest substance score."""

    score: int
    contributions: tuple[AcbContribution, ...]
    threshold: int

    @property
    def medications(self) -> tuple[str, ...]:
        return tuple(sorted({c.medication for c in self.contributions}))

    def as_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "medications": list(self.medications),
            "threshold": self.threshold,
            "contributions": [
                {
                    "medication": c.medication,
                    "substance": c.substance,
                    "atc": c.atc,
                    "score": c.score,
                }
                for c in self.contributions
            ],
        }


@dataclass(frozen=True, slots=True)
class Indicator:
    """Entries counted by one quality indicator: in regular use, and as needed (or unknown)."""

    regular: tuple[str, ...]
    other: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "count": len(self.regular),
            "regular": list(self.regular),
            "other": list(self.other),
        }


@dataclass(frozen=True, slots=True)
class ReviewResult:
    findings: tuple[Finding, ...]
    not_assessed: tuple[NotAssessed, ...]
    acb: Acb
    indicators: dict[str, Indicator] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "findings": [f.as_json() for f in self.findings],
            "not_assessed": [n.as_json() for n in self.not_assessed],
            "acb": self.acb.as_json(),
            "indicators": {name: i.as_json() for name, i in self.indicators.items()},
        }


# -- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Missing:
    what: str


class _Run:
    """One review: the entries in use, the patient, the day."""

    def __init__(
        self,
        medications: Iterable[Medication],
        patient: Patient,
        today: date,
        renal_max_age: int,
        uses: Mapping[str, str],
    ) -> None:
        self.entries = tuple(
            sorted(
                (m for m in medications if m.stop is None or m.stop >= today), key=lambda m: m.id
            )
        )
        self.patient = patient
        self.today = today
        self.renal_max_age = renal_max_age
        self.codes = {m.id: _codes(m) for m in self.entries}
        self.coverings = {
            m.id: tuple(frozenset(atc.covering(code)) for code in self.codes[m.id])
            for m in self.entries
        }
        self._members: dict[int, list[Medication]] = {}
        self.uses = {
            m.id: m.dosage.use.value if m.dosage is not None else uses.get(m.id)
            for m in self.entries
        }
        self.findings: list[Finding] = []
        self.not_assessed: list[NotAssessed] = []

    def members(self, group: AtcGroup) -> list[Medication]:
        found = self._members.get(id(group))
        if found is None:
            found = self._members[id(group)] = [
                m for m in self.entries if group.matches_covering(self.coverings[m.id])
            ]
        return found

    def covered(self, code: str, medication: Medication) -> bool:
        """Whether ``code`` (any level) covers one of the entry's codes."""
        return any(code in covering for covering in self.coverings[medication.id])

    # the kidney function, as far as it can be trusted today
    def renal(self) -> float | _Missing:
        renal = self.patient.renal
        if renal is None:
            return _Missing("renal function (eGFR or creatinine clearance with its date)")
        age = (self.today - renal.measured).days
        if age > self.renal_max_age:
            return _Missing(
                f"a renal function measured within {self.renal_max_age} days (latest: "
                f"{renal_text(self.patient)}, {age} days old)"
            )
        return renal.value


def _codes(medication: Medication) -> tuple[str, ...]:
    drug = medication.drug
    found = [atc.normalise(code) for code in (drug.atc, *drug.atc_codes)]
    found += [atc.normalise(s.atc) for s in drug.strengths]
    return tuple(dict.fromkeys(code for code in found if code))


def renal_text(patient: Patient) -> str:
    renal = patient.renal
    if renal is None:
        return "not known"
    name = "eGFR" if renal.kind == "egfr" else "CrCl"
    return f"{name} {renal.value:g} ml/min measured {renal.measured.isoformat()}"


def _qualifies(
    run: _Run, medication: Medication, criterion: Criterion, group: AtcGroup
) -> bool | _Missing:
    """Whether one entry meets the criterion's per-entry conditions (use, dose, duration,
    kidney function): ``False`` as soon as a known fact rules it out, else a ``_Missing``."""
    missing: list[_Missing] = []
    if criterion.uses:
        use = run.uses[medication.id]
        if use is None:
            missing.append(_Missing(f"the use (regular, course or as-needed) of {medication.id}"))
        elif use not in criterion.uses:
            return False
    if criterion.longer_than_days is not None:
        if medication.start is None:
            missing.append(_Missing(f"the start date of {medication.id}"))
        elif (run.today - medication.start).days <= criterion.longer_than_days:
            return False
    if criterion.daily_above is not None or criterion.daily_at_least is not None:
        verdict = _daily_above(medication, criterion, group)
        if verdict is False:
            return False
        if isinstance(verdict, _Missing):
            missing.append(verdict)
    if criterion.renal_below is not None:
        renal = run.renal()
        if isinstance(renal, _Missing):
            missing.append(renal)
        elif renal >= criterion.renal_below:
            return False
    return missing[0] if missing else True


def _daily_above(medication: Medication, criterion: Criterion, group: AtcGroup) -> bool | _Missing:
    """Whether the entry's daily dose is above ``daily_above`` (or at or above
    ``daily_at_least``), with a tolerance for the unit conversion's rounding."""
    bound = criterion.daily_above or criterion.daily_at_least
    assert bound is not None
    at_least = criterion.daily_above is None
    limit = canonical(bound.value, bound.unit)
    if medication.dosage is None:
        return _Missing(f"the dosage of {medication.id}")
    for code in group.atc:
        try:
            totals = substance_totals(medication.drug, medication.dosage, code)
        except DoseNotComputable as reason:
            if reason.code == "substance-not-in-drug":
                continue
            return _Missing(f"the daily dose of {medication.id} ({reason})")
        if totals.daily.unit != limit.unit:
            return _Missing(f"the daily dose of {medication.id} in {limit.unit}")
        if at_least:
            return totals.daily.value >= limit.value - 1e-9
        return totals.daily.value > limit.value + 1e-9
    return _Missing(f"the strength of {medication.id}")


def _source(criteria_set: CriteriaSet, criterion: Criterion) -> dict[str, Any]:
    return {
        "publication": criteria_set.publication,
        **criterion.source.model_dump(exclude_none=True),
        "reviewed": criterion.reviewed_by is not None,
    }


def _evaluate(run: _Run, criteria_set: CriteriaSet, criterion: Criterion) -> None:
    groups = criteria_set.groups
    name = criterion.set_name
    source = _source(criteria_set, criterion)

    def fire(medications: Iterable[Medication], detail: str) -> None:
        ids = tuple(sorted({m.id for m in medications}))
        run.findings.append(Finding(criterion.id, name, ids, criterion.summary, detail, source))

    def unsure(medications: Iterable[Medication], missing: Iterable[_Missing]) -> None:
        whats = tuple(dict.fromkeys(m.what for m in missing))
        ids = tuple(sorted({m.id for m in medications}))
        run.not_assessed.append(NotAssessed(criterion.id, name, criterion.summary, whats, ids))

    def judged(group: AtcGroup) -> tuple[list[Medication], list[tuple[Medication, _Missing]]]:
        yes: list[Medication] = []
        unknown: list[tuple[Medication, _Missing]] = []
        for medication in run.members(group):
            verdict = _qualifies(run, medication, criterion, group)
            if verdict is True:
                yes.append(medication)
            elif isinstance(verdict, _Missing):
                unknown.append((medication, verdict))
        return yes, unknown

    kind = criterion.kind
    if kind == "clinical":
        needs = [_Missing(need) for need in criterion.needs]
        if criterion.drugs is None:
            unsure([], needs)
            return
        # the part the list can decide (use, dose, duration, kidney function) is decided: an
        # entry it rules out is not listed; an entry it cannot decide adds what is missing
        met, undecided = judged(groups[criterion.drugs])
        if met or undecided:
            unsure(met + [m for m, _ in undecided], needs + [w for _, w in undecided])
        return
    if kind == "duplicate":
        for class_name in criterion.classes:
            members, undecided = judged(groups[class_name])
            if len(members) >= 2:
                fire(
                    members,
                    f"{len(members)} entries of one class ({groups[class_name].label}): "
                    + _names(members)
                    + f". {criterion.rationale}",
                )
            elif len(members) + len(undecided) >= 2:
                unsure(members + [m for m, _ in undecided], [w for _, w in undecided])
        return
    drugs = groups[criterion.drugs or ""]
    yes, unknown = judged(drugs)
    if kind in ("drug", "duration"):
        for medication in yes:
            fire([medication], _drug_detail(run, medication, criterion, drugs))
        for medication, missing in unknown:
            unsure([medication], [missing])
    elif kind == "count":
        assert criterion.at_least is not None
        if len(yes) >= criterion.at_least:
            fire(
                yes,
                f"{len(yes)} entries of {drugs.label} (at least {criterion.at_least}): "
                f"{_names(yes)}. {criterion.rationale}",
            )
        elif len(yes) + len(unknown) >= criterion.at_least:
            unsure([m for m, _ in unknown] + yes, [w for _, w in unknown])
    elif kind == "combination":
        partners = [run.members(groups[g]) for g in criterion.combined_with]
        if all(partners):
            partner_list = [m for group in partners for m in group]
            if yes:
                fire(
                    yes + partner_list,
                    f"{_names(yes)} together with {_names(partner_list)}. {criterion.rationale}",
                )
            elif unknown:
                unsure([m for m, _ in unknown] + partner_list, [w for _, w in unknown])
    elif kind == "omission":
        if any(run.members(groups[g]) for g in criterion.without):
            return
        labels = " or ".join(groups[g].label for g in criterion.without)
        if yes:
            fire(yes, f"{_names(yes)} with no {labels} on the list. {criterion.rationale}")
        elif unknown:
            unsure([m for m, _ in unknown], [w for _, w in unknown])


def _names(medications: Iterable[Medication]) -> str:
    return ", ".join(f"{m.drug.name} ({m.id})" for m in medications)


def _drug_detail(run: _Run, medication: Medication, criterion: Criterion, group: AtcGroup) -> str:
    parts = [f"{medication.drug.name} ({medication.id}) is one of {group.label}"]
    if criterion.uses and run.uses[medication.id] is not None:
        parts.append(f"in {run.uses[medication.id]} use")
    if criterion.longer_than_days is not None and medication.start is not None:
        parts.append(
            f"since {medication.start.isoformat()} ({(run.today - medication.start).days} days, "
            f"more than {criterion.longer_than_days})"
        )
    if criterion.daily_above is not None:
        parts.append(f"above {criterion.daily_above} a day")
    if criterion.daily_at_least is not None:
        parts.append(f"at {criterion.daily_at_least} a day or more")
    if criterion.renal_below is not None:
        parts.append(f"with {renal_text(run.patient)} (below {criterion.renal_below} ml/min)")
    return " ".join(parts) + f". {criterion.rationale}"


# -- renal rules from the dose-limit file ----------------------------------------------------


def _renal_rules(dose_rules: DoseRuleSet) -> tuple[DoseRule, ...]:
    return tuple(
        rule
        for rule in dose_rules.rules
        if rule.when is not None
        and (rule.when.renal_below is not None or rule.when.renal_min is not None)
    )


def _evaluate_renal(run: _Run, dose_rules: DoseRuleSet) -> None:
    unknown: dict[str, list[str]] = {}
    for rule in _renal_rules(dose_rules):
        assert rule.when is not None
        users = [
            m
            for m in run.entries
            if any(run.covered(code, m) for code in rule.atc)
            and (not m.drug.route_codes or rule.route in m.drug.route_codes)
        ]
        if not users:
            continue
        renal = run.renal()
        if isinstance(renal, _Missing):
            for medication in users:
                unknown.setdefault(medication.id, []).append(rule.id)
            continue
        when = rule.when
        if not (
            (when.renal_min is None or renal >= when.renal_min)
            and (when.renal_below is None or renal < when.renal_below)
        ):
            continue
        if rule.contraindicated:
            summary = f"{rule.substance} is contraindicated at {when}"
        else:
            limits = [
                f"{label} {', '.join(str(limit) for limit in limits)}"
                for label, limits in (
                    ("at most", rule.max_single),
                    ("at most a day", rule.max_daily),
                    ("at most a week", rule.max_weekly),
                )
                if limits
            ]
            summary = f"{rule.substance}: reduced dose at {when}" + (
                f" ({'; '.join(limits)})" if limits else ""
            )
        detail = (
            f"{_names(users)}: the patient's kidney function is {renal_text(run.patient)}. "
            f"{rule.source.citation}." + (f" {rule.note}" if rule.note else "")
        )
        run.findings.append(
            Finding(
                f"{RENAL_SET}:{rule.id}",
                RENAL_SET,
                tuple(sorted(m.id for m in users)),
                summary,
                detail,
                {
                    "publication": rule.source.document,
                    "citation": rule.source.citation,
                    "url": rule.source.url,
                    "section": rule.source.section,
                    "verified": bool(rule.note and rule.note.startswith("Figure checked")),
                    "reviewed": rule.reviewed_by is not None,
                },
            )
        )
    renal = run.renal()
    for medication_id, rule_ids in sorted(unknown.items()):
        assert isinstance(renal, _Missing)
        run.not_assessed.append(
            NotAssessed(
                f"{RENAL_SET}:{','.join(rule_ids)}",
                RENAL_SET,
                "Dose adjustment for kidney function (SmPC section 4.2)",
                (renal.what,),
                (medication_id,),
            )
        )


# -- ACB and indicators ----------------------------------------------------------------------


def _acb(run: _Run, criteria: ReviewCriteria) -> Acb:
    scores = criteria.acb.by_atc()
    contributions = []
    for medication in run.entries:
        found = [scores[code] for code in run.codes[medication.id] if code in scores]
        if found:
            best = max(found, key=lambda s: (s.score, s.atc))
            contributions.append(
                AcbContribution(medication.id, best.substance, best.atc, best.score)
            )
    return Acb(sum(c.score for c in contributions), tuple(contributions), criteria.acb.threshold)


def _indicators(run: _Run, criteria: ReviewCriteria) -> dict[str, Indicator]:
    found = {}
    for name, group in criteria.indicators.indicators.items():
        members = run.members(group)
        regular = tuple(m.id for m in members if run.uses[m.id] in ("regular", "course"))
        found[name] = Indicator(regular, tuple(m.id for m in members if m.id not in regular))
    return found


def review(
    medications: Iterable[Medication],
    patient: Patient | None = None,
    *,
    today: date,
    renal_max_age_days: int | None = None,
    criteria: ReviewCriteria | None = None,
    dose_rules: DoseRuleSet | None = None,
    uses: Mapping[str, str] | None = None,
) -> ReviewResult:
    """Review ``medications`` for ``patient`` on ``today``: findings (by set, then criterion,
    then medications), what could not be assessed, the ACB score and the indicators. ``uses``
    gives an entry's use (``regular``, ``course``, ``as-needed``) when it has no dosage (a list
    entry records its use on its own); an entry's dosage says it otherwise."""
    criteria = criteria or shipped_review_criteria()
    dose_rules = dose_rules or load_dose_rules()
    patient = patient or Patient()
    run = _Run(
        medications, patient, today, renal_max_age_days or dose_rules.renal_max_age_days, uses or {}
    )
    for criteria_set in criteria.sets:
        if patient.age is not None and criteria_set.age_min and patient.age < criteria_set.age_min:
            continue
        for criterion in criteria_set.criteria:
            _evaluate(run, criteria_set, criterion)
    _evaluate_renal(run, dose_rules)
    order = {name: i for i, name in enumerate(("NORGEP-NH", "STOPP", "START", RENAL_SET))}

    def key(item: Finding | NotAssessed) -> tuple[int, tuple[str, int], str, tuple[str, ...]]:
        # in the source's order: NORGEP-NH 1, 2 … 34; STOPP B3 before B11, C6 before C10
        number = item.criterion.split(":", 1)[1]
        numbered = _NUMBERED.fullmatch(number)
        return (
            order.get(item.set, 9),
            (numbered[1], int(numbered[2])) if numbered else (number, 0),
            item.criterion,
            item.medications,
        )

    return ReviewResult(
        tuple(sorted(run.findings, key=key)),
        tuple(sorted(run.not_assessed, key=key)),
        _acb(run, criteria),
        _indicators(run, criteria),
    )
