"""Recording a patient's measurements — weight and kidney function with the time each was
measured, and whether there are risk factors for liver injury — for the GP and for nurses of
a ward the patient is admitted to. Dose checks use the latest values (age comes from the birth
date); a kidney-function value older than the trusted age is reported, not used."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from medloop.api.deps import CallerDep, IdempotencyKey, command_answer, render
from medloop.api.policy import Action
from medloop.api.problems import responses
from medloop.api.responses import JSONResponse
from medloop.api.routing import BlockingRoute
from medloop.api.schemas import CommandResponse, Intent, order_of
from medloop.domain.patient import Observation
from medloop.loop import patients

router = APIRouter(tags=["patient facts"], route_class=BlockingRoute)


class ObservationRequest(Observation, Intent):
    """``weight`` (``kg``, ``measured_at``), ``renal_function`` (``kind`` ``egfr`` or
    ``creatinine-clearance``, ``value`` in ml/min, ``measured_at``), ``hepatic_risk``."""


@router.post(
    "/patients/{patient_id}/observations",
    response_model=CommandResponse,
    responses={**responses(400, 401, 403, 404, 409, 422, 503), **command_answer()},
    operation_id="recordObservation",
    summary="Record weight, kidney function or hepatic risk factors (used by dose checks)",
)
def record_observation(
    caller: CallerDep, patient_id: UUID, body: ObservationRequest, key: IdempotencyKey
) -> JSONResponse:
    caller.authorize(Action.OBSERVATION_WRITE, patient_id)
    result = patients.record_observation(
        caller.engine, patient_id, order_of(body, Observation), caller.command_call(body, key)
    )
    return render(result)
