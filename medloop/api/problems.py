"""RFC 9457 problem documents: the ONE place where refusals become HTTP statuses.

Every ``DomainError`` code (``medloop.domain.errors.error_codes()``: each class registers its code
where it is defined, beside the family that raises it) has the stable type
``https://medloop.dev/problems/<code>``; ``STATUS`` maps the codes to statuses explicitly and
``status_for`` falls back on the error's family for codes added later. The API's own refusals
(authentication, authorisation, preconditions, idempotency, malformed requests) are mapped
here too. A 401 or 403 body never carries patient data.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from medloop.api.auth import Unauthenticated
from medloop.api.responses import JSONResponse
from medloop.domain.dispense import DispenseNotFound, QuantityUnitMismatch
from medloop.domain.errors import DomainError, InvalidValue, error_codes
from medloop.domain.medication_list import (
    EmptyChange,
    EntryNotFound,
    InvalidEntry,
    StaleListVersion,
)
from medloop.domain.patient import InvalidNationalId, PatientNotFound
from medloop.domain.personnel import InvalidHprNumber, NotAPharmacist, NotAPharmacy
from medloop.domain.prescription import (
    ExpiryBeforeIssue,
    NonCatalogueItemNotPrescribable,
    PrescriptionNotFound,
    RepeatsNotAllowed,
    ValidityTooLong,
)
from medloop.domain.reconciliation import (
    ReconciliationDuplicateOutcome,
    ReconciliationIncomplete,
    ReconciliationNeedsSource,
    ReconciliationUnknownEntry,
)
from medloop.domain.validity import InvalidDuration
from medloop.loop.errors import NoCatalogueInForce, ReasonRequired, UnknownDrug
from medloop.store.columns import StoredRecordUnreadable
from medloop.store.db import database_unavailable
from medloop.store.idempotency import (
    IdempotencyError,
    IdempotencyKeyReused,
    IdempotentRequestInProgress,
)

PROBLEM_BASE = "https://medloop.dev/problems/"
MEDIA_TYPE = "application/problem+json"

STATUS: dict[str, int] = {
    # the request names something that is not there
    PatientNotFound.code: 404,
    PrescriptionNotFound.code: 404,
    DispenseNotFound.code: 404,
    EntryNotFound.code: 404,
    ReconciliationUnknownEntry.code: 422,
    # a value that cannot exist, or a request that does not fit the rules whatever the state
    InvalidNationalId.code: 422,
    InvalidHprNumber.code: 422,
    InvalidDuration.code: 422,
    NotAPharmacy.code: 403,
    NotAPharmacist.code: 403,
    UnknownDrug.code: 422,
    InvalidEntry.code: 422,
    EmptyChange.code: 422,
    RepeatsNotAllowed.code: 422,
    ValidityTooLong.code: 422,
    ExpiryBeforeIssue.code: 422,
    NonCatalogueItemNotPrescribable.code: 422,
    ReasonRequired.code: 422,
    ReconciliationNeedsSource.code: 422,
    ReconciliationDuplicateOutcome.code: 422,
    ReconciliationIncomplete.code: 422,
    QuantityUnitMismatch.code: 422,
    # the list version the write was based on is not the current one
    StaleListVersion.code: 412,
    "invalid-draft-order": 422,  # medloop.api.cds
    # nursing home (medloop.domain.administration, medloop.domain.ward)
    "charting-incomplete": 422,
    "scan-or-skip-reason-required": 422,
    "charted-in-the-future": 422,
    "administered-dose-unit-mismatch": 422,
    "ward-of-another-organisation": 403,
    "witness-of-another-organisation": 403,
    "gsrn-invalid": 422,
    "patient-not-admitted": 403,
    # multidose (medloop.domain.multidose)
    "multidose-pack-report-invalid": 422,
    "multidose-period-invalid": 422,
    "multidose-proposal-invalid": 422,
    "multidose-responsibility-invalid": 422,
    "multidose-task-note-required": 422,
    "not-the-multidose-pharmacy": 403,
    "pharmacist-required": 403,
    "prescriber-required": 403,
    # e-prescription messages (medloop.domain.messages)
    "message-patient-mismatch": 422,
    "message-without-patient": 422,
    "message-without-author": 422,
    "message-type-not-imported": 422,
    "message-not-matched": 422,
    "message-id-reused": 409,
    "list-proposal-not-found": 404,
    "list-proposal-unknown-entry": 422,
    "outbox-message-not-found": 404,
    "outbox-message-already-sent": 409,
    # medication review (medloop.domain.review)
    "review-invalid": 422,
    "review-incomplete": 422,
    "review-decision-invalid": 422,
    "review-participants-missing": 422,
    "review-signer-not-participant": 422,
    "review-not-found": 404,
    "reconciliation-not-found": 404,
    "multidose-reconciliation-not-found": 404,
    "pdf-unavailable": 503,
    # no catalogue: the service cannot decide anything yet
    NoCatalogueInForce.code: 503,
}
"""Codes not listed here: ``status_for`` (409 for refusals that depend on the current state)."""


def status_for(code: str) -> int:
    found = STATUS.get(code)
    if found is not None:
        return found
    cls = error_codes().get(code)
    if cls is not None and issubclass(cls, InvalidValue):
        return 422
    if code.endswith("-not-found"):
        return 404
    return 409


TITLES: dict[str, str] = {
    # the API's own refusals
    "unauthenticated": "Sign in with a valid bearer token",
    "forbidden": "Not allowed for your role or organisation",
    "if-match-required": "If-Match is required for this write",
    "invalid-if-match": "If-Match is not a list version",
    "invalid-idempotency-key": "Idempotency-Key is not usable",
    "idempotency-key-reused": "Idempotency-Key was used for another request",
    "idempotency-key-in-progress": "A request with this Idempotency-Key is still running",
    "malformed-json": "The body is not valid JSON",
    "invalid-request": "The request has invalid fields",
    "invalid-cursor": "The page cursor is not one this API gave",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed here",
    "request-too-large": "The request body is too large",
    "http-error": "The request could not be handled",
    "database-unavailable": "The database is unavailable for a moment",
    "stored-record-unreadable": "A stored record cannot be read",
    "internal-error": "Unexpected error",
    # e-prescription messages
    "message-unreadable": "The message is not well-formed or safe XML",
    "message-invalid": "The message breaks its schema or signature",
    "message-patient-mismatch": "The message is about another patient",
    "message-without-patient": "The message names no patient",
    "message-without-author": "The message names no professional as its author",
    "message-type-not-imported": "This message type is not imported",
    "message-not-matched": "The message does not match the list",
    "message-id-reused": "This MsgId was received with other content",
    "list-proposal-not-found": "No such list proposal",
    "prescription-not-recalled": "The prescription is not recalled",
    "list-proposal-already-decided": "The list proposal was decided already",
    "list-proposal-stale": "The list changed since the proposal was made",
    "list-proposal-unknown-entry": "The proposal has no such entry",
    "outbox-message-not-found": "No such message to send",
    "outbox-message-already-sent": "The message was marked sent already",
    # lists, entries and prescriptions
    "stale-list-version": "The list changed since the version you based this on",
    "override-required": "Alerts need an override with a reason",
    "patient-not-found": "Patient not found",
    "patient-already-registered": "A list is already kept for this patient",
    "entry-not-found": "Entry not found",
    "review-invalid": "The review cannot be signed",
    "review-incomplete": "Every finding of the review needs a decision",
    "review-decision-invalid": "A decision of the review does not fit its findings",
    "review-participants-missing": "A review is signed by the doctor who took part",
    "review-signer-not-participant": "The signing doctor is not among the participants",
    "review-not-found": "Review not found",
    "pdf-unavailable": "The PDF renderer is not available",
    "entry-already-exists": "An entry with this id already exists",
    "entry-already-discontinued": "The entry is already discontinued",
    "entry-already-on-hold": "The entry is already on hold",
    "entry-discontinued": "The entry is discontinued",
    "entry-entered-in-error": "The entry was entered in error",
    "entry-not-active": "The entry is not active",
    "entry-not-on-hold": "The entry is not on hold",
    "entry-not-prescribable": "This entry cannot be prescribed",
    "entry-not-administrable": "This entry cannot be given",
    "invalid-entry": "The entry is not valid",
    "empty-change": "The change changes nothing",
    "id-already-used": "This id is already taken",
    "broken-history": "The entry's history is broken",
    "unknown-drug": "Drug not in the catalogue in force",
    "non-catalogue-item-not-prescribable": "Items outside the catalogue cannot be prescribed",
    "invalid-national-id": "Not a valid national identity number",
    "invalid-hpr-number": "Not a valid HPR number",
    "invalid-duration": "Not a valid duration",
    "reason-required": "A reason is required",
    "repeats-not-allowed": "Repeats are not allowed for this prescription",
    "validity-too-long": "The prescription would be valid for too long",
    "expiry-before-issue": "The expiry date is before the issue date",
    "prescription-not-found": "Prescription not found",
    "prescription-backs-another-entry": "The prescription belongs to another entry",
    "prescription-not-on-entry": "The prescription is not on this entry",
    "prescription-expired": "The prescription has expired",
    "prescription-recalled": "The prescription has been recalled",
    "prescription-still-valid": "The prescription is still valid",
    "prescription-locked": "Another pharmacy is dispensing this prescription",
    "prescription-fully-dispensed": "The prescription is fully dispensed",
    "prescription-transition-refused": "The prescription cannot change to that status",
    "quantity-unit-mismatch": "The quantity's unit does not fit the drug",
    "quantity-exceeds-remaining": "More than the prescription has left",
    # dispensing
    "dispense-not-found": "Dispense not found",
    "dispense-already-annulled": "The dispense is already annulled",
    "dispense-not-on-prescription": "The dispense is not on this prescription",
    "annulment-by-another-pharmacy": "Only the pharmacy that dispensed can annul",
    "package-not-substitutable": "This package may not replace the prescribed one",
    "substitution-group-not-valid-on-date": "The substitution group is not valid on this date",
    "substitution-reserved": "The prescriber reserved against substitution",
    "not-a-pharmacy": "Only a pharmacy may do this",
    "not-a-pharmacist": "Only a pharmacist may do this",
    "pack-expired": "The pack has expired",
    # reconciliation (samstemming)
    "reconciliation-needs-a-source": "A reconciliation needs at least one source",
    "reconciliation-duplicate-outcome": "Two outcomes for the same entry",
    "reconciliation-incomplete": "The reconciliation leaves entries without an outcome",
    "reconciliation-unknown-entry": "The reconciliation names an entry not on the list",
    "reconciliation-outcome-contradicts-entry": "An outcome does not fit its entry",
    "reconciliation-not-found": "Reconciliation not found",
    # patient facts
    "observation-invalid": "The measurement cannot be recorded",
    "observation-older-than-recorded": "A newer measurement is already on record",
    # nursing homes: wards, admissions, charting
    "ward-not-found": "Ward not found",
    "invalid-report-period": "The report period is not possible",
    "ward-id-already-used": "A ward with this id already exists",
    "ward-of-another-organisation": "The ward belongs to another organisation",
    "invalid-ward-config": "The ward configuration is not valid",
    "admission-not-found": "Admission not found",
    "admission-overlaps-earlier-stay": "The admission overlaps an earlier stay",
    "admission-time-out-of-range": "The admission time is out of range",
    "discharge-time-out-of-range": "The discharge time is out of range",
    "patient-already-admitted": "The patient is already admitted",
    "patient-not-admitted": "The patient is not admitted here",
    "administration-not-found": "Charting not found",
    "administration-already-entered-in-error": "The charting is already entered in error",
    "administered-dose-above-prescribed": "The dose given is above the prescribed dose",
    "administered-dose-unit-mismatch": "The dose given is in another unit than prescribed",
    "as-needed-dose-is-not-planned": "An as-needed dose has no planned dose",
    "charted-in-the-future": "A dose cannot be charted in the future",
    "charting-incomplete": "The charting is incomplete",
    "dose-already-charted": "The dose is already charted",
    "dose-not-yet-due": "The dose is not due yet",
    "planned-dose-not-found": "Planned dose not found",
    "planned-dose-of-another-entry": "The planned dose belongs to another entry",
    "planned-dose-required": "A regular dose must name its planned dose",
    "planned-dose-superseded": "The planned dose was replaced by a newer schedule",
    "prn-limit-exceeded": "The as-needed (PRN) limit would be exceeded",
    "scan-or-skip-reason-required": "Scan the pack or say why not",
    "scan-unreadable": "The scanned code cannot be read",
    "scanned-pack-expired": "The scanned pack has expired",
    "wristband-mismatch": "The scanned wristband is another person's",
    "wristband-not-registered": "No GSRN is registered for this resident",
    "gsrn-invalid": "Not a GS1 GSRN (18 digits with the GS1 check digit)",
    "gsrn-in-use": "The GSRN is registered for another stay",
    "scanned-pack-mismatch": "The scanned pack is not the prescribed drug",
    "scanned-pack-unknown": "The scanned pack is not in the catalogue",
    "witness-required": "A witness must sign this dose",
    "witness-same-person": "The witness must be someone else",
    "witness-of-another-organisation": "The witness works for another organisation",
    "witness-signature-used": "The witness's signature was already used or has expired",
    # multidose
    "no-multidose-responsibility": "No multidose doctor and pharmacy are registered",
    "not-the-multidose-pharmacy": "Only the patient's multidose pharmacy may do this",
    "pharmacist-required": "Only a pharmacist may do this",
    "prescriber-required": "Only a prescriber may do this",
    "multidose-responsibility-invalid": "The multidose responsibility is not valid",
    "multidose-period-invalid": "The packing period is not valid",
    "multidose-period-not-found": "Packing period not found",
    "multidose-period-overlaps": "The packing period overlaps another",
    "multidose-urgent-pack-refused": "The urgent pack cannot be ordered",
    "multidose-pack-report-invalid": "The packing report is not valid",
    "multidose-proposal-invalid": "The proposal is not valid",
    "multidose-proposal-not-found": "Proposal not found",
    "multidose-urgent-pack-not-found": "Urgent pack not found",
    "multidose-reconciliation-not-found": "Packing reconciliation not found",
    "multidose-proposal-already-decided": "The proposal is already decided",
    "multidose-task-not-found": "Task not found",
    "multidose-task-already-resolved": "The task is already resolved",
    "multidose-task-note-required": "Resolving a task needs a note",
    # catalogue and decision support
    "no-catalogue-in-force": "No drug catalogue is in force yet",
    "invalid-draft-order": "A draft order cannot be checked",
}
"""The ``title`` of each problem type: short, human-written, the same for every occurrence
(the ``detail`` says what happened this time). A test checks every code has one."""


def title_for(code: str) -> str:
    return TITLES.get(code) or code.replace("-", " ").capitalize()


_RESERVED = frozenset({"type", "title", "status", "detail", "code", "request_id"})


class Problem(BaseModel):
    """An RFC 9457 problem document; domain refusals add ``code`` and their context fields."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=[PROBLEM_BASE + "stale-list-version"])
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None = None


