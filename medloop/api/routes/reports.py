"""Quality reports (issue #19): the ward's, the prescriber's own and the multidose pharmacy's,
each as JSON, every table behind it as CSV and every chart as SVG.

Scoped by ``medloop.api.policy``: a nurse reads the reports of the wards of her organisation
(the residents named are those admitted to the ward at the report's moment; the ward chart's
rule, and each named resident's access is audited), a doctor reads the report of their own
prescribing only (by the HPR number of their token), a pharmacist the report of their own
pharmacy's multidose periods. The prescriber and pharmacy reports are aggregates that name
no patient. ``from`` and ``to`` are Oslo calendar days, both included (default: the 90 days
ending today); at most 400 days.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from interactions.values import Day
from medloop.api.deps import Caller, CallerDep
from medloop.api.problems import NotFound, responses
from medloop.api.report_reads import (
    period_for,
    pharmacy_report_for,
    prescriber_report_for,
    ward_report_for,
)
from medloop.api.responses import JSONResponse
from medloop.api.routing import BlockingRoute
from medloop.reports import charts
from medloop.reports.period import ReportPeriod
from medloop.reports.pharmacy import PharmacyReport
from medloop.reports.prescriber import (
    PrescriberReport,
)
from medloop.reports.ward import WardReport

router = APIRouter(prefix="/reports", tags=["reports"], route_class=BlockingRoute)
READ = responses(401, 403, 404, 422)

From = Annotated[Day | None, Query(alias="from", description="First Oslo day (included)")]
To = Annotated[Day | None, Query(alias="to", description="Last Oslo day (included)")]
TableId = Annotated[str, Path(pattern=r"^[a-z0-9-]{1,40}$")]
ListSize = Annotated[
    int | None,
    Query(
        ge=1,
        le=10_000,
        description="The doctor's GP list size (the engine does not hold the list): the "
        "denominator of antibiotic courses per 1 000 patients",
    ),
]
CSV = {200: {"content": {"text/csv": {}}, "description": "The table as CSV"}}
SVG = {200: {"content": {"image/svg+xml": {}}, "description": "The chart as SVG"}}


# -- the query every route of a report kind shares (one dependency per kind) -------------------


async def _period(caller: CallerDep, first: From = None, last: To = None) -> ReportPeriod:
    """``from`` … ``to`` as the report's period (the ward's and the pharmacy's reports); a
    coroutine, like ``CallerDep``: it only computes days, on the event loop, no thread hop."""
    return period_for(caller, first, last)


Period = Annotated[ReportPeriod, Depends(_period)]


@dataclass(frozen=True, slots=True)
class PrescriberQuery:
    """The prescriber report's query: the period and the GP list size."""

    period: ReportPeriod
    list_size: int | None


async def _prescriber_query(
    caller: CallerDep, first: From = None, last: To = None, list_size: ListSize = None
) -> PrescriberQuery:
    return PrescriberQuery(period_for(caller, first, last), list_size)


Prescriber = Annotated[PrescriberQuery, Depends(_prescriber_query)]


# -- ward --------------------------------------------------------------------------------------


@router.get(
    "/wards/{ward_id}",
    responses=READ,
    response_model=WardReport,
    operation_id="readWardReport",
    summary="The ward's quality report: doses on time, scans, PRN, psychotropics, reviews due",
)
def ward(caller: CallerDep, ward_id: UUID, period: Period) -> JSONResponse:
    return JSONResponse(ward_report_for(caller, ward_id, period).model_dump(mode="json"))


@router.get(
    "/wards/{ward_id}/tables/{table}.csv",
    responses={**READ, **CSV},
    response_class=Response,
    operation_id="readWardReportTable",
    summary="One table of the ward's report as CSV",
)
def ward_csv(caller: CallerDep, ward_id: UUID, table: TableId, period: Period) -> Response:
    report = ward_report_for(caller, ward_id, period)
    return _csv(charts.ward_tables(report), table, f"ward-{table}")


