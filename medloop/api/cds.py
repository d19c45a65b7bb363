"""HL7 CDS Hooks 2.0 services over the same decision support as the native API.

- ``GET /cds-services``: discovery of ``medloop-order-select`` (hook ``order-select``) and
  ``medloop-order-sign`` (hook ``order-sign``); no prefetch.
- ``POST /cds-services/{id}``: ``context.patientId`` is our patient id (UUID) or the national
  id; ``context.draftOrders`` is a FHIR R4 Bundle read one entry at a time and leniently
  (``medloop.api.fhir_drafts``): only ``MedicationRequest``s are orders medloop checks, each
  naming its drug by a coding (in ``medicationCodeableConcept`` or a contained or bundled
  ``Medication``) in one of FEST's systems (medloop's own or HL7 Norway's) or ATC, its dosage
  in ``dosageInstruction`` (``medloop.api.fhir_dosage``) and its route in
  ``dosageInstruction.route``. ``order-select`` answers only for the ``selections``;
  ``order-sign`` for every draft. Cards are the alerts of ``medloop.api.screening``
  (indicator from severity, summary ≤ 140 characters naming the drugs, source with the
  catalogue version, override reasons when the alert needs an override) plus one "not checked"
  card per draft that could not be checked (the FHIR element and why); each card is stored.
  A request is refused (422, naming the fields) only when it is itself unusable.
- ``POST /cds-services/{id}/feedback``: ``accepted`` / ``overridden`` outcomes for issued cards.

Callers are prescribers (role ``gp``) with their own token, or a trusted CDS client (an EHR)
with a CDS Hooks client JWT (``medloop.api.cds_auth``) on behalf of ``context.userId``; each
call is audited as a read of the patient's list by that practitioner.
"""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from interactions import Alert
from interactions.alerts import shorten
from interactions.values import MAX_TEXT, Moment, text
from medloop.api.cds_auth import CdsCallerDep
from medloop.api.deps import IdempotencyKey
from medloop.api.fhir_dosage import MappedDosage, NotMapped, explained
from medloop.api.fhir_drafts import (
    ATC,
    FEST_ID,
    FEST_VARENR,
    KIND,
    Draft,
    Unchecked,
    UnusableDraftOrders,
    read_drafts,
)
from medloop.api.policy import Action
from medloop.api.problems import NotFound, responses
from medloop.api.routing import BlockingRoute
from medloop.api.screening import Proposal, Screened, screen
from medloop.domain.errors import DomainError
from medloop.domain.patient import PatientNotFound
from medloop.loop.runner import Once, run_audited
from medloop.store import access
from medloop.store.db import reader
from medloop.store.idempotency import request_fingerprint
from medloop.store.patients import find_patient_id

# -- errors ------------------------------------------------------------------------------------


class InvalidDraft(DomainError):
    """A CDS Hooks request that cannot be used as a whole (its ``errors`` name the fields)."""

    code = "invalid-draft-order"


router = APIRouter(prefix="/cds-services", tags=["cds-hooks"], route_class=BlockingRoute)

CODE_SYSTEMS = tuple(KIND)
__all__ = ["ATC", "CODE_SYSTEMS", "FEST_ID", "FEST_VARENR", "router"]
EXTENSION = "dev.medloop"
"""The reverse-domain prefix of medloop's card and service extension keys."""
OVERRIDE_REASON_SYSTEM = "https://medloop.dev/fhir/CodeSystem/override-reason"
OVERRIDE_REASONS = (
    ("benefit-outweighs-risk", "Benefit outweighs the risk; the patient is informed"),
    ("monitoring-in-place", "The patient is monitored for this risk"),
    ("previously-tolerated", "The patient has tolerated this combination before"),
    ("not-relevant", "Not relevant for this patient"),
)
ALERT_KIND_SYSTEM = "https://medloop.dev/fhir/CodeSystem/alert-kind"
INDICATOR = {"avoid": "critical", "precautions": "warning", "info": "info", "no-action": "info"}
NOT_CHECKED = "not-checked"

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


class CdsServiceDescription(BaseModel):
    hook: str
    id: str
    title: str
    description: str
    prefetch: dict[str, str] | None = None
    """Not sent: medloop asks for no prefetch (an empty object would break "SHALL NOT be
    empty")."""


