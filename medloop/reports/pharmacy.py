"""The multidose pharmacy report, of the pharmacy's own packing periods (the period's
``pharmacy`` is the caller's organisation): reconciliation classes of the packing reports,
changes after the order deadline and urgent packs, per month.

- a **reconciliation** counts in the Oslo month it was made; its lines count by class
  (``medloop.domain.multidose.rules.LineClass``);
- a **change after deadline** is a deadline flag: a list version that touched a multidose
  entry after the period's order deadline, flagged by the job (its month: when flagged); its
  entries are the list entries that changed;
- an **urgent pack** counts in the month it was ordered, by reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, select

from medloop.domain.multidose.rules import LineClass
from medloop.domain.oslo import local_date
from medloop.reports.period import ReportPeriod, month_of
from medloop.store import multidose
from medloop.store.columns import aware


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class PharmacyMonth(_Model):
    month: str
    reconciliations: int
    lines: dict[str, int]  # by LineClass value
    discrepancy_share: float | None  # lines not ok / all lines
    changes_after_deadline: int
    entries_changed_after_deadline: int
    urgent_packs: int


class UrgentPackReason(_Model):
    reason: str
    count: int


class PharmacyReport(_Model):
    pharmacy: str
    period: ReportPeriod
    as_of: datetime
    reconciliations: int
    lines: dict[str, int]
    discrepancy_share: float | None
    changes_after_deadline: int
    entries_changed_after_deadline: int
    urgent_packs: int
    urgent_pack_reasons: list[UrgentPackReason]
    by_month: list[PharmacyMonth]


@dataclass(frozen=True)
class PharmacyFacts:
    pharmacy: str
    period: ReportPeriod
    as_of: datetime
    reconciliations: tuple[tuple[datetime, dict[str, int]], ...]
    flags: tuple[tuple[datetime, int], ...]  # (flagged at, entries changed)
    urgent: tuple[tuple[datetime, str], ...]


_OK = (LineClass.OK.value, LineClass.OK_SUBSTITUTED.value)


def read_pharmacy_facts(
    conn: Connection, pharmacy: str, period: ReportPeriod, now: datetime
) -> PharmacyFacts:
    start, end = period.bounds
    p = multidose.period
    mine = select(p.c.id).where(p.c.record["pharmacy"]["id"].as_string() == pharmacy)
    r = multidose.reconciliation
    reconciliations = tuple(
        (aware(row.reconciled_at), dict(row.counts or {}))
        for row in conn.execute(
            select(r.c.reconciled_at, r.c.record["counts"].label("counts")).where(
                r.c.period_id.in_(mine), r.c.reconciled_at >= start, r.c.reconciled_at < end
            )
        )
    )
    f = multidose.deadline_flag
    flags = tuple(
        (aware(row.flagged_at), len((row.record or {}).get("entries", ())))
        for row in conn.execute(
            select(f.c.flagged_at, f.c.record).where(
                f.c.period_id.in_(mine), f.c.flagged_at >= start, f.c.flagged_at < end
            )
        )
    )
    u = multidose.urgent_pack
    urgent = tuple(
        (aware(row.at), row.reason or "")
        for row in conn.execute(
            select(u.c.at, u.c.record["reason"].as_string().label("reason")).where(
                u.c.period_id.in_(mine), u.c.at >= start, u.c.at < end
            )
        )
    )
    return PharmacyFacts(pharmacy, period, min(end, now), reconciliations, flags, urgent)


def _lines(counts: Counter[str]) -> dict[str, int]:
    return {c.value: counts[c.value] for c in LineClass}


def _discrepancy(counts: Counter[str]) -> float | None:
    total = sum(counts[c.value] for c in LineClass)
    if total == 0:
        return None
    return round((total - sum(counts[c] for c in _OK)) / total, 4)


def pharmacy_report(facts: PharmacyFacts) -> PharmacyReport:
    months = facts.period.months()
    recs: dict[str, Counter[str]] = {m: Counter() for m in months}
    rec_n: Counter[str] = Counter()
    for at, counts in facts.reconciliations:
        m = month_of(local_date(at))
        rec_n[m] += 1
        recs[m].update({k: int(v) for k, v in counts.items()})
    flags: Counter[str] = Counter()
    flagged_entries: Counter[str] = Counter()
    for at, entries in facts.flags:
        m = month_of(local_date(at))
        flags[m] += 1
        flagged_entries[m] += entries
    urgent: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for at, reason in facts.urgent:
        urgent[month_of(local_date(at))] += 1
        reasons[reason.strip() or "(no reason given)"] += 1
    total: Counter[str] = Counter()
    for c in recs.values():
        total.update(c)
    by_month = [
        PharmacyMonth(
            month=m,
            reconciliations=rec_n[m],
            lines=_lines(recs[m]),
            discrepancy_share=_discrepancy(recs[m]),
            changes_after_deadline=flags[m],
            entries_changed_after_deadline=flagged_entries[m],
            urgent_packs=urgent[m],
        )
        for m in months
    ]
    return PharmacyReport(
        pharmacy=facts.pharmacy,
        period=facts.period,
        as_of=facts.as_of,
        reconciliations=sum(rec_n.values()),
        lines=_lines(total),
        discrepancy_share=_discrepancy(total),
        changes_after_deadline=sum(flags.values()),
        entries_changed_after_deadline=sum(flagged_entries.values()),
        urgent_packs=sum(urgent.values()),
        urgent_pack_reasons=[
            UrgentPackReason(reason=r, count=n)
            for r, n in sorted(reasons.items(), key=lambda i: (-i[1], i[0]))
        ],
        by_month=by_month,
    )


__all__: list[Any] = ["PharmacyReport", "pharmacy_report", "read_pharmacy_facts"]
