"""CDS Hooks as EHRs send it (issue #15): the specification's own example requests, drafts
medloop cannot check next to drafts it can, the codings real systems use, ATC drafts with a
route, cards without empty values, and CDS client JWTs with CORS.

The example requests are shaped exactly like the CDS Hooks specification's published R4
examples of the ``order-select`` and ``order-sign`` hooks (repository cds-hooks/docs,
``docs/hooks/order-select.md`` and ``order-sign.md``; Copyright © 2019 HL7 & Boston
Children's Hospital, licensed CC BY 4.0): a Bundle without ``type`` holding a ``NutritionOrder``
and an RxNorm-coded ``MedicationRequest`` whose ``doseAndRate`` is an object. No installable
package ships them (fhir.resources 8 carries no example data), so they are written out here;
only ``context.patientId`` is changed to this test's patient. The ``MedicationRequest`` with a
contained ``Medication`` follows HL7's R4 example resources (``medicationReference`` to
``#id``; ``MEDRX0302`` is HL7's own, CC0), its Norwegian coding HL7 Norway's LMDI profile
(``http://dmp.no/fhir/NamingSystem/...``).
"""

from __future__ import annotations

import copy
import re
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from sqlalchemy import select

from medloop.api.app import create_app
from medloop.api.cds_auth import CdsSettings, TrustedClient
from medloop.api.config import ApiSettings
from medloop.api.fhir_drafts import ATC, NO_VARENR, route_for
from medloop.store.audit import audit_event
from tests.api.helpers import (
    NATIONAL_ID,
    prescribe_body,
)
from tests.loop.helpers import KLARITROMYCIN, SIMVASTATIN_28

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
SIGN = "/cds-services/medloop-order-sign"
SELECT = "/cds-services/medloop-order-select"
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

PUREED_DIET = {
    "resourceType": "NutritionOrder",
    "id": "pureeddiet-simple",
    "identifier": [{"system": "http://goodhealthhospital.org/nutrition-requests", "value": "123"}],
    "status": "draft",
    "patient": {"reference": "Patient/1288992"},
    "dateTime": "2014-09-17",
    "orderer": {"reference": "Practitioner/example", "display": "Dr Adam Careful"},
    "oralDiet": {
        "type": [
            {
                "coding": [
                    {"system": SNOMED, "code": "226211001", "display": "Pureed diet"},
                    {
                        "system": "http://goodhealthhospital.org/diet-type-codes",
                        "code": "1010",
                        "display": "Pureed diet",
                    },
                ],
                "text": "Pureed diet",
            }
        ],
        "schedule": [
            {
                "repeat": {
                    "boundsPeriod": {"start": "2015-02-10"},
                    "frequency": 3,
                    "period": 1,
                    "periodUnit": "d",
                }
            }
        ],
        "texture": [
            {
                "modifier": {
                    "coding": [
                        {"system": SNOMED, "code": "228055009", "display": "Liquidized food"}
                    ],
                    "text": "Pureed",
                }
            }
        ],
        "fluidConsistencyType": [
            {
                "coding": [
                    {
                        "system": SNOMED,
                        "code": "439021000124105",
                        "display": "Dietary liquid consistency - nectar thick liquid",
                    }
                ],
                "text": "Nectar thick liquids",
            }
        ],
    },
    "supplement": [
        {
            "type": {
                "coding": [
                    {
                        "system": SNOMED,
                        "code": "442971000124100",
                        "display": "Adult high energy formula",
                    },
                    {
                        "system": "http://goodhealthhospital.org/supplement-type-codes",
                        "code": "1040",
                        "display": "Adult high energy pudding",
                    },
                ],
                "text": "Adult high energy pudding",
            },
            "productName": "Ensure Pudding 4 oz container",
            "instruction": "Ensure Pudding at breakfast, lunch, supper",
        }
    ],
}
AMOXICILLIN_RXNORM = {
    "resourceType": "MedicationRequest",
    "id": "smart-MedicationRequest-103",
    "meta": {"lastUpdated": "2018-04-30T13:25:40.845-04:00"},
    "text": {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
        "Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension "
        "(rxnorm: 617993)</div>",
    },
    "status": "draft",
    "intent": "order",
    "medicationCodeableConcept": {
        "coding": [
            {
                "system": RXNORM,
                "code": "617993",
                "display": "Amoxicillin 120 MG/ML / "
                "clavulanate potassium 8.58 MG/ML Oral Suspension",
            }
        ],
        "text": "Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension",
    },
    "subject": {"reference": "Patient/1288992"},
    "dosageInstruction": [
        {
            "text": "5 mL bid x 10 days",
            "timing": {
                "repeat": {
                    "boundsPeriod": {"start": "2005-01-04"},
                    "frequency": 2,
                    "period": 1,
                    "periodUnit": "d",
                }
            },
            "doseAndRate": {
                "doseQuantity": {"value": 5, "unit": "mL", "system": UCUM, "code": "mL"}
            },
        }
    ],
    "dispenseRequest": {
        "numberOfRepeatsAllowed": 1,
        "quantity": {"value": 1, "unit": "mL", "system": UCUM, "code": "mL"},
        "expectedSupplyDuration": {"value": 10, "unit": "days", "system": UCUM, "code": "d"},
    },
}


