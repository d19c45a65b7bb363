"""The ward report: how the ward's planned doses went (on time, late, missed, not given by
reason), per slot and per day; scan compliance; PRN use per resident; psychotropic and
antipsychotic use; residents due for their medication review.

``read_ward_facts`` reads what the report needs in a fixed number of queries, counted in the
database by columns (a charting's ``late``, ``scanned``, ``scan_skipped`` and ``reason`` are
columns since migration 0017, not fields parsed out of each JSON record: a 60-resident ward
over 90 days has ~86 000 planned doses); ``ward_report`` aggregates them and decides nothing
the domain has not decided (a given dose's ``late`` flag is the charting decision's; a
dose's standing charting and whether it is still in force follow
``medloop.domain.administration``).

Residents named in the report (PRN use, psychotropics, reviews) are the ward's residents at
the report's moment — admitted to the ward then — as the ward chart names them; residents
discharged before it count in the ward's totals but are never named.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, case, exists, func, or_, select

from medloop.domain.administration import Outcome
from medloop.domain.oslo import local_date
from medloop.domain.ward import Admission, WardConfig, WardNotFound
from medloop.reports.classes import classes
from medloop.reports.period import ReportPeriod, week_of
from medloop.store import administration as store
from medloop.store.columns import aware
from medloop.store.list_changes import entry_version
from medloop.store.patients import patient
from medloop.store.reviews import medication_review

# -- the report --------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class DoseCounts(_Model):
    """Planned doses in force, by how they went. ``on_time``: given, not late (the ward's
    window: from ``early`` before the due time to ``late_after`` after it); ``late``: given
    after the window; ``missed``: nobody charted it within ``missed_after`` (the system's
    ``missed`` record, or no charting at all once that time has passed); ``refused``, ``held``,
    ``not_given``: charted as not given, by outcome; ``pending``: not charted and not yet
    missed at the report's moment (not counted in ``charted_share``)."""

    planned: int = 0
    on_time: int = 0
    late: int = 0
    missed: int = 0
    refused: int = 0
    held: int = 0
    not_given: int = 0
    pending: int = 0

    @property
    def decided(self) -> int:
        return self.planned - self.pending


class SlotCounts(DoseCounts):
    slot: str  # the intended Oslo wall time, HH:MM


class DayCounts(DoseCounts):
    day: date


class ReasonCount(_Model):
    outcome: str
    reason: str
    count: int


class ScanCounts(_Model):
    """Doses charted as given (planned and PRN): scanned, given without a scan with a reason
    (by reason), and given without either (a ward that does not require scanning)."""

    given: int
    scanned: int
    skipped: int
    unscanned_without_reason: int
    share_scanned: float | None
    skip_reasons: list[ReasonCount]


class WeekCount(_Model):
    week: date  # the Monday of the ISO week (Oslo days)
    doses: int


class ResidentPrn(_Model):
    patient_id: UUID
    name: str
    doses: int
    weeks: list[WeekCount]


class PrnUse(_Model):
    """PRN (as needed) doses charted as given, per current resident per week; doses given to
    residents discharged before the report's moment count in ``other_residents_doses``."""

    total_doses: int
    residents: list[ResidentPrn]
    other_residents_doses: int


class ClassUse(_Model):
    id: str
    label: str
    residents: int
    share: float | None


class ResidentPsychotropics(_Model):
    patient_id: UUID
    name: str
    count: int
    antipsychotic: bool
    drugs: list[str]


class PsychotropicUse(_Model):
    """Current residents with active list entries (regular, course or as needed) in each
    class at the report's moment; ``count_distribution``: residents by number of
    psychotropic entries (0, 1, 2, 3 or more)."""

    residents: int
    with_any: int
    with_antipsychotic: int
    share_antipsychotic: float | None
    by_class: list[ClassUse]
    count_distribution: dict[str, int]
    per_resident: list[ResidentPsychotropics]


class ReviewDue(_Model):
    patient_id: UUID
    name: str
    admitted_on: date
    last_review: date | None  # the latest review signed since the admission (Oslo day)
    next_due: date
    status: str  # "overdue" | "due-now" | "due-soon" | "not-due"


class ReviewsDue(_Model):
    """The medication review is due on admission and a year after the latest signed review
    (``basis``: the admission date and the reviews signed since, ``medication_review``).
    ``next_due``: the admission day while no review was signed during the stay, else a year
    after the latest. ``due-now``: due within the ``window_days`` before the report's moment;
    ``overdue``: due longer ago; ``due-soon``: due within ``window_days`` after it."""

    basis: str
    window_days: int
    residents: list[ReviewDue]


