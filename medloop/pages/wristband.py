"""The resident's wristband: the GS1 GSRN registered for their stay.

- ``GET /app/nurse/residents/{patient}/wristband``: the GSRN registered now (if any) and a
  field to scan a new wristband (the bare 18 digits or the AI 8018 element string).
- ``POST`` the same address: ``medloop.loop.administration.register_wristband`` (a command:
  audited, the check digit checked, a GSRN of another stay refused), then back to the bedside,
  where the scan of that wristband now confirms the resident.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response

from medloop import queries
from medloop.api.policy import Action
from medloop.api.routing import BlockingRoute
from medloop.domain.errors import DomainError
from medloop.loop import administration
from medloop.pages.i18n import N_
from medloop.pages.messages import Refusal, explain
from medloop.pages.nurse import _nurse_only
from medloop.pages.web import FormDep, Page, PageDep, url

router = APIRouter(route_class=BlockingRoute, include_in_schema=False)


def _page(
    page: Page, patient_id: UUID, *, refusal: Refusal | None = None, scanned: str = ""
) -> Response:
    at = page.caller.at

    def read(conn: Any) -> dict[str, Any]:
        return {
            "patient": queries.residents(conn, [patient_id]).get(patient_id),
            "gsrn": administration.wristband_gsrn(conn, patient_id, page.principal.actor, at),
        }

    found = page.caller.read(patient_id, "administration.wristband", read)
    return page.render(
        "nurse/wristband.html",
        status=200 if refusal is None else refusal.status,
        patient_id=patient_id,
        refusal=refusal,
        scanned=scanned,
        **found,
    )


@router.get("/app/nurse/residents/{patient_id}/wristband")
def wristband(page: PageDep, patient_id: UUID) -> Response:
    _nurse_only(page)
    page.caller.authorize(Action.CHART_READ, patient_id)
    return _page(page, patient_id)


@router.post("/app/nurse/residents/{patient_id}/wristband")
def register(page: PageDep, form: FormDep, patient_id: UUID) -> Response:
    _nurse_only(page)
    page.caller.authorize(Action.CHART_WRITE, patient_id)
    code = str(form.get("gsrn") or "").strip()[:100]
    if not code:
        refusal = Refusal("gsrn-required", page._(N_("Scan the new wristband.")), "gsrn", 422)
        return _page(page, patient_id, refusal=refusal)
    try:
        administration.register_wristband(page.state.engine, patient_id, code, page.caller.call())
    except DomainError as error:
        found = explain(error, page.lang)
        refusal = Refusal(found.code, found.text, "gsrn", found.status)
        return _page(page, patient_id, refusal=refusal, scanned=code)
    return page.redirect(url(f"nurse/residents/{patient_id}/bedside"))
