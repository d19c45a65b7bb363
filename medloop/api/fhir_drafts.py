"""The medication orders of a CDS Hooks ``draftOrders`` Bundle, read one by one and leniently.

EHRs send what their FHIR layer produces, and the specification's own examples are not strict
FHIR R4 (a Bundle without ``type``, ``doseAndRate`` as an object). So nothing here validates
the Bundle as a whole: each entry is looked at on its own, only ``MedicationRequest``s are
read (a ``NutritionOrder`` or ``ServiceRequest`` beside them is not a medication order and is
left out), ``Medication`` entries serve ``medicationReference``, and of a MedicationRequest
only the elements that decide the check are validated (the drug, ``dosageInstruction``); its
other elements, known or not, are not looked at. Within those elements a single value where
FHIR wants a list is taken as a one-item list and an element FHIR does not define is ignored.

A draft that still cannot be checked is an ``Unchecked`` naming the FHIR element path and the
reason, so that the caller answers with the cards of the other drafts and one "not checked"
card for it. A draft whose drug is known but whose dosage or route is not usable is checked
without them (``Draft.dosage`` / ``Draft.route`` say why), as the engine's own "dose not
checked" alerts then tell.

Drug codings (``Draft.drug`` / ``Draft.atc``): medloop's own FEST systems, the Norwegian FEST
naming systems of HL7 Norway's medication profile (``NORWEGIAN``), and ATC (``ATC_SYSTEMS``);
the most specific one present wins (varenr, then a FEST id, then ATC). Routes are mapped to
FEST's administration-route codes (7477) by ``medloop/rules/fhir_routes.json``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.dosage import Dosage as FhirDosage
from pydantic import BaseModel, ValidationError

from medloop.api.fhir_dosage import ROOT, MappedDosage, NotMapped, dosage_of
from medloop.loop.catalogue import DrugOrder

FEST_VARENR = "https://medloop.dev/fhir/CodeSystem/fest-varenr"
FEST_ID = "https://medloop.dev/fhir/CodeSystem/fest-id"
ATC = "http://www.whocc.no/atc"
ATC_OID = "urn:oid:2.16.578.1.12.4.1.1.7180"
"""ATC as the Norwegian code system register (Volven/FEST Kodeverk 7180) names it."""
ATC_SYSTEMS = (ATC, ATC_OID)
NO_VARENR = "http://dmp.no/fhir/NamingSystem/fest-varenummer"
NO_PAKNING = "http://dmp.no/fhir/NamingSystem/festLegemiddelPakning"
NO_MERKEVARE = "http://dmp.no/fhir/NamingSystem/festLegemiddelMerkevare"
NO_VIRKESTOFF = "http://dmp.no/fhir/NamingSystem/festLegemiddelVirkestoff"
NO_DOSE = "http://dmp.no/fhir/NamingSystem/festLegemiddelDose"
NORWEGIAN = (NO_VARENR, NO_PAKNING, NO_MERKEVARE, NO_VIRKESTOFF, NO_DOSE)
"""HL7 Norway's FEST naming systems (the LMDI medication profile ``lmdi-medication``, its
``code.coding`` slices): varenummer, and the FEST ids of a package, a product (merkevare), a
generic group (legemiddelvirkestoff) and a dose unit (legemiddeldose)."""
KIND = {
    FEST_VARENR: "varenr",
    NO_VARENR: "varenr",
    FEST_ID: "fest_id",
    NO_PAKNING: "fest_id",
    NO_MERKEVARE: "fest_id",
    NO_VIRKESTOFF: "fest_id",
    NO_DOSE: "fest_id",
    ATC: "atc",
    ATC_OID: "atc",
}
"""Each system medloop checks and what its code names; the order is the preference."""
_RANK = {"varenr": 0, "fest_id": 1, "atc": 2}
_NAMED_SYSTEMS = {
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://snomed.info/sct": "SNOMED CT",
    "http://hl7.org/fhir/sid/ndc": "NDC",
}
ROUTES_FILE = Path(__file__).resolve().parents[1] / "rules" / "fhir_routes.json"
_MEDICATION_ORDERS = {"MedicationRequest"}
_REPAIRS = 50
_Coded = tuple[str, str, str | None, str]
"""(kind, code, display, the element path of the code)."""
M = TypeVar("M", bound=BaseModel)
"""How many single-value-for-list and unknown-element repairs one element may take."""


@dataclass(frozen=True, slots=True)
class Draft:
    """A MedicationRequest that can be checked."""

    id: str
    """The resource id (unique within the request), ``draft-<n>`` without one."""
    drug: DrugOrder | None
    atc: str | None
    """An ATC code instead of ``drug``."""
    display: str | None
    """What the draft calls the drug (``coding.display`` or ``text``)."""
    dosage: MappedDosage | NotMapped
    route: str | None = None
    """A FEST administration-route code (7477) from ``dosageInstruction.route``."""
    route_why: NotMapped | None = None
    """Why no route was taken from a draft that gives one."""
    coded_by: str = "MedicationRequest.medication[x]"
    """The FHIR element path of the code that named the drug."""


@dataclass(frozen=True, slots=True)
class Unchecked:
    """A MedicationRequest that cannot be checked: the FHIR element and why."""

    id: str
    display: str | None
    element: str
    reason: str


class UnusableDraftOrders(ValueError):
    """``draftOrders`` itself cannot be read (not a Bundle or a medication order)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def read_drafts(draft_orders: Mapping[str, Any], today: date) -> list[Draft | Unchecked]:
    """Every MedicationRequest of ``draft_orders`` (a Bundle, or one resource) in order, as a
    ``Draft`` or an ``Unchecked``; other resource types are left out."""
    resources = _resources(draft_orders)
    medications = _medications(resources)
    found: list[Draft | Unchecked] = []
    seen: set[str] = set()
    for index, (where, resource) in enumerate(resources):
        if resource.get("resourceType") not in _MEDICATION_ORDERS:
            continue
        given = resource.get("id")
        draft_id = given if isinstance(given, str) and given.strip() else f"draft-{index}"
        if draft_id in seen:
            draft_id = f"{draft_id}#{index}"
        seen.add(draft_id)
        found.append(_draft(draft_id, where, resource, medications, today))
    return found