def spec_request(
    hook: str, patient: str, *resources: dict[str, Any], selections: list[str] | None = None
) -> dict[str, Any]:
    """A hook call shaped like the specification's examples (Bundle without ``type``)."""
    context: dict[str, Any] = {
        "userId": "Practitioner/123",
        "patientId": patient,
        "encounterId": "89284",
        "draftOrders": {
            "resourceType": "Bundle",
            "entry": [{"resource": copy.deepcopy(r)} for r in resources],
        },
    }
    if selections is not None:
        context["selections"] = selections
    return {
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "http://hooks.smarthealthit.org:9080",
        "hook": hook,
        "context": context,
    }


def medication_request(
    draft_id: str, system: str, code: str, display: str | None = None, **fields: Any
) -> dict[str, Any]:
    coding = {"system": system, "code": code, **({"display": display} if display else {})}
    return {
        "resourceType": "MedicationRequest",
        "id": draft_id,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/1288992"},
        "medicationCodeableConcept": {"coding": [coding]},
        **fields,
    }


def varenr_of(world, atc: str) -> str:
    found = world.get(f"/catalogue/packages?atc={atc}")
    assert found.status_code == 200, found.text
    body = found.json()
    items = body["items"] if isinstance(body, dict) and "items" in body else body
    return items[0]["varenr"]


def on_list(world, varenr: str) -> None:
    response = world.write(f"/patients/{world.patient_id}/prescriptions", prescribe_body(varenr))
    assert response.status_code == 201, response.text


