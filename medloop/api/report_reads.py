"""The reports read on behalf of a caller, shared by the JSON routes
(``api/routes/reports.py``) and the report pages (``pages/reports.py``): the policy check, the
period, and the read (audited per named resident for a ward; keyed by the token's HPR number /
organisation for a doctor's and a pharmacy's report)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID

from medloop import queries
from medloop.api.deps import Caller
from medloop.api.policy import Action, authorize_ward
from medloop.api.problems import Forbidden
from medloop.reports.period import ReportPeriod
from medloop.reports.pharmacy import PharmacyReport, pharmacy_report, read_pharmacy_facts
from medloop.reports.prescriber import (
    PrescriberReport,
    prescriber_report,
    read_prescriber_facts,
)
from medloop.reports.ward import WardReport, read_ward_facts, ward_report

DEFAULT_DAYS = 90


def period_for(caller: Caller, first: date | None, last: date | None) -> ReportPeriod:
    """``first`` … ``last`` (Oslo days); by default the ``DEFAULT_DAYS`` to today."""
    end = last or caller.day
    return ReportPeriod.of(first or end - timedelta(days=DEFAULT_DAYS - 1), end)


def ward_report_for(caller: Caller, ward_id: UUID, period: ReportPeriod) -> WardReport:
    organisation = caller.state.read_unaudited(
        lambda conn: queries.ward_organisation(conn, ward_id)
    )
    authorize_ward(
        caller.engine,
        caller.principal,
        Action.REPORT_WARD,
        organisation,
        request_id=caller.request_id,
    )

    def read(conn: Any) -> tuple[WardReport, list[UUID]]:
        report = ward_report(read_ward_facts(conn, ward_id, period, caller.at))
        return report, [r.patient_id for r in report.psychotropics.per_resident]

    return caller.read_many("report.read.ward", read)


def prescriber_report_for(
    caller: Caller, period: ReportPeriod, list_size: int | None = None
) -> PrescriberReport:
    caller.authorize(Action.REPORT_PRESCRIBER)
    hpr = caller.principal.subject  # a doctor's own prescribing, never another's
    facts = caller.state.read_unaudited(
        lambda conn: read_prescriber_facts(conn, hpr, period, caller.at)
    )
    return prescriber_report(facts, list_size)


def pharmacy_report_for(caller: Caller, period: ReportPeriod) -> PharmacyReport:
    caller.authorize(Action.REPORT_PHARMACY)
    pharmacy = caller.principal.organisation
    if pharmacy is None:  # a pharmacist's token always names the pharmacy
        raise Forbidden("the token names no pharmacy")
    facts = caller.state.read_unaudited(
        lambda conn: read_pharmacy_facts(conn, pharmacy, period, caller.at)
    )
    return pharmacy_report(facts)


def wards_of(caller: Caller) -> list[tuple[UUID, str]]:
    """The wards of the caller's organisation (id, name), for a nurse's list of reports."""
    organisation = caller.principal.organisation
    if organisation is None:
        return []
    from medloop.reports.ward import wards_of_organisation

    return caller.state.read_unaudited(lambda conn: wards_of_organisation(conn, organisation))
