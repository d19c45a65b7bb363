"""The engine's values as FHIR R4 resources (plain JSON dicts): translation only.

Every system URI used here is listed in README.md ("FHIR R4 API"). Norwegian identifiers
follow HL7 Norway's no-basis profiles (fødselsnummer, D-number, HPR, organisation number,
HER-id); drug codings follow HL7 Norway's LMDI medication profile (the FEST naming systems of
``medloop.api.fhir_drafts``) and ATC; what no Norwegian profile defines carries a
``https://medloop.dev/fhir/…`` URI of ours.

Ids: a patient, entry (MedicationStatement), prescription (MedicationRequest), dispense and
charted dose (MedicationAdministration) keep the engine's UUID; a Practitioner is its HPR
number, an Organization its HER-id or organisation number, a PractitionerRole (a professional
acting for an organisation: who wrote a list change or a prescription, charted or witnessed a
dose) ``<HPR number>-<organisation id>``; a Medication is
``<catalogue version>.<FEST id with "_" as ".">`` (``3.ID.F0491208-FB12-…``): the drug as
resolved in that catalogue version; an AllergyIntolerance is ``<patient>-<n>``; a
DetectedIssue ``<patient>-<n>`` (the n-th alert stored for the patient).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any
from uuid import UUID

from interactions.alerts import Severity
from interactions.dosage import AsNeededDose, Dosage, FixedDose, Period, Quantity, TimeOfDay
from interactions.drugs import ReferenceKind
from medloop.api.fhir_drafts import (
    ATC,
    FEST_VARENR,
    NO_DOSE,
    NO_MERKEVARE,
    NO_PAKNING,
    NO_VARENR,
    NO_VIRKESTOFF,
)
from medloop.domain.codes import EntryStatus, PrescriptionStatus
from medloop.domain.dispense import NOT_CARRIED_BY_M10, Dispense
from medloop.domain.drug_reference import CatalogueDrug, DrugReference, NonCatalogueItem
from medloop.domain.entry import ListEntry
from medloop.domain.medication_list import EntryVersion
from medloop.domain.oslo import local_date
from medloop.domain.patient import NationalIdKind, Patient
from medloop.domain.personnel import Actor, HealthPersonnel, Organisation
from medloop.domain.prescription import Prescription, PrescriptionVersion

if TYPE_CHECKING:
    from medloop.queries import AlertOnRecord

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"

# -- systems --------------------------------------------------------------------------------------
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
"""Fødselsnummer (HL7 Norway no-basis-Patient)."""
DNR = "urn:oid:2.16.578.1.12.4.1.4.2"
"""D-number (HL7 Norway no-basis-Patient)."""
HPR = "urn:oid:2.16.578.1.12.4.1.4.4"
"""HPR number (HL7 Norway no-basis-Practitioner)."""
ORG_NUMBER = "urn:oid:2.16.578.1.12.4.1.4.101"
"""Enhetsregisterets organisasjonsnummer (HL7 Norway no-basis-Organization)."""
HER_ID = "urn:oid:2.16.578.1.12.4.1.2"
"""HER-id, the address register (HL7 Norway no-basis-Organization)."""
FEST_KIND_SYSTEM = {
    ReferenceKind.PACKAGE: NO_PAKNING,
    ReferenceKind.PRODUCT: NO_MERKEVARE,
    ReferenceKind.GENERIC_GROUP: NO_VIRKESTOFF,
    ReferenceKind.DOSE_UNIT: NO_DOSE,
}
"""The FEST id of a drug, by what it names (HL7 Norway LMDI ``lmdi-medication`` slices)."""
FORM_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.7448"
"""FEST legemiddelform (Volven 7448)."""
SUBSTANCE_SYSTEM = "https://medloop.dev/fhir/NamingSystem/fest-substance"
"""A FEST substance (``Virkestoff``) id: no Norwegian profile names one."""
SUBSTITUTION_GROUP = "https://medloop.dev/fhir/StructureDefinition/substitution-group"
"""Extension on Medication: a FEST substitution group (byttegruppe) id, one per group."""
CATALOGUE_VERSION = "https://medloop.dev/fhir/StructureDefinition/catalogue-version"
"""Extension on Medication: the FEST catalogue version the drug was resolved in."""
PRESCRIPTION_STATUS = "urn:oid:2.16.578.1.12.4.1.1.7408"
"""Reseptstatus (Volven 7408), as statusReason of a MedicationRequest."""
ENTRY_ID = "https://medloop.dev/fhir/NamingSystem/list-entry"
"""The list entry a MedicationRequest or MedicationDispense belongs to."""
ALERT_KEY = "https://medloop.dev/fhir/NamingSystem/alert-key"
"""The stable key of an alert (kind/record/entries), the identifier of a DetectedIssue."""
OVERRIDE_REASON = "https://medloop.dev/fhir/StructureDefinition/override-reason"
"""Extension on a posted MedicationRequest: ``valueString`` reason, with an inner
``alert`` (``valueString``) naming the alert key, or none for every alert raised."""
SEVERITY_SYSTEM = "https://medloop.dev/fhir/CodeSystem/alert-severity"
UCUM = "http://unitsofmeasure.org"
SCT = "http://snomed.info/sct"
V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SUBSTITUTION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-substanceAdminSubstitution"
PRACTITIONER_ROLE = "http://terminology.hl7.org/CodeSystem/practitioner-role"
"""PractitionerRole.code: doctor, nurse, pharmacist (R4's example code system; HL7 Norway's
no-basis-PractitionerRole slices HPR's function codes, OID 9034, which medloop does not
record)."""
EVENT_TIMING = "http://hl7.org/fhir/event-timing"

_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def instant(moment: datetime) -> str:
    """A FHIR ``instant`` (UTC, seconds and a ``Z``)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def meta(version: int, updated: datetime) -> dict[str, Any]:
    return {"versionId": str(version), "lastUpdated": instant(updated)}


