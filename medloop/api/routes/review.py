"""The medication review (legemiddelgjennomgang) over HTTP: the findings a review meeting
starts from (the criteria on the list now, and what changed since the last review), signing a
review with a decision per finding (stops and dosage changes are made in the same transaction),
the signed reviews, and one as PDF for the resident's record."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel

from medloop import queries
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
from medloop.api.problems import responses
from medloop.api.responses import JSONResponse
from medloop.api.review_pdf import review_pdf
from medloop.api.routing import BlockingRoute
from medloop.api.schemas import CommandResponse, Intent, dump, order_of
from medloop.domain.review import Assessment, MedicationReview, SinceLast
from medloop.loop import review
from medloop.loop.review import ReviewSubmission

router = APIRouter(tags=["medication review"], route_class=BlockingRoute)

READ = responses(401, 403, 404, 422)
BASED_WRITE = responses(400, 401, 403, 404, 409, 412, 422, 428, 503)


class CurrentReview(BaseModel):
    """What a review meeting starts from: the criteria on the list at ``list_version`` (also
    the ETag, the version a signature must name in If-Match), each finding's ``key`` (in the
    order of ``assessment.findings``) for the decisions, and what changed since the last
    signed review."""

    patient_id: UUID
    list_version: int
    finding_keys: list[str]
    assessment: Assessment
    since_last: SinceLast | None


class SignReviewRequest(ReviewSubmission, Intent):
    """``review_id`` (new), ``participants`` (role doctor / nurse / pharmacist, name, HPR
    number), a ``decision`` per finding key: ``continue`` with ``reason``, ``change`` with
    ``entry_id`` and ``dosage``, ``stop`` with ``entry_id`` (and ``discontinuation_reason``)."""


@router.get(
    "/patients/{patient_id}/review",
    response_model=CurrentReview,
    responses={**READ, **read_with_etag(), **responses(503)},
    operation_id="startReview",
    summary="The review criteria on the list now (NORGEP-NH, STOPP/START, renal, ACB)",
)
def start_review(caller: CallerDep, patient_id: UUID, seen: IfNoneMatch) -> Response:
    caller.authorize(Action.LIST_READ, patient_id)
    assessment, since = caller.read(
        patient_id,
        "review",
        lambda conn: queries.review_assessment(conn, patient_id, caller.day),
    )
    body: dict[str, Any] = {
        "patient_id": str(patient_id),
        "list_version": assessment.list_version,
        "finding_keys": [f.key for f in assessment.findings],
        "assessment": dump(assessment),
        "since_last": None if since is None else dump(since),
    }
    return json_with_etag(body, assessment.list_version, seen)


@router.post(
    "/patients/{patient_id}/reviews",
    status_code=201,
    response_model=CommandResponse,
    responses={**BASED_WRITE, **command_answer(201)},
    operation_id="signReview",
    summary="Sign a review: a decision per finding; stops and changes are made with it",
)
def sign_review(
    caller: CallerDep,
    patient_id: UUID,
    body: SignReviewRequest,
    based_on: IfMatch,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.LIST_WRITE, patient_id)
    result = review.sign_review(
        caller.engine,
        patient_id,
        order_of(body, ReviewSubmission),
        caller.call(reason=body.reason, overrides=body.overrides, idempotency_key=key),
        based_on=based_on,
    )
    return render(result, 201, location=f"/patients/{patient_id}/reviews/{body.review_id}")


@router.get(
    "/patients/{patient_id}/reviews",
    response_model=list[MedicationReview],
    responses={**READ, **PAGED},
    operation_id="listReviews",
    summary="The patient's signed reviews, oldest first",
)
def list_reviews(caller: CallerDep, patient_id: UUID, page: Page) -> JSONResponse:
    caller.authorize(Action.LIST_READ, patient_id)
    found = caller.read(
        patient_id, "reviews", lambda conn: queries.medication_reviews(conn, patient_id)
    )
    shown, headers = page.page(found, lambda r: (instant(r.signed_at), str(r.id)))
    return JSONResponse(dump(shown), headers=headers)


@router.get(
    "/patients/{patient_id}/reviews/{review_id}",
    response_model=MedicationReview,
    responses=READ,
    operation_id="readReview",
    summary="One signed review: the list, findings, decisions, participants, since last time",
)
def read_review(caller: CallerDep, patient_id: UUID, review_id: UUID) -> JSONResponse:
    caller.authorize(Action.LIST_READ, patient_id)
    found = caller.read(
        patient_id, "review", lambda conn: queries.medication_review(conn, patient_id, review_id)
    )
    return JSONResponse(dump(found))


@router.get(
    "/patients/{patient_id}/reviews/{review_id}/pdf",
    response_class=Response,
    responses={
        **READ,
        **responses(503),
        200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
    },
    operation_id="readReviewPdf",
    summary="One signed review as PDF for the resident's record",
)
def read_review_pdf(caller: CallerDep, patient_id: UUID, review_id: UUID) -> Response:
    caller.authorize(Action.LIST_READ, patient_id)

    def read(conn: Any) -> tuple[MedicationReview, str]:
        found = queries.medication_review(conn, patient_id, review_id)
        patient = queries.patient_state(conn, patient_id).patient
        return found, f"{patient.given_name} {patient.family_name} ({patient.birth_date})"

    found, name = caller.read(patient_id, "review-pdf", read)
    return Response(
        review_pdf(found, name),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="review-{review_id}.pdf"'},
    )
