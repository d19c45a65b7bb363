"""The FHIR writes: ``POST /fhir/MedicationRequest`` prescribes and ``POST
/fhir/MedicationAdministration`` charts a dose, each through the same loop command as the JSON
API (``medloop.loop.prescribe.prescribe``, ``medloop.loop.administration.chart``), with the
same policy, checks, idempotency (``Idempotency-Key``) and audit. This module only reads the
posted resource into the command's order; every refusal is an OperationOutcome and leaves
nothing stored.

Extensions and identifiers read (all listed in README.md):

- ``override-reason`` (``resources.OVERRIDE_REASON``): ``valueString`` is the reason; an inner
  extension ``alert`` (``valueString``) names the alert key it answers; without one the reason
  answers every alert of this request that needs an override.
- ``identifier`` in ``resources.ENTRY_ID`` / ``PRESCRIPTION_ID``: the list entry and
  prescription ids to use (so that a retry after a 409 names the same alerts); new ids
  otherwise.
- MedicationAdministration: ``supportingInformation`` ``MedicationStatement/<entry>`` (or an
  ``identifier`` in ``ENTRY_ID``) is the entry given from; the ``planned-dose`` extension
  (``valueString``: a planned dose id) a planned dose (none: a PRN dose); ``scan``
  (``valueString``: the scanned pack code) or ``scan-skipped`` (``valueCode``); the witness
  signs with ``X-Witness-Authorization`` as in the JSON API.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Header
from pydantic import ValidationError

from interactions.dosage import Quantity, Use
from medloop.api import fhir_drafts
from medloop.api.auth import Unauthenticated
from medloop.api.deps import Caller, CallerDep, IdempotencyKey, IfMatch
from medloop.api.fhir_dosage import NO_DOSAGE, MappedDosage, NotMapped, dosage_of
from medloop.api.policy import Action, audit_refusal, authorize_witness
from medloop.domain.administration import ChartRequest, Outcome, ScanSkipReason
from medloop.domain.personnel import Actor
from medloop.domain.prescription import PrescribedQuantity
from medloop.fhir import resources as fhir
from medloop.fhir import scopes, shapes
from medloop.fhir.memo import Memo, content_key
from medloop.fhir.outcome import FhirError, issue
from medloop.fhir.router import FhirResponse, FhirRoute
from medloop.loop import administration, prescribe
from medloop.loop.catalogue import DrugOrder
from medloop.loop.prescribe import PrescribeOrder, PrescriptionTerms
from medloop.loop.runner import CommandResult

router = APIRouter(prefix="/fhir", tags=["fhir"], route_class=FhirRoute, include_in_schema=False)

PRESCRIPTION_ID = "https://medloop.dev/fhir/NamingSystem/prescription"
PLANNED_DOSE = "https://medloop.dev/fhir/StructureDefinition/planned-dose"
SCAN = "https://medloop.dev/fhir/StructureDefinition/scan"
SCAN_SKIPPED = "https://medloop.dev/fhir/StructureDefinition/scan-skipped"
LIMIT_OVERRIDE = "https://medloop.dev/fhir/StructureDefinition/limit-override"
PACKAGE_UNITS = frozenset({"pakning", "pakninger", "pk", "package", "packages", "{package}"})

_REFERENCING = ("basedOn", "priorPrescription", "groupIdentifier", "partOf", "eventHistory")
"""Elements that would link the new resource to other records: not supported on create."""


def _invalid(diagnostics: str, *expression: str, status: int = 400) -> FhirError:
    return FhirError(
        status, "invalid" if status == 400 else "processing", diagnostics, expression=expression
    )


def _posted(resource: Any, resource_type: str) -> dict[str, Any]:
    """The posted resource after the shape checks every create shares: a JSON object of the
    right type, linked to no other record."""
    if not isinstance(resource, dict):
        raise _invalid(f"the body is not a {resource_type} resource (a JSON object)")
    found = resource.get("resourceType")
    if found != resource_type:
        raise _invalid(f"this endpoint creates a {resource_type}, not a {found!r}", "resourceType")
    for element in _REFERENCING:
        if resource.get(element):
            raise FhirError(
                422,
                "not-supported",
                f"{resource_type}.{element} is not supported on create",
                expression=[f"{resource_type}.{element}"],
            )
    return resource


def _validated(resource: dict[str, Any], resource_type: str) -> Any:
    """``resource`` as a ``fhir.resources`` model, or a 400 naming each fault (at most 20)."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type).model_validate(resource)
    except ValidationError as error:
        faults = error.errors()[:20]
        issues = [
            issue(
                "structure",
                f"{'.'.join(str(p) for p in f['loc'])}: {f['msg']}",
                expression=[
                    ".".join([resource_type, *(str(p) for p in f["loc"] if isinstance(p, str))])
                ],
            )
            for f in faults
        ]
        raise FhirError(
            400,
            "structure",
            f"the {resource_type} is not valid FHIR R4 ({len(faults)} fault(s))",
            issues=issues,
        ) from None