# -- people and organisations ---------------------------------------------------------------------


def patient(found: Patient, updated: datetime | None = None) -> dict[str, Any]:
    national = found.national_id
    system = DNR if national.kind is NationalIdKind.D_NUMBER else FNR
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(found.id),
        "identifier": [{"use": "official", "system": system, "value": str(national)}],
        "name": [{"use": "official", "family": found.family_name, "given": [found.given_name]}],
        "birthDate": found.birth_date.isoformat(),
    }
    if updated is not None:
        body["meta"] = {"lastUpdated": instant(updated)}
    return body


def practitioner_reference(person: HealthPersonnel) -> dict[str, Any]:
    return {
        "reference": f"Practitioner/{person.hpr_number}",
        "identifier": {"system": HPR, "value": person.hpr_number},
        "display": person.name,
    }


def practitioner(person: HealthPersonnel) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": person.hpr_number,
        "identifier": [{"system": HPR, "value": person.hpr_number}],
        "name": [{"text": person.name}],
    }


def organisation_system(org_id: str) -> str:
    """Nine digits is an organisation number (Enhetsregisteret), anything else a HER-id."""
    return ORG_NUMBER if len(org_id) == 9 and org_id.isdigit() else HER_ID


def organisation_reference(org: Organisation) -> dict[str, Any]:
    found: dict[str, Any] = {
        "identifier": {"system": organisation_system(org.id), "value": org.id},
        "display": org.name,
    }
    if _FHIR_ID.match(org.id):
        found["reference"] = f"Organization/{org.id}"
    return found


def organization(org: Organisation) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": org.id,
        "identifier": [{"system": organisation_system(org.id), "value": org.id}],
        "name": org.name,
    }


def practitioner_role_id(actor: Actor) -> str | None:
    """``<HPR number>-<organisation id>``; ``None`` when that is not a FHIR id (an
    organisation id of other characters, or too long)."""
    found = f"{actor.personnel.hpr_number}-{actor.organisation.id}"
    return found if _FHIR_ID.match(found) else None


def parse_practitioner_role_id(value: str) -> tuple[str, str] | None:
    """(HPR number, organisation id) of a PractitionerRole id; ``None`` when it is not one."""
    hpr, dash, org = value.partition("-")
    if not dash or not org or not hpr.isdigit() or len(hpr) > 9 or not _FHIR_ID.match(value):
        return None
    return hpr, org


_ROLE_CODES = {"doctor": "doctor", "nurse": "nurse", "pharmacist": "pharmacist"}