class CdsDiscovery(BaseModel):
    services: list[CdsServiceDescription]


_OPEN = ConfigDict(extra="allow", str_max_length=MAX_TEXT, allow_inf_nan=False)
"""CDS Hooks requests may carry fields of later versions of the specification; those are
bounded by the JSON reader (``medloop.json_input``), the named ones here."""


class CdsHookContext(BaseModel):
    model_config = _OPEN

    userId: Annotated[str, text(200)] | None = None
    patientId: Annotated[str, text(64, 1)]
    encounterId: Annotated[str, text(200)] | None = None
    selections: list[Annotated[str, text(200)]] = Field(default_factory=list, max_length=50)
    draftOrders: dict[str, Any]


class CdsHookRequest(BaseModel):
    model_config = _OPEN

    hook: Annotated[str, text(100)]
    hookInstance: Annotated[str, text(100, 1)]
    context: CdsHookContext


class CdsCoding(BaseModel):
    model_config = ConfigDict(str_max_length=MAX_TEXT)

    system: Annotated[str, text(500)] | None = None
    code: Annotated[str, text(200)] | None = None
    display: Annotated[str, text(500)] | None = None


class CdsCardSource(BaseModel):
    label: str
    topic: CdsCoding | None = None


class CdsCard(BaseModel):
    uuid: str
    summary: str = Field(max_length=140)
    detail: str
    indicator: Literal["info", "warning", "critical"]
    source: CdsCardSource
    overrideReasons: list[CdsCoding] | None = Field(
        default=None, description="Present only on cards that take an override"
    )
    extension: dict[str, Any] | None = Field(
        default=None, description="Keys in reverse-domain form (dev.medloop.*)"
    )


class CdsCardsResponse(BaseModel):
    cards: list[CdsCard]


class CdsOverrideReason(BaseModel):
    reason: CdsCoding | None = None
    userComment: Annotated[str, text(2000)] | None = None


class CdsFeedbackItem(BaseModel):
    card: UUID
    outcome: Literal["accepted", "overridden"]
    overrideReason: CdsOverrideReason | None = None
    acceptedSuggestions: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    outcomeTimestamp: Moment


class CdsFeedbackRequest(BaseModel):
    feedback: list[CdsFeedbackItem] = Field(min_length=1, max_length=50)


ServiceId = Annotated[str, Path(max_length=100)]


def _unusable(field: str, reason: str) -> InvalidDraft:
    loc = ["body", *field.split(".")]
    return InvalidDraft(
        f"{field}: {reason}", errors=[{"loc": loc, "msg": reason, "type": "value_error"}]
    )


@router.get("", response_model=CdsDiscovery, summary="CDS Hooks discovery")
def discovery() -> JSONResponse:
    return JSONResponse({"services": [{"id": key, **value} for key, value in SERVICES.items()]})


def _service(service_id: str) -> dict[str, str]:
    found = SERVICES.get(service_id)
    if found is None:
        raise NotFound(f"no CDS service {service_id!r}")
    return found


def proposal_of(draft: Draft, today: date) -> Proposal:
    """The draft as a proposal: its drug, its dosage and days of use (or none), its route."""
    mapped = draft.dosage
    dosage, start, stop = None, None, None
    if isinstance(mapped, MappedDosage):
        dosage, start, stop = mapped.dosage, mapped.start, mapped.stop
    return Proposal(
        draft.id,
        draft.drug,
        dosage,
        start or today,
        stop,
        atc=draft.atc,
        route=draft.route,
        display=draft.display,
    )


def _patient_id(conn: Any, given: str) -> UUID:
    try:
        return UUID(given)
    except ValueError:
        found = find_patient_id(conn, given)
    if found is None:
        raise PatientNotFound("context.patientId names no patient", patient_id=given)
    return found


def _source(screened: Screened, kind: str) -> dict[str, Any]:
    return {
        "label": f"medloop decision support, FEST catalogue version "
        f"{screened.catalogue_version} (HentetDato {screened.hentet_dato})",
        "topic": {"system": ALERT_KIND_SYSTEM, "code": kind, "display": kind.replace("-", " ")},
    }


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def _readable(value: str, names: dict[str, str]) -> str:
    """A detail text with every internal medication id (a list entry's UUID, or a draft's
    when it is one) replaced by the drug's name and no runs of blank lines."""
    for medication_id, name in names.items():
        if _UUID.fullmatch(medication_id) and medication_id in value:
            value = value.replace(medication_id, name)
    return _BLANK_LINES.sub("\n", value.strip())