def assert_no_empty_values(value: Any, where: str = "$") -> None:
    """CDS Hooks: a JSON value SHALL NOT be empty (no ``[]``, ``{}``, ``""`` or ``null``)."""
    assert value not in ([], {}, "", None), f"{where} is empty"
    if isinstance(value, dict):
        for key, item in value.items():
            assert_no_empty_values(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_no_empty_values(item, f"{where}[{index}]")


# --- the specification's examples -------------------------------------------------------------


@pytest.mark.parametrize(("hook", "path"), [("order-select", SELECT), ("order-sign", SIGN)])
def test_the_specifications_example_gets_a_not_checked_card_for_the_rxnorm_draft_only(
    world, hook, path
):
    selections = (
        ["NutritionOrder/pureeddiet-simple", "MedicationRequest/smart-MedicationRequest-103"]
        if hook == "order-select"
        else None
    )
    request = spec_request(
        hook, str(world.patient_id), PUREED_DIET, AMOXICILLIN_RXNORM, selections=selections
    )
    response = world.post(path, request)
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("Not checked: Amoxicillin")
    assert len(card["summary"]) <= 140
    assert "`MedicationRequest.medicationCodeableConcept.coding`" in card["detail"]
    assert "RxNorm" in card["detail"]
    assert card["extension"]["dev.medloop.draft"] == "smart-MedicationRequest-103"
    assert_no_empty_values(response.json())


def test_a_warfarin_patient_gets_the_ibuprofen_card_beside_the_rxnorm_drafts_not_checked_card(
    world,
):
    on_list(world, varenr_of(world, "B01AA03"))
    ibuprofen = medication_request("ibu", ATC, "M01AE01", "Ibuprofen")
    request = spec_request("order-sign", NATIONAL_ID, AMOXICILLIN_RXNORM, ibuprofen)
    response = world.post(SIGN, request)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    interactions = [c for c in cards if c["source"]["topic"]["code"] == "interaction"]
    assert interactions, cards
    assert any("arfarin" in c["summary"] and "buprofen" in c["summary"] for c in interactions)
    assert [
        c["extension"]["dev.medloop.draft"] for c in cards if "dev.medloop.draft" in c["extension"]
    ] == ["smart-MedicationRequest-103"]


def test_a_nutrition_order_beside_a_medication_request_is_ignored(world):
    on_list(world, SIMVASTATIN_28)
    request = spec_request(
        "order-sign",
        str(world.patient_id),
        PUREED_DIET,
        medication_request("rx1", NO_VARENR, KLARITROMYCIN),
    )
    cards = world.post(SIGN, request).json()["cards"]
    assert cards and all("pureeddiet" not in str(c) for c in cards)
    assert any(c["indicator"] == "critical" for c in cards)


# HL7 FHIR R4 example resource "medrx0302" (medicationrequest0302-example, HL7 FHIR R4
# examples, CC0), as published but for its generated narrative ``text.div`` (shortened).
MEDRX0302 = {
    "resourceType": "MedicationRequest",
    "id": "medrx0302",
    "text": {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml">Azithromycin 250mg capsule</div>',
    },
    "contained": [
        {
            "resourceType": "Medication",
            "id": "med0320",
            "code": {
                "coding": [
                    {
                        "system": SNOMED,
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
    "encounter": {
        "reference": "Encounter/f001",
        "display": "encounter who leads to this prescription",
    },
    "supportingInformation": [{"reference": "Coverage/SP1234"}],
    "authoredOn": "2015-01-15",
    "requester": {"reference": "Practitioner/f007", "display": "Patrick Pump"},
    "reasonCode": [
        {
            "coding": [
                {"system": SNOMED, "code": "11840006", "display": "Traveller's Diarrhea (disorder)"}
            ]
        }
    ],
    "note": [{"text": "Patient told to take with food"}],
    "dosageInstruction": [
        {
            "sequence": 1,
            "text": "Two tablets at once",
            "additionalInstruction": [
                {
                    "coding": [
                        {"system": SNOMED, "code": "311504000", "display": "With or after food"}
                    ]
                }
            ],
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            "route": {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral Route"}]},
            "method": {
                "coding": [
                    {
                        "system": SNOMED,
                        "code": "421521009",
                        "display": "Swallow - dosing instruction imperative (qualifier value)",
                    }
                ]
            },
            "doseAndRate": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/dose-rate-type",
                                "code": "ordered",
                                "display": "Ordered",
                            }
                        ]
                    },
                    "doseQuantity": {
                        "value": 2,
                        "unit": "TAB",
                        "code": "TAB",
                        "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
                    },
                }
            ],
        },
        {
            "sequence": 2,
            "text": "One tablet daily for 4 days",
            "additionalInstruction": [
                {
                    "coding": [
                        {"system": SNOMED, "code": "311504000", "display": "With or after food"}
                    ]
                }
            ],
            "timing": {"repeat": {"frequency": 4, "period": 1, "periodUnit": "d"}},
            "route": {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral Route"}]},
            "doseAndRate": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/dose-rate-type",
                                "code": "ordered",
                                "display": "Ordered",
                            }
                        ]
                    },
                    "doseQuantity": {
                        "value": 1,
                        "unit": "TAB",
                        "code": "TAB",
                        "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
                    },
                }
            ],
        },
    ],
    "dispenseRequest": {
        "validityPeriod": {"start": "2015-01-15", "end": "2016-01-15"},
        "numberOfRepeatsAllowed": 1,
        "quantity": {
            "value": 6,
            "unit": "TAB",
            "code": "TAB",
            "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
        },
        "expectedSupplyDuration": {"value": 5, "unit": "days", "system": UCUM, "code": "d"},
    },
    "substitution": {
        "allowedBoolean": True,
        "reason": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                    "code": "FP",
                    "display": "formulary policy",
                }
            ]
        },
    },
    "meta": {
        "tag": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                "code": "HTEST",
                "display": "test health data",
            }
        ]
    },
}