def practitioner_role(actor: Actor) -> dict[str, Any]:
    """A professional acting for an organisation (HL7 Norway no-basis-PractitionerRole):
    the Practitioner and the Organization, and the professional's role."""
    person = actor.personnel
    body: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": practitioner_role_id(actor),
        "practitioner": practitioner_reference(person),
        "organization": organisation_reference(actor.organisation),
    }
    code = _ROLE_CODES.get(person.role.value)
    if code is not None:
        body["code"] = [{"coding": [{"system": PRACTITIONER_ROLE, "code": code}]}]
    return body


def actor_reference(actor: Actor) -> dict[str, Any]:
    """Who did something for an organisation: a reference to their PractitionerRole (the
    Practitioner and the Organization both resolve from it), or to the Practitioner when the
    organisation's id cannot be part of a FHIR id."""
    role_id = practitioner_role_id(actor)
    if role_id is None:
        return practitioner_reference(actor.personnel)
    return {
        "reference": f"PractitionerRole/{role_id}",
        "display": f"{actor.personnel.name}, {actor.organisation.name}",
    }


# -- medication -----------------------------------------------------------------------------------


def medication_id(drug: CatalogueDrug) -> str:
    return f"{drug.catalogue_version}.{drug.fest_id.replace('_', '.')}"


def parse_medication_id(value: str) -> tuple[int, str] | None:
    """(catalogue version, FEST id) of a Medication id; ``None`` when it is not one of ours."""
    version, dot, rest = value.partition(".")
    if not dot or not version.isdigit() or not rest or not _FHIR_ID.match(value):
        return None
    return int(version), rest.replace(".", "_")


def drug_codings(drug: CatalogueDrug) -> list[dict[str, Any]]:
    resolved = drug.resolved
    codings: list[dict[str, Any]] = []
    if drug.varenr is not None:
        codings.append({"system": NO_VARENR, "code": drug.varenr, "display": resolved.name})
        codings.append({"system": FEST_VARENR, "code": drug.varenr})
    codings.append(
        {
            "system": FEST_KIND_SYSTEM[resolved.reference_kind],
            "code": resolved.reference_id,
            "display": resolved.name,
        }
    )
    if resolved.atc:
        codings.append({"system": ATC, "code": resolved.atc})
    return codings


def medication(drug: CatalogueDrug) -> dict[str, Any]:
    """A catalogue drug as resolved in its catalogue version: codings (varenr, FEST id, ATC),
    form, ingredients with strengths, substitution groups."""
    resolved = drug.resolved
    body: dict[str, Any] = {
        "resourceType": "Medication",
        "id": medication_id(drug),
        "extension": [
            {"url": CATALOGUE_VERSION, "valueInteger": drug.catalogue_version},
            *(
                {"url": SUBSTITUTION_GROUP, "valueString": group}
                for group in resolved.substitution_group_ids
            ),
        ],
        "code": {"coding": drug_codings(drug), "text": resolved.name},
    }
    if resolved.form_code or resolved.form_name:
        form: dict[str, Any] = {}
        if resolved.form_code:
            form["coding"] = [{"system": FORM_SYSTEM, "code": resolved.form_code}]
            if resolved.form_name:
                form["coding"][0]["display"] = resolved.form_name
        if resolved.form_name:
            form["text"] = resolved.form_name
        body["form"] = form
    ingredients = []
    for strength in resolved.strengths:
        item: dict[str, Any] = {
            "itemCodeableConcept": {
                "coding": [{"system": SUBSTANCE_SYSTEM, "code": strength.substance_id}],
                **({"text": strength.substance_name} if strength.substance_name else {}),
            },
            "isActive": True,
        }
        if strength.atc:
            item["itemCodeableConcept"]["coding"].append({"system": ATC, "code": strength.atc})
        item["strength"] = {
            "numerator": {"value": _number(strength.value), "unit": strength.unit},
            "denominator": {
                "value": _number(strength.denominator_value or 1),
                "unit": strength.denominator_unit or "1",
            },
        }
        ingredients.append(item)
    if ingredients:
        body["ingredient"] = ingredients
    return body


def _number(value: Any) -> float | int:
    found = float(value)
    return int(found) if found.is_integer() else found


def medication_element(drug: DrugReference) -> dict[str, Any]:
    """``medication[x]`` of a statement, request or dispense: a reference to the catalogue
    Medication, or a text-only concept for a non-catalogue item."""
    if isinstance(drug, CatalogueDrug):
        return {
            "medicationReference": {
                "reference": f"Medication/{medication_id(drug)}",
                "display": drug.name,
            }
        }
    assert isinstance(drug, NonCatalogueItem)
    return {"medicationCodeableConcept": {"text": drug.name}}


