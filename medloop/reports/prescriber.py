"""The prescriber report, of one doctor's own prescribing (by HPR number): antibiotic
prescribing in the style of RAK, how often each alert rule is overridden, and how long the
doctor takes to answer a multidose pharmacy's proposals.

Definitions (also in the README):

- an antibiotic **course** is an issued e-prescription (its first version) of a systemic
  antibiotic (ATC J01); its month is the Oslo month of issue;
- **narrow-spectrum** is ATC J01CE (beta-lactamase sensitive penicillins);
- a course is **for a respiratory tract infection** when its list entry's ``indication``
  (the free text the prescriber gave, read from the entry's newest version) starts with an
  ICPC-2 R code or names a respiratory infection (``classes.json``); courses without an
  indication are counted among all antibiotics only;
- **courses per 1 000 patients**: per 1 000 of the doctor's list when the caller gives its
  size (``list_size``; the engine does not hold the GP list), else per 1 000 of the patients
  the doctor issued any prescription for in the period (``denominator.basis``);
- an alert is **the doctor's** when it was raised by a command the doctor made (the command's
  list change has the doctor as author at the alert's moment) or the doctor overrode it; the
  **override rate** of a rule and severity is overridden / raised among those alerts;
- an alert the doctor **heeded** is one that needed an override, whose command the runner
  refused (``override-required``; the audited refusal names the alerts, by key) and that was
  never overridden afterwards for the same patient and key (the key names the entries, so the
  same request retried with an override is the same alert). Such alerts were raised to the
  doctor too: they count among ``raised`` (each patient and key once, at its last refusal in
  the period) and under ``heeded``, never under ``overridden``;
- **time to answer** a multidose proposal: from the pharmacy's proposal to the doctor's
  decision, for proposals the doctor decided in the period; ``open`` counts proposals to
  patients the doctor is the multidose doctor of that were not decided at the report's moment.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, and_, select

from medloop.domain.oslo import local_date
from medloop.reports.classes import classes
from medloop.reports.period import ReportPeriod, month_of
from medloop.store import audit, multidose
from medloop.store.alerts import alert
from medloop.store.audit import audit_event
from medloop.store.columns import aware
from medloop.store.list_changes import entry_version, list_change
from medloop.store.prescriptions import prescription, prescription_version


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class AntibioticMonth(_Model):
    month: str
    courses: int
    narrow_spectrum: int
    respiratory: int
    respiratory_narrow_spectrum: int
    share_narrow_respiratory: float | None
    share_narrow_all: float | None
    per_1000: float | None


class Denominator(_Model):
    patients: int
    basis: str  # "list-size" (given by the caller) | "patients-prescribed-for"


class Antibiotics(_Model):
    courses: int
    narrow_spectrum: int
    respiratory: int
    respiratory_narrow_spectrum: int
    without_indication: int
    share_narrow_respiratory: float | None
    share_narrow_all: float | None
    per_1000: float | None
    denominator: Denominator
    by_month: list[AntibioticMonth]


class OverrideRate(_Model):
    rule: str  # kind/record: the interaction, dose rule, allergy … the alert came from
    summary: str  # the newest of these alerts' summaries (the drugs' names), for a reader
    kind: str
    severity: str
    raised: int
    overridden: int
    rate: float | None
    heeded: int = 0  # refused for want of an override, and never overridden afterwards


class ProposalMonth(_Model):
    month: str
    answered: int
    median_hours: float | None


class ProposalAnswers(_Model):
    answered: int
    accepted: int
    median_hours: float | None
    p90_hours: float | None
    longest_hours: float | None
    open: int
    by_month: list[ProposalMonth]


class PrescriberReport(_Model):
    prescriber: str
    period: ReportPeriod
    as_of: datetime
    antibiotics: Antibiotics
    overrides: list[OverrideRate]
    proposals: ProposalAnswers
    unreviewed_classes: bool = True


# -- facts -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Course:
    patient_id: str
    issued: datetime
    atc: str | None
    indication: str | None


@dataclass(frozen=True, slots=True)
class RaisedAlert:
    kind: str
    severity: str
    rule: str
    overridden: bool
    summary: str = ""
    heeded: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    proposed_at: datetime
    decided_at: datetime
    accepted: bool


@dataclass(frozen=True)
class PrescriberFacts:
    hpr: str
    period: ReportPeriod
    as_of: datetime
    patients_prescribed_for: int
    courses: tuple[Course, ...]
    alerts: tuple[RaisedAlert, ...]
    answers: tuple[Answer, ...]
    open_proposals: int


def read_prescriber_facts(
    conn: Connection, hpr: str, period: ReportPeriod, now: datetime
) -> PrescriberFacts:
    start, end = period.bounds
    as_of = min(end, now)
    pv = prescription_version
    record = pv.c.record
    first_versions = conn.execute(
        select(
            prescription.c.patient_id,
            prescription.c.entry_id,
            pv.c.at,
            record["prescription"]["drug"]["resolved"]["atc"].as_string().label("atc"),
        )
        .join(pv, and_(pv.c.prescription_id == prescription.c.id, pv.c.version == 1))
        .where(
            prescription.c.issued_at >= start,
            prescription.c.issued_at < end,
            record["prescription"]["prescriber"]["personnel"]["hpr_number"].as_string() == hpr,
        )
    ).all()
    known = classes()
    antibiotic_rows = [r for r in first_versions if known.is_antibiotic(r.atc)]
    indications = _indications(conn, {r.entry_id for r in antibiotic_rows})
    courses = tuple(
        Course(r.patient_id, aware(r.at), r.atc, indications.get(r.entry_id))
        for r in antibiotic_rows
    )
    return PrescriberFacts(
        hpr=hpr,
        period=period,
        as_of=as_of,
        patients_prescribed_for=len({r.patient_id for r in first_versions}),
        courses=courses,
        alerts=_alerts(conn, hpr, start, end) + _heeded(conn, hpr, start, end),
        answers=_answers(conn, hpr, start, end),
        open_proposals=_open_proposals(conn, hpr, as_of),
    )


def _indications(conn: Connection, entry_ids: set[str]) -> dict[str, str | None]:
    found: dict[str, tuple[int, str | None]] = {}
    ids = sorted(entry_ids)
    for at in range(0, len(ids), 500):
        for r in conn.execute(
            select(
                entry_version.c.entry_id,
                entry_version.c.version,
                entry_version.c.record["entry"]["indication"].as_string().label("indication"),
            ).where(entry_version.c.entry_id.in_(ids[at : at + 500]))
        ):
            known = found.get(r.entry_id)
            if known is None or r.version > known[0]:
                found[r.entry_id] = (r.version, r.indication)
    return {k: v[1] for k, v in found.items()}


def _alerts(conn: Connection, hpr: str, start: datetime, end: datetime) -> tuple[RaisedAlert, ...]:
    overrider = alert.c.override_by["personnel"]["hpr_number"].as_string()
    author = list_change.c.author["personnel"]["hpr_number"].as_string()
    rows = conn.execute(
        select(
            alert.c.key,
            alert.c.kind,
            alert.c.severity,
            alert.c.override_reason.is_not(None).label("overridden"),
            alert.c.record["summary"].as_string().label("summary"),
            overrider.label("overrider"),
            author.label("author"),
        )
        .outerjoin(
            list_change,
            and_(
                list_change.c.patient_id == alert.c.patient_id,
                list_change.c.list_version == alert.c.list_version,
                list_change.c.at == alert.c.raised_at,
            ),
        )
        .where(alert.c.raised_at >= start, alert.c.raised_at < end)
    ).all()
    return tuple(
        RaisedAlert(
            r.kind, r.severity, r.key.rsplit("/", 1)[0], bool(r.overridden), r.summary or ""
        )
        for r in rows
        if r.overrider == hpr or (r.overrider is None and r.author == hpr)
    )


def _heeded(conn: Connection, hpr: str, start: datetime, end: datetime) -> tuple[RaisedAlert, ...]:
    """The alerts ``hpr`` heeded in the period: named by an audited ``override-required``
    refusal of the doctor's command, and not overridden (by anyone) at or after that refusal
    for the same patient and key. Each patient and key once, at its last refusal in the
    period."""
    refused: dict[tuple[str, str], tuple[datetime, dict[str, Any]]] = {}
    for (detail,) in conn.execute(
        select(audit_event.c.detail).where(
            audit_event.c.actor == hpr,
            audit_event.c.outcome == audit.Outcome.REFUSED.value,
            audit_event.c.detail["code"].as_string() == "override-required",
        )
    ):
        at_text, alerts = detail.get("at"), detail.get("alerts")
        if not isinstance(at_text, str) or not isinstance(alerts, list):
            continue  # refused before the runner recorded the alerts: cannot be counted
        at = datetime.fromisoformat(at_text)
        if not start <= at < end:
            continue
        for found in alerts:
            key = (str(detail.get("patient_id")), str(found["key"]))
            if key not in refused or refused[key][0] < at:
                refused[key] = (at, found)
    if not refused:
        return ()
    overridden_at: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    keys = sorted({key for _, key in refused})
    for at in range(0, len(keys), 500):
        for r in conn.execute(
            select(alert.c.patient_id, alert.c.key, alert.c.raised_at).where(
                alert.c.key.in_(keys[at : at + 500]), alert.c.override_reason.is_not(None)
            )
        ):
            overridden_at[(str(r.patient_id), r.key)].append(aware(r.raised_at))
    return tuple(
        RaisedAlert(
            found["kind"],
            found["severity"],
            found["key"].rsplit("/", 1)[0],
            False,
            found.get("summary") or "",
            heeded=True,
        )
        for key, (at, found) in sorted(refused.items())
        if not any(later >= at for later in overridden_at[key])
    )


def _answers(conn: Connection, hpr: str, start: datetime, end: datetime) -> tuple[Answer, ...]:
    p, d = multidose.proposal, multidose.proposal_decision
    rows = conn.execute(
        select(p.c.proposed_at, d.c.at, d.c.accepted)
        .join(d, d.c.proposal_id == p.c.id)
        .where(
            d.c.at >= start,
            d.c.at < end,
            d.c.record["by"]["personnel"]["hpr_number"].as_string() == hpr,
        )
    ).all()
    return tuple(Answer(aware(r.proposed_at), aware(r.at), bool(r.accepted)) for r in rows)


def _open_proposals(conn: Connection, hpr: str, as_of: datetime) -> int:
    """Proposals made by ``as_of`` and not decided by then, to patients whose multidose doctor
    (newest responsibility version) is ``hpr``."""
    p, d, resp = multidose.proposal, multidose.proposal_decision, multidose.responsibility
    newest: dict[str, tuple[int, str | None]] = {}
    for r in conn.execute(
        select(
            resp.c.patient_id,
            resp.c.version,
            resp.c.record["doctor"]["personnel"]["hpr_number"].as_string().label("doctor"),
        )
    ):
        known = newest.get(r.patient_id)
        if known is None or r.version > known[0]:
            newest[r.patient_id] = (r.version, r.doctor)
    mine = sorted(pid for pid, (_, doctor) in newest.items() if doctor == hpr)
    if not mine:
        return 0
    count = 0
    for at in range(0, len(mine), 500):
        for r in conn.execute(
            select(p.c.proposed_at, d.c.at)
            .outerjoin(d, d.c.proposal_id == p.c.id)
            .where(p.c.patient_id.in_(mine[at : at + 500]), p.c.proposed_at <= as_of)
        ):
            if r.at is None or aware(r.at) > as_of:
                count += 1
    return count


# -- aggregation -------------------------------------------------------------------------------


def prescriber_report(facts: PrescriberFacts, list_size: int | None = None) -> PrescriberReport:
    return PrescriberReport(
        prescriber=facts.hpr,
        period=facts.period,
        as_of=facts.as_of,
        antibiotics=_antibiotics(facts, list_size),
        overrides=_overrides(facts.alerts),
        proposals=_proposals(facts),
    )


def _antibiotics(facts: PrescriberFacts, list_size: int | None) -> Antibiotics:
    known = classes()
    denominator = (
        Denominator(patients=list_size, basis="list-size")
        if list_size is not None
        else Denominator(patients=facts.patients_prescribed_for, basis="patients-prescribed-for")
    )
    months: dict[str, Counter[str]] = {m: Counter() for m in facts.period.months()}
    for c in facts.courses:
        counter = months[month_of(local_date(c.issued))]
        narrow = known.is_narrow_spectrum(c.atc)
        respiratory = known.is_respiratory(c.indication)
        counter["courses"] += 1
        counter["narrow_spectrum"] += narrow
        counter["respiratory"] += respiratory
        counter["respiratory_narrow_spectrum"] += narrow and respiratory
        counter["without_indication"] += not (c.indication or "").strip()

    def figures(n: Counter[str]) -> dict[str, Any]:
        return {
            "courses": n["courses"],
            "narrow_spectrum": n["narrow_spectrum"],
            "respiratory": n["respiratory"],
            "respiratory_narrow_spectrum": n["respiratory_narrow_spectrum"],
            "share_narrow_respiratory": _share(n["respiratory_narrow_spectrum"], n["respiratory"]),
            "share_narrow_all": _share(n["narrow_spectrum"], n["courses"]),
            "per_1000": _per_1000(n["courses"], denominator.patients),
        }

    total: Counter[str] = Counter()
    for n in months.values():
        total.update(n)
    return Antibiotics(
        **figures(total),
        without_indication=total["without_indication"],
        denominator=denominator,
        by_month=[AntibioticMonth(month=m, **figures(n)) for m, n in months.items()],
    )


def _overrides(alerts: tuple[RaisedAlert, ...]) -> list[OverrideRate]:
    raised: Counter[tuple[str, str, str]] = Counter()
    overridden: Counter[tuple[str, str, str]] = Counter()
    heeded: Counter[tuple[str, str, str]] = Counter()
    summaries: dict[tuple[str, str, str], str] = {}
    for a in alerts:
        key = (a.rule, a.kind, a.severity)
        raised[key] += 1
        overridden[key] += a.overridden
        heeded[key] += a.heeded
        summaries[key] = a.summary
    rows = [
        OverrideRate(
            rule=rule,
            summary=summaries[(rule, kind, severity)],
            kind=kind,
            severity=severity,
            raised=raised[(rule, kind, severity)],
            overridden=overridden[(rule, kind, severity)],
            rate=_share(overridden[(rule, kind, severity)], raised[(rule, kind, severity)]),
            heeded=heeded[(rule, kind, severity)],
        )
        for rule, kind, severity in raised
    ]
    # Most overridden first: alert fatigue made visible.
    return sorted(rows, key=lambda r: (-r.overridden, -(r.rate or 0), r.rule, r.severity))


def _hours(answers: list[Answer]) -> list[float]:
    return sorted((a.decided_at - a.proposed_at).total_seconds() / 3600 for a in answers)


def _median(values: list[float]) -> float | None:
    return None if not values else round(statistics.median(values), 2)


def _proposals(facts: PrescriberFacts) -> ProposalAnswers:
    hours = _hours(list(facts.answers))
    by_month: dict[str, list[Answer]] = defaultdict(list)
    for a in facts.answers:
        by_month[month_of(local_date(a.decided_at))].append(a)
    p90 = None
    if hours:
        # nearest rank: the smallest value with at least 90 % of the answers at or below it
        p90 = round(hours[max(0, -(-9 * len(hours) // 10) - 1)], 2)
    return ProposalAnswers(
        answered=len(hours),
        accepted=sum(a.accepted for a in facts.answers),
        median_hours=_median(hours),
        p90_hours=p90,
        longest_hours=None if not hours else round(hours[-1], 2),
        open=facts.open_proposals,
        by_month=[
            ProposalMonth(
                month=m, answered=len(by_month[m]), median_hours=_median(_hours(by_month[m]))
            )
            for m in facts.period.months()
        ],
    )


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _per_1000(part: int, patients: int) -> float | None:
    return None if patients == 0 else round(1000 * part / patients, 2)