def test_hl7s_r4_example_with_a_contained_snomed_medication_is_named_not_checked(world):
    on_list(world, SIMVASTATIN_28)
    norwegian = copy.deepcopy(MEDRX0302)
    norwegian["id"] = "rx-no"
    norwegian["contained"][0]["code"]["coding"].append({"system": NO_VARENR, "code": KLARITROMYCIN})
    request = spec_request("order-sign", str(world.patient_id), MEDRX0302, norwegian)
    response = world.post(SIGN, request)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    [snomed] = [c for c in cards if c["extension"].get("dev.medloop.draft") == "medrx0302"]
    assert snomed["summary"].startswith("Not checked: Azithromycin 250mg capsule")
    assert snomed["extension"]["dev.medloop.element"] == (
        "MedicationRequest.medicationReference.resolve().code.coding"
    )
    assert "SNOMED CT" in snomed["detail"]
    assert any(c["indicator"] == "critical" for c in cards)


# --- codings real systems use -----------------------------------------------------------------


def test_a_contained_medication_coded_by_hl7_norways_varenummer_is_checked(world):
    on_list(world, SIMVASTATIN_28)
    draft = {
        "resourceType": "MedicationRequest",
        "id": "medrx-1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/1"},
        "contained": [
            {
                "resourceType": "Medication",
                "id": "med1",
                "code": {
                    "coding": [
                        {"system": SNOMED, "code": "387487009", "display": "Clarithromycin"},
                        {"system": NO_VARENR, "code": KLARITROMYCIN},
                    ]
                },
            }
        ],
        "medicationReference": {"reference": "#med1"},
    }
    cards = world.post(SIGN, spec_request("order-sign", str(world.patient_id), draft)).json()[
        "cards"
    ]
    assert any(c["indicator"] == "critical" for c in cards), cards


def test_a_medication_in_the_bundle_is_followed_and_a_dangling_reference_is_named(world):
    on_list(world, SIMVASTATIN_28)
    medication = {
        "resourceType": "Medication",
        "id": "m7",
        "code": {"coding": [{"system": NO_VARENR, "code": KLARITROMYCIN}]},
    }
    bundled = {
        "resourceType": "MedicationRequest",
        "id": "a",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/1"},
        "medicationReference": {"reference": "Medication/m7"},
    }
    dangling = {**bundled, "id": "b", "medicationReference": {"reference": "#nowhere"}}
    request = spec_request("order-sign", str(world.patient_id), medication, bundled, dangling)
    cards = world.post(SIGN, request).json()["cards"]
    assert any(c["indicator"] == "critical" for c in cards)
    [not_checked] = [c for c in cards if c["extension"].get("dev.medloop.draft") == "b"]
    assert not_checked["extension"]["dev.medloop.element"] == (
        "MedicationRequest.medicationReference.reference"
    )


def test_a_varenr_the_catalogue_does_not_know_is_named_and_the_other_draft_still_checked(world):
    on_list(world, SIMVASTATIN_28)
    request = spec_request(
        "order-sign",
        str(world.patient_id),
        medication_request("gone", NO_VARENR, "999999", "Gammelt preparat"),
        medication_request("rx1", NO_VARENR, KLARITROMYCIN),
    )
    response = world.post(SIGN, request)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    [gone] = [c for c in cards if c["extension"].get("dev.medloop.draft") == "gone"]
    assert "varenr 999999 is not in FEST catalogue version" in gone["summary"]
    assert gone["extension"]["dev.medloop.element"].endswith(".coding[0].code")
    assert any(c["indicator"] == "critical" for c in cards)