# -- dosage ---------------------------------------------------------------------------------------

_WHEN = {
    TimeOfDay.MORNING: "MORN",
    TimeOfDay.FORENOON: "MORN.late",
    TimeOfDay.MIDDAY: "NOON",
    TimeOfDay.AFTERNOON: "AFT",
    TimeOfDay.EVENING: "EVE",
    TimeOfDay.NIGHT: "NIGHT",
}
_UNIT = {"minute": "min", "hour": "h", "day": "d", "week": "wk", "month": "mo"}
_DAY = {
    "monday": "mon",
    "tuesday": "tue",
    "wednesday": "wed",
    "thursday": "thu",
    "friday": "fri",
    "saturday": "sat",
    "sunday": "sun",
}


def dosage(found: Dosage | None, bounds: tuple[date, date | None] | None = None) -> list[dict]:
    """The engine's structured dosage as FHIR ``Dosage`` (one per fixed or as-needed dose),
    the text kept on the first; nothing when the entry has no dosage."""
    if found is None:
        return []
    text = found.text or (found.short_dose.text if found.short_dose else None)
    parts: list[dict[str, Any]] = [_fixed(d) for d in found.fixed]
    parts += [_as_needed(d) for d in found.as_needed]
    if not parts:
        parts = [{"asNeededBoolean": found.use.value == "as-needed"}]
    if text:
        parts[0] = {"text": text, **parts[0]}
    if bounds is not None:
        period = {"start": bounds[0].isoformat()}
        if bounds[1] is not None:
            period["end"] = bounds[1].isoformat()
        for part in parts:
            part.setdefault("timing", {}).setdefault("repeat", {})["boundsPeriod"] = period
    for index, part in enumerate(parts, start=1):
        part["sequence"] = 1 if len(parts) > 1 else index
    return parts


def _quantity(amount: Quantity) -> dict[str, Any]:
    return {"value": _number(amount.value), "unit": amount.unit}


def _period(period: Period) -> tuple[float | int, str]:
    return _number(period.value), _UNIT[period.unit.value]


def _fixed(dose: FixedDose) -> dict[str, Any]:
    repeat: dict[str, Any] = {}
    if dose.time_of_day is not None:
        repeat["when"] = [_WHEN[dose.time_of_day]]
    if dose.clock_time is not None:
        repeat["timeOfDay"] = [_clock(dose.clock_time)]
    if dose.interval is not None:
        value, unit = _period(dose.interval)
        repeat.update({"frequency": 1, "period": value, "periodUnit": unit})
    elif not repeat:
        repeat.update({"frequency": 1, "period": 1, "periodUnit": "d"})
    if dose.weekdays:
        repeat["dayOfWeek"] = [_DAY[d.value] for d in dose.weekdays]
    return {
        "timing": {"repeat": repeat},
        "asNeededBoolean": False,
        "doseAndRate": [{"doseQuantity": _quantity(dose.amount)}],
    }


def _clock(moment: time) -> str:
    return moment.replace(microsecond=0).isoformat()


def _as_needed(dose: AsNeededDose) -> dict[str, Any]:
    body: dict[str, Any] = {
        "asNeededBoolean": True,
        "doseAndRate": [{"doseQuantity": _quantity(dose.amount)}],
    }
    if dose.max_per_24h is not None:
        body["maxDosePerPeriod"] = {
            "numerator": _quantity(dose.max_per_24h),
            "denominator": {"value": 24, "unit": "h", "system": UCUM, "code": "h"},
        }
    elif dose.max_per_period is not None and dose.period is not None:
        value, unit = _period(dose.period)
        body["maxDosePerPeriod"] = {
            "numerator": _quantity(dose.max_per_period),
            "denominator": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        }
    if dose.min_interval is not None:
        value, unit = _period(dose.min_interval)
        body["timing"] = {"repeat": {"frequency": 1, "period": value, "periodUnit": unit}}
    return body


# -- the list -------------------------------------------------------------------------------------

STATEMENT_STATUS = {
    EntryStatus.ACTIVE: "active",
    EntryStatus.ON_HOLD: "on-hold",
    EntryStatus.DISCONTINUED: "stopped",
    EntryStatus.ENTERED_IN_ERROR: "entered-in-error",
}


