"""The nursing home's API: wards of the caller's organisation, admissions, the ward chart for a
day, charting (given / not given / refused / held, PRN, with scan and witness), entered-in-error
and a patient's administration history.

Creating and configuring wards, admitting and discharging need a ward-admin token (claim
``ward_admin``; ``medloop.api.policy``): the admission is what gives the organisation's nurses
access to the patient, for the admission's period only. An admission carries its reason and
the reference of the municipal decision (``vedtak``).

A witness (double signature) authenticates with their own bearer token in
``X-Witness-Authorization``; the ward's policy decides when one is needed.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, Field

from interactions.values import MODEL_CONFIG, Day, Moment
from medloop import queries
from medloop.api import views
from medloop.api.auth import Unauthenticated
from medloop.api.deps import (
    LOCATION_HEADER,
    Caller,
    CallerDep,
    IdempotencyKey,
    command_answer,
    render,
)
from medloop.api.paging import PAGED, Page, instant
from medloop.api.policy import (
    Action,
    authorize_ward,
    authorize_witness,
    organisation_seen,
    read_window,
)
from medloop.api.problems import responses
from medloop.api.responses import JSONResponse
from medloop.api.routing import BlockingRoute
from medloop.api.schemas import (
    AdministrationRecord,
    AdmissionRecord,
    CommandResponse,
    Intent,
    ReasonRequiredBody,
    WardChart,
    WardConfigured,
    WardCreated,
    WardRecord,
    dump,
    order_of,
)
from medloop.domain.administration import ChartRequest
from medloop.domain.personnel import Actor
from medloop.domain.ward import WardConfig
from medloop.loop import administration
from medloop.loop.administration import AdmissionOrder, WardOrder

router = APIRouter(prefix="/nursing", tags=["nursing home"], route_class=BlockingRoute)
WRITE = responses(400, 401, 403, 404, 409, 422, 503)
READ = responses(401, 403, 404, 422)


class ChartBody(ChartRequest, Intent):
    """A charting, with overrides for alerts that need one (as in prescribing)."""


class AdmitBody(AdmissionOrder):
    """An admission: ``reason`` (1-500 characters) and ``decision_reference`` (the municipal
    decision, 1-100 characters) are required and shown in the patient's access log."""


class WristbandBody(BaseModel):
    """The GS1 GSRN on the resident's wristband: the bare 18 digits, or the AI 8018 element
    string as a scanner reads it (``8018…`` or ``(8018)…``); the check digit is checked."""

    model_config = MODEL_CONFIG

    gsrn: Annotated[str, Field(min_length=18, max_length=40, pattern=r"^[0-9()]+$")]


class DischargeBody(BaseModel):
    model_config = MODEL_CONFIG

    at: Moment | None = None


def _witness(caller: Caller, header: str | None) -> Actor | None:
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("X-Witness-Authorization must be 'Bearer <token>'")
    witness = caller.state.verifier.verify(token.strip())
    authorize_witness(caller.principal, witness)
    return witness.actor


def _ward_organisation(caller: Caller, ward_id: UUID) -> str | None:
    return caller.state.read_unaudited(lambda conn: queries.ward_organisation(conn, ward_id))


@router.post(
    "/wards",
    status_code=201,
    response_model=WardCreated,
    responses={**WRITE, 201: {"headers": LOCATION_HEADER}},
    operation_id="createWard",
    summary="Create a ward of my organisation",
)
def create_ward(caller: CallerDep, body: WardOrder, key: IdempotencyKey) -> JSONResponse:
    caller.authorize(Action.WARD_ADMIN)  # a ward admin
    found = administration.create_ward(caller.engine, body, caller.call(idempotency_key=key))
    return JSONResponse(
        found, status_code=201, headers={"Location": f"/nursing/wards/{body.ward_id}"}
    )