def test_a_malformed_dosage_is_named_and_the_draft_still_checked_for_interactions(world):
    on_list(world, SIMVASTATIN_28)
    broken = medication_request(
        "rx1",
        NO_VARENR,
        KLARITROMYCIN,
        dosageInstruction=[
            {"doseAndRate": [{"doseQuantity": {"value": "a lot"}}], "futureElement": True}
        ],
    )
    cards = world.post(SIGN, spec_request("order-sign", str(world.patient_id), broken)).json()[
        "cards"
    ]
    assert any(c["indicator"] == "critical" for c in cards)
    assert not any("futureElement" in c["detail"] for c in cards)


# --- ATC drafts with a route --------------------------------------------------------------------


def paracetamol(dose_mg: int, times: int, route: dict[str, Any] | None) -> dict[str, Any]:
    dosage: dict[str, Any] = {
        "timing": {"repeat": {"frequency": times, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": {"value": dose_mg, "system": UCUM, "code": "mg"}}],
    }
    if route is not None:
        dosage["route"] = route
    return medication_request("p", ATC, "N02BE01", "Paracetamol", dosageInstruction=[dosage])


def weighed(world) -> None:
    response = world.post(
        f"/patients/{world.patient_id}/observations",
        {"weight": {"kg": 70, "measured_at": "2026-11-19T08:00:00Z"}},
    )
    assert response.status_code == 200, response.text


def test_route_codes_of_snomed_edqm_and_fest_map_to_the_fest_route():
    assert route_for(SNOMED, "26643006") == "53"
    assert route_for("http://standardterms.edqm.eu", "20053000") == "53"
    assert route_for("urn:oid:2.16.578.1.12.4.1.1.7477", "43") == "43"
    assert route_for(SNOMED, "47625008") == "43"
    assert route_for(SNOMED, "1234") is None


@pytest.mark.parametrize(
    "route",
    [
        {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]},
        {"coding": [{"system": "http://standardterms.edqm.eu", "code": "20053000"}]},
    ],
)
def test_an_atc_coded_paracetamol_overdose_with_a_route_gets_critical_dose_cards(world, route):
    weighed(world)
    request = spec_request("order-sign", str(world.patient_id), paracetamol(1500, 4, route))
    cards = world.post(SIGN, request).json()["cards"]
    dose = [c for c in cards if c["source"]["topic"]["code"] == "dose"]
    assert dose and {c["indicator"] for c in dose} == {"critical"}, cards
    assert all(c.get("overrideReasons") for c in dose)
    assert "N02BE01" not in " ".join(c["summary"] for c in cards)


def test_an_atc_draft_without_a_route_is_told_which_element_is_missing(world):
    weighed(world)
    cards = world.post(
        SIGN, spec_request("order-sign", str(world.patient_id), paracetamol(1500, 4, None))
    ).json()["cards"]
    [card] = [c for c in cards if c["source"]["topic"]["code"] == "dose-not-checked"]
    assert "MedicationRequest.dosageInstruction.route: absent" in card["detail"]
    unknown = {"coding": [{"system": SNOMED, "code": "1234"}]}
    cards = world.post(
        SIGN, spec_request("order-sign", str(world.patient_id), paracetamol(1500, 4, unknown))
    ).json()["cards"]
    [card] = [c for c in cards if c["source"]["topic"]["code"] == "dose-not-checked"]
    assert "MedicationRequest.dosageInstruction[0].route" in card["detail"]
    assert "http://snomed.info/sct|1234" in card["detail"]


# --- unusable requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.pop("hookInstance"), "hookInstance"),
        (lambda r: r.update(hook="patient-view"), "hook"),
        (lambda r: r.pop("context"), "context"),
        (lambda r: r["context"]["draftOrders"].pop("resourceType"), "resourceType"),
        (lambda r: r["context"]["draftOrders"].update(entry="x"), "entry"),
    ],
)
def test_an_unusable_request_is_a_422_naming_the_field(world, change, field):
    request = spec_request("order-sign", str(world.patient_id), AMOXICILLIN_RXNORM)
    change(request)
    response = world.post(SIGN, request)
    assert response.status_code == 422, response.text
    assert any(field in error["loc"] for error in response.json()["errors"])