def medication_statement(version: EntryVersion, patient_id: UUID) -> dict[str, Any]:
    """One version of a list entry (``EnkeltoppforingLIB``) as a MedicationStatement."""
    entry = version.entry
    body: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": str(entry.id),
        "meta": meta(version.version, version.at),
        "status": STATEMENT_STATUS[entry.status],
        **medication_element(entry.drug),
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectivePeriod": _effective(entry),
        "dateAsserted": instant(version.at),
        "informationSource": actor_reference(version.author),
    }
    if entry.prescription_ids:
        body["basedOn"] = [{"reference": f"MedicationRequest/{p}"} for p in entry.prescription_ids]
    if entry.discontinuation is not None:
        body["statusReason"] = [
            {
                "coding": [
                    {
                        "system": "urn:oid:2.16.578.1.12.4.1.1.7494",
                        "code": entry.discontinuation.reason.value,
                    }
                ],
                **({"text": entry.discontinuation.note} if entry.discontinuation.note else {}),
            }
        ]
    if entry.indication:
        body["reasonCode"] = [{"text": entry.indication}]
    found = dosage(entry.dosage)
    if found:
        body["dosage"] = found
    if version.reason:
        body["note"] = [{"text": version.reason}]
    return body


def _effective(entry: ListEntry) -> dict[str, str]:
    period = {"start": entry.start.isoformat()}
    stop = entry.stop
    if entry.discontinuation is not None:
        ended = local_date(entry.discontinuation.at)
        stop = ended if stop is None or ended < stop else stop
    if stop is not None and stop >= entry.start:
        period["end"] = stop.isoformat()
    return period


def effective_range(entry: ListEntry) -> tuple[date, date | None]:
    period = _effective(entry)
    end = period.get("end")
    return date.fromisoformat(period["start"]), None if end is None else date.fromisoformat(end)


REQUEST_STATUS = {
    PrescriptionStatus.DISPENSABLE: "active",
    PrescriptionStatus.BEING_DISPENSED: "active",
    PrescriptionStatus.FULLY_DISPENSED: "completed",
    PrescriptionStatus.RECALLED: "cancelled",
    PrescriptionStatus.EXPIRED: "stopped",
}


def medication_request(version: PrescriptionVersion, patient_id: UUID) -> dict[str, Any]:
    """One version of a prescription as a MedicationRequest (intent ``order``)."""
    found: Prescription = version.prescription
    quantity: dict[str, Any] = {}
    if found.quantity.packages is not None:
        quantity = {"value": _number(found.quantity.packages), "unit": "pakning"}
    elif found.quantity.amount is not None:
        quantity = _quantity(found.quantity.amount)
    body: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": str(found.id),
        "meta": meta(found.version, version.at),
        "identifier": [{"system": ENTRY_ID, "value": str(found.entry_id)}],
        "status": REQUEST_STATUS[found.status],
        "statusReason": {
            "coding": [{"system": PRESCRIPTION_STATUS, "code": found.status.value}],
        },
        "intent": "order",
        **medication_element(found.drug),
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": found.issued.isoformat(),
        "requester": actor_reference(found.prescriber),
        "dispenseRequest": {
            "validityPeriod": {"start": found.issued.isoformat(), "end": found.expires.isoformat()},
            "numberOfRepeatsAllowed": found.repeats,
            "quantity": quantity,
        },
        "substitution": {
            "allowedBoolean": not found.reserved_against_substitution,
        },
    }
    if found.recall is not None:
        body["statusReason"]["coding"].append(
            {"system": "urn:oid:2.16.578.1.12.4.1.1.7500", "code": found.recall.reason.value}
        )
        if found.recall.note:
            body["statusReason"]["text"] = found.recall.note
    return body


def _pack_note(found: Dispense) -> str:
    """The pack's batch and expiry; a detail the reporting M10 does not carry is said so."""
    batch = found.batch or NOT_CARRIED_BY_M10
    expiry = found.expiry.isoformat() if found.expiry is not None else NOT_CARRIED_BY_M10
    return f"batch {batch}, expiry {expiry}"