class Forbidden(Exception):
    """The caller's role or organisation does not allow this action here (HTTP 403)."""


class PreconditionRequired(Exception):
    """A write without ``If-Match`` (HTTP 428)."""


class BadPrecondition(Exception):
    """An ``If-Match`` that is not a list version (HTTP 400)."""


class NotFound(Exception):
    """Something the URL names is not there, for a reason outside the domain (HTTP 404)."""


class BadCursor(Exception):
    """A page cursor this API did not give (HTTP 422)."""


def problem(status: int, code: str, detail: str, request: Request, **extra: Any) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + code,
        "title": title_for(code),
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": getattr(request.state, "request_id", None),
        **extra,
    }
    headers = {"WWW-Authenticate": 'Bearer realm="medloop"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


async def _domain_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    status = status_for(error.code)
    # A refusal of access carries no patient data; the others name what they refer to.
    extra = (
        {}
        if status in (401, 403)
        else {key: value for key, value in error.context.items() if key not in _RESERVED}
    )
    headers = {}
    if isinstance(error, StaleListVersion):
        headers["ETag"] = f'"{error.context["current_version"]}"'
    detail = "not allowed for the caller" if status in (401, 403) else error.detail
    response = problem(status, error.code, detail, request, **extra)
    response.headers.update(headers)
    return response


async def _idempotency_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, IdempotencyError)
    if isinstance(error, IdempotencyKeyReused):
        return problem(422, "idempotency-key-reused", str(error), request)
    if isinstance(error, IdempotentRequestInProgress):
        return problem(409, "idempotency-key-in-progress", str(error), request)
    return problem(400, "invalid-idempotency-key", str(error), request)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    faults = [_fault(f) for f in error.errors()[:_MAX_FAULTS]]
    malformed = any(f["type"] == "json_invalid" for f in faults)
    code = "malformed-json" if malformed else "invalid-request"
    detail = (
        "the body is not valid JSON: " + faults[0]["msg"]
        if malformed
        else _unread_body(request, faults) or f"{len(error.errors())} invalid field(s)"
    )
    _audit_refused_write(request, code, detail, faults)
    return problem(422, code, detail, request, errors=faults)


