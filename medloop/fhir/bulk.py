"""FHIR Bulk Data Access (v2) ``$export``: kick-off for the system or a ward
(``Group/<ward id>``), status polling, the NDJSON files, and deleting an export. Restricted to
the ``exporter`` role with ``system/`` scopes (``api.policy``: ``fhir.export``); a Group export
only of a ward of the exporter's organisation. The export runs as the ``fhir-export`` job
(``medloop.jobs``, ``medloop.fhir.export``), which audits each patient it reads."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from medloop import queries
from medloop.api.deps import Caller, CallerDep
from medloop.api.policy import Action
from medloop.fhir import negotiation, scopes
from medloop.fhir import resources as fhir
from medloop.fhir.export import TYPES, export_directory
from medloop.fhir.outcome import FhirError
from medloop.fhir.router import FhirResponse, FhirRoute
from medloop.fhir.search import lenient
from medloop.loop import exports

router = APIRouter(
    prefix="/fhir", tags=["fhir bulk data"], route_class=FhirRoute, include_in_schema=False
)

NDJSON = "application/fhir+ndjson"
_FORMATS = (None, NDJSON, "application/ndjson", "ndjson")
_KICK_OFF_PARAMETERS = ("_type", "_since", "_outputFormat")


def _kick_off(caller: Caller, request: Request, ward_id: UUID | None) -> Response:
    caller.authorize(Action.BULK_EXPORT)
    if "respond-async" not in (request.headers.get("prefer") or "").replace(" ", "").lower():
        raise FhirError(
            400, "required", "a bulk export is asynchronous: send Prefer: respond-async"
        )
    params = request.query_params
    unknown = [name for name in params if name not in _KICK_OFF_PARAMETERS]
    if unknown and not lenient(request):
        raise FhirError(
            400,
            "not-supported",
            f"unknown $export parameter(s): {', '.join(unknown)}",
            expression=unknown,
        )
    if params.get("_outputFormat") not in _FORMATS:
        raise FhirError(
            400, "not-supported", f"_outputFormat: only {NDJSON}", expression=["_outputFormat"]
        )
    types = (
        tuple(
            dict.fromkeys(
                t.strip() for v in params.getlist("_type") for t in v.split(",") if t.strip()
            )
        )
        or TYPES
    )
    refused = [t for t in types if t not in TYPES]
    if refused:
        raise FhirError(
            400,
            "not-supported",
            f"_type {', '.join(refused)} cannot be exported (supported: {', '.join(TYPES)})",
            expression=["_type"],
        )
    scopes.require_system(caller, types)
    since = None
    if params.get("_since"):
        try:
            since = datetime.fromisoformat(params["_since"].replace("Z", "+00:00"))
        except ValueError:
            raise FhirError(
                400,
                "invalid",
                "_since is a FHIR instant (2026-11-01T00:00:00Z)",
                expression=["_since"],
            ) from None
        if since.tzinfo is None:
            raise FhirError(400, "invalid", "_since needs a time zone", expression=["_since"])
    if ward_id is not None:
        owner = caller.state.read_unaudited(lambda conn: queries.ward_organisation(conn, ward_id))
        if owner is None or owner != caller.principal.organisation:
            # Wards of other organisations are answered like unknown ones.
            raise FhirError(404, "not-found", f"there is no Group/{ward_id}")
    export = exports.Export(
        id=uuid.uuid4(),
        requested_at=caller.at,
        requested_by={
            "actor": caller.principal.subject,
            "role": caller.principal.audit_role,
            "organisation": caller.principal.organisation,
            "request_id": caller.request_id,
        },
        kind="system" if ward_id is None else "group",
        group_id=ward_id,
        types=types,
        since=since,
        request_url=str(request.url),
        status=exports.PENDING,
        finished_at=None,
        output=None,
        error=None,
    )
    exports.kick_off(caller.engine, export)
    location = f"{_base(request)}/$export-status/{export.id}"
    return Response(status_code=202, headers={"Content-Location": location})


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


@router.get("/$export", status_code=202, summary="Bulk export of every patient (kick-off)")
def export_system(caller: CallerDep, request: Request) -> Response:
    return _kick_off(caller, request, None)


@router.get(
    "/Group/{group_id}/$export", status_code=202, summary="Bulk export of a ward (kick-off)"
)
def export_group(caller: CallerDep, group_id: str, request: Request) -> Response:
    try:
        ward_id = UUID(group_id)
    except ValueError:
        raise FhirError(404, "not-found", f"there is no Group/{group_id}") from None
    return _kick_off(caller, request, ward_id)


def _own_export(caller: Caller, export_id: str) -> exports.Export:
    """The caller's own export (another client's is answered like an unknown one)."""
    caller.authorize(Action.BULK_EXPORT)
    try:
        found = exports.status(caller.engine, UUID(export_id))
    except ValueError:
        found = None
    if (
        found is None
        or found.status == exports.CANCELLED
        or found.requested_by.get("actor") != caller.principal.subject
        or found.requested_by.get("organisation") != caller.principal.organisation
    ):
        raise FhirError(404, "not-found", f"there is no export {export_id}")
    return found


@router.get("/$export-status/{export_id}", summary="Poll an export: 202 while it runs")
def export_status(caller: CallerDep, export_id: str, request: Request) -> Response:
    found = _own_export(caller, export_id)
    if found.status in (exports.PENDING, exports.RUNNING):
        return Response(status_code=202, headers={"X-Progress": found.status, "Retry-After": "2"})
    if found.status == exports.FAILED:
        raise FhirError(500, "exception", f"the export failed ({found.error})")
    manifest: dict[str, Any] = {
        "transactionTime": fhir.instant(found.requested_at),
        "request": found.request_url,
        "requiresAccessToken": True,
        "output": [
            {
                "type": item["type"],
                "url": f"{_base(request)}/$export-file/{found.id}/{item['file']}",
                "count": item["count"],
            }
            for item in found.output or []
            if not item.get("error")
        ],
        # OperationOutcomes, one per patient left out (a stored record that cannot be read).
        "error": [
            {
                "type": item["type"],
                "url": f"{_base(request)}/$export-file/{found.id}/{item['file']}",
            }
            for item in found.output or []
            if item.get("error")
        ],
    }
    return FhirResponse(manifest, media_type="application/json")


@router.delete("/$export-status/{export_id}", status_code=202, summary="Delete an export")
def delete_export(caller: CallerDep, export_id: str, request: Request) -> Response:
    found = _own_export(caller, export_id)
    exports.cancel(caller.engine, found.id, datetime.now(UTC))
    shutil.rmtree(
        export_directory(request.app.state.settings.export_dir, found.id), ignore_errors=True
    )
    return Response(status_code=202)


@router.get("/$export-file/{export_id}/{file_name}", summary="One NDJSON file of an export")
@negotiation.produces(negotiation.NDJSON)
def export_file(caller: CallerDep, export_id: str, file_name: str, request: Request) -> Response:
    found = _own_export(caller, export_id)
    listed = {item["file"] for item in found.output or []}
    if found.status != exports.COMPLETED or file_name not in listed:
        raise FhirError(404, "not-found", f"the export has no file {file_name!r}")
    path = export_directory(request.app.state.settings.export_dir, found.id) / file_name
    if not path.is_file():
        raise FhirError(404, "not-found", f"the export's file {file_name!r} is gone")
    return FileResponse(path, media_type=NDJSON)
