"""Multidose over HTTP: the patient's multidose doctor and pharmacy, which entries are packed,
packing periods and urgent packs, the production plan, the pharmacy's packing report with its
reconciliation against the list, pharmacy proposals and the prescriber's decisions, and the
tasks reconciliation leaves for the prescriber.

Pharmacists act only for patients whose multidose pharmacy is theirs; prescribers register
responsibility, flag entries, decide proposals and resolve tasks.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, Field

from interactions.values import MODEL_CONFIG
from medloop.api import views
from medloop.api.deps import CallerDep, IdempotencyKey, IfMatch, command_answer, render
from medloop.api.paging import PAGED, Page, instant
from medloop.api.policy import Action
from medloop.api.problems import responses
from medloop.api.responses import JSONResponse
from medloop.api.routing import BlockingRoute
from medloop.api.schemas import (
    CommandResponse,
    Intent,
    MultidoseOverview,
    PeriodOverview,
    ProposalRecord,
    ReasonRequiredBody,
    dump,
    order_of,
)
from medloop.domain.multidose.periods import UrgentPack
from medloop.domain.multidose.plan import ProductionPlan
from medloop.domain.multidose.reconciliation import PackReconciliation, PackReport
from medloop.loop import multidose
from medloop.loop.multidose import PeriodOrder, ProposalOrder, ResponsibilityOrder

router = APIRouter(
    prefix="/multidose/patients/{patient_id}", tags=["multidose"], route_class=BlockingRoute
)
WRITE = responses(400, 401, 403, 404, 409, 422, 503)
BASED_WRITE = responses(400, 401, 403, 404, 409, 412, 422, 428, 503)
BASE = "/multidose/patients/{patient_id}"
READ = responses(401, 403, 404, 422)


class MultidoseFlag(BaseModel):
    model_config = MODEL_CONFIG

    multidose: bool
    reason: str | None = Field(default=None, max_length=2000)


class UrgentPackBody(BaseModel):
    model_config = MODEL_CONFIG

    pack_id: UUID
    reason: str = Field(min_length=1, max_length=2000)


class ProposalBody(ProposalOrder):
    pass


@router.get(
    "",
    response_model=MultidoseOverview,
    responses=READ,
    operation_id="readMultidose",
    summary="Responsibility, packing periods, pending proposals and open tasks",
)
def overview(caller: CallerDep, patient_id: UUID) -> JSONResponse:
    caller.authorize(Action.MULTIDOSE_READ, patient_id)

    body = caller.read(
        patient_id, "multidose", lambda conn: views.multidose_overview(conn, patient_id)
    )
    return JSONResponse(body)


@router.post(
    "/responsibility",
    response_model=CommandResponse,
    responses={**WRITE, **command_answer()},
    operation_id="setMultidoseResponsibility",
    summary="Register or change the multidose doctor and pharmacy (M27.1)",
)
def set_responsibility(
    caller: CallerDep, patient_id: UUID, body: ResponsibilityOrder, key: IdempotencyKey
) -> JSONResponse:
    caller.authorize(Action.MULTIDOSE_REGISTER, patient_id)
    result = multidose.set_responsibility(
        caller.engine, patient_id, body, caller.call(idempotency_key=key)
    )
    return render(result)


@router.post(
    "/entries/{entry_id}/multidose",
    response_model=CommandResponse,
    responses={**BASED_WRITE, **command_answer()},
    operation_id="flagEntryMultidose",
    summary="Pack an entry in multidose, or give it outside multidose",
)
def flag_entry(
    caller: CallerDep,
    patient_id: UUID,
    entry_id: UUID,
    body: MultidoseFlag,
    based_on: IfMatch,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.LIST_WRITE, patient_id)
    result = multidose.set_multidose(
        caller.engine,
        patient_id,
        entry_id,
        body.multidose,
        caller.call(reason=body.reason, idempotency_key=key),
        based_on=based_on,
    )
    return render(result)


@router.post(
    "/periods",
    status_code=201,
    response_model=CommandResponse,
    responses={**WRITE, **command_answer(201)},
    operation_id="openPackingPeriod",
    summary="Open a packing period with its order deadline",
)
def open_period(
    caller: CallerDep, patient_id: UUID, body: PeriodOrder, key: IdempotencyKey
) -> JSONResponse:
    caller.authorize(Action.MULTIDOSE_WRITE, patient_id)
    result = multidose.open_packing_period(
        caller.engine, patient_id, body, caller.call(idempotency_key=key)
    )
    return render(
        result,
        201,
        location=BASE.format(patient_id=patient_id) + f"/periods/{body.period_id}",
    )


@router.get(
    "/periods/{period_id}",
    response_model=PeriodOverview,
    responses=READ,
    operation_id="readPackingPeriod",
    summary="One packing period with its urgent packs, plan version and deadline flags",
)
def read_period(caller: CallerDep, patient_id: UUID, period_id: UUID) -> JSONResponse:
    caller.authorize(Action.MULTIDOSE_READ, patient_id)
    found = caller.read(
        patient_id,
        "multidose-period",
        lambda conn: multidose.period(conn, patient_id, period_id),
    )
    return JSONResponse(views.period_view(found))


@router.post(
    "/periods/{period_id}/urgent-packs",
    status_code=201,
    response_model=CommandResponse,
    responses={**WRITE, **command_answer(201)},
    operation_id="orderUrgentPack",
    summary="Order an urgent pack (hastepakk) for the rest of the period",
)
def urgent_pack(
    caller: CallerDep,
    patient_id: UUID,
    period_id: UUID,
    body: UrgentPackBody,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.MULTIDOSE_WRITE, patient_id)
    result = multidose.order_urgent(
        caller.engine,
        patient_id,
        period_id,
        body.pack_id,
        caller.call(reason=body.reason, idempotency_key=key),
    )
    location = BASE.format(patient_id=patient_id) + f"/periods/{period_id}/urgent-packs/"
    return render(result, 201, location=location + str(body.pack_id))


@router.get(
    "/periods/{period_id}/urgent-packs/{pack_id}",
    response_model=UrgentPack,
    responses=READ,
    operation_id="readUrgentPack",
    summary="One urgent pack of a packing period",
)
def read_urgent_pack(
    caller: CallerDep, patient_id: UUID, period_id: UUID, pack_id: UUID
) -> JSONResponse:
    caller.authorize(Action.MULTIDOSE_READ, patient_id)
    found = caller.read(
        patient_id,
        "multidose-urgent-pack",
        lambda conn: multidose.urgent_pack(conn, patient_id, period_id, pack_id),
    )
    return JSONResponse(dump(found))


@router.get(
    "/periods/{period_id}/plan",
    response_model=ProductionPlan,
    responses=READ,
    operation_id="readProductionPlan",
    summary="The period's production plan (bags per day and intake)",
)
def production_plan(caller: CallerDep, patient_id: UUID, period_id: UUID) -> JSONResponse:
    caller.authorize(Action.MULTIDOSE_READ, patient_id)
    plan = caller.read(
        patient_id, "multidose-plan", lambda conn: multidose.plan_of(conn, patient_id, period_id)
    )
    return JSONResponse(dump(plan))


@router.post(
    "/periods/{period_id}/plan/take",
    response_model=CommandResponse,
    responses={**WRITE, **command_answer()},
    operation_id="takeProductionPlan",
    summary="Take the production plan (records its list version)",
)
def take_plan(
    caller: CallerDep, patient_id: UUID, period_id: UUID, key: IdempotencyKey
) -> JSONResponse:
    caller.authorize(Action.MULTIDOSE_WRITE, patient_id)
    result = multidose.take_production_plan(
        caller.engine, patient_id, period_id, caller.call(idempotency_key=key)
    )
    return render(result)


@router.post(
    "/packing-reports",
    status_code=201,
    response_model=CommandResponse,
    responses={**WRITE, **command_answer(201)},
    operation_id="reportPacking",
    summary="Post what was packed (M25.3) and get its reconciliation against the list",
)
def packing_report(
    caller: CallerDep, patient_id: UUID, body: PackReport, key: IdempotencyKey
) -> JSONResponse:
    caller.authorize(Action.MULTIDOSE_WRITE, patient_id)
    result = multidose.reconcile_packing(
        caller.engine, patient_id, body, caller.call(idempotency_key=key)
    )
    # The reconciliation's id is the report's.
    location = BASE.format(patient_id=patient_id) + f"/reconciliations/{body.report_id}"
    return render(result, 201, location=location)


@router.get(
    "/reconciliations",
    response_model=list[PackReconciliation],
    responses={**READ, **PAGED},
    operation_id="listPackingReconciliations",
    summary="Every packing reconciliation, line by line",
)
def reconciliations(caller: CallerDep, patient_id: UUID, page: Page) -> JSONResponse:
    caller.authorize(Action.MULTIDOSE_READ, patient_id)
    found = caller.read(
        patient_id,
        "multidose-reconciliations",
        lambda conn: multidose.reconciliations(conn, patient_id),
    )
    shown, headers = page.page(found, lambda r: (instant(r.reconciled_at), str(r.id)))
    return JSONResponse(dump(shown), headers=headers)


@router.get(
    "/reconciliations/{reconciliation_id}",
    response_model=PackReconciliation,
    responses=READ,
    operation_id="readPackingReconciliation",
    summary="One packing reconciliation, line by line (its id is its packing report's)",
)
def reconciliation(caller: CallerDep, patient_id: UUID, reconciliation_id: UUID) -> JSONResponse:
    caller.authorize(Action.MULTIDOSE_READ, patient_id)
    found = caller.read(
        patient_id,
        "multidose-reconciliation",
        lambda conn: multidose.reconciliation(conn, patient_id, reconciliation_id),
    )
    return JSONResponse(dump(found))


@router.post(
    "/proposals",
    status_code=201,
    response_model=CommandResponse,
    responses={**WRITE, **command_answer(201)},
    operation_id="proposeChange",
    summary="Propose a change to the prescriber (M25.2)",
)
def propose(
    caller: CallerDep, patient_id: UUID, body: ProposalBody, key: IdempotencyKey
) -> JSONResponse:
    caller.authorize(Action.MULTIDOSE_WRITE, patient_id)
    result = multidose.propose_change(
        caller.engine, patient_id, order_of(body, ProposalOrder), caller.call(idempotency_key=key)
    )
    location = BASE.format(patient_id=patient_id) + f"/proposals/{body.proposal_id}"
    return render(result, 201, location=location)


@router.get(
    "/proposals/{proposal_id}",
    response_model=ProposalRecord,
    responses=READ,
    operation_id="readProposal",
    summary="One proposal with the prescriber's decision (null while pending)",
)
def read_proposal(caller: CallerDep, patient_id: UUID, proposal_id: UUID) -> JSONResponse:
    caller.authorize(Action.MULTIDOSE_READ, patient_id)
    found, decision = caller.read(
        patient_id,
        "multidose-proposal",
        lambda conn: multidose.proposal(conn, patient_id, proposal_id),
    )
    return JSONResponse({"proposal": dump(found), "decision": dump(decision)})


@router.post(
    "/proposals/{proposal_id}/accept",
    response_model=CommandResponse,
    responses={**BASED_WRITE, **command_answer()},
    operation_id="acceptProposal",
    summary="Accept a proposal: its change is made on the list",
)
def accept(
    caller: CallerDep,
    patient_id: UUID,
    proposal_id: UUID,
    body: Intent,
    based_on: IfMatch,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.PROPOSAL_DECIDE, patient_id)
    result = multidose.accept_proposal(
        caller.engine,
        patient_id,
        proposal_id,
        caller.command_call(body, key),
        based_on=based_on,
    )
    return render(result)


@router.post(
    "/proposals/{proposal_id}/reject",
    response_model=CommandResponse,
    responses={**WRITE, **command_answer()},
    operation_id="rejectProposal",
    summary="Reject a proposal with a reason",
)
def reject(
    caller: CallerDep,
    patient_id: UUID,
    proposal_id: UUID,
    body: ReasonRequiredBody,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.PROPOSAL_DECIDE, patient_id)
    result = multidose.reject_proposal(
        caller.engine,
        patient_id,
        proposal_id,
        caller.call(reason=body.reason, idempotency_key=key),
    )
    return render(result)


@router.post(
    "/tasks/{task_id}/resolve",
    response_model=CommandResponse,
    responses={**WRITE, **command_answer()},
    operation_id="resolveTask",
    summary="Resolve a reconciliation task with a note",
)
def resolve_task(
    caller: CallerDep,
    patient_id: UUID,
    task_id: UUID,
    body: ReasonRequiredBody,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.PROPOSAL_DECIDE, patient_id)
    result = multidose.resolve_multidose_task(
        caller.engine, patient_id, task_id, caller.call(reason=body.reason, idempotency_key=key)
    )
    return render(result)