@router.get(
    "/wards/{ward_id}",
    response_model=WardRecord,
    responses=responses(401, 403, 422),
    operation_id="readWard",
    summary="One ward of my organisation with its current configuration",
)
def read_ward(caller: CallerDep, ward_id: UUID) -> JSONResponse:
    # A ward holds no patient data: authorised like its chart (an unknown ward or another
    # organisation's is refused alike), read without an audit record.
    authorize_ward(
        caller.engine,
        caller.principal,
        Action.WARD_READ,
        _ward_organisation(caller, ward_id),
        request_id=caller.request_id,
    )
    found = caller.state.read_unaudited(lambda conn: queries.ward_state(conn, ward_id))
    return JSONResponse(
        {
            "ward_id": str(found.ward.id),
            "organisation_id": found.ward.organisation_id,
            "name": found.ward.name,
            "config_version": found.config_version,
            "config": dump(found.config),
        }
    )


@router.post(
    "/wards/{ward_id}/config",
    response_model=WardConfigured,
    responses=WRITE,
    operation_id="configureWard",
    summary="A new configuration for a ward",
)
def configure_ward(
    caller: CallerDep, ward_id: UUID, body: WardConfig, key: IdempotencyKey
) -> JSONResponse:
    authorize_ward(
        caller.engine,
        caller.principal,
        Action.WARD_ADMIN,
        _ward_organisation(caller, ward_id),
        request_id=caller.request_id,
    )
    found = administration.configure_ward(
        caller.engine, ward_id, body, caller.call(idempotency_key=key)
    )
    return JSONResponse(found)


@router.get(
    "/wards/{ward_id}/chart",
    responses=READ,
    response_model=WardChart,
    operation_id="readWardChart",
    summary="The ward's chart for a day (Europe/Oslo): every admitted patient's doses",
)
def ward_chart(
    caller: CallerDep, ward_id: UUID, day: Annotated[Day | None, Query()] = None
) -> JSONResponse:
    authorize_ward(
        caller.engine,
        caller.principal,
        Action.WARD_READ,
        _ward_organisation(caller, ward_id),
        request_id=caller.request_id,
    )
    wanted = day or caller.day

    def read(conn: Any) -> tuple[dict[str, Any], list[UUID]]:
        chart = administration.ward_chart(conn, ward_id, wanted, caller.at)
        return views.ward_chart_view(chart), [p.patient_id for p in chart.patients]

    return JSONResponse(caller.read_many("administration.read.ward-chart", read))


@router.post(
    "/patients/{patient_id}/admissions",
    status_code=201,
    response_model=CommandResponse,
    responses={**WRITE, **command_answer(201)},
    operation_id="admit",
    summary="Admit a patient to a ward of my organisation",
)
def admit(
    caller: CallerDep, patient_id: UUID, body: AdmitBody, key: IdempotencyKey
) -> JSONResponse:
    caller.authorize(Action.ADMIT, patient_id)
    result = administration.admit(
        caller.engine,
        patient_id,
        order_of(body, AdmissionOrder),
        caller.call(idempotency_key=key),
    )
    location = f"/nursing/patients/{patient_id}/admissions/{body.admission_id}"
    return render(result, 201, location=location)


@router.get(
    "/patients/{patient_id}/admissions/{admission_id}",
    response_model=AdmissionRecord,
    responses=READ,
    operation_id="readAdmission",
    summary="One admission with its discharge; a nurse sees her organisation's stays",
)
def read_admission(caller: CallerDep, patient_id: UUID, admission_id: UUID) -> JSONResponse:
    caller.authorize(Action.CHART_READ, patient_id)
    organisation = organisation_seen(caller.principal, Action.CHART_READ)
    found = caller.read(
        patient_id,
        "admission",
        lambda conn: administration.admission(conn, patient_id, admission_id, organisation),
    )
    return JSONResponse({"admission": dump(found)})


@router.post(
    "/patients/{patient_id}/admissions/{admission_id}/discharge",
    response_model=CommandResponse,
    responses={**WRITE, **command_answer()},
    operation_id="discharge",
    summary="Discharge a patient (ward admin); the organisation's access ends with the stay",
)
def discharge(
    caller: CallerDep,
    patient_id: UUID,
    admission_id: UUID,
    body: DischargeBody,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.DISCHARGE, patient_id)
    result = administration.discharge(
        caller.engine,
        patient_id,
        admission_id,
        body.at or caller.at,
        caller.call(idempotency_key=key),
    )
    return render(result)


