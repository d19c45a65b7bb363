"""The patient's own API (read-only): their current list, and who has accessed their data
(from the audit log)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from interactions.values import INT64_MAX
from medloop.api.deps import CallerDep, json_with_etag
from medloop.api.problems import responses
from medloop.api.responses import JSONResponse
from medloop.api.routes.gp import list_view
from medloop.api.routing import BlockingRoute
from medloop.api.schemas import AccessLog, ListView
from medloop.store import audit
from medloop.store.audit import MAX_PAGE

router = APIRouter(prefix="/me", tags=["patient"], route_class=BlockingRoute)


@router.get(
    "/list", response_model=ListView, responses=responses(401, 403),
    summary="My current medication list",
)
def my_list(caller: CallerDep) -> JSONResponse:
    body = caller.read_own(
        "own-list", lambda conn, patient_id: list_view(conn, patient_id, caller.at)
    )
    return json_with_etag(body, body["list_version"])


@router.get(
    "/access-log", response_model=AccessLog, responses=responses(401, 403, 422),
    summary="Who has read or changed my data, newest first",
)
def my_access_log(
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> JSONResponse:
    def read(conn, patient_id) -> audit.PatientAccessPage:
        return audit.events_for_patient(conn, caller.principal.subject, limit=limit, before=before)

    page = caller.read_own("access-log", read)
    return JSONResponse(
        {
            "events": [
                {
                    "seq": event.seq,
                    "at": event.occurred_at.isoformat(),
                    "actor": event.actor,
                    "actor_role": event.actor_role,
                    "organisation": event.organisation,
                    "action": event.action,
                    "outcome": str(event.outcome),
                    "reason": event.reason,
                    # An admission's municipal decision (what gave a nursing home access).
                    "decision_reference": _decision_reference(event),
                }
                for event in page.events
            ],
            "next_before": page.next_before,
        }
    )


def _decision_reference(event: audit.AuditRecord) -> str | None:
    found = event.detail.get("decision_reference") if event.action == ADMISSION else None
    return found if isinstance(found, str) else None


ADMISSION = "medication-list.admit"