def _unread_body(request: Request, faults: list[dict[str, Any]]) -> str | None:
    """Why the whole body was refused when it was not read as JSON at all, its
    ``Content-Type`` not saying JSON (FastAPI then hands the route the raw bytes, which
    ``invalid field(s)`` would not explain); ``None`` otherwise."""
    if not any(fault["loc"] == ["body"] for fault in faults):
        return None
    kind = request.headers.get("content-type")
    media = (kind or "").partition(";")[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return None
    sent = f"as {_printable(kind[:200])}" if kind else "without a Content-Type"
    return f"the body was sent {sent}, so it was not read: send it as application/json"


def _audit_refused_write(
    request: Request, code: str, detail: str, faults: list[dict[str, Any]]
) -> None:
    """A write on a patient refused for its input is audited like every other refusal: who
    (verified before the body was read, ``medloop.api.limits``), which patient, which route,
    and where the input was wrong — never the input itself."""
    from uuid import UUID

    from medloop.api.limits import PRINCIPAL
    from medloop.api.policy import accessor
    from medloop.store.access import audit_refused

    principal = request.scope.get("state", {}).get(PRINCIPAL)
    patient = request.path_params.get("patient_id")
    if request.method in ("GET", "HEAD", "OPTIONS") or principal is None or patient is None:
        return
    try:
        patient_id = UUID(str(patient))
    except ValueError:
        return
    endpoint = getattr(request.scope.get("endpoint"), "__name__", "request")
    where = "; ".join(
        "/".join(str(part) for part in fault["loc"]) + f" ({fault['type']})" for fault in faults
    )
    audit_refused(
        request.app.state.api.engine,
        accessor(principal, request.state.request_id),
        patient_id,
        endpoint,
        f"{code}: {detail}; {where}"[:2000],
    )


_MAX_FAULTS = 50
"""At most this many faults are listed in a 422 problem."""


def _fault(found: Any) -> dict[str, Any]:
    """One validation fault as the problem lists it: where, what, which kind. Never the input
    value; keys and messages are made printable (a lone surrogate or NUL in a key the client
    sent would otherwise make the answer itself unencodable)."""
    kind = str(found.get("type", ""))
    message = str(found.get("msg", ""))
    if kind == "json_invalid":
        message = str((found.get("ctx") or {}).get("error") or message)
    return {
        "loc": [
            part if isinstance(part, int) else _printable(str(part)[:200])
            for part in found.get("loc", ())
        ],
        "msg": _printable(message[:500]),
        "type": kind,
    }


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")


async def _stored_record_unreadable(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StoredRecordUnreadable)
    return problem(
        500,
        "stored-record-unreadable",
        str(error),
        request,
        table=error.table,
        key=error.key,
    )


async def _unauthenticated(request: Request, error: Exception) -> JSONResponse:
    return problem(401, "unauthenticated", str(error), request)


async def _forbidden(request: Request, error: Exception) -> JSONResponse:
    return problem(403, "forbidden", str(error), request)


async def _precondition_required(request: Request, error: Exception) -> JSONResponse:
    return problem(428, "if-match-required", str(error), request)


async def _bad_precondition(request: Request, error: Exception) -> JSONResponse:
    return problem(400, "invalid-if-match", str(error), request)


async def _not_found(request: Request, error: Exception) -> JSONResponse:
    return problem(404, "not-found", str(error), request)


async def _bad_cursor(request: Request, error: Exception) -> JSONResponse:
    return problem(422, "invalid-cursor", str(error), request)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    from starlette.exceptions import HTTPException

    assert isinstance(error, HTTPException)
    if error.status_code == 400:
        # FastAPI's own 400: a body it cannot even decode (not UTF-8, not parseable).
        return problem(422, "malformed-json", "the body is not valid JSON", request)
    code = {404: "not-found", 405: "method-not-allowed", 413: "request-too-large"}.get(
        error.status_code, "http-error"
    )
    response = problem(error.status_code, code, str(error.detail), request)
    if error.status_code == 405:
        given = (error.headers or {}).get("Allow", "")
        found = {m.strip() for m in given.split(",") if m.strip()} | set(_allowed_methods(request))
        if "GET" in found and head_served(request.url.path):
            found.add("HEAD")  # answered as the GET without its content (app._head)
        response.headers["Allow"] = ", ".join(sorted(found))
    return response


def head_served(path: str) -> bool:
    """Whether a ``HEAD`` of ``path`` is served as its ``GET`` (``app._head``): everywhere but
    on a path with ``$``, a FHIR operation that a ``GET`` starts (``$export``)."""
    return "$" not in path


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at the request's path (RFC 9110: a 405 lists them in
    ``Allow``), not only those of the first route that matched the path."""
    from starlette.routing import Match

    allowed: set[str] = set()
    routes = getattr(request.app.state, "routes", None) or request.app.router.routes
    for route in routes:
        methods = getattr(route, "methods", None)
        if methods and route.matches(request.scope)[0] is not Match.NONE:
            allowed |= methods
    return sorted(allowed)


_UNREADABLE = frozenset(
    {"malformed-xml", "doctype-refused", "entity-refused", "too-large", "too-deep"}
)


async def _message_refused(request: Request, error: Exception) -> JSONResponse:
    """A received e-prescription message refused as read: 400 when it is not well-formed or
    safe XML, 422 when it breaks its schema, names a type or namespace we do not read, holds a
    base64 document that is not XML, or a signature that does not verify. Every problem with
    its code, line, column and where in the message."""
    from medloop.eresept import EreseptError

    assert isinstance(error, EreseptError)
    unreadable = error.code in _UNREADABLE
    return problem(
        400 if unreadable else 422,
        "message-unreadable" if unreadable else "message-invalid",
        f"{len(error.problems)} problem(s); the first: {error.problems[0]}",
        request,
        problems=[
            {
                "code": p.code,
                "message": p.message,
                "line": p.line,
                "column": p.column,
                "where": p.where,
            }
            for p in error.problems
        ],
    )


HANDLERS = {
    DomainError: _domain_error,
    IdempotencyError: _idempotency_error,
    RequestValidationError: _validation_error,
    Unauthenticated: _unauthenticated,
    Forbidden: _forbidden,
    PreconditionRequired: _precondition_required,
    BadPrecondition: _bad_precondition,
    NotFound: _not_found,
    BadCursor: _bad_cursor,
    StoredRecordUnreadable: _stored_record_unreadable,
}


DATABASE_UNAVAILABLE = "database-unavailable"
RETRY_AFTER_SECONDS = 1
"""``Retry-After`` of a 503 when the database is unreachable or busy for a moment."""


async def _database_error(request: Request, error: Exception) -> JSONResponse:
    """503 with ``Retry-After`` when the database is unreachable, busy or lost the connection
    (``store.db.database_unavailable``); any other database error is a bug (500, below).
    Nothing of the request stayed: its transaction was rolled back, or (a connection lost at
    COMMIT) may have committed, which a retry with the same ``Idempotency-Key`` settles."""
    if not database_unavailable(error):
        raise error
    response = problem(
        503,
        DATABASE_UNAVAILABLE,
        "the database is unavailable for a moment; retry (a write with the same "
        "Idempotency-Key has at most one effect)",
        request,
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    """A bug: a problem document with the request id to quote, never the exception's text.
    Starlette's server-error layer answers it outside ``RequestId``, so the response carries
    the request's ``X-Request-ID`` itself, as every other response does."""
    response = problem(500, "internal-error", "an unexpected error; quote the request id", request)
    with_request_id(response, request)
    # (``app.add_edge_headers``'s: this answer is sent past the edge)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def with_request_id(response: Any, request: Request) -> None:
    """``response`` with the request's ``X-Request-ID`` header (when ``RequestId`` gave it one:
    for a response sent past that layer)."""
    request_id = getattr(request.state, "request_id", None)
    if request_id is not None:
        response.headers["X-Request-ID"] = request_id