@router.get(
    "/wards/{ward_id}/charts/{table}.svg",
    responses={**READ, **SVG},
    response_class=Response,
    operation_id="readWardReportChart",
    summary="One chart of the ward's report as SVG",
)
def ward_svg(caller: CallerDep, ward_id: UUID, table: TableId, period: Period) -> Response:
    return _svg(charts.ward_tables(ward_report_for(caller, ward_id, period)), table)


# -- prescriber --------------------------------------------------------------------------------


def _prescriber(caller: Caller, query: PrescriberQuery) -> PrescriberReport:
    return prescriber_report_for(caller, query.period, query.list_size)


@router.get(
    "/prescriber",
    responses=READ,
    response_model=PrescriberReport,
    operation_id="readPrescriberReport",
    summary="My prescribing: antibiotics (RAK style), alert override rates, proposal answers",
)
def prescriber(caller: CallerDep, query: Prescriber) -> JSONResponse:
    return JSONResponse(_prescriber(caller, query).model_dump(mode="json"))


@router.get(
    "/prescriber/tables/{table}.csv",
    responses={**READ, **CSV},
    response_class=Response,
    operation_id="readPrescriberReportTable",
    summary="One table of my prescriber report as CSV",
)
def prescriber_csv(caller: CallerDep, table: TableId, query: Prescriber) -> Response:
    report = _prescriber(caller, query)
    return _csv(charts.prescriber_tables(report), table, f"prescriber-{table}")


@router.get(
    "/prescriber/charts/{table}.svg",
    responses={**READ, **SVG},
    response_class=Response,
    operation_id="readPrescriberReportChart",
    summary="One chart of my prescriber report as SVG",
)
def prescriber_svg(caller: CallerDep, table: TableId, query: Prescriber) -> Response:
    return _svg(charts.prescriber_tables(_prescriber(caller, query)), table)


# -- multidose pharmacy ------------------------------------------------------------------------


@router.get(
    "/pharmacy",
    responses=READ,
    response_model=PharmacyReport,
    operation_id="readPharmacyReport",
    summary="My pharmacy's multidose report: reconciliation classes, late changes, urgent packs",
)
def pharmacy(caller: CallerDep, period: Period) -> JSONResponse:
    return JSONResponse(pharmacy_report_for(caller, period).model_dump(mode="json"))


@router.get(
    "/pharmacy/tables/{table}.csv",
    responses={**READ, **CSV},
    response_class=Response,
    operation_id="readPharmacyReportTable",
    summary="One table of my pharmacy's report as CSV",
)
def pharmacy_csv(caller: CallerDep, table: TableId, period: Period) -> Response:
    report = pharmacy_report_for(caller, period)
    return _csv(charts.pharmacy_tables(report), table, f"pharmacy-{table}")


@router.get(
    "/pharmacy/charts/{table}.svg",
    responses={**READ, **SVG},
    response_class=Response,
    operation_id="readPharmacyReportChart",
    summary="One chart of my pharmacy's report as SVG",
)
def pharmacy_svg(caller: CallerDep, table: TableId, period: Period) -> Response:
    return _svg(charts.pharmacy_tables(pharmacy_report_for(caller, period)), table)


# -- translation -------------------------------------------------------------------------------


def _table(tables: list[charts.Table], table_id: str, *, chart: bool) -> charts.Table:
    found = charts.find_table(tables, table_id)
    if found is None or (chart and found.chart is None):
        known = ", ".join(t.id for t in tables if not chart or t.chart is not None)
        raise NotFound(f"this report has no {'chart' if chart else 'table'} {table_id!r} ({known})")
    return found


def _csv(tables: list[charts.Table], table_id: str, name: str) -> Response:
    found = _table(tables, table_id, chart=False)
    return Response(
        charts.to_csv(found),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _svg(tables: list[charts.Table], table_id: str) -> Response:
    render: Callable[[charts.Table], str] = charts.render_svg
    return Response(render(_table(tables, table_id, chart=True)), media_type="image/svg+xml")