@router.post(
    "/patients/{patient_id}/wristband",
    response_model=CommandResponse,
    responses={**WRITE, **command_answer()},
    operation_id="registerWristband",
    summary="Register the GS1 GSRN on the resident's wristband for the current stay (the "
    "bedside scan matches it)",
)
def register_wristband(
    caller: CallerDep, patient_id: UUID, body: WristbandBody, key: IdempotencyKey
) -> JSONResponse:
    caller.authorize(Action.CHART_WRITE, patient_id)
    result = administration.register_wristband(
        caller.engine, patient_id, body.gsrn, caller.call(idempotency_key=key)
    )
    return render(result)


@router.post(
    "/patients/{patient_id}/administrations",
    status_code=201,
    response_model=CommandResponse,
    responses={**WRITE, **command_answer(201)},
    operation_id="chartDose",
    summary="Chart a dose: given (scan, witness), not given, refused, held; PRN without a "
    "planned dose",
)
def chart_dose(
    caller: CallerDep,
    patient_id: UUID,
    body: ChartBody,
    key: IdempotencyKey,
    witness: Annotated[
        str | None,
        Header(
            alias="X-Witness-Authorization",
            description="The witness's own bearer token (double signature)",
        ),
    ] = None,
) -> JSONResponse:
    caller.authorize(Action.CHART_WRITE, patient_id)
    result = administration.chart(
        caller.engine,
        patient_id,
        order_of(body, ChartRequest),
        caller.call(overrides=body.overrides, idempotency_key=key),
        witness=_witness(caller, witness),
    )
    location = f"/nursing/patients/{patient_id}/administrations/{body.administration_id}"
    return render(result, 201, location=location)


@router.post(
    "/patients/{patient_id}/administrations/{administration_id}/entered-in-error",
    response_model=CommandResponse,
    responses={**WRITE, **command_answer()},
    operation_id="markAdministrationEnteredInError",
    summary="Mark a charting entered-in-error (kept, no longer counted)",
)
def administration_in_error(
    caller: CallerDep,
    patient_id: UUID,
    administration_id: UUID,
    body: ReasonRequiredBody,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.CHART_WRITE, patient_id)
    result = administration.mark_in_error(
        caller.engine,
        patient_id,
        administration_id,
        caller.call(reason=body.reason, idempotency_key=key),
    )
    return render(result)


@router.get(
    "/patients/{patient_id}/administrations",
    responses={**READ, **PAGED},
    response_model=list[AdministrationRecord],
    operation_id="listAdministrations",
    summary="The patient's administration history (entered-in-error included, marked); a "
    "nurse's reaches back to the admission only",
)
def administration_history(
    caller: CallerDep,
    patient_id: UUID,
    page: Page,
    since: Annotated[Moment | None, Query()] = None,
    until: Annotated[Moment | None, Query()] = None,
) -> JSONResponse:
    # A nurse sees the chartings of her organisation's current admission only.
    since, until = read_window(
        caller.engine,
        caller.principal,
        Action.CHART_READ,
        patient_id,
        since,
        until,
        at=caller.at,
        request_id=caller.request_id,
    )
    found = caller.read(
        patient_id,
        "administration-history",
        lambda conn: administration.administration_history(conn, patient_id, since, until),
    )
    shown, headers = page.page(found, _charted_order)
    return JSONResponse([views.administration_view(c) for c in shown], headers=headers)


def _charted_order(charted: Any) -> tuple[int, int, str]:
    given = charted.administration
    return instant(given.at), instant(given.recorded_at), str(given.id)


@router.get(
    "/patients/{patient_id}/administrations/{administration_id}",
    responses=READ,
    response_model=AdministrationRecord,
    operation_id="readAdministration",
    summary="One charting (entered-in-error included, marked); a nurse's within the admission",
)
def read_administration(
    caller: CallerDep, patient_id: UUID, administration_id: UUID
) -> JSONResponse:
    since, until = read_window(
        caller.engine,
        caller.principal,
        Action.CHART_READ,
        patient_id,
        None,
        None,
        at=caller.at,
        request_id=caller.request_id,
    )
    found = caller.read(
        patient_id,
        "administration",
        lambda conn: administration.charting(conn, patient_id, administration_id, since, until),
    )
    return JSONResponse(views.administration_view(found))