class WardReport(_Model):
    ward_id: UUID
    ward_name: str
    period: ReportPeriod
    as_of: datetime
    doses: DoseCounts
    by_slot: list[SlotCounts]
    by_day: list[DayCounts]
    not_given_reasons: list[ReasonCount]
    scan: ScanCounts
    prn: PrnUse
    psychotropics: PsychotropicUse
    reviews: ReviewsDue
    unreviewed_classes: bool = True


# -- facts -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DoseGroup:
    """Planned doses of one Oslo day and slot that went the same way, and how many: the
    standing charting's outcome (``None``: none), ``late``, the scan (``scanned``, the skip
    reason), the reason charted (not-given outcomes only), and — uncharted — whether the
    dose was past its missed time at the report's moment."""

    day: date
    slot: str
    outcome: str | None
    late: bool
    scanned: bool
    scan_skipped: str | None
    reason: str | None
    past_missed: bool
    doses: int


@dataclass(frozen=True, slots=True)
class ChartingRow:
    patient_id: str
    outcome: str
    at: datetime
    scanned: bool
    scan_skipped: str | None
    stands: bool


@dataclass(frozen=True)
class Resident:
    patient_id: UUID
    name: str
    admitted_at: datetime
    drugs: tuple[tuple[str, str | None], ...]  # (name, ATC) of active entries
    last_review: datetime | None = None  # the latest review signed since the admission


@dataclass(frozen=True)
class WardFacts:
    ward_id: UUID
    ward_name: str
    config: WardConfig
    period: ReportPeriod
    as_of: datetime
    admissions: tuple[Admission, ...]
    doses: tuple[DoseGroup, ...]
    prn: tuple[ChartingRow, ...]
    residents: tuple[Resident, ...]


_A = store.administration
_PD = store.planned_dose
_NOT_GIVEN = (Outcome.REFUSED.value, Outcome.HELD.value, Outcome.NOT_GIVEN.value)
_STANDS = ~exists().where(store.administration_error.c.administration_id == _A.c.id)


_CHARTING_FACTS = (_A.c.late, _A.c.scanned, _A.c.scan_skipped, _A.c.reason)
"""A charting's late flag, whether a pack was scanned, the scan's skip reason and the reason
charted, as columns (migration 0017)."""