def _resources(draft_orders: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, resource) of each entry: ``fullUrl`` or ``Bundle.entry[i]``."""
    kind = draft_orders.get("resourceType")
    if kind != "Bundle":
        if isinstance(kind, str) and kind:
            return [(kind, dict(draft_orders))]
        raise UnusableDraftOrders(
            "context.draftOrders.resourceType", "absent: draftOrders is a FHIR Bundle"
        )
    entries = draft_orders.get("entry", [])
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        raise UnusableDraftOrders("context.draftOrders.entry", "not an array of entries")
    found = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            url = entry.get("fullUrl")
            found.append((url if isinstance(url, str) else f"Bundle.entry[{index}]", resource))
    return found


def _medications(resources: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The Bundle's Medication resources by every name a reference may use."""
    found: dict[str, dict[str, Any]] = {}
    for where, resource in resources:
        if resource.get("resourceType") != "Medication":
            continue
        found[where] = resource
        if isinstance(resource.get("id"), str):
            found[f"Medication/{resource['id']}"] = resource
    return found


# --- one MedicationRequest ------------------------------------------------------------------


def _draft(
    draft_id: str,
    where: str,
    resource: dict[str, Any],
    medications: Mapping[str, dict[str, Any]],
    today: date,
) -> Draft | Unchecked:
    if resource.get("modifierExtension"):
        return Unchecked(
            draft_id,
            None,
            "MedicationRequest.modifierExtension",
            "a modifier extension changes the order's meaning in a way medloop cannot read",
        )
    drug = _drug(resource, medications)
    if isinstance(drug, Unchecked):
        return Unchecked(draft_id, drug.display, drug.element, drug.reason)
    kind, code, display, coded_by = drug
    dosage, route, route_why = _dosage_and_route(resource.get("dosageInstruction"), today)
    order = None
    if kind == "varenr":
        order = DrugOrder(varenr=code)
    elif kind == "fest_id":
        order = DrugOrder(fest_id=code)
    return Draft(
        id=draft_id,
        drug=order,
        atc=code if kind == "atc" else None,
        display=display,
        dosage=dosage,
        route=route,
        route_why=route_why,
        coded_by=coded_by,
    )


