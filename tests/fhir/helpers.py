"""Builders for the FHIR tests: SMART-scoped tokens for every role, request helpers, the
MedicationRequest and MedicationAdministration bodies the write tests send, a prescription
dispensed through the JSON API (`dispensed`), and the
validation of every resource a response carries (``fhir.resources``; the independent
validator lives in ``validator.py``)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from medloop.api.auth import issue_token
from medloop.fhir import resources as fhir
from tests.api.helpers import (
    NATIONAL_ID,
    NEXT_MORNING,
    NURSING_HOME,
    OTHER_NATIONAL_ID,
    PHARMACIST_TOKEN,
    World,
    dispense_body,
    prescribe_body,
)
from tests.fhir import validator
from tests.loop.helpers import GP, PHARMACIST, SIMVASTATIN_28

FHIR_JSON = "application/fhir+json"
USER_READ = "user/*.rs"
CLINICIAN_SCOPES = (
    "openid fhirUser user/*.rs user/MedicationRequest.c user/MedicationAdministration.c"
)


def gp_token(scope: str = CLINICIAN_SCOPES, **claims: Any) -> str:
    return issue_token(
        "gp",
        GP.personnel.hpr_number,
        GP.organisation.id,
        name=GP.personnel.name,
        organisation_name=GP.organisation.name,
        scope=scope,
        **claims,
    )


def pharmacist_token(scope: str = USER_READ) -> str:
    return issue_token(
        "pharmacist",
        PHARMACIST.personnel.hpr_number,
        PHARMACIST.organisation.id,
        name=PHARMACIST.personnel.name,
        organisation_name=PHARMACIST.organisation.name,
        scope=scope,
    )


def nurse_token(scope: str = CLINICIAN_SCOPES, org: str = NURSING_HOME, **claims: Any) -> str:
    return issue_token("nurse", "5551234", org, name="Nina Sykepleier", scope=scope, **claims)


def patient_token(scope: str = "patient/*.rs", national_id: str = NATIONAL_ID) -> str:
    return issue_token("patient", national_id, scope=scope)


OTHER_PATIENT = OTHER_NATIONAL_ID


def fhir_get(world: World, path: str, token: str | None = None, **headers: str):
    return world.client.get(
        path, headers={"Authorization": f"Bearer {token or gp_token()}", **headers}
    )


def validated(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` after ``fhir.resources`` (its R4B models, the closest it ships to R4) and
    the independent R4 validator (``tests/fhir/validator.py``) accepted it, and every resource
    inside it (a Bundle's entries)."""
    model = get_fhir_model_class(resource["resourceType"])
    model.model_validate(resource)
    validator.check(resource)
    for entry in resource.get("entry", []) if resource["resourceType"] == "Bundle" else []:
        validated(entry["resource"])
    return resource


def outcome_of(response, status: int) -> dict[str, Any]:
    """The OperationOutcome a refusal answers with (status, media type, validated)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return validated(body)


def prescribed(world: World, varenr: str = SIMVASTATIN_28, **fields: Any) -> dict[str, Any]:
    """A prescription through the JSON API (the same command the FHIR create uses)."""
    body = prescribe_body(varenr, **fields)
    response = world.write(f"/patients/{world.patient_id}/prescriptions", body)
    assert response.status_code == 201, response.text
    return body


def dispensed(world: World, varenr: str = SIMVASTATIN_28) -> str:
    """A prescription (``prescribed``) dispensed by the pharmacist through the JSON API as
    ``varenr`` (another package of the group: a generic substitution); the prescription id."""
    rx = prescribed(world)["terms"]["prescription_id"]
    path = f"/pharmacy/patients/{world.patient_id}"
    version = world.get(f"{path}/prescriptions", token=PHARMACIST_TOKEN).headers["ETag"]
    answer = world.post(
        f"{path}/dispenses",
        dispense_body(rx, varenr),
        token=PHARMACIST_TOKEN,
        **{"If-Match": version},
    )
    assert answer.status_code == 201, answer.text
    return rx


def resources_of(bundle: dict[str, Any], mode: str | None = None) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if mode is None or e.get("search", {}).get("mode") == mode
    ]


def medication_request(world, varenr: str = SIMVASTATIN_28, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": fhir.NO_VARENR, "code": varenr}]},
        "subject": {"reference": f"Patient/{world.patient_id}"},
        "dosageInstruction": [
            {
                "text": "1 tablett om kvelden",
                "timing": {
                    "repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "when": ["EVE"]}
                },
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablett"}}],
            }
        ],
        "dispenseRequest": {
            "numberOfRepeatsAllowed": 2,
            "quantity": {"value": 1, "unit": "pakning"},
        },
        **fields,
    }


def administration(world, entry: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationAdministration",
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": fhir.NO_VARENR, "code": SIMVASTATIN_28}]
        },
        "subject": {"reference": f"Patient/{world.patient_id}"},
        "supportingInformation": [{"reference": f"MedicationStatement/{entry}"}],
        "effectiveDateTime": NEXT_MORNING.isoformat(),
        "dosage": {"dose": {"value": 1, "unit": "tablett"}},
        **fields,
    }