def _checked(resource: Any, resource_type: str) -> dict[str, Any]:
    """The posted resource after the shape checks every create shares and the validation as
    FHIR (``fhir.resources``)."""
    posted = _posted(resource, resource_type)
    _validated(posted, resource_type)
    return posted


def _checked_request(resource: Any) -> tuple[dict[str, Any], Sequence[Any]]:
    """``_checked`` of a MedicationRequest, with its ``dosageInstruction`` as ``fhir.resources``
    ``Dosage`` models for the mapping: a resource of the plain shapes is checked without the
    whole model tree (``shapes.plain_request``, the same strictness), any other by the full
    validation."""
    posted = _posted(resource, "MedicationRequest")
    instructions = shapes.plain_request(posted)
    if instructions is None:
        instructions = _validated(posted, "MedicationRequest").dosageInstruction or []
    return posted, instructions


def _no_contained(resource: dict[str, Any]) -> None:
    if resource.get("contained"):
        raise _invalid(
            "contained resources are not accepted: reference the catalogue Medication or "
            "code the drug in medicationCodeableConcept",
            f"{resource['resourceType']}.contained",
        )


def _subject(resource: dict[str, Any], drug: Any) -> UUID:
    """The patient the resource is about. When it names none of ours, what is wrong with
    its drug is told first (more useful for a foreign resource such as HL7's examples), then
    its contained resources, then the subject."""
    try:
        return _patient(resource, "subject")
    except FhirError:
        drug(resource)
        _no_contained(resource)
        raise


def _administered_drug(resource: dict[str, Any]) -> None:
    """A charted dose's drug, when given, must be named in FEST codes (the entry decides
    what is given)."""
    if "medicationReference" in resource or "medicationCodeableConcept" in resource:
        _drug(resource)


def _patient(resource: dict[str, Any], element: str) -> UUID:
    reference = (resource.get(element) or {}).get("reference")
    path = f"{resource['resourceType']}.{element}"
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        raise _invalid(f"{path} must reference the Patient (Patient/<id>)", path)
    try:
        return UUID(reference.removeprefix("Patient/"))
    except ValueError:
        raise FhirError(
            422, "not-found", f"{path}: there is no {reference}", expression=[path]
        ) from None


def _identified(resource: dict[str, Any], system: str) -> UUID | None:
    for identifier in resource.get("identifier") or []:
        if identifier.get("system") == system:
            try:
                return UUID(str(identifier.get("value")))
            except ValueError:
                raise _invalid(f"the {system} identifier is not a UUID", "identifier") from None
    return None


def _extensions(resource: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in resource.get("extension") or [] if e.get("url") == url]


def _overrides(resource: dict[str, Any]) -> tuple[dict[str, str], str | None]:
    """(alert key → reason, the reason for every alert) of the override-reason extensions."""
    keyed: dict[str, str] = {}
    blanket = None
    for index, extension in enumerate(_extensions(resource, fhir.OVERRIDE_REASON)):
        reason = extension.get("valueString")
        where = f"{resource['resourceType']}.extension[{index}]"
        if not isinstance(reason, str) or not reason.strip():
            raise _invalid("an override-reason extension carries the reason as valueString", where)
        keys = [
            inner.get("valueString")
            for inner in extension.get("extension") or []
            if inner.get("url") == "alert"
        ]
        if not keys:
            blanket = reason
        for key in keys:
            if not isinstance(key, str) or not key:
                raise _invalid("an override's alert extension names the alert key", where)
            keyed[key] = reason
    return keyed, blanket