# --- cards as the specification wants them ----------------------------------------------------


def test_discovery_and_cards_carry_no_empty_values_and_reverse_domain_extension_keys(world):
    discovery = world.client.get("/cds-services").json()
    assert_no_empty_values(discovery)
    on_list(world, SIMVASTATIN_28)
    on_list(world, varenr_of(world, "B01AA03"))
    request = spec_request(
        "order-sign",
        str(world.patient_id),
        medication_request("rx1", NO_VARENR, KLARITROMYCIN),
        medication_request("ibu", ATC, "M01AE01", "Ibuprofen"),
    )
    cards = world.post(SIGN, request).json()["cards"]
    assert len(cards) >= 2
    for card in cards:
        assert_no_empty_values(card)
        assert all(key.startswith("dev.medloop.") for key in card["extension"])
        assert not UUID_TEXT.search(card["detail"].replace(card["uuid"], ""))
        assert "\n\n\n" not in card["detail"] and len(card["summary"]) <= 140
        assert ("overrideReasons" in card) == card["extension"].get(
            "dev.medloop.requires-override", False
        )


def test_a_cards_alert_key_is_the_override_key_of_the_prescribe_with_the_drafts_id(world):
    on_list(world, SIMVASTATIN_28)
    entry_id = str(uuid.uuid4())
    request = spec_request(
        "order-sign", str(world.patient_id), medication_request(entry_id, NO_VARENR, KLARITROMYCIN)
    )
    [card] = [c for c in world.post(SIGN, request).json()["cards"] if c.get("overrideReasons")]
    key = card["extension"]["dev.medloop.alert-key"]
    body = prescribe_body(KLARITROMYCIN, entry_id=entry_id)
    refused = world.write(f"/patients/{world.patient_id}/prescriptions", body)
    assert refused.status_code == 409
    assert key in refused.text
    body["overrides"] = {key: card["overrideReasons"][0]["display"]}
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201


def test_the_openapi_document_names_every_cds_model_uniquely(world):
    schemas = world.client.get("/openapi.json").json()["components"]["schemas"]
    for name in (
        "CdsCard",
        "CdsCardSource",
        "CdsCoding",
        "CdsHookRequest",
        "CdsDiscovery",
        "CdsFeedbackRequest",
    ):
        assert name in schemas
    assert "Source" not in schemas or "label" not in schemas["Source"].get("properties", {})


# --- CDS client JWTs and CORS -----------------------------------------------------------------

CLIENT = "https://ehr.example.org"
BASE = "https://medloop.example.org"
JKU = "https://ehr.example.org/.well-known/jwks.json"
EHR_ORIGIN = "https://ehr-app.example.org"


