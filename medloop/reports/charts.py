"""The tables behind the reports, and their charts as server-side SVG (Vega-Altair, rendered
by vl-convert; no browser, no JavaScript).

Every chart is drawn from exactly one ``Table`` — the rows a screen reader gets as an HTML
table and a spreadsheet gets as CSV — so chart and table cannot disagree. Charts never rely
on colour alone: bars and heat-map cells carry their value as text, lines differ by dash
and point shape as well as colour and have a legend; each SVG carries a ``<title>`` and a
``<desc>``, and every mark an ``aria-label`` with its values (Vega's own).
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import altair as alt
import vl_convert

from medloop.reports.pharmacy import PharmacyReport
from medloop.reports.prescriber import PrescriberReport
from medloop.reports.ward import WardReport


@dataclass(frozen=True)
class Chart:
    """How a table is drawn: ``bar`` (``category`` along the y axis, ``value`` as the bar),
    ``heatmap`` (``x`` × ``category`` cells, ``value`` as text and shade) or ``line`` (``x``
    along the x axis, one line per ``series``)."""

    kind: Literal["bar", "heatmap", "line"]
    value: str
    category: str | None = None
    x: str | None = None
    series: str | None = None
    value_title: str | None = None


@dataclass(frozen=True)
class Table:
    id: str
    title: str
    description: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    chart: Chart | None = None

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _pct(share: float | None) -> float | None:
    return None if share is None else round(100 * share, 1)


# -- the tables of each report -----------------------------------------------------------------

_OUTCOMES = (
    ("on_time", "on time"),
    ("late", "late"),
    ("missed", "missed"),
    ("refused", "refused"),
    ("held", "held"),
    ("not_given", "not given"),
    ("pending", "pending"),
)


def ward_tables(report: WardReport) -> list[Table]:
    slots = tuple(
        (s.slot, label, getattr(s, field)) for s in report.by_slot for field, label in _OUTCOMES
    )
    days = tuple(
        (
            d.day.isoformat(),
            label,
            value,
        )
        for d in report.by_day
        for label, value in (
            ("on time", d.on_time),
            ("late", d.late),
            ("missed", d.missed),
            ("not given", d.refused + d.held + d.not_given),
        )
    )
    scan = report.scan
    scan_rows = (
        ("scanned", scan.scanned),
        *((f"skipped: {r.reason}", r.count) for r in scan.skip_reasons),
        ("not scanned, no reason", scan.unscanned_without_reason),
    )
    psych = report.psychotropics
    return [
        Table(
            "doses-by-slot",
            "Planned doses by slot and outcome",
            f"How the ward's planned doses went at each time of day, {_span(report)}.",
            ("slot", "outcome", "doses"),
            slots,
            Chart("heatmap", value="doses", category="slot", x="outcome"),
        ),
        Table(
            "doses-by-day",
            "Planned doses per day",
            "Doses given on time and late, missed, and not given (refused, held or not "
            f"given) per day, {_span(report)}.",
            ("day", "outcome", "doses"),
            days,
            Chart("line", value="doses", x="day", series="outcome"),
        ),
        Table(
            "not-given-reasons",
            "Doses not given, by reason",
            "Planned doses charted as refused, held or not given, by the reason charted.",
            ("outcome", "reason", "doses"),
            tuple((r.outcome, r.reason, r.count) for r in report.not_given_reasons),
            Chart("bar", value="doses", category="reason"),
        ),
        Table(
            "scan",
            "Scan compliance",
            f"Doses given ({scan.given}): pack scanned, skipped with a reason, or neither. "
            f"Share scanned: {_pct(scan.share_scanned)} %.",
            ("scan", "doses"),
            scan_rows,
            Chart("bar", value="doses", category="scan"),
        ),
        Table(
            "prn-by-week",
            "PRN doses per resident per week",
            "As-needed doses charted as given, per current resident and ISO week (Monday); "
            f"{report.prn.other_residents_doses} dose(s) to residents discharged since are "
            "not shown by name.",
            ("resident", "week", "doses"),
            tuple(
                (r.name, w.week.isoformat(), w.doses) for r in report.prn.residents for w in r.weeks
            ),
            Chart("heatmap", value="doses", category="resident", x="week"),
        ),
        Table(
            "psychotropics-by-class",
            "Residents using psychotropics, by class",
            f"Of {psych.residents} current residents, {psych.with_any} use at least one "
            f"psychotropic and {psych.with_antipsychotic} an antipsychotic (active list entries "
            "at the report's moment; classes by ATC, unreviewed).",
            ("class", "residents", "share_percent"),
            tuple((c.label, c.residents, _pct(c.share)) for c in psych.by_class),
            Chart("bar", value="residents", category="class"),
        ),
        Table(
            "psychotropics-per-resident",
            "Psychotropics per resident",
            "Each current resident's psychotropic list entries.",
            ("resident", "psychotropics", "antipsychotic", "drugs"),
            tuple(
                (r.name, r.count, "yes" if r.antipsychotic else "no", "; ".join(r.drugs))
                for r in psych.per_resident
            ),
        ),
        Table(
            "reviews-due",
            "Medication reviews due",
            "Due on admission and a year after the latest review signed during the stay.",
            ("resident", "admitted_on", "last_review", "next_due", "status"),
            tuple(
                (
                    r.name,
                    r.admitted_on.isoformat(),
                    None if r.last_review is None else r.last_review.isoformat(),
                    r.next_due.isoformat(),
                    r.status,
                )
                for r in report.reviews.residents
            ),
        ),
    ]


def prescriber_tables(report: PrescriberReport) -> list[Table]:
    ab = report.antibiotics
    basis = (
        "the list size given"
        if ab.denominator.basis == "list-size"
        else "the patients prescribed for in the period"
    )
    return [
        Table(
            "antibiotic-courses",
            "Antibiotic courses per month",
            f"Systemic antibiotic (J01) prescriptions issued per month; per 1 000 of {basis} "
            f"({ab.denominator.patients}).",
            ("month", "courses", "per_1000"),
            tuple((m.month, m.courses, m.per_1000) for m in ab.by_month),
            Chart("bar", value="courses", category="month"),
        ),
        Table(
            "narrow-spectrum-share",
            "Share of narrow-spectrum penicillin (J01CE)",
            "Per month, among antibiotic courses for respiratory tract infections (indication "
            "given) and among all antibiotic courses, in per cent.",
            ("month", "among", "percent"),
            tuple(
                (m.month, among, value)
                for m in ab.by_month
                for among, value in (
                    ("respiratory infections", _pct(m.share_narrow_respiratory)),
                    ("all antibiotics", _pct(m.share_narrow_all)),
                )
            ),
            Chart("line", value="percent", x="month", series="among", value_title="per cent"),
        ),
        Table(
            "override-rates",
            "Alert override rate per rule and severity",
            "Alerts raised by my commands, the share I overrode, and those I heeded (the "
            "command refused for want of an override and never retried with one), most "
            "overridden first.",
            ("rule", "alert", "severity", "raised", "overridden", "heeded", "rate_percent"),
            tuple(
                (o.rule, o.summary, o.severity, o.raised, o.overridden, o.heeded, _pct(o.rate))
                for o in report.overrides
            ),
            Chart("bar", value="rate_percent", category="rule", series="severity"),
        ),
        Table(
            "proposal-answers",
            "Time to answer a multidose pharmacy's proposal",
            f"Median hours from proposal to my decision per month ({report.proposals.answered} "
            f"answered, {report.proposals.open} open).",
            ("month", "answered", "median_hours"),
            tuple((m.month, m.answered, m.median_hours) for m in report.proposals.by_month),
            Chart("bar", value="median_hours", category="month"),
        ),
    ]


def pharmacy_tables(report: PharmacyReport) -> list[Table]:
    return [
        Table(
            "reconciliation-lines",
            "Packing report lines by reconciliation class",
            "Lines of the packing reports reconciled per month, by class.",
            ("month", "class", "lines"),
            tuple((m.month, c, n) for m in report.by_month for c, n in m.lines.items()),
            Chart("heatmap", value="lines", category="class", x="month"),
        ),
        Table(
            "deadline-and-urgent",
            "Changes after the order deadline and urgent packs",
            "Per month: list changes to multidose entries after a period's order deadline, "
            "and urgent packs ordered.",
            ("month", "measure", "count"),
            tuple(
                (m.month, measure, value)
                for m in report.by_month
                for measure, value in (
                    ("changes after deadline", m.changes_after_deadline),
                    ("urgent packs", m.urgent_packs),
                )
            ),
            Chart("line", value="count", x="month", series="measure"),
        ),
        Table(
            "urgent-pack-reasons",
            "Urgent packs by reason",
            "Urgent packs ordered in the period, by the reason given.",
            ("reason", "packs"),
            tuple((r.reason, r.count) for r in report.urgent_pack_reasons),
            Chart("bar", value="packs", category="reason"),
        ),
    ]


def _span(report: WardReport) -> str:
    return f"{report.period.first_day} to {report.period.last_day}"


# -- rendering ---------------------------------------------------------------------------------

_DASHES = [[1, 0], [6, 3], [2, 2], [8, 3, 2, 3], [1, 4]]
_SHAPES = ["circle", "square", "triangle-up", "diamond", "cross"]


def chart_spec(table: Table) -> dict[str, Any]:
    """The Vega-Lite specification of ``table``'s chart."""
    assert table.chart is not None
    c = table.chart
    data = alt.Data(values=table.records())
    value_title = c.value_title or c.value.replace("_", " ")
    if c.kind == "bar":
        label = c.category
        label_title = c.category
        records = table.records()
        if c.series is not None:
            # one bar per category and series, named by both on the axis: no colour needed
            label = "label"
            label_title = f"{c.category} ({c.series})"
            for r in records:
                r[label] = f"{r[c.category]} ({r[c.series]})"
            data = alt.Data(values=records)
        y = alt.Y(f"{label}:N", title=label_title, sort=None, axis=alt.Axis(labelLimit=320))
        base = alt.Chart(data).encode(y=y)
        tooltip = [alt.Tooltip(f"{col}:N") for col in table.columns]
        chart = base.mark_bar(color="#2f5d8a").encode(
            x=alt.X(f"{c.value}:Q", title=value_title), tooltip=tooltip
        ) + base.mark_text(align="left", dx=3, color="#000000", aria=False).encode(
            x=alt.X(f"{c.value}:Q"), text=alt.Text(f"{c.value}:Q")
        )
        chart = chart.properties(width=360, height=alt.Step(22))
    elif c.kind == "heatmap":
        base = alt.Chart(data).encode(
            x=alt.X(f"{c.x}:O", title=c.x, sort=None),
            y=alt.Y(f"{c.category}:O", title=c.category, sort=None),
        )
        tooltip = [alt.Tooltip(f"{col}:N") for col in table.columns]
        chart = base.mark_rect(stroke="#ffffff").encode(
            color=alt.Color(
                f"{c.value}:Q", title=value_title, scale=alt.Scale(scheme="greys"), legend=None
            ),
            tooltip=tooltip,
        ) + base.mark_text(aria=False).encode(
            text=alt.Text(f"{c.value}:Q"),
            color=alt.condition(alt.datum[c.value] > 0, alt.value("#000000"), alt.value("#767676")),
        )
        chart = chart.properties(width=alt.Step(44), height=alt.Step(22))
    else:
        series = alt.Legend(title=c.series, symbolStrokeWidth=2, symbolSize=120)
        chart = (
            alt.Chart(data)
            .mark_line(point=alt.OverlayMarkDef(filled=True, size=50), strokeWidth=2)
            .encode(
                x=alt.X(f"{c.x}:O", title=c.x, sort=None),
                y=alt.Y(f"{c.value}:Q", title=value_title),
                color=alt.Color(
                    f"{c.series}:N", legend=series, scale=alt.Scale(scheme="dark2"), sort=None
                ),
                strokeDash=alt.StrokeDash(
                    f"{c.series}:N", legend=series, scale=alt.Scale(range=_DASHES), sort=None
                ),
                shape=alt.Shape(
                    f"{c.series}:N", legend=series, scale=alt.Scale(range=_SHAPES), sort=None
                ),
                tooltip=[alt.Tooltip(f"{col}:N") for col in table.columns],
            )
            .properties(width=max(360, 12 * len({r[0] for r in table.rows})), height=220)
        )
    return chart.properties(title=table.title, description=table.description).to_dict()