def medication_dispense(found: Dispense, patient_id: UUID, prescribed: Prescription | None):
    """A dispense as a MedicationDispense (``completed``; ``entered-in-error`` when annulled),
    with its substitution."""
    package = found.package
    quantity: dict[str, Any] = {"value": _number(found.quantity.packages), "unit": "pakning"}
    body: dict[str, Any] = {
        "resourceType": "MedicationDispense",
        "id": str(found.id),
        "identifier": [{"system": ENTRY_ID, "value": str(found.entry_id)}],
        "status": "entered-in-error" if found.annulment is not None else "completed",
        "medicationCodeableConcept": {
            "coding": [
                {"system": NO_VARENR, "code": package.varenr, "display": package.name},
                {"system": NO_PAKNING, "code": package.package_id},
            ],
            "text": package.name,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        # The pharmacist and the pharmacy both performed it (R4 allows an Organization as
        # performer; ``location`` would need a Location resource).
        "performer": [
            {"actor": practitioner_reference(found.pharmacist)},
            {"actor": organisation_reference(found.pharmacy)},
        ],
        "location": {"display": found.pharmacy.name},
        "authorizingPrescription": [{"reference": f"MedicationRequest/{found.prescription_id}"}],
        "quantity": quantity,
        "whenHandedOver": found.dispensed_on.isoformat(),
        "substitution": {
            "wasSubstituted": found.substituted,
            **(
                {"type": {"coding": [{"system": SUBSTITUTION_TYPE, "code": "G"}]}}
                if found.substituted
                else {}
            ),
        },
        "note": [{"text": _pack_note(found)}],
    }
    if found.patient_refused_substitution:
        body["substitution"]["reason"] = [{"text": "the patient refused substitution"}]
    if found.annulment is not None:
        body["statusReasonCodeableConcept"] = {"text": found.annulment.reason}
    return body


def allergy_intolerance(found: Patient, index: int, allergy: Any) -> dict[str, Any]:
    """An allergy/CAVE entry (by ATC code or FEST substance)."""
    system = ATC if allergy.atc is not None else SUBSTANCE_SYSTEM
    code = {"coding": [{"system": system, "code": allergy.allergen}]}
    if allergy.label:
        code["text"] = allergy.label
    return {
        "resourceType": "AllergyIntolerance",
        "id": f"{found.id}-{index}",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                }
            ]
        },
        "category": ["medication"],
        "code": code,
        "patient": {"reference": f"Patient/{found.id}"},
    }


_SEVERITY = {
    Severity.AVOID: "high",
    Severity.PRECAUTIONS: "moderate",
    Severity.INFO: "low",
    Severity.NO_ACTION: "low",
}


def detected_issue(patient_id: UUID, index: int, on_record: AlertOnRecord) -> dict[str, Any]:
    """A stored alert: severity, the entries it implicates, the override as mitigation."""
    stored, alert = on_record.stored, on_record.alert
    body: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "id": f"{patient_id}-{index}",
        "identifier": [{"system": ALERT_KEY, "value": stored.key}],
        "status": "final",
        "code": {
            "coding": [
                {
                    "system": "https://medloop.dev/fhir/CodeSystem/alert-kind",
                    "code": str(alert.kind),
                }
            ]
        },
        "severity": _SEVERITY[alert.severity],
        "patient": {"reference": f"Patient/{patient_id}"},
        "identifiedDateTime": instant(stored.raised_at),
        "detail": alert.summary or stored.key,
        "implicated": [
            {"reference": f"MedicationStatement/{entry}"}
            for entry in alert.medications
            if _is_uuid(entry)
        ],
    }
    if not body["implicated"]:
        del body["implicated"]
    if stored.override_reason is not None:
        mitigation: dict[str, Any] = {
            # The prescriber's own words; no code of v3 ActDetectedIssueManagementCode says
            # "overridden with this reason" better than the reason itself.
            "action": {"text": stored.override_reason},
            "date": instant(stored.raised_at),
        }
        author = on_record.override_by
        if author is not None:
            mitigation["author"] = {
                "reference": f"Practitioner/{author.personnel.hpr_number}",
                "display": author.personnel.name,
            }
        body["mitigation"] = [mitigation]
    return body


def _is_uuid(value: Any) -> bool:
    try:
        UUID(str(value))
    except ValueError:
        return False
    return True


