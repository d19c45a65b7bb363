"""The patient's own API (read-only): their current list, and who has accessed their data
(from the audit log)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from interactions.values import INT64_MAX
from medloop import queries
from medloop.api import views
from medloop.api.deps import CallerDep, IfNoneMatch, json_with_etag, read_with_etag
from medloop.api.paging import LINK_DESCRIPTION
from medloop.api.problems import responses
from medloop.api.responses import JSONResponse
from medloop.api.routing import BlockingRoute
from medloop.api.schemas import AccessLog, ListView

router = APIRouter(prefix="/me", tags=["patient"], route_class=BlockingRoute)
ACCESS_LOG_PAGED = {
    200: {
        "headers": {
            "Link": {
                "description": LINK_DESCRIPTION.replace("cursor", "before"),
                "schema": {"type": "string"},
            }
        }
    }
}


@router.get(
    "/list",
    response_model=ListView,
    responses={**responses(401, 403, 422), **read_with_etag()},
    summary="My current medication list",
    operation_id="readMyList",
)
def my_list(caller: CallerDep, seen: IfNoneMatch) -> Response:
    body, version = caller.read_own(
        "own-list", lambda conn, patient_id: views.list_view(conn, patient_id, caller.at)
    )
    return json_with_etag(body, version, seen)


@router.get(
    "/access-log",
    response_model=AccessLog,
    responses={**responses(401, 403, 422), **ACCESS_LOG_PAGED},
    operation_id="readMyAccessLog",
    summary="Who has read or changed my data, newest first",
)
def my_access_log(
    caller: CallerDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=queries.ACCESS_LOG_PAGE)] = 50,
    before: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> JSONResponse:
    page = caller.read_own(
        "access-log",
        lambda conn, patient_id: queries.access_log(
            conn, caller.principal.subject, limit=limit, before=before, patient_id=patient_id
        ),
    )
    headers = {}
    if page.next_before is not None:
        # The page's own cursor (``before``), also as an RFC 8288 link.
        query = urlencode({"before": page.next_before, "limit": limit})
        headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
    return JSONResponse(
        {
            "events": [views.access_event_view(event) for event in page.events],
            "next_before": page.next_before,
        },
        headers=headers,
    )
