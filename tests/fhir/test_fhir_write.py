"""FHIR writes over HTTP, each through the JSON API's command: prescribing a MedicationRequest
(If-Match, alerts as an OperationOutcome with DetectedIssues, the override extension),
charting a MedicationAdministration (planned with a scan, PRN with a witness), HL7's official
R4 examples answered precisely, and bad input refused with nothing stored."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from medloop.fhir import resources as fhir
from medloop.fhir.writes import PLANNED_DOSE, SCAN
from medloop.store import audit
from tests.api.helpers import (
    NATIONAL_ID,
    NEXT_MORNING,
    NURSING_HOME,
    OKSYKODON_EAN,
    SIMVASTATIN_GENERIC_EAN,
    WARD_ADMIN_TOKEN,
    admitted,
)
from tests.fhir.helpers import (
    FHIR_JSON,
    administration,
    fhir_get,
    gp_token,
    medication_request,
    nurse_token,
    outcome_of,
    resources_of,
    validated,
)
from tests.loop.helpers import KLARITROMYCIN

# -- HL7's official R4 examples -----------------------------------------------------------------
# Source: HL7 FHIR R4 (4.0.1) examples, https://hl7.org/fhir/R4/ (medicationrequest0302,
# medicationstatementexample1, medicationadministration0301), licence CC0 1.0 (the FHIR
# specification's examples are public domain). Abridged: the generated narrative (``text``),
# ``meta`` tags and the Provenance signature are left out; every other element as published.
HL7_MEDICATION_REQUEST_0302: dict[str, Any] = {
    "resourceType": "MedicationRequest",
    "id": "medrx0302",
    "contained": [
        {
            "resourceType": "Medication",
            "id": "med0320",
            "code": {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "324252006",
                        "display": "Azithromycin 250mg capsule (product)",
                    }
                ]
            },
        }
    ],
    "identifier": [
        {"use": "official", "system": "http://www.bmc.nl/portal/prescriptions", "value": "12345689"}
    ],
    "status": "active",
    "intent": "order",
    "medicationReference": {"reference": "#med0320"},
    "subject": {"reference": "Patient/pat1", "display": "Donald Duck"},
    "authoredOn": "2015-01-15",
    "requester": {"reference": "Practitioner/f007", "display": "Patrick Pump"},
}
HL7_MEDICATION_STATEMENT_001: dict[str, Any] = {
    "resourceType": "MedicationStatement",
    "id": "example001",
    "contained": [
        {
            "resourceType": "Medication",
            "id": "med0309",
            "code": {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/sid/ndc",
                        "code": "50580-506-02",
                        "display": "Tylenol PM",
                    }
                ]
            },
        }
    ],
    "status": "active",
    "medicationReference": {"reference": "#med0309"},
    "subject": {"reference": "Patient/pat1", "display": "Donald Duck"},
}
HL7_MEDICATION_ADMINISTRATION_0301: dict[str, Any] = {
    "resourceType": "MedicationAdministration",
    "id": "medadmin0301",
    "contained": [
        {
            "resourceType": "Medication",
            "id": "med0301",
            "code": {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/sid/ndc",
                        "code": "0069-2587-10",
                        "display": "Vancomycin Hydrochloride (VANCOMYCIN HYDROCHLORIDE)",
                    }
                ]
            },
        }
    ],
    "status": "in-progress",
    "medicationReference": {"reference": "#med0301"},
    "subject": {"reference": "Patient/pat1", "display": "Donald Duck"},
    "context": {
        "reference": "Encounter/f001",
        "display": "encounter who leads to this prescription",
    },
    "effectivePeriod": {"start": "2015-01-15T14:30:00+01:00"},
    "performer": [{"actor": {"reference": "Practitioner/f007", "display": "Patrick Pump"}}],
    "reasonCode": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/reason-medication-given",
                    "code": "b",
                    "display": "Given as Ordered",
                }
            ]
        }
    ],
    "request": {"reference": "MedicationRequest/medrx0318"},
    "dosage": {
        "text": "500mg IV q6h x 3 days",
        "route": {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "47625008",
                    "display": "Intravenous route (qualifier value)",
                }
            ]
        },
        "method": {"text": "IV Push"},
        "dose": {"value": 500, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"},
    },
}


def post(world, path: str, body: Any, token: str | None = None, **headers: str):
    content = body if isinstance(body, bytes | str) else json.dumps(body)
    return world.client.post(
        path,
        content=content,
        headers={
            "Authorization": f"Bearer {token or gp_token()}",
            "Content-Type": FHIR_JSON,
            **headers,
        },
    )


def prescribe(world, body: dict[str, Any], **headers: str):
    return post(
        world, "/fhir/MedicationRequest", body, **{"If-Match": f'"{world.version()}"', **headers}
    )


def test_prescribing_a_medication_request_puts_it_on_the_shared_list(world):
    response = prescribe(world, medication_request(world))
    assert response.status_code == 201, response.text
    created = validated(response.json())
    assert response.headers["Location"] == f"/fhir/MedicationRequest/{created['id']}/_history/1"
    assert response.headers["ETag"] == 'W/"1"' and response.headers["X-List-Version"] == "1"
    assert created["status"] == "active"
    assert created["dispenseRequest"]["numberOfRepeatsAllowed"] == 2
    listed = world.get(f"/patients/{world.patient_id}/list").json()
    (entry,) = listed["entries"]
    assert entry["dosage"]["text"] == "1 tablett om kvelden"
    assert entry["dosage"]["fixed"][0]["time_of_day"] == "evening"
    statement = fhir_get(world, f"/fhir/MedicationStatement/{entry['id']}").json()
    assert statement["dosage"][0]["timing"]["repeat"]["when"] == ["EVE"]
    with world.engine.connect() as conn:
        actions = [e.action for e in audit.events_for_patient(conn, NATIONAL_ID).events]
    assert "medication-list.prescribe" in actions


def test_a_write_without_if_match_is_428_and_a_stale_one_412(world):
    body = medication_request(world)
    outcome = outcome_of(post(world, "/fhir/MedicationRequest", body), 428)
    assert outcome["issue"][0]["code"] == "required"
    assert prescribe(world, body).status_code == 201
    stale = post(world, "/fhir/MedicationRequest", body, **{"If-Match": '"0"'})
    outcome_of(stale, 412)
    assert stale.headers["ETag"] == '"1"'


def test_an_alert_needing_override_comes_back_with_detected_issues_then_passes_with_reason(world):
    assert prescribe(world, medication_request(world)).status_code == 201
    entry = str(uuid.uuid4())
    body = medication_request(
        world, KLARITROMYCIN, identifier=[{"system": fhir.ENTRY_ID, "value": entry}]
    )
    refused = prescribe(world, body)
    outcome = outcome_of(refused, 409)
    keys = [
        i["details"]["coding"][0]["code"] for i in outcome["issue"] if i["code"] == "business-rule"
    ]
    assert keys and all(entry in key for key in keys)
    issues = outcome["contained"]
    assert [i["identifier"][0]["value"] for i in issues] == keys
    assert {i["severity"] for i in issues} == {"high"}
    assert world.version() == 1  # nothing stored
    overridden = {
        **body,
        "extension": [
            {
                "url": fhir.OVERRIDE_REASON,
                "valueString": "short course, statin paused",
                "extension": [{"url": "alert", "valueString": key} for key in keys[:1]],
            }
        ]
        + [
            {
                "url": fhir.OVERRIDE_REASON,
                "valueString": "short course, statin paused",
                "extension": [{"url": "alert", "valueString": key}],
            }
            for key in keys[1:]
        ],
    }
    accepted = prescribe(world, overridden)
    assert accepted.status_code == 201, accepted.text
    found = fhir_get(world, f"/fhir/DetectedIssue?patient={world.patient_id}").json()
    mitigated = [i for i in resources_of(found) if i.get("mitigation")]
    assert {i["identifier"][0]["value"] for i in mitigated} >= set(keys)


def test_one_override_reason_without_an_alert_key_answers_every_alert_of_the_request(world):
    assert prescribe(world, medication_request(world)).status_code == 201
    body = medication_request(
        world,
        KLARITROMYCIN,
        extension=[{"url": fhir.OVERRIDE_REASON, "valueString": "infectiologist's advice"}],
    )
    accepted = prescribe(world, body, Prefer="return=OperationOutcome")
    assert accepted.status_code == 201, accepted.text
    outcome = validated(accepted.json())
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(i["severity"] == "warning" for i in outcome["issue"])
    listed = world.get(f"/patients/{world.patient_id}/list").json()
    assert {o["reason"] for o in listed["overrides"]} == {"infectiologist's advice"}


def test_a_retried_create_with_one_override_reason_for_every_alert_gets_the_first_answer(world):
    """The reason without an alert key answers the alerts in the command's one run: the same
    request sent again with the same Idempotency-Key is the same call, so it gets the first
    answer back (it was refused as a reused key when the command ran twice)."""
    assert prescribe(world, medication_request(world)).status_code == 201
    body = medication_request(
        world,
        KLARITROMYCIN,
        extension=[{"url": fhir.OVERRIDE_REASON, "valueString": "infectiologist's advice"}],
    )
    headers = {
        "If-Match": f'"{world.version()}"',
        "Idempotency-Key": str(uuid.uuid4()),
        "Prefer": "return=OperationOutcome",
    }
    first = post(world, "/fhir/MedicationRequest", body, **headers)
    assert first.status_code == 201, first.text
    version = world.version()
    again = post(world, "/fhir/MedicationRequest", body, **headers)
    assert again.status_code == 201, again.text
    assert again.content == first.content
    assert again.headers["Location"] == first.headers["Location"]
    assert world.version() == version, "the retry changed nothing"
    listed = world.get(f"/patients/{world.patient_id}/list").json()
    assert len(listed["entries"]) == 2
    assert {o["reason"] for o in listed["overrides"]} == {"infectiologist's advice"}


@pytest.mark.parametrize(
    ("case", "status", "code", "fragment"),
    [
        ("malformed json", 400, "invalid", "not valid JSON"),
        ("wrong resourceType", 400, "invalid", "not a 'Patient'"),
        ("not an object", 400, "invalid", "JSON object"),
        ("invalid FHIR", 400, "structure", "not valid FHIR"),
        ("contained", 400, "invalid", "contained resources are not accepted"),
        ("other patient", 404, "not-found", "patient"),
        ("not a patient reference", 400, "invalid", "must reference the Patient"),
        ("rxnorm coded", 422, "code-invalid", "RxNorm"),
        ("atc only", 422, "code-invalid", "ATC code names a class"),
        ("unknown varenr", 422, "processing", "999999"),
        ("foreign medication reference", 422, "not-found", "no Medication of this server"),
        ("based on another record", 422, "not-supported", "basedOn"),
        ("no quantity", 422, "required", "quantity"),
    ],
)
def test_bad_input_is_an_operation_outcome_and_stores_nothing(world, case, status, code, fragment):
    body: Any = medication_request(world)
    if case == "malformed json":
        body = b'{"resourceType": "MedicationRequest", '
    elif case == "wrong resourceType":
        body = {**body, "resourceType": "Patient"}
    elif case == "not an object":
        body = [body]
    elif case == "invalid FHIR":
        body = {**body, "dispenseRequest": {"numberOfRepeatsAllowed": "many"}}
    elif case == "contained":
        body = {
            **body,
            "contained": [{"resourceType": "Patient", "id": "p1"}],
        }
    elif case == "other patient":
        body = {**body, "subject": {"reference": f"Patient/{uuid.uuid4()}"}}
    elif case == "not a patient reference":
        body = {**body, "subject": {"reference": "Group/ward-1"}}
    elif case == "rxnorm coded":
        body["medicationCodeableConcept"] = {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "313782",
                    "display": "Acetaminophen 325 MG Oral Tablet",
                }
            ]
        }
    elif case == "atc only":
        body["medicationCodeableConcept"] = {"coding": [{"system": fhir.ATC, "code": "C10AA01"}]}
    elif case == "unknown varenr":
        body["medicationCodeableConcept"] = {
            "coding": [{"system": fhir.NO_VARENR, "code": "999999"}]
        }
    elif case == "foreign medication reference":
        del body["medicationCodeableConcept"]
        body["medicationReference"] = {"reference": "http://elsewhere.example/Medication/42"}
    elif case == "based on another record":
        body["basedOn"] = [{"reference": f"MedicationRequest/{uuid.uuid4()}"}]
    elif case == "no quantity":
        body["dispenseRequest"] = {"numberOfRepeatsAllowed": 0}
    response = prescribe(world, body)
    outcome = outcome_of(response, status)
    first = outcome["issue"][0]
    assert first["code"] == code, outcome
    assert fragment.lower() in json.dumps(outcome).lower(), outcome
    assert world.version() == 0
    listed = world.get(f"/patients/{world.patient_id}/list").json()
    assert listed["entries"] == []


def test_hl7_official_examples_get_precise_outcomes_never_a_500(world):
    request = prescribe(world, copy.deepcopy(HL7_MEDICATION_REQUEST_0302))
    outcome = outcome_of(request, 422)
    assert outcome["issue"][0]["code"] == "code-invalid"
    assert "SNOMED CT" in outcome["issue"][0]["diagnostics"]
    assert outcome["issue"][0]["expression"] == [
        "MedicationRequest.medicationReference.resolve().code.coding"
    ]
    # MedicationStatement is read-only here (the list is changed by prescribing).
    statement = post(world, "/fhir/MedicationStatement", HL7_MEDICATION_STATEMENT_001)
    assert outcome_of(statement, 405)["issue"][0]["code"] == "not-supported"
    # Searched by its NDC coding: an empty searchset, not an error.
    searched = fhir_get(
        world,
        f"/fhir/MedicationStatement?patient={world.patient_id}"
        "&code=http://hl7.org/fhir/sid/ndc|50580-506-02",
    )
    assert validated(searched.json())["total"] == 0
    administered = post(
        world,
        "/fhir/MedicationAdministration",
        HL7_MEDICATION_ADMINISTRATION_0301,
        token=nurse_token(),
    )
    outcome = outcome_of(administered, 422)
    assert "NDC" in outcome["issue"][0]["diagnostics"]
    assert world.version() == 0


def test_charting_a_planned_dose_with_a_scan_and_a_witnessed_prn_dose(world):
    ward_id, simvastatin, oksykodon = admitted(world)
    world.clock.at = NEXT_MORNING
    from tests.api.helpers import NURSE_TOKEN, SECOND_NURSE_TOKEN

    chart = world.get(f"/nursing/wards/{ward_id}/chart?day=2026-11-21", token=NURSE_TOKEN).json()
    (dose,) = [d for d in chart["patients"][0]["doses"] if d["entry_id"] == simvastatin]
    planned = administration(
        world,
        simvastatin,
        extension=[
            {"url": PLANNED_DOSE, "valueString": dose["planned_dose_id"]},
            {"url": SCAN, "valueString": SIMVASTATIN_GENERIC_EAN},
        ],
    )
    given = post(world, "/fhir/MedicationAdministration", planned, token=nurse_token())
    assert given.status_code == 201, given.text
    charted = validated(given.json())
    assert charted["status"] == "completed"
    assert charted["category"]["coding"][0]["code"] == "planned"
    # The nurse acting for her nursing home (a PractitionerRole: R4 has no Organization here).
    performer = charted["performer"][0]["actor"]
    assert performer["reference"] == f"PractitionerRole/5551234-{NURSING_HOME}"

    prn = administration(
        world,
        oksykodon,
        medicationCodeableConcept={"coding": [{"system": fhir.NO_VARENR, "code": "091099"}]},
        dosage={"dose": {"value": 1, "unit": "kapsel"}},
        extension=[{"url": SCAN, "valueString": OKSYKODON_EAN}],
    )
    alone = post(world, "/fhir/MedicationAdministration", prn, token=nurse_token())
    outcome = outcome_of(alone, 409)
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "witness-required"
    witnessed = post(
        world,
        "/fhir/MedicationAdministration",
        prn,
        token=nurse_token(),
        **{"X-Witness-Authorization": f"Bearer {SECOND_NURSE_TOKEN}"},
    )
    assert witnessed.status_code == 201, witnessed.text
    performers = validated(witnessed.json())["performer"]
    assert [p["function"]["coding"][0]["code"] for p in performers] == ["performer", "witness"]
    found = fhir_get(
        world,
        f"/fhir/MedicationAdministration?patient={world.patient_id}&status=completed",
        token=nurse_token(),
    )
    assert len(resources_of(validated(found.json()))) == 2
    other_home = nurse_token(org="8012399")
    outcome_of(post(world, "/fhir/MedicationAdministration", prn, token=other_home), 403)
    assert WARD_ADMIN_TOKEN


def test_a_not_done_dose_carries_its_reason(world):
    ward_id, simvastatin, _ = admitted(world)
    world.clock.at = NEXT_MORNING
    from tests.api.helpers import NURSE_TOKEN

    chart = world.get(f"/nursing/wards/{ward_id}/chart?day=2026-11-21", token=NURSE_TOKEN).json()
    (dose,) = [d for d in chart["patients"][0]["doses"] if d["entry_id"] == simvastatin]
    body = administration(
        world,
        simvastatin,
        extension=[{"url": PLANNED_DOSE, "valueString": dose["planned_dose_id"]}],
        status="not-done",
        statusReason=[
            {
                "coding": [{"system": fhir.ADMINISTRATION_OUTCOME, "code": "refused"}],
                "text": "the patient refused",
            }
        ],
    )
    del body["dosage"]
    refused = post(world, "/fhir/MedicationAdministration", body, token=nurse_token())
    assert refused.status_code == 201, refused.text
    charted = validated(refused.json())
    assert charted["status"] == "not-done"
    assert charted["statusReason"][0]["coding"][0]["code"] == "refused"
    assert charted["statusReason"][0]["text"] == "the patient refused"


def test_a_refused_create_is_audited_on_the_patient_it_names(world):
    body = medication_request(world)
    body["medicationCodeableConcept"] = {"coding": [{"system": fhir.ATC, "code": "C10AA01"}]}
    refused = prescribe(world, body)
    outcome_of(refused, 422)
    with world.engine.connect() as conn:
        latest = audit.events_for_patient(conn, NATIONAL_ID).events[0]
    assert latest.action == "api.fhir.MedicationRequest.create"
    assert str(latest.outcome) == "refused"
    assert latest.request_id == refused.headers["X-Request-ID"]
    assert "ATC" in (latest.reason or "") or "ATC" in json.dumps(latest.detail)


def test_a_retry_with_the_same_idempotency_key_is_answered_as_the_first(world):
    body = medication_request(world)
    first = prescribe(world, body, **{"Idempotency-Key": "rx-1"})
    assert first.status_code == 201, first.text
    again = post(
        world, "/fhir/MedicationRequest", body, **{"If-Match": '"0"', "Idempotency-Key": "rx-1"}
    )
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert world.version() == 1