def install(app: Any) -> None:
    from starlette.exceptions import HTTPException

    from medloop.eresept import EreseptError

    for cls, handler in HANDLERS.items():
        app.add_exception_handler(cls, handler)
    app.add_exception_handler(EreseptError, _message_refused)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(Exception, _unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem documents a route may answer with."""
    described = {
        400: "Malformed header (If-Match, Idempotency-Key)",
        401: "No valid bearer token",
        403: "The caller's role or organisation does not allow this",
        404: "Not found",
        409: "Refused by the domain in the current state, or alerts need an override",
        412: "The list changed since the version in If-Match (current version and changes)",
        422: "Malformed JSON, invalid fields or a refused value",
        413: "The request body is larger than MEDLOOP_MAX_BODY_BYTES",
        428: "If-Match is required for this write",
        503: "No catalogue in force, or the database is unavailable for a moment "
        "(with Retry-After)",
    }
    headers = {
        412: {"ETag": {"description": "The current list version", "schema": {"type": "string"}}},
        503: {
            "Retry-After": {
                "description": "Seconds to wait before retrying",
                "schema": {"type": "string"},
            }
        },
    }
    return {
        status: {
            "description": described[status],
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            **({"headers": headers[status]} if status in headers else {}),
        }
        for status in statuses
    }