def audit_event(event: Any, patient_id: UUID) -> dict[str, Any]:
    """One record of the patient's access log (who, when, what, outcome)."""
    ok = str(event.outcome) in ("ok", "success", "accepted")
    agent: dict[str, Any] = {
        "who": {
            "identifier": {
                "system": HPR if str(event.actor).isdigit() else "urn:medloop:actor",
                "value": str(event.actor),
            }
        },
        "requestor": True,
    }
    if event.actor_role:
        agent["role"] = [{"text": str(event.actor_role)}]
    if event.organisation:
        agent["who"]["display"] = f"{event.actor} ({event.organisation})"
    body: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(event.seq),
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
        },
        "subtype": [
            {
                "system": "https://medloop.dev/fhir/CodeSystem/audit-action",
                "code": str(event.action),
            }
        ],
        "recorded": instant(event.occurred_at),
        "outcome": "0" if ok else "4",
        "agent": [agent],
        "source": {"observer": {"display": "medloop"}},
        "entity": [{"what": {"reference": f"Patient/{patient_id}"}}],
    }
    if event.reason:
        body["purposeOfEvent"] = [{"text": str(event.reason)}]
    return body


def bundle_entries(resources: Iterable[dict[str, Any]], base: str, mode: str) -> list[dict]:
    return [
        {
            "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": mode},
        }
        for r in resources
    ]


def referenced_medications(resources: Sequence[dict[str, Any]]) -> list[str]:
    """The Medication ids the resources reference, in order of first mention."""
    found: dict[str, None] = {}
    for r in resources:
        target = (r.get("medicationReference") or {}).get("reference", "")
        if target.startswith("Medication/"):
            found[target.removeprefix("Medication/")] = None
    return list(found)


ADMINISTRATION_STATUS = {
    "given": "completed",
    "not-given": "not-done",
    "refused": "not-done",
    "held": "not-done",
    "missed": "not-done",
}
ADMINISTRATION_OUTCOME = "https://medloop.dev/fhir/CodeSystem/administration-outcome"
"""The charting's own outcome (given, not-given, refused, held, missed) as statusReason."""
PERFORM_FUNCTION = "http://terminology.hl7.org/CodeSystem/med-admin-perform-function"


def medication_administration(charted: Any, patient_id: UUID, entry: ListEntry | None):
    """A charting (``given`` → completed; not given, refused, held, missed → not-done with the
    reason; corrected → entered-in-error), its performer and witness, dose and scan."""
    record = charted.administration
    outcome = record.outcome.value
    status = ADMINISTRATION_STATUS[outcome]
    if charted.correction is not None:
        status = "entered-in-error"
    body: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": str(record.id),
        "identifier": [{"system": ENTRY_ID, "value": str(record.entry_id)}],
        "status": status,
        "category": {
            "coding": [
                {
                    "system": "https://medloop.dev/fhir/CodeSystem/administration-kind",
                    "code": "planned" if record.planned_dose_id is not None else "prn",
                }
            ]
        },
        **(
            medication_element(entry.drug)
            if entry is not None
            else {"medicationCodeableConcept": {"text": "unknown entry"}}
        ),
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": instant(record.at),
        "supportingInformation": [{"reference": f"MedicationStatement/{record.entry_id}"}],
    }
    if outcome != "given" or record.reason:
        reason: dict[str, Any] = {
            "coding": [{"system": ADMINISTRATION_OUTCOME, "code": outcome}],
        }
        if record.reason:
            reason["text"] = record.reason
        body["statusReason"] = [reason]
    performers = []
    if record.performer is not None:
        performers.append(
            {
                "function": {"coding": [{"system": PERFORM_FUNCTION, "code": "performer"}]},
                "actor": actor_reference(record.performer),
            }
        )
    if record.witness is not None:
        performers.append(
            {
                "function": {"coding": [{"system": PERFORM_FUNCTION, "code": "witness"}]},
                "actor": actor_reference(record.witness),
            }
        )
    if performers:
        body["performer"] = performers
    if record.dose is not None:
        body["dosage"] = {"dose": _quantity(record.dose)}
    notes = []
    if record.scan is not None:
        notes.append({"text": f"scanned GTIN {record.scan.gtin}"})
    elif record.scan_skipped is not None:
        notes.append({"text": f"scan skipped: {record.scan_skipped.value}"})
    if record.limit_override:
        notes.append({"text": f"limit override: {record.limit_override}"})
    if charted.correction is not None:
        notes.append({"text": f"entered in error: {charted.correction.reason}"})
    if notes:
        body["note"] = notes
    return body