@contextmanager
def _audited_refusal(caller: Caller, patient_id: UUID, what: str) -> Iterator[None]:
    """A posted resource refused for its content is audited on the patient it names, as the
    JSON API audits a write refused for its input (what was wrong, never the input)."""
    try:
        yield
    except FhirError as error:
        audit_refusal(
            caller.engine,
            caller.principal,
            what,
            patient_id,
            error.diagnostics,
            caller.request_id,
        )
        raise


def _with_overrides(
    caller: Caller,
    run: Any,
    keyed: dict[str, str],
    blanket: str | None,
    key: str | None,
) -> CommandResult:
    """Run the command with the keyed overrides and, when a reason was given for every alert,
    that reason for each alert that needs one and has none (``Call.override_every``): one run,
    so a retry with the same Idempotency-Key is the same call."""
    return run(caller.call(overrides=keyed, idempotency_key=key, override_every=blanket))


# -- MedicationRequest --------------------------------------------------------------------------


def _drug(resource: dict[str, Any]) -> DrugOrder:
    """The catalogue drug the resource names (varenr first, then a FEST id), or a precise
    refusal: an unknown coding system, ATC only, a Medication that is not ours."""
    kind = resource["resourceType"]
    concept = resource.get("medicationCodeableConcept") or {}
    path = f"{kind}.medicationCodeableConcept.coding"
    target = (resource.get("medicationReference") or {}).get("reference") or ""
    if target.startswith("#"):
        # A contained Medication (refused as such afterwards): first say what its code is.
        contained = [
            c
            for c in resource.get("contained") or []
            if c.get("resourceType") == "Medication" and c.get("id") == target[1:]
        ]
        if not contained:
            raise FhirError(
                422,
                "not-found",
                f"medicationReference {target!r} resolves to nothing",
                expression=[f"{kind}.medicationReference"],
            )
        concept = contained[0].get("code") or {}
        path = f"{kind}.medicationReference.resolve().code.coding"
    elif "medicationReference" in resource:
        parsed = fhir.parse_medication_id(target.removeprefix("Medication/"))
        if not target.startswith("Medication/") or parsed is None:
            raise FhirError(
                422,
                "not-found",
                f"medicationReference {target!r} is no Medication of this server "
                "(Medication/<catalogue version>.<FEST id>)",
                expression=[f"{kind}.medicationReference"],
            )
        return DrugOrder(fest_id=parsed[1])
    codings = concept.get("coding") or []
    named = [
        (fhir_drafts.KIND[c["system"]], str(c.get("code", "")).strip(), i)
        for i, c in enumerate(codings)
        if c.get("system") in fhir_drafts.KIND and str(c.get("code", "")).strip()
    ]
    for wanted in ("varenr", "fest_id"):
        found = [code for k, code, _ in named if k == wanted]
        if found:
            return DrugOrder(**{wanted: found[0]})
    if named:
        raise FhirError(
            422,
            "code-invalid",
            "an ATC code names a class of drugs, not what to dispense: code the drug by varenr "
            f"({fhir.NO_VARENR}) or FEST id",
            expression=[path],
        )
    systems = sorted({str(c.get("system")) for c in codings if c.get("system")})
    known = {
        "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
        "http://snomed.info/sct": "SNOMED CT",
        "http://hl7.org/fhir/sid/ndc": "NDC",
    }
    told = ", ".join(known.get(s, s) for s in systems) or "no system"
    raise FhirError(
        422,
        "code-invalid",
        f"unknown coding: the drug is coded in {told}; medloop prescribes from FEST (varenr "
        f"{fhir.NO_VARENR} or a FEST id)",
        expression=[path],
    )


