"""The patient's own pages, read-only: their current medication list and who has read or
changed their data (the access log, from the audit log, newest first).

The same audited reads as the JSON API's ``/me`` routes (``Caller.read_own``: only the signed-in
person's own record; every read leaves an audit record the patient then sees).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from interactions.values import INT64_MAX
from medloop import queries
from medloop.api import views
from medloop.api.auth import Role
from medloop.api.routing import BlockingRoute
from medloop.pages import signin
from medloop.pages.dosage_form import dosage_text
from medloop.pages.gp import STATUS_NAMES
from medloop.pages.i18n import N_, format_decimal
from medloop.pages.web import PageDep, url

router = APIRouter(route_class=BlockingRoute, include_in_schema=False)
signin.LANDINGS[Role.PATIENT] = url("me")

PAGE_SIZE = 50
ROLE_NAMES = {
    "gp": N_("Doctor"),
    "nurse": N_("Nurse"),
    "pharmacist": N_("Pharmacist"),
    "patient": N_("You"),
    "system": N_("medloop (automatic)"),
}


@router.get("/app/me", response_class=HTMLResponse)
def my_list(page: PageDep) -> Response:
    def read(conn: Any, patient_id: Any) -> Any:
        return (
            queries.current_list(conn, patient_id, page.caller.at),
            queries.patient_state(conn, patient_id).patient,
        )

    current, patient = page.caller.read_own("own-list", read)
    return page.render(
        "patient/list.html",
        current=current,
        patient=patient,
        STATUS_NAMES=STATUS_NAMES,
        dosage_text=lambda d: dosage_text(d, page._, lambda v: format_decimal(v, page.lang)),
    )


@router.get("/app/me/access-log", response_class=HTMLResponse)
def my_access_log(
    page: PageDep, before: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None
) -> Response:
    found = page.caller.read_own(
        "access-log",
        lambda conn, patient_id: queries.access_log(
            conn, page.principal.subject, limit=PAGE_SIZE, before=before, patient_id=patient_id
        ),
    )
    return page.render(
        "patient/access_log.html",
        events=[views.access_event_view(event) for event in found.events],
        next_before=found.next_before,
        ROLE_NAMES=ROLE_NAMES,
        parse=_moment,
    )


def _moment(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)
