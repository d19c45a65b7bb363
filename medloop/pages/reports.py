"""The report pages (issue #19): a nurse's reports of her organisation's wards, a doctor's
report of their own prescribing, a pharmacist's report of their pharmacy's multidose periods.

Each page shows every table of the report (``medloop.reports.charts``) as an HTML table with a
caption and, where the table has one, its chart as inline SVG above it (the chart's data is the
table: a screen reader reads the table) and a CSV download. The reads and their policy are the
JSON API's (``medloop.api.report_reads``): same scope, same audit. The period is a GET form
(``from``, ``to``: Oslo days).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from interactions.values import Day
from medloop.api.auth import Role
from medloop.api.problems import Forbidden, NotFound
from medloop.api.report_reads import (
    period_for,
    pharmacy_report_for,
    prescriber_report_for,
    ward_report_for,
    wards_of,
)
from medloop.api.routing import BlockingRoute
from medloop.pages import i18n, report_texts
from medloop.pages.i18n import N_
from medloop.pages.web import PageDep, url
from medloop.reports import charts
from medloop.reports.period import ReportPeriod

router = APIRouter(route_class=BlockingRoute, include_in_schema=False)

From = Annotated[Day | None, Query(alias="from")]
To = Annotated[Day | None, Query(alias="to")]

TITLES = {
    # the tables' titles and columns as the pages show them (translated in messages.po)
    "doses-by-slot": N_("Planned doses by slot and outcome"),
    "doses-by-day": N_("Planned doses per day"),
    "not-given-reasons": N_("Doses not given, by reason"),
    "scan": N_("Scan compliance"),
    "prn-by-week": N_("PRN doses per resident per week"),
    "psychotropics-by-class": N_("Residents using psychotropics, by class"),
    "psychotropics-per-resident": N_("Psychotropics per resident"),
    "reviews-due": N_("Medication reviews due"),
    "antibiotic-courses": N_("Antibiotic courses per month"),
    "narrow-spectrum-share": N_("Share of narrow-spectrum penicillin (J01CE)"),
    "override-rates": N_("Alert override rate per rule and severity"),
    "proposal-answers": N_("Time to answer a multidose pharmacy's proposal"),
    "reconciliation-lines": N_("Packing report lines by reconciliation class"),
    "deadline-and-urgent": N_("Changes after the order deadline and urgent packs"),
    "urgent-pack-reasons": N_("Urgent packs by reason"),
}
COLUMNS = {
    "slot": N_("slot"),
    "outcome": N_("outcome"),
    "doses": N_("doses"),
    "day": N_("day"),
    "reason": N_("reason"),
    "scan": N_("scan"),
    "resident": N_("resident"),
    "week": N_("week"),
    "class": N_("class"),
    "residents": N_("residents"),
    "share_percent": N_("share (%)"),
    "psychotropics": N_("psychotropics"),
    "antipsychotic": N_("antipsychotic"),
    "drugs": N_("drugs"),
    "admitted_on": N_("admitted"),
    "last_review": N_("last review"),
    "next_due": N_("next due"),
    "status": N_("status"),
    "month": N_("month"),
    "courses": N_("courses"),
    "per_1000": N_("per 1 000 patients"),
    "among": N_("among"),
    "percent": N_("per cent"),
    "rule": N_("rule"),
    "alert": N_("alert"),
    "severity": N_("severity"),
    "raised": N_("raised"),
    "overridden": N_("overridden"),
    "heeded": N_("heeded"),
    "rate_percent": N_("rate (%)"),
    "answered": N_("answered"),
    "median_hours": N_("median hours"),
    "measure": N_("measure"),
    "count": N_("count"),
    "lines": N_("lines"),
    "packs": N_("packs"),
}


def _show(
    page: Any,
    heading: str,
    period: ReportPeriod,
    tables: list[charts.Table],
    base: str,
    report: report_texts.Report,
) -> HTMLResponse:
    described = report_texts.descriptions(
        report, [t.id for t in tables], page._, lambda value: _shown(value, page.lang)
    )
    return page.render(
        "reports/report.html",
        heading=heading,
        period=period,
        base=base,
        tables=[
            {
                "table": t,
                "title": TITLES.get(t.id, t.title),
                "columns": [COLUMNS.get(c, c) for c in t.columns],
                "description": described.get(t.id),
                "svg": None if t.chart is None else charts.render_svg(t),
            }
            for t in tables
        ],
    )


def _shown(value: Any, lang: str) -> str:
    """A figure of a description the reader's way (dates and numbers by locale)."""
    if isinstance(value, date):
        return i18n.format_date(value, lang)
    if isinstance(value, int | float):
        return i18n.format_decimal(value, lang)
    return str(value)


def _csv(tables: list[charts.Table], table_id: str, name: str) -> Response:
    found = charts.find_table(tables, table_id)
    if found is None:
        raise NotFound(f"this report has no table {table_id!r}")
    return Response(
        charts.to_csv(found),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}.csv"',
            "Cache-Control": "no-store",  # a ward's report names its residents
        },
    )


@router.get("/app/reports")
def reports_home(page: PageDep) -> HTMLResponse:
    role = page.principal.role
    if role not in (Role.NURSE, Role.GP, Role.PHARMACIST):
        raise Forbidden(f"a {role.value} has no reports")
    wards = wards_of(page.caller) if role is Role.NURSE else []
    return page.render("reports/home.html", role=role.value, wards=wards)


@router.get("/app/reports/wards/{ward_id}")
def ward_page(page: PageDep, ward_id: UUID, first: From = None, last: To = None) -> HTMLResponse:
    period = period_for(page.caller, first, last)
    report = ward_report_for(page.caller, ward_id, period)
    return _show(
        page,
        report.ward_name,
        period,
        charts.ward_tables(report),
        url(f"reports/wards/{ward_id}"),
        report,
    )


@router.get("/app/reports/wards/{ward_id}/{table}.csv")
def ward_page_csv(
    page: PageDep, ward_id: UUID, table: str, first: From = None, last: To = None
) -> Response:
    report = ward_report_for(page.caller, ward_id, period_for(page.caller, first, last))
    return _csv(charts.ward_tables(report), table, f"ward-{table}")


@router.get("/app/reports/prescriber")
def prescriber_page(page: PageDep, first: From = None, last: To = None) -> HTMLResponse:
    period = period_for(page.caller, first, last)
    report = prescriber_report_for(page.caller, period)
    heading = page._("My prescribing")
    return _show(
        page, heading, period, charts.prescriber_tables(report), url("reports/prescriber"), report
    )


@router.get("/app/reports/prescriber/{table}.csv")
def prescriber_page_csv(page: PageDep, table: str, first: From = None, last: To = None) -> Response:
    report = prescriber_report_for(page.caller, period_for(page.caller, first, last))
    return _csv(charts.prescriber_tables(report), table, f"prescriber-{table}")


@router.get("/app/reports/pharmacy")
def pharmacy_page(page: PageDep, first: From = None, last: To = None) -> HTMLResponse:
    period = period_for(page.caller, first, last)
    report = pharmacy_report_for(page.caller, period)
    heading = page._("Multidose packing")
    return _show(
        page, heading, period, charts.pharmacy_tables(report), url("reports/pharmacy"), report
    )


@router.get("/app/reports/pharmacy/{table}.csv")
def pharmacy_page_csv(page: PageDep, table: str, first: From = None, last: To = None) -> Response:
    report = pharmacy_report_for(page.caller, period_for(page.caller, first, last))
    return _csv(charts.pharmacy_tables(report), table, f"pharmacy-{table}")


__all__ = ["router"]