def _quantity(resource: dict[str, Any]) -> PrescribedQuantity:
    quantity = (resource.get("dispenseRequest") or {}).get("quantity")
    path = "MedicationRequest.dispenseRequest.quantity"
    if not quantity or quantity.get("value") is None:
        raise FhirError(422, "required", "the quantity to dispense is required", expression=[path])
    unit = str(quantity.get("code") or quantity.get("unit") or "")
    try:
        if unit.lower() in PACKAGE_UNITS:
            return PrescribedQuantity(packages=float(quantity["value"]))
        return PrescribedQuantity(amount=Quantity(value=float(quantity["value"]), unit=unit))
    except (ValidationError, ValueError) as error:
        raise _invalid(f"{path}: {error}", path, status=422) from None


MAPPED: Memo[MappedDosage | NotMapped] = Memo(1024)
"""The mapping of a posted ``dosageInstruction`` (``fhir_dosage.dosage_of``, a pure function of
its content and the day), by its content and the day: ≈ 4 % of a served create's CPU, for the
few dosages prescribers send over and over (bench/RESULTS.md, issue #18, session 8). Its
answers are frozen (``MappedDosage`` and medloop's ``Dosage`` are immutable)."""


def _dosage(
    resource: dict[str, Any], instructions: Sequence[Any], today: date
) -> tuple[Use, MappedDosage | None]:
    """The dosage of ``instructions``, the posted ``dosageInstruction`` as validated with the
    resource (``_checked_request``)."""
    raw = resource.get("dosageInstruction") or []
    key = content_key(raw)
    mapped = MAPPED.get((key, today), lambda: dosage_of(instructions, today), len(key))
    if not isinstance(mapped, MappedDosage):
        if mapped.code == NO_DOSAGE:
            return Use.REGULAR, None
        raise FhirError(
            422,
            "not-supported",
            f"the dosage cannot be kept: {mapped.reason}",
            expression=[mapped.element],
        )
    text = next((d.get("text") for d in raw if d.get("text")), None)
    dosage = mapped.dosage
    if text and not dosage.text:
        dosage = dosage.model_copy(update={"text": text[:2000]})
    return dosage.use, MappedDosage(dosage, mapped.start, mapped.stop)


_IDS = uuid.UUID("6f1d2a4e-9c1b-4f0e-8a51-3d7f8e2b9c10")
"""Namespace of the ids a create derives from its Idempotency-Key."""


def _new_id(seed: str | None, what: str) -> UUID:
    """A new id; derived from ``seed`` (caller and Idempotency-Key) when there is one, so that
    a retry of the same request is the same request (and is answered as the first was)."""
    return uuid.uuid4() if seed is None else uuid.uuid5(_IDS, f"{seed}/{what}")


def _order(
    resource: dict[str, Any], instructions: Sequence[Any], today: date, seed: str | None = None
) -> PrescribeOrder:
    """The prescribe command's order of the posted ``resource`` (``instructions``: its
    ``dosageInstruction`` as validated, ``_checked_request``)."""
    if resource.get("status") != "active":
        raise FhirError(
            422,
            "business-rule",
            "a prescription is created active",
            expression=["MedicationRequest.status"],
        )
    if resource.get("intent") not in ("order", "original-order"):
        raise FhirError(
            422,
            "business-rule",
            "a prescription has intent order",
            expression=["MedicationRequest.intent"],
        )
    use, mapped = _dosage(resource, instructions, today)
    dispense = resource.get("dispenseRequest") or {}
    validity = dispense.get("validityPeriod") or {}
    substitution = resource.get("substitution") or {}
    reserved = substitution.get("allowedBoolean") is False or any(
        c.get("code") == "N"
        for c in (substitution.get("allowedCodeableConcept") or {}).get("coding", [])
    )
    reasons = resource.get("reasonCode") or []
    indication = next((r.get("text") for r in reasons if r.get("text")), None)
    try:
        return PrescribeOrder(
            entry_id=_identified(resource, fhir.ENTRY_ID) or _new_id(seed, "entry"),
            drug=_drug(resource),
            use=use,
            dosage=None if mapped is None else mapped.dosage,
            indication=indication,
            start=(mapped.start if mapped and mapped.start else today),
            stop=None if mapped is None else mapped.stop,
            terms=PrescriptionTerms(
                prescription_id=_identified(resource, PRESCRIPTION_ID)
                or _new_id(seed, "prescription"),
                quantity=_quantity(resource),
                repeats=int(dispense.get("numberOfRepeatsAllowed") or 0),
                reserved_against_substitution=reserved,
                expires=date.fromisoformat(validity["end"][:10]) if validity.get("end") else None,
            ),
        )
    except ValidationError as error:
        first = error.errors()[0]
        raise FhirError(422, "business-rule", f"{first['loc']}: {first['msg']}") from None