def _drug(
    resource: dict[str, Any], medications: Mapping[str, dict[str, Any]]
) -> _Coded | Unchecked:
    """(kind, code, display) of the draft's drug, or why it cannot be named."""
    if "medicationCodeableConcept" in resource:
        path = "MedicationRequest.medicationCodeableConcept"
        return _coded(resource["medicationCodeableConcept"], path)
    reference = resource.get("medicationReference")
    path = "MedicationRequest.medicationReference"
    if not isinstance(reference, dict):
        return Unchecked("", None, "MedicationRequest.medication[x]", "absent: no drug named")
    target = reference.get("reference")
    if not isinstance(target, str) or not target:
        if isinstance(reference.get("identifier"), dict):
            return _coded(_identifier_as_concept(reference["identifier"]), f"{path}.identifier")
        display = reference.get("display") if isinstance(reference.get("display"), str) else None
        return Unchecked("", display, f"{path}.reference", "absent: the Medication is not named")
    medication = None
    if target.startswith("#"):
        for contained in resource.get("contained") or []:
            if (
                isinstance(contained, dict)
                and contained.get("resourceType") == "Medication"
                and contained.get("id") == target[1:]
            ):
                medication = contained
    else:
        medication = medications.get(target)
    if medication is None:
        return Unchecked(
            "",
            reference.get("display") if isinstance(reference.get("display"), str) else None,
            f"{path}.reference",
            f"{target!r} is neither a contained Medication nor a Medication in draftOrders",
        )
    return _medication(medication, f"{path}.resolve()")


def _medication(medication: dict[str, Any], path: str) -> _Coded | Unchecked:
    """A Medication resource's drug: ``code``, then an ATC classification extension (as HL7
    Norway's LMDI profile carries it), then an identifier in a known system."""
    code = medication.get("code")
    found = _coded(code, f"{path}.code") if code is not None else None
    if isinstance(found, tuple):
        return found
    display = found.display if isinstance(found, Unchecked) else None
    for index, extension in enumerate(medication.get("extension") or []):
        concept = extension.get("valueCodeableConcept") if isinstance(extension, dict) else None
        if concept is not None:
            classified = _coded(concept, f"{path}.extension[{index}].valueCodeableConcept")
            if isinstance(classified, tuple):
                kind, value, shown, where = classified
                return kind, value, display or shown, where
    for identifier in medication.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") in KIND:
            identified = _coded(_identifier_as_concept(identifier), f"{path}.identifier")
            if isinstance(identified, tuple):
                return identified
    return found or Unchecked("", None, f"{path}.code", "absent: the Medication has no code")


def _identifier_as_concept(identifier: dict[str, Any]) -> dict[str, Any]:
    return {"coding": [{"system": identifier.get("system"), "code": identifier.get("value")}]}


def _coded(data: Any, path: str) -> _Coded | Unchecked:
    concept = lenient(CodeableConcept, data, path)
    if isinstance(concept, NotMapped):
        return Unchecked("", None, concept.element, concept.reason)
    codings = list(concept.coding or [])
    display = concept.text or next((c.display for c in codings if c.display), None)
    known = [
        (index, coding)
        for index, coding in enumerate(codings)
        if coding.system in KIND and coding.code and coding.code.strip()
    ]
    if known:
        index, coding = min(known, key=lambda pair: (_RANK[KIND[pair[1].system]], pair[0]))
        where = f"{path}.coding[{index}].code"
        return KIND[coding.system], coding.code.strip(), coding.display or display, where
    systems = [c.system for c in codings if c.system]
    if not systems:
        return Unchecked("", display, f"{path}.coding", "no coding with a system names the drug")
    named = ", ".join(dict.fromkeys(_NAMED_SYSTEMS.get(s, s) for s in systems))
    return Unchecked(
        "",
        display,
        f"{path}.coding",
        f"coded only in {named}; medloop checks drugs named by FEST (varenr or FEST id) or ATC",
    )


# --- dosage and route -----------------------------------------------------------------------


