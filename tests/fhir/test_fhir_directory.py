"""Practitioner and Organization: readable, by id and by ``identifier=system|value``, for the
health professionals and organisations named in records the caller may read (the prescriber
and author of list changes, the dispensing pharmacist and pharmacy, the performer and witness
of a charted dose), so that the references in MedicationRequest, MedicationStatement and
MedicationDispense resolve; nothing for someone named only in records the caller may not
read. Each test runs on SQLite and PostgreSQL (the ``world`` fixture)."""

from __future__ import annotations

import pytest

from medloop.api.auth import issue_token
from medloop.fhir import resources as fhir
from medloop.store import audit
from tests.api.helpers import (
    NATIONAL_ID,
    NURSING_HOME,
    admitted,
)
from tests.fhir.helpers import (
    dispensed,
    fhir_get,
    gp_token,
    nurse_token,
    outcome_of,
    patient_token,
    pharmacist_token,
    resources_of,
    validated,
)
from tests.loop.helpers import GP, PHARMACIST

GP_HPR, GP_ORG = GP.personnel.hpr_number, GP.organisation.id
PHARMACIST_HPR, PHARMACY = PHARMACIST.personnel.hpr_number, PHARMACIST.organisation.id


def _latest_event(world) -> audit.AuditEvent | None:
    with world.engine.connect() as conn:
        events = audit.events_for_patient(conn, NATIONAL_ID).events
    return events[0] if events else None


def test_the_references_of_a_prescription_and_its_dispense_resolve(world):
    rx = dispensed(world)
    request = fhir_get(world, f"/fhir/MedicationRequest/{rx}", token=patient_token()).json()
    # The prescriber acting for their practice; the role names the Practitioner.
    role = request["requester"]["reference"]
    assert role == f"PractitionerRole/{GP_HPR}-{GP_ORG}"
    found = fhir_get(world, f"/fhir/{role}", token=patient_token())
    requester = validated(found.json())["practitioner"]["reference"]
    assert requester == f"Practitioner/{GP_HPR}"
    # The patient reads the prescriber their own record names, and the read is audited.
    found = fhir_get(world, f"/fhir/{requester}", token=patient_token())
    assert found.status_code == 200, found.text
    practitioner = validated(found.json())
    assert practitioner["identifier"] == [{"system": fhir.HPR, "value": GP_HPR}]
    assert practitioner["name"] == [{"text": GP.personnel.name}]
    event = _latest_event(world)
    assert event is not None and event.action.endswith("fhir-Practitioner")
    assert event.request_id == found.headers["X-Request-ID"]
    # The GP reads the pharmacist named as the dispense's performer, and the pharmacy.
    (dispense,) = resources_of(
        fhir_get(world, f"/fhir/MedicationDispense?patient={world.patient_id}").json()
    )
    performer = dispense["performer"][0]["actor"]["reference"]
    assert performer == f"Practitioner/{PHARMACIST_HPR}"
    pharmacist = validated(fhir_get(world, f"/fhir/{performer}").json())
    assert pharmacist["name"] == [{"text": PHARMACIST.personnel.name}]
    pharmacy = validated(fhir_get(world, f"/fhir/Organization/{PHARMACY}").json())
    assert pharmacy["identifier"] == [{"system": fhir.HER_ID, "value": PHARMACY}]
    assert pharmacy["name"] == PHARMACIST.organisation.name
    # The pharmacist reads the prescriber (named on the prescription they may read).
    prescriber = fhir_get(world, f"/fhir/{requester}", token=pharmacist_token())
    assert validated(prescriber.json())["id"] == GP_HPR


def test_practitioners_and_organisations_are_found_by_identifier(world):
    dispensed(world)
    hpr = f"/fhir/Practitioner?identifier={fhir.HPR}|{PHARMACIST_HPR}"
    (found,) = resources_of(validated(fhir_get(world, hpr).json()))
    assert found["id"] == PHARMACIST_HPR
    (by_id,) = resources_of(fhir_get(world, f"/fhir/Practitioner?_id={PHARMACIST_HPR}").json())
    assert by_id == found
    # Another system's identifier with the same digits is not an HPR number.
    other = fhir_get(world, f"/fhir/Practitioner?identifier={fhir.FNR}|{PHARMACIST_HPR}")
    assert resources_of(other.json()) == []
    her = f"/fhir/Organization?identifier={fhir.HER_ID}|{PHARMACY}"
    (org,) = resources_of(validated(fhir_get(world, her, token=patient_token()).json()))
    assert org["id"] == PHARMACY
    # A HER-id is not an organisation number.
    number = f"/fhir/Organization?identifier={fhir.ORG_NUMBER}|{PHARMACY}"
    assert resources_of(fhir_get(world, number).json()) == []
    unknown = fhir_get(world, f"/fhir/Practitioner?identifier={fhir.HPR}|1234567")
    assert validated(unknown.json())["total"] == 0
    outcome_of(fhir_get(world, "/fhir/Practitioner"), 400)
    outcome_of(fhir_get(world, "/fhir/Organization?name=Apotek"), 400)


def test_nobody_is_shown_from_records_the_caller_may_not_read(world):
    dispensed(world)
    # A nurse of a home the patient is not admitted to: the policy refuses the records.
    outcome_of(fhir_get(world, f"/fhir/Practitioner/{GP_HPR}", token=nurse_token()), 404)
    outcome_of(fhir_get(world, f"/fhir/Organization/{PHARMACY}", token=nurse_token()), 404)
    # A person without a list, and a system client.
    other = issue_token("patient", "15035010030", scope="patient/*.rs")
    outcome_of(fhir_get(world, f"/fhir/Practitioner/{GP_HPR}", token=other), 404)
    exporter = issue_token("exporter", "registry-client", NURSING_HOME, scope="system/*.r")
    outcome_of(fhir_get(world, f"/fhir/Practitioner/{GP_HPR}", token=exporter), 404)
    # Scopes: a clinician's patient/ scope reaches only the launch patient's records.
    unlaunched = gp_token(scope="patient/*.rs")
    outcome_of(fhir_get(world, f"/fhir/Practitioner/{PHARMACIST_HPR}", token=unlaunched), 404)
    launched = gp_token(scope="patient/*.rs", patient=str(world.patient_id))
    assert fhir_get(world, f"/fhir/Practitioner/{PHARMACIST_HPR}", token=launched).is_success
    # Nobody records an HPR number that is not one; an overlong id is simply not found.
    outcome_of(fhir_get(world, "/fhir/Practitioner/1234567"), 404)
    outcome_of(fhir_get(world, "/fhir/Organization/" + "9" * 80), 404)


@pytest.mark.parametrize("resource", ["Practitioner", "Organization"])
def test_a_nurse_sees_who_is_named_in_the_records_of_her_admitted_patients(world, resource):
    key = GP_HPR if resource == "Practitioner" else GP_ORG
    admitted(world)  # prescribed by the GP, then admitted to a ward of NURSING_HOME
    found = fhir_get(world, f"/fhir/{resource}/{key}", token=nurse_token())
    assert found.status_code == 200, found.text
    assert validated(found.json())["id"] == key
    event = _latest_event(world)
    assert event is not None and event.action.endswith(f"fhir-{resource}")
    assert event.actor == "5551234"