def _alerts_outcome(result: CommandResult) -> dict[str, Any]:
    issues = [
        issue(
            "informational",
            alert.summary,
            severity="warning"
            if alert.severity.value in ("avoid", "precautions")
            else "information",
            problem=None,
        )
        for alert in result.alerts
    ] or [issue("informational", "prescribed; no alerts", severity="information")]
    return {"resourceType": "OperationOutcome", "issue": issues}


@router.post("/MedicationRequest", status_code=201, summary="Prescribe (a new list entry)")
def create_medication_request(
    caller: CallerDep,
    resource: Annotated[Any, Body(media_type=fhir.FHIR_JSON)],
    based_on: IfMatch,
    key: IdempotencyKey,
    prefer: Annotated[str | None, Header(alias="Prefer")] = None,
) -> FhirResponse:
    posted, instructions = _checked_request(resource)
    patient_id = _subject(posted, _drug)
    scopes.require(caller, "MedicationRequest", "create", patient_id)
    caller.authorize(Action.LIST_WRITE, patient_id)
    with _audited_refusal(caller, patient_id, "fhir.MedicationRequest.create"):
        _drug(posted)
        _no_contained(posted)
        seed = (
            None
            if key is None
            else f"{caller.principal.organisation}/{caller.principal.subject}/{key}"
        )
        order = _order(posted, instructions, caller.day, seed)
        keyed, blanket = _overrides(posted)

    def run(call: Any) -> CommandResult:
        return prescribe.prescribe(caller.engine, patient_id, order, call, based_on=based_on)

    result = _with_overrides(caller, run, keyed, blanket, key)
    prescription_id = order.terms.prescription_id
    headers = {
        "Location": f"/fhir/MedicationRequest/{prescription_id}/_history/1",
        "ETag": 'W/"1"',
        "X-List-Version": str(result.list_version),
    }
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    if prefer and "return=operationoutcome" in prefer.replace(" ", "").lower():
        return FhirResponse(_alerts_outcome(result), status_code=201, headers=headers)
    from medloop import queries

    # The created resource as it was stored (an audited read; what was just written is
    # answered even to a token that may create but not read).
    versions = caller.read(
        patient_id,
        "fhir-MedicationRequest",
        lambda conn: queries.patient_state(conn, patient_id).prescription_history[prescription_id],
    )
    return FhirResponse(
        fhir.medication_request(versions[-1], patient_id), status_code=201, headers=headers
    )


# -- MedicationAdministration -------------------------------------------------------------------


def _witness(caller: Caller, header: str | None) -> Actor | None:
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("X-Witness-Authorization must be 'Bearer <token>'")
    witness = caller.state.verifier.verify(token.strip())
    authorize_witness(caller.principal, witness)
    return witness.actor


def _entry_of(resource: dict[str, Any]) -> UUID:
    for index, info in enumerate(resource.get("supportingInformation") or []):
        reference = str(info.get("reference") or "")
        if reference.startswith("MedicationStatement/"):
            try:
                return UUID(reference.removeprefix("MedicationStatement/"))
            except ValueError:
                raise FhirError(
                    422,
                    "not-found",
                    f"there is no {reference}",
                    expression=[f"MedicationAdministration.supportingInformation[{index}]"],
                ) from None
    found = _identified(resource, fhir.ENTRY_ID)
    if found is None:
        raise FhirError(
            422,
            "required",
            "name the list entry given from: supportingInformation MedicationStatement/<id>",
            expression=["MedicationAdministration.supportingInformation"],
        )
    return found