def card_for(alert: Alert, screened: Screened) -> dict[str, Any]:
    detail = alert.detail.model_dump(mode="json")
    names = screened.names
    lines = []
    for field in ("consequence", "mechanism", "situation", "text", "reason", "citation"):
        value = detail.get(field)
        if isinstance(value, str) and value.strip():
            lines.append(f"**{field.capitalize()}:** {_readable(value, names)}")
    drugs = ", ".join(names.get(m, "a drug on the list") for m in alert.medications)
    lines.append(f"**Medications:** {drugs}")
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": shorten(_readable(alert.summary, names)),
        "detail": "\n\n".join(lines),
        "indicator": INDICATOR.get(alert.severity.value, "info"),
        "source": _source(screened, alert.kind.value),
    }
    if alert.requires_override:
        card["overrideReasons"] = [
            {"system": OVERRIDE_REASON_SYSTEM, "code": code, "display": display}
            for code, display in OVERRIDE_REASONS
        ]
    card["extension"] = {
        f"{EXTENSION}.alert-key": alert.key,
        f"{EXTENSION}.severity": alert.severity.value,
        f"{EXTENSION}.requires-override": alert.requires_override,
        f"{EXTENSION}.catalogue-version": screened.catalogue_version,
    }
    return card


def not_checked_card(
    draft_id: str, name: str | None, element: str, reason: str, screened: Screened
) -> dict[str, Any]:
    """The card of a draft medloop could not check at all: which FHIR element and why."""
    called = name or f"draft order {draft_id}"
    return {
        "uuid": str(uuid.uuid4()),
        "summary": shorten(f"Not checked: {called}: {reason}"),
        "detail": "\n\n".join(
            [
                f"medloop did not check the draft order {draft_id} ({called}) for interactions, "
                "duplicates, doses, allergies or notices.",
                f"**Element:** `{element}`",
                f"**Reason:** {reason}",
            ]
        ),
        "indicator": "warning",
        "source": _source(screened, NOT_CHECKED),
        "extension": {
            f"{EXTENSION}.alert-key": f"{NOT_CHECKED}/{draft_id}",
            f"{EXTENSION}.draft": draft_id,
            f"{EXTENSION}.element": element,
            f"{EXTENSION}.catalogue-version": screened.catalogue_version,
        },
    }


@router.post(
    "/{service_id}",
    response_model=CdsCardsResponse,
    responses=responses(400, 401, 403, 404, 409, 422, 503),
    summary="Call a CDS service",
)
def call_service(
    caller: CdsCallerDep, service_id: ServiceId, body: CdsHookRequest, key: IdempotencyKey
) -> JSONResponse:
    service = _service(service_id)
    if body.hook != service["hook"]:
        raise _unusable("hook", f"service {service_id} answers hook {service['hook']}")
    caller = caller.for_user(body.context.userId, required=True)
    caller.authorize(Action.CHECK)
    today = caller.day
    try:
        read = read_drafts(body.context.draftOrders, today)
    except UnusableDraftOrders as error:
        raise _unusable(error.field, error.reason) from None
    with reader(caller.engine).connect() as conn:
        patient_id = _patient_id(conn, body.context.patientId)
    caller.authorize(Action.CHECK, patient_id)
    # order-select answers for the selections; the other drafts of the session are checked
    # with them (an interaction between a selected and an earlier draft is told).
    chosen = {s.split("/")[-1] for s in body.context.selections}
    if service["hook"] != "order-select" or not chosen:
        chosen = {d.id for d in read}
    drafts = [d for d in read if isinstance(d, Draft)]
    unchecked = [d for d in read if isinstance(d, Unchecked) and d.id in chosen]
    proposals = [proposal_of(d, today) for d in drafts]
    not_mapped = {d.id: d.dosage for d in drafts if isinstance(d.dosage, NotMapped)}
    routes = {d.id: d.route_why for d in drafts}
    if not read:
        return JSONResponse({"cards": []})

    def issue(conn: Any) -> dict[str, Any]:
        screened = screen(conn, patient_id, proposals, today, skip_unknown=True)
        alerts = [
            a
            for a in explained(screened.alerts, not_mapped, screened.names, routes)
            if chosen.intersection(a.medications)
        ]
        issued = [(a.key, card_for(a, screened)) for a in alerts]
        for draft in unchecked:
            issued.append(
                (
                    f"{NOT_CHECKED}/{draft.id}",
                    not_checked_card(
                        draft.id, draft.display, draft.element, draft.reason, screened
                    ),
                )
            )
        for draft in drafts:
            if draft.id in screened.unknown and draft.id in chosen:
                issued.append(
                    (
                        f"{NOT_CHECKED}/{draft.id}",
                        not_checked_card(
                            draft.id,
                            draft.display,
                            draft.coded_by,
                            _unknown_reason(draft, screened),
                            screened,
                        ),
                    )
                )
        access.append_cards(
            conn,
            [
                access.IssuedCard(
                    id=UUID(card["uuid"]),
                    service=service_id,
                    hook_instance=body.hookInstance,
                    patient_id=patient_id,
                    alert_key=alert_key[:500],
                    issued_to=caller.principal.subject,
                    record=card,
                )
                for alert_key, card in issued
            ],
            caller.at,
        )
        return {"cards": [card for _, card in issued]}

    action = f"cds.{service['hook']}"
    answer = run_audited(
        caller.engine,
        _accessor(caller),
        patient_id,
        action,
        issue,
        once=_once(caller, action, key, body),
        replayed_as=CdsCardsResponse,
    )
    return JSONResponse(dict(answer))


