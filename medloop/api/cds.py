"""HL7 CDS Hooks 2.0 services over the same decision support as the native API.

- ``GET /cds-services``: discovery of ``medloop-order-select`` (hook ``order-select``) and
  ``medloop-order-sign`` (hook ``order-sign``); no prefetch.
- ``POST /cds-services/{id}``: ``context.patientId`` is our patient id (UUID) or the national
  id; ``context.draftOrders`` is a FHIR R4 Bundle of ``MedicationRequest`` drafts, parsed with
  ``fhir.resources.R4B``. Each draft names its drug in ``medicationCodeableConcept.coding`` by
  one of the systems in ``CODE_SYSTEMS`` (FEST varenr, FEST id, or ATC) and its dosage in
  ``dosageInstruction`` (mapped by ``medloop.api.fhir_dosage``; a dosage that does not map is
  left out and its dose-not-checked card names the FHIR element why). ``order-select``
  answers only for the ``selections``; ``order-sign`` for every draft. Cards are the alerts of
  ``medloop.api.screening`` (indicator from severity, summary ≤ 140 characters, source with the
  catalogue version, override reasons when the alert needs one); each card is stored.
- ``POST /cds-services/{id}/feedback``: ``accepted`` / ``overridden`` outcomes for issued cards.

Only prescribers (role ``gp``) may call the services; each call is audited as a read of the
patient's list.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationrequest import MedicationRequest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from interactions import Alert
from interactions.values import MAX_TEXT, Moment, text
from medloop.api.deps import CallerDep, IdempotencyKey
from medloop.api.fhir_dosage import MappedDosage, NotMapped, dosage_of, explained
from medloop.api.policy import Action
from medloop.api.problems import NotFound, responses
from medloop.api.routing import BlockingRoute
from medloop.api.screening import Proposal, Screened, screen
from medloop.domain.errors import DomainError, PatientNotFound
from medloop.loop.catalogue import DrugOrder
from medloop.store import access
from medloop.store.db import reader
from medloop.store.idempotency import request_fingerprint, run_once
from medloop.store.patients import find_patient_id

router = APIRouter(prefix="/cds-services", tags=["cds-hooks"], route_class=BlockingRoute)

FEST_VARENR = "https://medloop.dev/fhir/CodeSystem/fest-varenr"
FEST_ID = "https://medloop.dev/fhir/CodeSystem/fest-id"
ATC = "http://www.whocc.no/atc"
CODE_SYSTEMS = (FEST_VARENR, FEST_ID, ATC)
OVERRIDE_REASON_SYSTEM = "https://medloop.dev/fhir/CodeSystem/override-reason"
OVERRIDE_REASONS = (
    ("benefit-outweighs-risk", "Benefit outweighs the risk; the patient is informed"),
    ("monitoring-in-place", "The patient is monitored for this risk"),
    ("previously-tolerated", "The patient has tolerated this combination before"),
    ("not-relevant", "Not relevant for this patient"),
)
INDICATOR = {"avoid": "critical", "precautions": "warning", "info": "info", "no-action": "info"}

SERVICES = {
    "medloop-order-select": {
        "hook": "order-select",
        "title": "medloop medication checks (order-select)",
        "description": "Interactions, duplicates, doses, allergies and notices for the selected "
        "draft medication orders against the patient's shared medication list.",
    },
    "medloop-order-sign": {
        "hook": "order-sign",
        "title": "medloop medication checks (order-sign)",
        "description": "The same checks for every draft medication order before signing.",
    },
}


class ServiceDescription(BaseModel):
    hook: str
    id: str
    title: str
    description: str
    prefetch: dict[str, str] = Field(default_factory=dict)


class Discovery(BaseModel):
    services: list[ServiceDescription]


_OPEN = ConfigDict(extra="allow", str_max_length=MAX_TEXT, allow_inf_nan=False)
"""CDS Hooks requests may carry fields of later versions of the specification; those are
bounded by the JSON reader (``medloop.json_input``), the named ones here."""


class HookContext(BaseModel):
    model_config = _OPEN

    userId: Annotated[str, text(200)] | None = None
    patientId: Annotated[str, text(64, 1)]
    encounterId: Annotated[str, text(200)] | None = None
    selections: list[Annotated[str, text(200)]] = Field(default_factory=list, max_length=50)
    draftOrders: dict[str, Any]


class HookRequest(BaseModel):
    model_config = _OPEN

    hook: Annotated[str, text(100)]
    hookInstance: Annotated[str, text(100, 1)]
    context: HookContext


class Coding(BaseModel):
    model_config = ConfigDict(str_max_length=MAX_TEXT)

    system: Annotated[str, text(500)] | None = None
    code: Annotated[str, text(200)] | None = None
    display: Annotated[str, text(500)] | None = None


class Source(BaseModel):
    label: str
    topic: Coding | None = None


class Card(BaseModel):
    uuid: str
    summary: str = Field(max_length=140)
    detail: str
    indicator: Literal["info", "warning", "critical"]
    source: Source
    overrideReasons: list[Coding] = Field(default_factory=list)
    extension: dict[str, Any] = Field(default_factory=dict)


class CardsResponse(BaseModel):
    cards: list[Card]


class OverrideReason(BaseModel):
    reason: Coding | None = None
    userComment: Annotated[str, text(2000)] | None = None


class FeedbackItem(BaseModel):
    card: UUID
    outcome: Literal["accepted", "overridden"]
    overrideReason: OverrideReason | None = None
    acceptedSuggestions: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    outcomeTimestamp: Moment


class FeedbackRequest(BaseModel):
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=50)


ServiceId = Annotated[str, Path(max_length=100)]


class InvalidDraft(DomainError):
    """A CDS Hooks draft order is not a MedicationRequest we can check."""

    code = "invalid-draft-order"


@router.get("", response_model=Discovery, summary="CDS Hooks discovery")
def discovery() -> JSONResponse:
    return JSONResponse(
        {"services": [{"id": key, "prefetch": {}, **value} for key, value in SERVICES.items()]}
    )


def _service(service_id: str) -> dict[str, str]:
    found = SERVICES.get(service_id)
    if found is None:
        raise NotFound(f"no CDS service {service_id!r}")
    return found


def drafts(bundle: dict[str, Any]) -> list[MedicationRequest]:
    """The MedicationRequests in a draftOrders Bundle (other resources are ignored)."""
    try:
        parsed = Bundle.model_validate(bundle)
        found = []
        for entry in parsed.entry or []:
            resource = entry.resource
            if resource is not None and resource.get_resource_type() == "MedicationRequest":
                found.append(MedicationRequest.model_validate(resource.model_dump()))
    except ValidationError as error:
        raise InvalidDraft(
            f"draftOrders is not a FHIR R4 Bundle: {error.error_count()} error(s)"
        ) from None
    except (KeyError, ValueError, TypeError):
        # fhir.resources looks an unknown resourceType up by name (KeyError).
        raise InvalidDraft(
            "draftOrders is not a FHIR R4 Bundle: a resource of an unknown resourceType"
        ) from None
    return found


def proposal_of(
    draft: MedicationRequest, index: int, today: date
) -> tuple[Proposal, NotMapped | None]:
    """The draft as a proposal: its drug from the first coding in a known system; its dosage
    and days of use from ``dosageInstruction`` (``medloop.api.fhir_dosage``), or no dosage and
    why not."""
    draft_id = draft.id or f"draft-{index}"
    mapped = dosage_of(draft.dosageInstruction, today)
    if isinstance(mapped, MappedDosage):
        dosage, start, stop, why = mapped.dosage, mapped.start or today, mapped.stop, None
    else:
        dosage, start, stop, why = None, today, None, mapped
    concept = draft.medicationCodeableConcept
    for coding in (concept.coding or []) if concept is not None else []:
        if coding.system == FEST_VARENR and coding.code:
            return Proposal(draft_id, DrugOrder(varenr=coding.code), dosage, start, stop), why
        if coding.system == FEST_ID and coding.code:
            return Proposal(draft_id, DrugOrder(fest_id=coding.code), dosage, start, stop), why
        if coding.system == ATC and coding.code:
            return Proposal(draft_id, None, dosage, start, stop, atc=coding.code), why
    raise InvalidDraft(
        f"MedicationRequest {draft_id} has no medicationCodeableConcept coding in "
        f"{', '.join(CODE_SYSTEMS)}",
        draft=draft_id,
    )


def _patient_id(conn: Any, given: str) -> UUID:
    try:
        return UUID(given)
    except ValueError:
        found = find_patient_id(conn, given)
    if found is None:
        raise PatientNotFound("context.patientId names no patient", patient_id=given)
    return found


def card_for(alert: Alert, screened: Screened) -> dict[str, Any]:
    detail = alert.detail.model_dump(mode="json")
    lines = [alert.summary, ""]
    for field in ("consequence", "mechanism", "situation", "text", "reason", "citation"):
        if isinstance(detail.get(field), str):
            lines.append(f"**{field.capitalize()}:** {detail[field]}")
    names = ", ".join(screened.names.get(m, m) for m in alert.medications)
    lines.append(f"Medications: {names}")
    return {
        "uuid": str(uuid.uuid4()),
        "summary": alert.summary,
        "detail": "\n\n".join(lines),
        "indicator": INDICATOR.get(alert.severity.value, "info"),
        "source": {
            "label": f"medloop decision support, FEST catalogue version "
            f"{screened.catalogue_version} (HentetDato {screened.hentet_dato})",
            "topic": {
                "system": "https://medloop.dev/fhir/CodeSystem/alert-kind",
                "code": alert.kind.value,
                "display": alert.kind.value,
            },
        },
        "overrideReasons": [
            {"system": OVERRIDE_REASON_SYSTEM, "code": code, "display": display}
            for code, display in (OVERRIDE_REASONS if alert.requires_override else ())
        ],
        "extension": {
            "medloop-alert-key": alert.key,
            "medloop-severity": alert.severity.value,
            "medloop-requires-override": alert.requires_override,
            "medloop-catalogue-version": screened.catalogue_version,
        },
    }


@router.post(
    "/{service_id}", response_model=CardsResponse,
    responses=responses(400, 401, 403, 404, 409, 422, 503), summary="Call a CDS service",
)
def call_service(
    caller: CallerDep, service_id: ServiceId, body: HookRequest, key: IdempotencyKey
) -> JSONResponse:
    service = _service(service_id)
    if body.hook != service["hook"]:
        raise InvalidDraft(f"service {service_id} answers hook {service['hook']}, not {body.hook}")
    caller.authorize(Action.CHECK)
    today = caller.at.date()
    drafted = [proposal_of(d, i, today) for i, d in enumerate(drafts(body.context.draftOrders))]
    proposals = [proposal for proposal, _ in drafted]
    not_mapped = {proposal.id: why for proposal, why in drafted if why is not None}
    with reader(caller.engine).connect() as conn:
        patient_id = _patient_id(conn, body.context.patientId)
    caller.authorize(Action.CHECK, patient_id)
    if not proposals:
        return JSONResponse({"cards": []})
    selected = {s.split("/")[-1] for s in body.context.selections}

    def issue(conn: Any) -> dict[str, Any]:
        screened = screen(conn, patient_id, proposals, caller.at.date())
        alerts = [
            a for a in explained(screened.alerts, not_mapped, screened.names)
            if service["hook"] != "order-select" or not selected
            or selected.intersection(a.medications)
        ]
        cards = [card_for(a, screened) for a in alerts]
        access.append_cards(
            conn,
            [
                access.IssuedCard(
                    id=UUID(card["uuid"]), service=service_id, hook_instance=body.hookInstance,
                    patient_id=patient_id, alert_key=alert.key,
                    issued_to=caller.principal.subject, record=card,
                )
                for alert, card in zip(alerts, cards, strict=True)
            ],
            caller.at,
        )
        return {"cards": cards}

    action = f"cds.{service['hook']}"
    answer = access.audited(
        caller.engine, _accessor(caller), patient_id, action,
        lambda conn: _once(conn, caller, action, key, body, lambda: issue(conn)),
    )
    return JSONResponse(answer)


def _once(
    conn: Any, caller: Any, action: str, key: str | None, body: BaseModel,
    compute: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """``compute()``, or with an Idempotency-Key the answer of the first call with it."""
    if key is None:
        return compute()
    principal = caller.principal
    scope = f"{principal.organisation}/{principal.subject}/{action}"
    fingerprint = request_fingerprint(body.model_dump(mode="json"))
    return run_once(conn, scope, key, fingerprint, compute).response


@router.post(
    "/{service_id}/feedback", responses=responses(400, 401, 403, 404, 409, 422),
    summary="Feedback on issued cards (accepted / overridden)",
)
def feedback(
    caller: CallerDep, service_id: ServiceId, body: FeedbackRequest, key: IdempotencyKey
) -> JSONResponse:
    _service(service_id)
    caller.authorize(Action.CHECK)
    with reader(caller.engine).connect() as conn:
        issued = [access.card(conn, item.card) for item in body.feedback]
    if any(c is None or c.service != service_id for c in issued):
        raise NotFound("feedback names a card this service did not issue")
    patients = {c.patient_id for c in issued if c is not None}
    for patient_id in patients:
        caller.authorize(Action.CHECK, patient_id)

    for patient_id in patients:
        items = [
            item for item, card in zip(body.feedback, issued, strict=True)
            if card is not None and card.patient_id == patient_id
        ]

        def record(conn: Any, items: list[FeedbackItem]) -> dict[str, Any]:
            for item in items:
                reason = item.overrideReason
                access.append_feedback(
                    conn,
                    access.Feedback(
                        id=uuid.uuid4(), card_id=item.card, outcome=item.outcome,
                        outcome_at=item.outcomeTimestamp, recorded_by=caller.principal.subject,
                        override_reason=(
                            None if reason is None or reason.reason is None
                            else reason.reason.model_dump(exclude_none=True)
                        ),
                        comment=None if reason is None else reason.userComment,
                    ),
                    caller.at,
                )
            return {}

        access.audited(
            caller.engine, _accessor(caller), patient_id, "cds.feedback",
            lambda conn, items=items: _once(
                conn, caller, "cds.feedback", None if key is None else f"{key}/{patient_id}",
                body, lambda: record(conn, items),
            ),
        )
    return JSONResponse({})


def _accessor(caller: Any) -> access.Accessor:
    from medloop.api.policy import accessor

    return accessor(caller.principal, caller.request_id)