def _string_extension(resource: dict[str, Any], url: str, kind: str = "valueString") -> Any:
    found = _extensions(resource, url)
    return found[0].get(kind) if found else None


def _chart_request(resource: dict[str, Any], seed: str | None = None) -> ChartRequest:
    status = resource.get("status")
    reason_codes = [
        c.get("code")
        for r in resource.get("statusReason") or []
        for c in r.get("coding") or []
        if c.get("system") == fhir.ADMINISTRATION_OUTCOME
    ]
    reason_text = next(
        (r.get("text") for r in resource.get("statusReason") or [] if r.get("text")), None
    )
    if status == "completed":
        outcome = Outcome.GIVEN
    elif status == "not-done":
        code = reason_codes[0] if reason_codes else "not-given"
        if code not in ("not-given", "refused", "held"):
            raise FhirError(
                422,
                "code-invalid",
                f"a not-done reason is not-given, refused or held, not {code!r}",
                expression=["MedicationAdministration.statusReason"],
            )
        outcome = Outcome(code)
    else:
        raise FhirError(
            422,
            "business-rule",
            "a charted dose is completed (given) or not-done",
            expression=["MedicationAdministration.status"],
        )
    dose = (resource.get("dosage") or {}).get("dose")
    planned = _string_extension(resource, PLANNED_DOSE)
    skipped = _string_extension(resource, SCAN_SKIPPED, "valueCode")
    keyed_limit = _string_extension(resource, LIMIT_OVERRIDE)
    given_at = resource.get("effectiveDateTime")
    try:
        return ChartRequest(
            administration_id=_new_id(seed, "administration"),
            entry_id=_entry_of(resource),
            planned_dose_id=UUID(planned) if planned else None,
            outcome=outcome,
            given_at=given_at if outcome is Outcome.GIVEN else None,
            dose=None
            if not dose or outcome is not Outcome.GIVEN
            else Quantity(
                value=float(dose["value"]), unit=str(dose.get("unit") or dose.get("code"))
            ),
            reason=reason_text,
            scan=_string_extension(resource, SCAN),
            scan_skipped=ScanSkipReason(skipped) if skipped else None,
            limit_override=keyed_limit,
        )
    except (ValidationError, ValueError, KeyError) as error:
        raise FhirError(422, "invalid", f"the administration cannot be charted: {error}") from None


@router.post("/MedicationAdministration", status_code=201, summary="Chart a planned or PRN dose")
def create_medication_administration(
    caller: CallerDep,
    resource: Annotated[Any, Body(media_type=fhir.FHIR_JSON)],
    key: IdempotencyKey,
    witness: Annotated[str | None, Header(alias="X-Witness-Authorization")] = None,
) -> FhirResponse:
    posted = _checked(resource, "MedicationAdministration")
    patient_id = _subject(posted, _administered_drug)
    scopes.require(caller, "MedicationAdministration", "create", patient_id)
    caller.authorize(Action.CHART_WRITE, patient_id)
    with _audited_refusal(caller, patient_id, "fhir.MedicationAdministration.create"):
        _administered_drug(posted)
        _no_contained(posted)
        seed = (
            None
            if key is None
            else f"{caller.principal.organisation}/{caller.principal.subject}/{key}"
        )
        request = _chart_request(posted, seed)
        keyed, blanket = _overrides(posted)
    signed = _witness(caller, witness)

    def run(call: Any) -> CommandResult:
        return administration.chart(caller.engine, patient_id, request, call, witness=signed)

    result = _with_overrides(caller, run, keyed, blanket, key)
    administration_id = result.response["administration_id"]
    from medloop.fhir.router import administrations

    resources, _ = administrations(caller, patient_id, scoped=False)
    created = next(r for r in resources if r["id"] == administration_id)
    headers = {"Location": f"/fhir/MedicationAdministration/{administration_id}"}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return FhirResponse(created, status_code=201, headers=headers)