def _unknown_reason(draft: Draft, screened: Screened) -> str:
    if draft.atc is not None:
        named = f"ATC code {draft.atc}"
    elif draft.drug is not None and draft.drug.varenr is not None:
        named = f"varenr {draft.drug.varenr}"
    else:
        named = f"FEST id {draft.drug.fest_id if draft.drug else '?'}"
    return f"{named} is not in FEST catalogue version {screened.catalogue_version}"


def _once(caller: Any, action: str, key: str | None, body: BaseModel) -> Once | None:
    """The Idempotency-Key of the caller's ``action`` (``None``: none given)."""
    if key is None:
        return None
    principal = caller.principal
    scope = f"{principal.organisation}/{principal.subject}/{action}"
    return Once(scope, key, request_fingerprint(body.model_dump(mode="json")))


class CdsFeedbackAccepted(BaseModel):
    """Feedback was recorded (CDS Hooks answers it with an empty object)."""

    model_config = ConfigDict(extra="forbid")


@router.post(
    "/{service_id}/feedback",
    response_model=CdsFeedbackAccepted,
    responses=responses(400, 401, 403, 404, 409, 422),
    summary="Feedback on issued cards (accepted / overridden)",
)
def feedback(
    caller: CdsCallerDep, service_id: ServiceId, body: CdsFeedbackRequest, key: IdempotencyKey
) -> JSONResponse:
    _service(service_id)
    caller = caller.for_user(None)
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
            item
            for item, card in zip(body.feedback, issued, strict=True)
            if card is not None and card.patient_id == patient_id
        ]

        def record(
            conn: Any, items: list[CdsFeedbackItem], patient_id: UUID = patient_id
        ) -> dict[str, Any]:
            for item in items:
                reason = item.overrideReason
                access.append_feedback(
                    conn,
                    patient_id,
                    access.Feedback(
                        id=uuid.uuid4(),
                        card_id=item.card,
                        outcome=item.outcome,
                        outcome_at=item.outcomeTimestamp,
                        recorded_by=caller.principal.subject,
                        override_reason=(
                            None
                            if reason is None or reason.reason is None
                            else reason.reason.model_dump(exclude_none=True)
                        ),
                        comment=None if reason is None else reason.userComment,
                    ),
                    caller.at,
                )
            return {}

        run_audited(
            caller.engine,
            _accessor(caller),
            patient_id,
            "cds.feedback",
            lambda conn, items=items: record(conn, items),
            once=_once(
                caller, "cds.feedback", None if key is None else f"{key}/{patient_id}", body
            ),
        )
    return JSONResponse({})


def _accessor(caller: Any) -> access.Accessor:
    from medloop.api.policy import accessor

    return accessor(caller.principal, caller.request_id)