def _dose_groups(
    conn: Connection,
    ward_id: UUID,
    start: datetime,
    end: datetime,
    missed_cutoff: datetime,
    facts: tuple[Any, Any, Any, Any] = _CHARTING_FACTS,
) -> tuple[DoseGroup, ...]:
    """The ward's planned doses due in ``[start, end)`` counted in the database, grouped by
    ``DoseGroup``: a 60-resident ward has ~1 400 planned doses a day, too many to fetch one by
    one for a quarter's report. The rules are the domain's, as SQL:

    - the standing charting of a dose (``domain.administration.effective_charting``): the
      latest recorded that was not entered in error, a person's charting over a ``missed``;
    - a dose stands on the chart (``dose_in_force``) when it is charted or no newer schedule
      of its entry took over at or before its due time;
    - an uncharted dose counts for the ward only if it was due during a stay on the ward
      (``Admission.covers``), and is missed once ``missed_cutoff`` (the report's moment
      minus the ward's ``missed_after``, ``dose_status``) is past its due time.

    ``facts``: how a charting's late flag, scan, skip reason and reason are read (the columns;
    ``bench/reports.py`` passes the records' JSON fields, as read before 0017, as its baseline).
    """
    in_ward = (_PD.c.ward_id == str(ward_id), _PD.c.due_at >= start, _PD.c.due_at < end)
    day = func.substr(_PD.c.local_time, 1, 10).label("day")
    slot = func.substr(_PD.c.local_time, 12, 5).label("slot")
    key_columns = (
        day,
        slot,
        _A.c.outcome,
        facts[0].label("late"),
        facts[1].label("scanned"),
        facts[2].label("scan_skipped"),
        case((_A.c.outcome.in_(_NOT_GIVEN), facts[3])).label("reason"),
    )
    standing = _A.join(_PD, _PD.c.id == _A.c.planned_dose_id)
    groups: Counter[tuple[Any, ...]] = Counter()
    # Every standing charting, counted by its group (one query, no row per dose) …
    for r in conn.execute(
        select(*key_columns, func.count().label("n"))
        .select_from(standing)
        .where(*in_ward, _STANDS)
        .group_by(*key_columns)
    ):
        groups[(*r[:7], False)] += r.n
    # … less those that do not stand for their dose: a dose rarely has two standing chartings
    # (a person's charting after the system's ``missed``); the domain's rule picks one.
    several = (
        select(_A.c.planned_dose_id)
        .select_from(standing)
        .where(*in_ward, _STANDS)
        .group_by(_A.c.planned_dose_id)
        .having(func.count() > 1)
    )
    by_dose: dict[str, list[Any]] = defaultdict(list)
    for r in conn.execute(
        select(_A.c.planned_dose_id, _A.c.recorded_at, *key_columns)
        .select_from(standing)
        .where(_A.c.planned_dose_id.in_(several), _STANDS)
    ):
        by_dose[r.planned_dose_id].append(r)
    for rows in by_dose.values():
        effective = max(rows, key=lambda r: (aware(r.recorded_at), r.outcome != Outcome.MISSED))
        for r in rows:
            if r is not effective:
                groups[(*r[2:9], False)] -= 1
    schedule, admission, discharge = store.schedule, store.admission, store.discharge
    has_standing = exists().where(_A.c.planned_dose_id == _PD.c.id, _STANDS)
    superseded = exists().where(
        schedule.c.entry_id == _PD.c.entry_id,
        schedule.c.version > _PD.c.schedule_version,
        schedule.c.effective_from <= _PD.c.due_at,
    )
    during_stay = exists(
        select(admission.c.id)
        .select_from(admission.outerjoin(discharge, discharge.c.admission_id == admission.c.id))
        .where(
            admission.c.patient_id == _PD.c.patient_id,
            admission.c.ward_id == str(ward_id),
            admission.c.admitted_at <= _PD.c.due_at,
            or_(discharge.c.at.is_(None), discharge.c.at > _PD.c.due_at),
        )
    )
    # uncharted doses in force, due during a stay: missed or pending
    uncharted = (
        select(day, slot, (_PD.c.due_at <= missed_cutoff).label("past"))
        .where(*in_ward, ~has_standing, ~superseded, during_stay)
        .subquery()
    )
    for r in conn.execute(select(uncharted, func.count().label("n")).group_by(*uncharted.c)):
        groups[(r.day, r.slot, None, False, False, None, None, bool(r.past))] += r.n
    return tuple(
        DoseGroup(
            date.fromisoformat(day),
            slot,
            outcome,
            bool(late),
            bool(scanned),
            skipped,
            reason,
            past,
            n,
        )
        for (day, slot, outcome, late, scanned, skipped, reason, past), n in groups.items()
        if n
    )


def read_ward_facts(
    conn: Connection, ward_id: UUID, period: ReportPeriod, now: datetime
) -> WardFacts:
    """What the ward report needs, read in a fixed number of queries. ``WardNotFound`` for an
    unknown ward. The report's moment is the end of the period, or ``now`` when sooner."""
    found = store.read_ward(conn, ward_id)
    if found is None:
        raise WardNotFound(f"there is no ward {ward_id}", ward_id=ward_id)
    start, end = period.bounds
    as_of = min(end, now)
    admissions = tuple(
        a
        for a in store.admissions_to(conn, ward_id)
        if a.admitted_at < end and (a.discharged_at is None or a.discharged_at > start)
    )
    patient_ids = sorted({str(a.patient_id) for a in admissions})
    prn_rows = (
        conn.execute(
            select(
                _A.c.patient_id,
                _A.c.outcome,
                _A.c.at,
                _A.c.scanned,
                _A.c.scan_skipped,
                _STANDS.label("stands"),
            ).where(
                _A.c.planned_dose_id.is_(None),
                _A.c.patient_id.in_(patient_ids),
                _A.c.at >= start,
                _A.c.at < end,
            )
        ).all()
        if patient_ids
        else []
    )
    stays: dict[str, list[Admission]] = defaultdict(list)
    for a in admissions:
        stays[str(a.patient_id)].append(a)
    prn = tuple(
        c
        for c in (
            ChartingRow(
                r.patient_id,
                r.outcome,
                aware(r.at),
                bool(r.scanned),
                r.scan_skipped,
                bool(r.stands),
            )
            for r in prn_rows
        )
        # Only PRN doses given during a stay on this ward are this ward's.
        if any(s.covers(c.at) for s in stays[c.patient_id])
    )
    current = [a for a in admissions if a.covers(as_of)]
    return WardFacts(
        ward_id=ward_id,
        ward_name=found.ward.name,
        config=found.config,
        period=period,
        as_of=as_of,
        admissions=admissions,
        doses=_dose_groups(conn, ward_id, start, end, as_of - found.config.missed_after),
        prn=prn,
        residents=_residents(conn, current, as_of),
    )


