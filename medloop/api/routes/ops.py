"""Operations: ``/health/live``, ``/health/ready`` and ``/metrics`` (no patient data, no bearer
token of a user: load balancers and Prometheus call them). ``/metrics`` asks for
``Authorization: Bearer <MEDLOOP_METRICS_TOKEN>`` when that variable is set."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from medloop.api.deps import ApiState
from medloop.api.responses import JSONResponse
from medloop.api.routing import BlockingRoute
from medloop.loop.catalogue import catalogue_in_force
from medloop.ops import health, metrics
from medloop.settings import current

router = APIRouter(tags=["operations"], route_class=BlockingRoute)


class Liveness(BaseModel):
    status: str = Field(description='"pass"')


class ReadinessReport(BaseModel):
    """``status`` ``pass`` or ``fail``, and each check with its own status and why."""

    model_config = ConfigDict(extra="allow")

    status: str
    checks: dict[str, Any]


@router.get(
    "/health/live",
    response_model=Liveness,
    operation_id="live",
    summary="The process answers",
)
def live() -> JSONResponse:
    return JSONResponse({"status": "pass"}, headers={"Cache-Control": "no-store"})


@router.get(
    "/health/ready",
    response_model=ReadinessReport,
    operation_id="ready",
    summary="This process can serve: database at the migration head, catalogue loaded, jobs",
    responses={
        503: {"description": "Not ready; the failing checks say why", "model": ReadinessReport}
    },
)
def ready(request: Request) -> JSONResponse:
    engine: Engine = request.app.state.api.engine
    found = health.ready(engine, catalogue_in_force, health.run_dir_from_env())
    return JSONResponse(
        found.body(),
        status_code=200 if found.ok else 503,
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        401: {"description": "Wrong metrics token"},
    },
)
def metrics_text(request: Request) -> Response:
    expected = current().ops.metrics_token
    if expected:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    state: ApiState = request.app.state.api
    body = metrics.render(metrics.CatalogueCollector(lambda: _catalogue_age(state)))
    return Response(body, media_type=metrics.CONTENT_TYPE_LATEST)


def _catalogue_age(state: ApiState) -> tuple[int, float] | None:
    from datetime import UTC, datetime

    from fest.queries import version_in_force

    version = state.read_unaudited(version_in_force)
    if version is None:
        return None
    try:
        fetched = datetime.fromisoformat(version["hentet_dato"])
    except ValueError:
        return int(version["id"]), float("nan")
    if fetched.tzinfo is None:
        fetched = fetched.replace(tzinfo=UTC)
    return int(version["id"]), (datetime.now(UTC) - fetched).total_seconds()