def _dosage_and_route(
    instructions: Any, today: date
) -> tuple[MappedDosage | NotMapped, str | None, NotMapped | None]:
    if instructions is None:
        return dosage_of(None, today), None, None
    if isinstance(instructions, dict):
        instructions = [instructions]
    if not isinstance(instructions, list):
        why = NotMapped(ROOT, "not an array of Dosage")
        return why, None, None
    parsed: list[FhirDosage] = []
    refused: NotMapped | None = None
    for index, data in enumerate(instructions):
        dosage = lenient(FhirDosage, data, f"{ROOT}[{index}]")
        if isinstance(dosage, NotMapped):
            refused = refused or dosage
        else:
            parsed.append(dosage)
    route, route_why = _route(parsed)
    if refused is not None:
        return refused, route, route_why
    return dosage_of(parsed, today), route, route_why


def _route(instructions: list[FhirDosage]) -> tuple[str | None, NotMapped | None]:
    """The one FEST route all instructions give (``None`` when none gives one), or why not."""
    found: set[str] = set()
    for index, instruction in enumerate(instructions):
        if instruction.route is None:
            continue
        path = f"{ROOT}[{index}].route"
        codings = [c for c in instruction.route.coding or [] if c.system and c.code]
        mapped = {route_for(c.system, c.code) for c in codings} - {None}
        if not mapped:
            shown = ", ".join(f"{c.system}|{c.code}" for c in codings) or "no coding"
            return None, NotMapped(path, f"{shown} is not a route medloop maps to FEST routes")
        if len(mapped) > 1:
            return None, NotMapped(path, "its codings name different routes")
        found |= mapped  # type: ignore[arg-type]
    if len(found) > 1:
        return None, NotMapped(f"{ROOT}.route", "the instructions give different routes")
    return (next(iter(found)) if found else None), None


@cache
def _route_table() -> dict[tuple[str, str], str]:
    document = json.loads(ROUTES_FILE.read_text(encoding="utf-8"))
    table: dict[tuple[str, str], str] = {}
    for route in document["routes"]:
        for family, systems in document["systems"].items():
            codes = [route["fest"]] if family == "fest" else route[family]
            for system in systems:
                for code in codes:
                    table[(system, code)] = route["fest"]
    return table


def route_for(system: str, code: str) -> str | None:
    """The FEST administration-route code (7477) of a SNOMED CT, EDQM or FEST route coding."""
    return _route_table().get((system, code.strip()))


# --- lenient validation ---------------------------------------------------------------------


def lenient(model: type[M], data: Any, path: str) -> M | NotMapped:
    """``data`` as ``model``; a single value where FHIR wants a list is taken as a list of one
    and an element FHIR does not define is left out. What still does not validate is a
    ``NotMapped`` naming the element path (``path`` and below) and the reason."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json", exclude_none=True)
    data = copy.deepcopy(data)
    for _ in range(_REPAIRS):
        try:
            return model.model_validate(data)
        except ValidationError as error:
            faults = error.errors()
        except (KeyError, TypeError, ValueError) as error:  # a library's own refusal
            return NotMapped(path, f"not valid FHIR R4 ({type(error).__name__})")
        if not any(_repair(data, fault) for fault in faults):
            first = faults[0]
            return NotMapped(_path(path, first.get("loc", ())), str(first.get("msg", ""))[:300])
    return NotMapped(path, "too many elements that are not FHIR R4")


def _repair(data: Any, fault: Mapping[str, Any]) -> bool:
    kind, loc = fault.get("type"), tuple(fault.get("loc", ()))
    if kind not in ("extra_forbidden", "list_type") or not loc:
        return False
    parent = data
    for part in loc[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = loc[-1]
    if not isinstance(parent, dict | list):
        return False
    try:
        value = parent[last]
    except (KeyError, IndexError, TypeError):
        return False
    if kind == "extra_forbidden" and isinstance(parent, dict):
        del parent[last]
        return True
    if kind == "list_type" and not isinstance(value, list):
        parent[last] = [value]
        return True
    return False


def _path(root: str, loc: tuple[Any, ...]) -> str:
    text = root
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text
