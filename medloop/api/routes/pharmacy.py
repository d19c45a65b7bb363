"""The pharmacy's API: look up a patient's dispensable prescriptions (with the overrides
prescribers recorded), lock and release a prescription, dispense (generic substitution within
the FEST substitution group, checked by the command) and annul a dispense."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from medloop import queries
from medloop.api import views
from medloop.api.deps import (
    CallerDep,
    IdempotencyKey,
    IfMatch,
    IfNoneMatch,
    command_answer,
    json_with_etag,
    read_with_etag,
    render,
)
from medloop.api.policy import Action
from medloop.api.problems import responses
from medloop.api.responses import JSONResponse
from medloop.api.routing import BlockingRoute
from medloop.api.schemas import (
    CommandResponse,
    DispensableView,
    DispenseRequest,
    ReasonRequiredBody,
    dump,
    order_of,
)
from medloop.domain.dispense import Dispense
from medloop.loop import dispense
from medloop.loop.dispense import DispenseOrder

router = APIRouter(prefix="/pharmacy", tags=["pharmacy"], route_class=BlockingRoute)
WRITE = responses(400, 401, 403, 404, 409, 422, 503)
BASED_WRITE = responses(400, 401, 403, 404, 409, 412, 422, 428, 503)


@router.get(
    "/patients/{patient_id}/prescriptions",
    response_model=DispensableView,
    responses={**responses(401, 403, 404, 422), **read_with_etag()},
    operation_id="readDispensable",
    summary="The patient's dispensable prescriptions (ETag = list version)",
)
def dispensable_prescriptions(caller: CallerDep, patient_id: UUID, seen: IfNoneMatch) -> Response:
    caller.authorize(Action.DISPENSING_READ, patient_id)
    body = caller.read(
        patient_id, "dispensable", lambda conn: views.dispensable_view(conn, patient_id, caller.at)
    )
    return json_with_etag(body, body["list_version"], seen)


@router.post(
    "/patients/{patient_id}/dispenses",
    status_code=201,
    response_model=CommandResponse,
    responses={**BASED_WRITE, **command_answer(201)},
    operation_id="dispense",
    summary="Dispense a package against a prescription",
)
def dispense_package(
    caller: CallerDep,
    patient_id: UUID,
    body: DispenseRequest,
    based_on: IfMatch,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.DISPENSE, patient_id)
    result = dispense.dispense(
        caller.engine,
        patient_id,
        order_of(body, DispenseOrder),
        caller.command_call(body, key),
        based_on=based_on,
    )
    return render(
        result, 201, location=f"/pharmacy/patients/{patient_id}/dispenses/{body.dispense_id}"
    )


@router.get(
    "/patients/{patient_id}/dispenses/{dispense_id}",
    response_model=Dispense,
    responses=responses(401, 403, 404, 422),
    operation_id="readDispense",
    summary="One dispense (with its annulment, if annulled)",
)
def read_dispense(caller: CallerDep, patient_id: UUID, dispense_id: UUID) -> JSONResponse:
    caller.authorize(Action.DISPENSING_READ, patient_id)
    found = caller.read(
        patient_id, "dispense", lambda conn: queries.dispense(conn, patient_id, dispense_id)
    )
    return JSONResponse(dump(found))


@router.post(
    "/patients/{patient_id}/dispenses/{dispense_id}/annul",
    response_model=CommandResponse,
    responses={**WRITE, **command_answer()},
    operation_id="annulDispense",
    summary="Annul a dispense (the prescription reopens)",
)
def annul_dispense(
    caller: CallerDep,
    patient_id: UUID,
    dispense_id: UUID,
    body: ReasonRequiredBody,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.DISPENSE, patient_id)
    result = dispense.annul_dispense(
        caller.engine,
        patient_id,
        dispense_id,
        caller.call(reason=body.reason, idempotency_key=key),
    )
    return render(result)


@router.post(
    "/patients/{patient_id}/prescriptions/{prescription_id}/lock",
    response_model=CommandResponse,
    responses={**WRITE, **command_answer()},
    operation_id="lockPrescription",
    summary="Take a prescription for this pharmacy (status U)",
)
def lock_prescription(
    caller: CallerDep, patient_id: UUID, prescription_id: UUID, key: IdempotencyKey
) -> JSONResponse:
    caller.authorize(Action.DISPENSE, patient_id)
    result = dispense.lock_for_dispensing(
        caller.engine, patient_id, prescription_id, caller.call(idempotency_key=key)
    )
    return render(result)


@router.post(
    "/patients/{patient_id}/prescriptions/{prescription_id}/release",
    response_model=CommandResponse,
    responses={**WRITE, **command_answer()},
    operation_id="releasePrescription",
    summary="Give a locked prescription back undispensed (status E)",
)
def release_prescription(
    caller: CallerDep, patient_id: UUID, prescription_id: UUID, key: IdempotencyKey
) -> JSONResponse:
    caller.authorize(Action.DISPENSE, patient_id)
    result = dispense.release(
        caller.engine, patient_id, prescription_id, caller.call(idempotency_key=key)
    )
    return render(result)
