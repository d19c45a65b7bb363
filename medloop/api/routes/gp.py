"""The prescriber's API (GP, nursing-home doctor): read a patient's list with its alerts and
overrides, prescribe, change, hold/resume, discontinue, renew, mark entered-in-error, add an
entry without prescription, reconcile, acknowledge alerts, and check a proposed drug without
writing. Every write names the list version it is based on (If-Match) and accepts an
Idempotency-Key; alerts that need an override answer 409 until the call carries a reason for
each (``overrides``)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import StringConstraints

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
from medloop.api.paging import PAGED, Page, instant
from medloop.api.policy import Action
from medloop.api.problems import NotFound, responses
from medloop.api.responses import JSONResponse
from medloop.api.routing import BlockingRoute
from medloop.api.schemas import (
    Acknowledge,
    AddEntryRequest,
    CheckRequest,
    CheckResponse,
    CommandResponse,
    Discontinue,
    DosageChange,
    EntryHistory,
    Intent,
    ListView,
    PatientRef,
    PrescribeRequest,
    PrescriptionSummary,
    ReasonOnly,
    ReasonRequiredBody,
    ReconcileRequest,
    Reconciliation,
    RenewRequest,
    dump,
    order_of,
)
from medloop.api.screening import Proposal, screen
from medloop.domain._model import id_text
from medloop.domain.entry import Discontinuation, ListEntry
from medloop.loop import acknowledge, change, prescribe, reconcile
from medloop.loop.change import EntryOrder
from medloop.loop.prescribe import PrescribeOrder, RenewOrder
from medloop.loop.reconcile import ReconciliationOrder

router = APIRouter(tags=["prescriber"], route_class=BlockingRoute)
READ = responses(401, 403, 404, 422)
WRITE = responses(400, 401, 403, 404, 409, 422, 503)
"""What a write may answer besides its success."""
BASED_WRITE = responses(400, 401, 403, 404, 409, 412, 422, 428, 503)
"""What a write based on a list version (If-Match) may answer besides its success."""
NationalIdQuery = Annotated[str, StringConstraints(pattern=r"^\d{11}$")]


@router.get(
    "/patients",
    response_model=PatientRef,
    responses=responses(401, 403, 404, 422),
    summary="Find a patient by national id",
    operation_id="findPatient",
)
def find_patient(
    caller: CallerDep, national_id: Annotated[NationalIdQuery, Query()]
) -> JSONResponse:
    found = caller.state.read_unaudited(lambda conn: queries.find_patient_id(conn, national_id))
    # Authorised against the patient found, so a refused lookup is audited in that patient's
    # log (a nurse without the ward-admin claim probing national ids shows there); an unknown
    # national id is refused alike, so a refusal does not tell whether a list is kept.
    caller.authorize(Action.PATIENT_LOOKUP, found)
    if found is None:
        raise NotFound("no patient with this national id")
    caller.read(found, "lookup", lambda conn: None)
    return JSONResponse({"patient_id": str(found)})


@router.get(
    "/patients/{patient_id}/list",
    response_model=ListView,
    responses={**READ, **read_with_etag()},
    operation_id="readList",
    summary="The patient's current list (ETag = list version)",
)
def read_list(caller: CallerDep, patient_id: UUID, seen: IfNoneMatch) -> Response:
    caller.authorize(Action.LIST_READ, patient_id)
    body, version = caller.read(
        patient_id, "list", lambda conn: views.list_view(conn, patient_id, caller.at)
    )
    return json_with_etag(body, version, seen)


@router.get(
    "/patients/{patient_id}/list/entries/{entry_id}",
    response_model=ListEntry,
    responses=READ,
    operation_id="readEntry",
    summary="One entry of the list as it stands now",
)
def read_entry(caller: CallerDep, patient_id: UUID, entry_id: UUID) -> JSONResponse:
    caller.authorize(Action.LIST_READ, patient_id)
    found = caller.read(patient_id, "entry", lambda conn: queries.entry(conn, patient_id, entry_id))
    return JSONResponse(dump(found))


@router.get(
    "/patients/{patient_id}/list/entries/{entry_id}/history",
    response_model=EntryHistory,
    responses=READ,
    operation_id="readEntryHistory",
    summary="Every version of one entry (who, when, why, what changed)",
)
def entry_history(caller: CallerDep, patient_id: UUID, entry_id: UUID) -> JSONResponse:
    caller.authorize(Action.LIST_READ, patient_id)
    versions = caller.read(
        patient_id,
        "entry-history",
        lambda conn: queries.entry_history(conn, patient_id, entry_id),
    )
    return JSONResponse(views.entry_history_view(entry_id, versions))


@router.get(
    "/patients/{patient_id}/prescriptions",
    response_model=list[PrescriptionSummary],
    responses={**READ, **PAGED},
    operation_id="listPrescriptions",
    summary="The patient's prescriptions with their dispensing tallies, in issue order",
)
def prescriptions(caller: CallerDep, patient_id: UUID, page: Page) -> JSONResponse:
    caller.authorize(Action.LIST_READ, patient_id)
    found = caller.read(
        patient_id, "prescriptions", lambda conn: queries.prescriptions(conn, patient_id)
    )
    shown, headers = page.page(found, _issued)
    return JSONResponse(dump(shown), headers=headers)


def _issued(found: PrescriptionSummary) -> tuple[str, str]:
    return found.issued, str(found.id)


@router.get(
    "/patients/{patient_id}/prescriptions/{prescription_id}",
    response_model=PrescriptionSummary,
    responses=READ,
    operation_id="readPrescription",
    summary="One prescription with its dispensing tally",
)
def prescription(caller: CallerDep, patient_id: UUID, prescription_id: UUID) -> JSONResponse:
    caller.authorize(Action.LIST_READ, patient_id)
    found = caller.read(
        patient_id,
        "prescriptions",
        lambda conn: queries.prescription(conn, patient_id, prescription_id),
    )
    return JSONResponse(dump(found))


@router.get(
    "/patients/{patient_id}/list/reconciliations",
    response_model=list[Reconciliation],
    responses={**READ, **PAGED},
    operation_id="listReconciliations",
    summary="The list's reconciliations (samstemming), oldest first",
)
def reconciliations(caller: CallerDep, patient_id: UUID, page: Page) -> JSONResponse:
    caller.authorize(Action.LIST_READ, patient_id)
    found = caller.read(
        patient_id, "reconciliations", lambda conn: queries.reconciliations(conn, patient_id)
    )
    shown, headers = page.page(found, lambda r: (r.list_version, instant(r.at), str(r.id)))
    return JSONResponse(dump(shown), headers=headers)


@router.get(
    "/patients/{patient_id}/list/reconciliations/{reconciliation_id}",
    response_model=Reconciliation,
    responses=READ,
    operation_id="readReconciliation",
    summary="One reconciliation (samstemming) of the list",
)
def reconciliation(caller: CallerDep, patient_id: UUID, reconciliation_id: UUID) -> JSONResponse:
    caller.authorize(Action.LIST_READ, patient_id)
    found = caller.read(
        patient_id,
        "reconciliation",
        lambda conn: queries.reconciliation(conn, patient_id, reconciliation_id),
    )
    return JSONResponse(dump(found))


@router.post(
    "/patients/{patient_id}/list/check",
    response_model=CheckResponse,
    responses=responses(401, 403, 404, 422, 503),
    summary="Dry run: the alerts proposed drugs would raise (nothing is written)",
    operation_id="checkProposed",
)
def check_proposed(caller: CallerDep, patient_id: UUID, body: CheckRequest) -> JSONResponse:
    caller.authorize(Action.CHECK, patient_id)
    today = caller.day
    proposals = [Proposal(p.id, p.drug, p.dosage, p.start or today, p.stop) for p in body.proposed]
    screened = caller.read(
        patient_id, "check", lambda conn: screen(conn, patient_id, proposals, today)
    )
    return JSONResponse(
        {
            "patient_id": str(patient_id),
            "list_version": screened.list_version,
            "catalogue_version": screened.catalogue_version,
            "alerts": dump(list(screened.alerts)),
        }
    )


@router.post(
    "/patients/{patient_id}/prescriptions",
    status_code=201,
    response_model=CommandResponse,
    responses={**BASED_WRITE, **command_answer(201)},
    operation_id="prescribe",
    summary="Prescribe: a new entry with its prescription",
)
def prescribe_drug(
    caller: CallerDep,
    patient_id: UUID,
    body: PrescribeRequest,
    based_on: IfMatch,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.LIST_WRITE, patient_id)
    result = prescribe.prescribe(
        caller.engine,
        patient_id,
        order_of(body, PrescribeOrder),
        caller.command_call(body, key),
        based_on=based_on,
    )
    return render(
        result,
        201,
        location=(
            f"/patients/{id_text(patient_id)}/prescriptions/{id_text(body.terms.prescription_id)}"
        ),
    )


@router.post(
    "/patients/{patient_id}/prescriptions/{prescription_id}/renew",
    response_model=CommandResponse,
    responses={**BASED_WRITE, **command_answer()},
    operation_id="renewPrescription",
    summary="Renew a prescription (the old one is recalled)",
)
def renew_prescription(
    caller: CallerDep,
    patient_id: UUID,
    prescription_id: UUID,
    body: RenewRequest,
    based_on: IfMatch,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.LIST_WRITE, patient_id)
    order = RenewOrder(prescription_id=prescription_id, terms=body.terms, change=body.change)
    result = prescribe.renew(
        caller.engine,
        patient_id,
        order,
        caller.command_call(body, key),
        based_on=based_on,
    )
    return render(result)


@router.post(
    "/patients/{patient_id}/list/entries",
    status_code=201,
    response_model=CommandResponse,
    responses={**BASED_WRITE, **command_answer(201)},
    operation_id="addEntry",
    summary="Add an entry used without prescription",
)
def add_entry(
    caller: CallerDep,
    patient_id: UUID,
    body: AddEntryRequest,
    based_on: IfMatch,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.LIST_WRITE, patient_id)
    result = change.add_entry(
        caller.engine,
        patient_id,
        order_of(body, EntryOrder),
        caller.command_call(body, key),
        based_on=based_on,
    )
    return render(result, 201, location=f"/patients/{patient_id}/list/entries/{body.entry_id}")


@router.post(
    "/patients/{patient_id}/list/entries/{entry_id}/dosage",
    response_model=CommandResponse,
    responses={**BASED_WRITE, **command_answer()},
    operation_id="changeDosage",
    summary="Change an entry's dosage",
)
def change_dosage(
    caller: CallerDep,
    patient_id: UUID,
    entry_id: UUID,
    body: DosageChange,
    based_on: IfMatch,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.LIST_WRITE, patient_id)
    result = change.change_dosage(
        caller.engine,
        patient_id,
        entry_id,
        body.dosage,
        caller.command_call(body, key),
        based_on=based_on,
    )
    return render(result)


@router.post(
    "/patients/{patient_id}/list/entries/{entry_id}/hold",
    response_model=CommandResponse,
    responses={**BASED_WRITE, **command_answer()},
    operation_id="holdEntry",
    summary="Hold (pause) an entry",
)
def hold_entry(
    caller: CallerDep,
    patient_id: UUID,
    entry_id: UUID,
    body: ReasonOnly,
    based_on: IfMatch,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.LIST_WRITE, patient_id)
    result = change.hold(
        caller.engine,
        patient_id,
        entry_id,
        caller.call(reason=body.reason, idempotency_key=key),
        based_on=based_on,
    )
    return render(result)


@router.post(
    "/patients/{patient_id}/list/entries/{entry_id}/resume",
    response_model=CommandResponse,
    responses={**BASED_WRITE, **command_answer()},
    operation_id="resumeEntry",
    summary="Resume an entry on hold (checked again)",
)
def resume_entry(
    caller: CallerDep,
    patient_id: UUID,
    entry_id: UUID,
    body: Intent,
    based_on: IfMatch,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.LIST_WRITE, patient_id)
    result = change.resume(
        caller.engine,
        patient_id,
        entry_id,
        caller.command_call(body, key),
        based_on=based_on,
    )
    return render(result)


@router.post(
    "/patients/{patient_id}/list/entries/{entry_id}/discontinue",
    response_model=CommandResponse,
    responses={**BASED_WRITE, **command_answer()},
    operation_id="discontinueEntry",
    summary="Discontinue an entry (its prescriptions are recalled)",
)
def discontinue_entry(
    caller: CallerDep,
    patient_id: UUID,
    entry_id: UUID,
    body: Discontinue,
    based_on: IfMatch,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.LIST_WRITE, patient_id)
    discontinuation = Discontinuation(at=body.at or caller.at, reason=body.code, note=body.note)
    result = change.discontinue(
        caller.engine,
        patient_id,
        entry_id,
        discontinuation,
        caller.call(reason=body.reason, idempotency_key=key),
        based_on=based_on,
    )
    return render(result)


@router.post(
    "/patients/{patient_id}/list/entries/{entry_id}/entered-in-error",
    response_model=CommandResponse,
    responses={**BASED_WRITE, **command_answer()},
    operation_id="markEntryEnteredInError",
    summary="Mark an entry entered-in-error (kept, never counts)",
)
def entered_in_error(
    caller: CallerDep,
    patient_id: UUID,
    entry_id: UUID,
    body: ReasonRequiredBody,
    based_on: IfMatch,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.LIST_WRITE, patient_id)
    result = change.mark_entered_in_error(
        caller.engine,
        patient_id,
        entry_id,
        caller.call(reason=body.reason, idempotency_key=key),
        based_on=based_on,
    )
    return render(result)


@router.post(
    "/patients/{patient_id}/list/reconciliations",
    status_code=201,
    response_model=CommandResponse,
    responses={**BASED_WRITE, **command_answer(201)},
    operation_id="recordReconciliation",
    summary="Record a reconciliation (samstemming) of the list",
)
def record_reconciliation(
    caller: CallerDep,
    patient_id: UUID,
    body: ReconcileRequest,
    based_on: IfMatch,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.LIST_WRITE, patient_id)
    result = reconcile.record_reconciliation(
        caller.engine,
        patient_id,
        order_of(body, ReconciliationOrder),
        caller.call(reason=body.reason, idempotency_key=key),
        based_on=based_on,
    )
    location = f"/patients/{patient_id}/list/reconciliations/{body.reconciliation_id}"
    return render(result, 201, location=location)


@router.post(
    "/patients/{patient_id}/alerts/acknowledge",
    response_model=CommandResponse,
    responses={**WRITE, **command_answer()},
    operation_id="acknowledgeAlert",
    summary="Acknowledge an alert: it is not raised again for this patient",
)
def acknowledge_alert(
    caller: CallerDep,
    patient_id: UUID,
    body: Acknowledge,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.LIST_WRITE, patient_id)
    result = acknowledge.acknowledge(
        caller.engine,
        patient_id,
        body.alert_key,
        caller.call(reason=body.reason, idempotency_key=key),
    )
    return render(result)