@pytest.fixture
def keys():
    ec_key = ec.generate_private_key(ec.SECP384R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {"ec": ec_key, "rsa": rsa_key}


@pytest.fixture
def ehr(world, keys):
    """The world's app again, trusting one CDS client with an ES384 and an RS384 key."""
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    public = {
        "ec": ECAlgorithm.to_jwk(keys["ec"].public_key(), as_dict=True),
        "rsa": RSAAlgorithm.to_jwk(keys["rsa"].public_key(), as_dict=True),
    }
    clients = {
        CLIENT: TrustedClient(
            CLIENT,
            "Example EHR",
            "974589095",
            (JKU,),
            {
                "ec-1": (jwt.PyJWK({**public["ec"], "kid": "ec-1"}).key, frozenset({"ES384"})),
                "rsa-1": (jwt.PyJWK({**public["rsa"], "kid": "rsa-1"}).key, frozenset({"RS384"})),
            },
        )
    }
    app = create_app(
        ApiSettings.from_env("sqlite://"),
        engine=world.engine,
        clock=world.clock,
        cds_settings=CdsSettings(clients, BASE, (EHR_ORIGIN,)),
    )
    return TestClient(app)


def client_token(
    keys,
    path: str = SIGN,
    *,
    alg: str = "ES384",
    drop: str | None = None,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    now = int(time.time())
    body = {
        "iss": CLIENT,
        "aud": f"{BASE}{path}",
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "sub": "client-1",
        **claims,
    }
    if drop:
        body.pop(drop)
    key, kid = (keys["ec"], "ec-1") if alg == "ES384" else (keys["rsa"], "rsa-1")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return jwt.encode(body, pem, algorithm=alg, headers={"kid": kid, "jku": JKU, **(headers or {})})


def call(ehr, token: str, body: dict[str, Any], path: str = SIGN):
    return ehr.post(path, json=body, headers={"Authorization": f"Bearer {token}"})


def test_a_trusted_clients_es384_and_rs384_tokens_are_accepted_and_the_user_is_audited(
    world,
    ehr,
    keys,
):
    request = spec_request("order-sign", str(world.patient_id), AMOXICILLIN_RXNORM)
    for alg in ("ES384", "RS384"):
        response = call(ehr, client_token(keys, alg=alg), request)
        assert response.status_code == 200, response.text
    with world.engine.connect() as conn:
        rows = conn.execute(
            select(audit_event.c.actor, audit_event.c.organisation).where(
                audit_event.c.action == "cds.order-sign"
            )
        ).all()
    assert rows and all(tuple(r) == ("Practitioner/123", "974589095") for r in rows)


def test_a_replayed_client_token_is_refused(world, ehr, keys):
    request = spec_request("order-sign", str(world.patient_id), AMOXICILLIN_RXNORM)
    token = client_token(keys)
    assert call(ehr, token, request).status_code == 200
    again = call(ehr, token, request)
    assert again.status_code == 401 and "jti" in again.json()["detail"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"drop": "jti"}, "jti"),
        ({"drop": "iat"}, "iat"),
        ({"drop": "exp"}, "exp"),
        ({"aud": f"{BASE}/cds-services/medloop-order-select"}, "aud"),
        ({"headers": {"kid": "nope"}}, "kid"),
        ({"headers": {"jku": "https://evil.example/jwks.json"}}, "jku"),
        ({"exp": int(time.time()) + 3600}, "exp"),
    ],
)
def test_a_client_token_with_a_missing_or_wrong_claim_is_a_401_naming_it(
    world,
    ehr,
    keys,
    change,
    named,
):
    request = spec_request("order-sign", str(world.patient_id), AMOXICILLIN_RXNORM)
    response = call(ehr, client_token(keys, **change), request)
    assert response.status_code == 401, response.text
    assert named in response.json()["detail"]


def test_a_client_token_is_good_for_the_cds_routes_only(world, ehr, keys):
    response = ehr.get(
        f"/patients/{world.patient_id}/list",
        headers={"Authorization": f"Bearer {client_token(keys)}"},
    )
    assert response.status_code == 401


