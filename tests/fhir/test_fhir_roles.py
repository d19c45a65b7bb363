"""Organisations in the references: who wrote a prescription or a list change is a
``PractitionerRole`` (the practitioner acting for an organisation, R4's way to name both), a
dispense is performed by the pharmacist and by the pharmacy (an Organization), and a
PractitionerRole is readable by id and searchable by practitioner and organisation for whoever
may read a record naming it, audited as every Practitioner and Organization read. Each test
runs on SQLite and PostgreSQL (the ``world`` fixture)."""

from __future__ import annotations

from medloop.fhir import resources as fhir
from medloop.store import audit
from tests.api.helpers import NATIONAL_ID, NURSING_HOME
from tests.fhir.helpers import (
    dispensed,
    fhir_get,
    nurse_token,
    outcome_of,
    patient_token,
    pharmacist_token,
    resources_of,
    validated,
)
from tests.loop.helpers import GP, PHARMACIST

GP_HPR, GP_ORG = GP.personnel.hpr_number, GP.organisation.id
GP_ROLE = f"{GP_HPR}-{GP_ORG}"
PHARMACY = PHARMACIST.organisation.id


def _latest_action(world) -> str:
    with world.engine.connect() as conn:
        return audit.events_for_patient(conn, NATIONAL_ID, limit=1).events[0].action


def test_the_prescriber_and_the_lists_author_are_a_role_naming_their_organisation(world):
    rx = dispensed(world)
    request = fhir_get(world, f"/fhir/MedicationRequest/{rx}", token=patient_token()).json()
    assert request["requester"] == {
        "reference": f"PractitionerRole/{GP_ROLE}",
        "display": f"{GP.personnel.name}, {GP.organisation.name}",
    }
    statements = fhir_get(world, f"/fhir/MedicationStatement?patient={world.patient_id}").json()
    (statement,) = resources_of(validated(statements))
    assert statement["informationSource"]["reference"] == f"PractitionerRole/{GP_ROLE}"

    # The patient follows the reference: the role, then its practitioner and organisation.
    found = fhir_get(world, f"/fhir/PractitionerRole/{GP_ROLE}", token=patient_token())
    assert found.status_code == 200, found.text
    role = validated(found.json())
    assert role["practitioner"]["reference"] == f"Practitioner/{GP_HPR}"
    assert role["organization"] == {
        "reference": f"Organization/{GP_ORG}",
        "identifier": {"system": fhir.organisation_system(GP_ORG), "value": GP_ORG},
        "display": GP.organisation.name,
    }
    assert role["code"] == [{"coding": [{"system": fhir.PRACTITIONER_ROLE, "code": "doctor"}]}]
    assert _latest_action(world).endswith("fhir-PractitionerRole")
    for reference in (role["practitioner"]["reference"], role["organization"]["reference"]):
        resolved = fhir_get(world, f"/fhir/{reference}", token=patient_token())
        assert resolved.status_code == 200, resolved.text
        assert validated(resolved.json())["id"] == reference.split("/")[1]


def test_a_dispense_is_performed_by_the_pharmacist_and_the_pharmacy(world):
    dispensed(world)
    bundle = fhir_get(world, f"/fhir/MedicationDispense?patient={world.patient_id}").json()
    (dispense,) = resources_of(validated(bundle))
    actors = [p["actor"] for p in dispense["performer"]]
    assert [a["reference"] for a in actors] == [
        f"Practitioner/{PHARMACIST.personnel.hpr_number}",
        f"Organization/{PHARMACY}",
    ]
    assert actors[1]["identifier"] == {"system": fhir.HER_ID, "value": PHARMACY}
    assert dispense["location"] == {"display": PHARMACIST.organisation.name}
    pharmacy = validated(fhir_get(world, f"/fhir/{actors[1]['reference']}").json())
    assert pharmacy["name"] == PHARMACIST.organisation.name
    # The pharmacist acting for the pharmacy is a role too (named by the dispense).
    role = f"{PHARMACIST.personnel.hpr_number}-{PHARMACY}"
    found = validated(fhir_get(world, f"/fhir/PractitionerRole/{role}").json())
    assert found["code"][0]["coding"][0]["code"] == "pharmacist"


def test_roles_are_found_by_practitioner_organisation_and_id(world):
    dispensed(world)
    by_practitioner = fhir_get(world, f"/fhir/PractitionerRole?practitioner=Practitioner/{GP_HPR}")
    (role,) = resources_of(validated(by_practitioner.json()))
    assert role["id"] == GP_ROLE
    both = f"/fhir/PractitionerRole?practitioner={GP_HPR}&organization=Organization/{GP_ORG}"
    assert resources_of(fhir_get(world, both, token=pharmacist_token()).json()) == [role]
    elsewhere = f"/fhir/PractitionerRole?practitioner={GP_HPR}&organization={PHARMACY}"
    assert resources_of(fhir_get(world, elsewhere).json()) == []
    by_id = fhir_get(world, f"/fhir/PractitionerRole?_id={GP_ROLE},{GP_HPR}-{PHARMACY}")
    assert resources_of(by_id.json()) == [role]
    # Every parameter must match: the id of one role and another practitioner find nothing.
    mixed = f"/fhir/PractitionerRole?_id={GP_ROLE}&practitioner={PHARMACIST.personnel.hpr_number}"
    assert resources_of(fhir_get(world, mixed).json()) == []
    outcome_of(fhir_get(world, "/fhir/PractitionerRole?organization=" + GP_ORG), 400)
    outcome_of(fhir_get(world, "/fhir/PractitionerRole?practitioner=Patient/1"), 400)
    outcome_of(fhir_get(world, "/fhir/PractitionerRole?specialty=x"), 400)


def test_no_role_is_shown_from_records_the_caller_may_not_read(world):
    dispensed(world)
    # A nurse of a home the patient is not admitted to: the policy refuses the records.
    outcome_of(fhir_get(world, f"/fhir/PractitionerRole/{GP_ROLE}", token=nurse_token()), 404)
    search = f"/fhir/PractitionerRole?practitioner={GP_HPR}"
    assert resources_of(fhir_get(world, search, token=nurse_token()).json()) == []
    # A practitioner named by the records, but not acting for that organisation.
    outcome_of(fhir_get(world, f"/fhir/PractitionerRole/{GP_HPR}-{PHARMACY}"), 404)
    # Not a role id at all.
    for wrong in ("abc-1", GP_HPR, f"{GP_HPR}-", "1" * 10 + "-1"):
        outcome_of(fhir_get(world, f"/fhir/PractitionerRole/{wrong}"), 404)
    # The nurse's own role (SMART fhirUser) needs no record.
    own = fhir_get(world, f"/fhir/PractitionerRole/5551234-{NURSING_HOME}", token=nurse_token())
    assert validated(own.json())["code"][0]["coding"][0]["code"] == "nurse"