def _residents(conn: Connection, current: list[Admission], as_of: datetime) -> tuple[Resident, ...]:
    if not current:
        return ()
    ids = [str(a.patient_id) for a in current]
    names = {
        r.id: f"{r.record['family_name']}, {r.record['given_name']}"
        for r in conn.execute(select(patient.c.id, patient.c.record).where(patient.c.id.in_(ids)))
    }
    latest: dict[str, tuple[int, str, dict[str, Any]]] = {}
    ev = entry_version
    for r in conn.execute(
        select(ev.c.entry_id, ev.c.version, ev.c.patient_id, ev.c.record).where(
            ev.c.patient_id.in_(ids)
        )
    ):
        known = latest.get(r.entry_id)
        if known is None or r.version > known[0]:
            latest[r.entry_id] = (r.version, r.patient_id, r.record)
    drugs: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    day = local_date(as_of)
    for _, pid, record in latest.values():
        entry = record["entry"]
        if entry.get("status") != "active":
            continue
        if date.fromisoformat(entry["start"]) > day:
            continue
        stop = entry.get("stop")
        if stop is not None and date.fromisoformat(stop) < day:
            continue
        drug = entry["drug"]
        resolved = drug.get("resolved") or {}
        drugs[pid].append((resolved.get("name") or drug.get("name") or "?", resolved.get("atc")))
    reviewed: dict[str, datetime] = {}
    for r in conn.execute(
        select(medication_review.c.patient_id, medication_review.c.signed_at).where(
            medication_review.c.patient_id.in_(ids), medication_review.c.signed_at <= as_of
        )
    ):
        at = aware(r.signed_at)
        if r.patient_id not in reviewed or at > reviewed[r.patient_id]:
            reviewed[r.patient_id] = at
    return tuple(
        Resident(
            a.patient_id,
            names.get(str(a.patient_id), str(a.patient_id)),
            a.admitted_at,
            tuple(sorted(drugs.get(str(a.patient_id), []), key=lambda d: d[0])),
            _since(reviewed.get(str(a.patient_id)), a.admitted_at),
        )
        for a in sorted(current, key=lambda a: names.get(str(a.patient_id), ""))
    )


# -- aggregation -------------------------------------------------------------------------------


def _category(group: DoseGroup) -> str:
    """The ``DoseCounts`` field of a group (``dose_status`` of its standing charting)."""
    if group.outcome is None:
        return "missed" if group.past_missed else "pending"
    if group.outcome == Outcome.GIVEN:
        return "late" if group.late else "on_time"
    return _FIELD[Outcome(group.outcome)]


_FIELD = {
    Outcome.MISSED: "missed",
    Outcome.REFUSED: "refused",
    Outcome.HELD: "held",
    Outcome.NOT_GIVEN: "not_given",
}


def ward_report(facts: WardFacts, window_days: int = 30) -> WardReport:
    totals: Counter[str] = Counter()
    slots: dict[str, Counter[str]] = defaultdict(Counter)
    days: dict[date, Counter[str]] = defaultdict(Counter)
    reasons: Counter[tuple[str, str]] = Counter()
    scans: list[tuple[bool, str | None, int]] = []
    for group in facts.doses:
        field = _category(group)
        for counter in (totals, slots[group.slot], days[group.day]):
            counter["planned"] += group.doses
            counter[field] += group.doses
        if field in ("refused", "held", "not_given"):
            assert group.outcome is not None
            reasons[(group.outcome, (group.reason or "").strip() or "(no reason given)")] += (
                group.doses
            )
        if field in ("on_time", "late"):
            scans.append((group.scanned, group.scan_skipped, group.doses))
    prn_given = [c for c in facts.prn if c.stands and c.outcome == Outcome.GIVEN]
    scans.extend((c.scanned, c.scan_skipped, 1) for c in prn_given)

    return WardReport(
        ward_id=facts.ward_id,
        ward_name=facts.ward_name,
        period=facts.period,
        as_of=facts.as_of,
        doses=DoseCounts(**totals),
        by_slot=[SlotCounts(slot=s, **slots[s]) for s in sorted(slots)],
        by_day=[DayCounts(day=d, **days.get(d, {})) for d in facts.period.days()],
        not_given_reasons=[
            ReasonCount(outcome=o, reason=r, count=n)
            for (o, r), n in sorted(reasons.items(), key=lambda i: (-i[1], i[0]))
        ],
        scan=_scan(scans),
        prn=_prn(prn_given, facts),
        psychotropics=_psychotropics(facts.residents),
        reviews=_reviews(facts.residents, facts.as_of, window_days),
    )