def render_svg(table: Table) -> str:
    """``table``'s chart as a standalone SVG document with a ``<title>`` and ``<desc>``."""
    svg = _EMPTY_MARKS.sub(_hidden, vl_convert.vegalite_to_svg(chart_spec(table)))
    head = svg.index(">", svg.index("<svg")) + 1
    opening = svg[: head - 1]
    labelled = (
        f'{opening} role="img" aria-labelledby="{table.id}-title {table.id}-desc">'
        f'<title id="{table.id}-title">{html.escape(table.title)}</title>'
        f'<desc id="{table.id}-desc">{html.escape(table.description)}</desc>'
    )
    return labelled + svg[head:]


_EMPTY_MARKS = re.compile(r'<g ([^>]*role="graphics-symbol"[^>]*)/>')


def _hidden(found: re.Match[str]) -> str:
    """An empty mark container (no data) that Vega gives an image role without a label:
    hidden from assistive technology (axe: svg-img-alt); the table says there is no data."""
    attributes = found.group(1)
    if "aria-label=" in attributes:
        return found.group(0)
    kept = attributes.replace(' role="graphics-symbol"', "").replace('role="graphics-symbol"', "")
    return f'<g {kept} aria-hidden="true"/>'


def find_table(tables: Sequence[Table], table_id: str) -> Table | None:
    return next((t for t in tables if t.id == table_id), None)


def to_csv(table: Table) -> str:
    """``table`` as CSV (RFC 4180, a header row of its columns, CRLF line ends)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.columns)
    writer.writerows(["" if v is None else v for v in row] for row in table.rows)
    return out.getvalue()