def test_cors_preflight_answers_the_configured_ehr_origin_on_the_cds_routes_only(ehr):
    preflight = {
        "Origin": EHR_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = ehr.options(SIGN, headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == EHR_ORIGIN
    assert allowed.headers["cache-control"] == "no-store" and allowed.headers["x-request-id"]
    other = ehr.options(SIGN, headers={**preflight, "Origin": "https://other.example"})
    assert "access-control-allow-origin" not in other.headers
    elsewhere = ehr.get("/catalogue", headers={"Origin": EHR_ORIGIN})
    assert "access-control-allow-origin" not in elsewhere.headers


def _client_file(tmp_path, keys, **client: Any):
    import json

    from jwt.algorithms import ECAlgorithm

    jwk = {**ECAlgorithm.to_jwk(keys["ec"].public_key(), as_dict=True), "kid": "ec-1"}
    entry = {
        "iss": CLIENT,
        "organisation": "974589095",
        "jku": [JKU],
        "jwks": {"keys": [jwk]},
        **client,
    }
    path = tmp_path / "clients.json"
    path.write_text(json.dumps({"clients": [entry]}))
    return path


def test_the_trusted_clients_file_is_read_and_a_bad_one_refused(tmp_path, keys, monkeypatch):
    from medloop.api.config import InvalidSetting

    monkeypatch.setenv("MEDLOOP_CDS_CLIENTS_FILE", str(_client_file(tmp_path, keys)))
    monkeypatch.setenv("MEDLOOP_CDS_BASE_URL", BASE + "/")
    monkeypatch.setenv("MEDLOOP_CDS_CORS_ORIGINS", f"{EHR_ORIGIN}, https://other.example")
    settings = CdsSettings.from_env("medloop-dev")
    assert settings.base_url == BASE and set(settings.clients[CLIENT].keys) == {"ec-1"}
    assert settings.origins == (EHR_ORIGIN, "https://other.example")
    with pytest.raises(InvalidSetting, match="end-user token issuer"):
        CdsSettings.from_env(CLIENT)
    private = keys["ec"].private_numbers().private_value
    from jwt.algorithms import ECAlgorithm

    secret = {**ECAlgorithm.to_jwk(keys["ec"], as_dict=True), "kid": "x"}
    assert secret["d"] and private
    monkeypatch.setenv(
        "MEDLOOP_CDS_CLIENTS_FILE", str(_client_file(tmp_path, keys, jwks={"keys": [secret]}))
    )
    with pytest.raises(InvalidSetting, match="private"):
        CdsSettings.from_env()
    monkeypatch.setenv("MEDLOOP_CDS_CLIENTS_FILE", str(_client_file(tmp_path, keys)))
    monkeypatch.delenv("MEDLOOP_CDS_BASE_URL")
    with pytest.raises(InvalidSetting, match="MEDLOOP_CDS_BASE_URL"):
        CdsSettings.from_env()


def test_order_select_tells_an_interaction_of_the_selection_with_an_earlier_draft(world):
    request = spec_request(
        "order-select",
        str(world.patient_id),
        medication_request("earlier", NO_VARENR, KLARITROMYCIN),
        medication_request("new", NO_VARENR, SIMVASTATIN_28),
        medication_request("rxnorm-earlier", RXNORM, "617993"),
        selections=["MedicationRequest/new"],
    )
    cards = world.post(SELECT, request).json()["cards"]
    critical = [c for c in cards if c["indicator"] == "critical"]
    assert critical and all(
        {"earlier", "new"} <= set(c["extension"]["dev.medloop.alert-key"].split("/")[-1].split(","))
        for c in critical
    )
    assert not any(c["extension"].get("dev.medloop.draft") == "rxnorm-earlier" for c in cards)


def test_a_client_call_without_a_user_is_a_422_naming_context_user_id(world, ehr, keys):
    request = spec_request("order-sign", str(world.patient_id), AMOXICILLIN_RXNORM)
    del request["context"]["userId"]
    response = call(ehr, client_token(keys), request)
    assert response.status_code == 422, response.text
    assert ["body", "context", "userId"] in [e["loc"] for e in response.json()["errors"]]


def test_used_jtis_are_deleted_once_every_token_carrying_them_has_expired(world, ehr, keys):
    from datetime import UTC, datetime, timedelta

    from medloop.store.idempotency import idempotency_key

    request = spec_request("order-sign", str(world.patient_id), AMOXICILLIN_RXNORM)
    assert call(ehr, client_token(keys, jti="first"), request).status_code == 200
    jtis = select(idempotency_key.c.key).where(idempotency_key.c.scope.like("cds-client-jti/%"))
    with world.engine.begin() as conn:
        assert conn.execute(jtis).scalars().all() == ["first"]
        conn.execute(
            idempotency_key.update().values(created_at=datetime.now(UTC) - timedelta(minutes=7))
        )
    assert call(ehr, client_token(keys, jti="second"), request).status_code == 200
    with world.engine.connect() as conn:
        assert conn.execute(jtis).scalars().all() == ["second"]