def _scan(given: list[tuple[bool, str | None, int]]) -> ScanCounts:
    total = sum(n for _, _, n in given)
    scanned = sum(n for was, _, n in given if was)
    skipped: Counter[str] = Counter()
    for was, reason, n in given:
        if not was and reason:
            skipped[reason] += n
    return ScanCounts(
        given=total,
        scanned=scanned,
        skipped=sum(skipped.values()),
        unscanned_without_reason=total - scanned - sum(skipped.values()),
        share_scanned=_share(scanned, total),
        skip_reasons=[
            ReasonCount(outcome="given", reason=r, count=n)
            for r, n in sorted(skipped.items(), key=lambda i: (-i[1], i[0]))
        ],
    )


def _prn(given: list[ChartingRow], facts: WardFacts) -> PrnUse:
    named = {str(r.patient_id): r for r in facts.residents}
    weeks = facts.period.weeks()
    per: dict[str, Counter[date]] = defaultdict(Counter)
    other = 0
    for c in given:
        if c.patient_id in named:
            per[c.patient_id][week_of(local_date(c.at))] += 1
        else:
            other += 1
    return PrnUse(
        total_doses=len(given),
        residents=[
            ResidentPrn(
                patient_id=r.patient_id,
                name=r.name,
                doses=sum(per[str(r.patient_id)].values()),
                weeks=[WeekCount(week=w, doses=per[str(r.patient_id)][w]) for w in weeks],
            )
            for r in facts.residents
        ],
        other_residents_doses=other,
    )


def _psychotropics(residents: tuple[Resident, ...]) -> PsychotropicUse:
    known = classes()
    by_class: Counter[str] = Counter()
    distribution = {"0": 0, "1": 0, "2": 0, "3+": 0}
    rows = []
    with_any = with_antipsychotic = 0
    for r in residents:
        names: list[str] = []
        found: set[str] = set()
        antipsychotic = False
        for name, atc in r.drugs:
            hits = known.psychotropic_classes(atc)
            if hits:
                names.append(name)
                found.update(c.id for c in hits)
                antipsychotic = antipsychotic or any(c.antipsychotic for c in hits)
        for c in found:
            by_class[c] += 1
        distribution["3+" if len(names) >= 3 else str(len(names))] += 1
        with_any += bool(names)
        with_antipsychotic += antipsychotic
        rows.append(
            ResidentPsychotropics(
                patient_id=r.patient_id,
                name=r.name,
                count=len(names),
                antipsychotic=antipsychotic,
                drugs=names,
            )
        )
    n = len(residents)
    return PsychotropicUse(
        residents=n,
        with_any=with_any,
        with_antipsychotic=with_antipsychotic,
        share_antipsychotic=_share(with_antipsychotic, n),
        by_class=[
            ClassUse(
                id=c.id, label=c.label, residents=by_class[c.id], share=_share(by_class[c.id], n)
            )
            for c in known.psychotropic
        ],
        count_distribution=distribution,
        per_resident=rows,
    )


def _anniversary(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _since(review: datetime | None, admitted_at: datetime) -> datetime | None:
    """A review counts for the stay when signed on or after the admission day."""
    if review is None or local_date(review) < local_date(admitted_at):
        return None
    return review


def _reviews(residents: tuple[Resident, ...], as_of: datetime, window_days: int) -> ReviewsDue:
    today = local_date(as_of)
    window = timedelta(days=window_days)
    rows = []
    for r in residents:
        admitted = local_date(r.admitted_at)
        last = None if r.last_review is None else local_date(r.last_review)
        next_due = admitted if last is None else _anniversary(last, 1)
        if next_due <= today:
            status = "due-now" if today - next_due < window else "overdue"
        elif next_due - today <= window:
            status = "due-soon"
        else:
            status = "not-due"
        rows.append(
            ReviewDue(
                patient_id=r.patient_id,
                name=r.name,
                admitted_on=admitted,
                last_review=last,
                next_due=next_due,
                status=status,
            )
        )
    return ReviewsDue(
        basis="admission-date-and-signed-reviews", window_days=window_days, residents=rows
    )


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def wards_of_organisation(conn: Connection, organisation: str) -> list[tuple[UUID, str]]:
    """The wards of ``organisation`` (id, name), by name."""
    rows = conn.execute(
        select(store.ward.c.id, store.ward.c.record).where(
            store.ward.c.organisation_id == organisation
        )
    ).all()
    return sorted(((UUID(r.id), r.record["name"]) for r in rows), key=lambda w: w[1])
