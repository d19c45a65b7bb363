"""Access through /fhir is the intersection of the token's SMART scopes and the role ×
organisation policy: every cell of scope × role × organisation, for a read of the list
(MedicationStatement search), a read of the chart (MedicationAdministration search) and a
prescription (MedicationRequest create); refusals audited, nothing stored."""

from __future__ import annotations

import json
from uuid import UUID

import pytest
from sqlalchemy import func, select

from medloop.api.auth import issue_token
from medloop.store import audit
from medloop.store.db import make_engine
from medloop.store.list_changes import list_version
from medloop.store.migrate import upgrade
from medloop.store.prescriptions import prescription
from tests.api.helpers import (
    NATIONAL_ID,
    NURSING_HOME,
    OTHER_NATIONAL_ID,
    admitted,
    make_world,
)
from tests.fhir.helpers import FHIR_JSON, medication_request
from tests.loop.helpers import GP, PHARMACIST, another_patient

OTHER_HOME = "8012399"

SCOPES = {
    "none": None,
    "user/*.rs": "user/*.rs",
    "user/MedicationStatement.rs": "user/MedicationStatement.rs",
    "user/MedicationRequest.c": "user/MedicationRequest.c",
    "user/*.cruds": "user/*.cruds",
    "patient/*.rs": "patient/*.rs",
    "patient/*.rs+context": "patient/*.rs",
    "v1 user/*.read": "user/*.read",
    "openid only": "openid fhirUser",
}
PEOPLE = {
    "gp": ("gp", "431002737", GP.organisation.id),
    "nurse own home": ("nurse", "5551234", NURSING_HOME),
    "nurse other home": ("nurse", "5550000", OTHER_HOME),
    "pharmacist": ("pharmacist", PHARMACIST.personnel.hpr_number, PHARMACIST.organisation.id),
    "patient self": ("patient", NATIONAL_ID, None),
    "other patient": ("patient", OTHER_NATIONAL_ID, None),
}


def _token(person: str, scope_name: str, patient_id) -> str:
    role, subject, org = PEOPLE[person]
    context = str(patient_id) if scope_name.endswith("+context") and role != "patient" else None
    return issue_token(role, subject, org, scope=SCOPES[scope_name], patient=context)


def _read_granted(scope_name: str, resource: str, person: str) -> bool:
    scope = SCOPES[scope_name]
    if scope is None or scope == "openid fhirUser":
        return False
    if scope_name in ("user/MedicationRequest.c",):
        return False
    if scope_name == "user/MedicationStatement.rs" and resource != "MedicationStatement":
        return False
    if scope_name == "patient/*.rs":
        return PEOPLE[person][0] == "patient"
    return True


POLICY_READ = {
    # (person, resource) → the role × organisation policy allows it
    ("gp", "MedicationStatement"): True,
    ("nurse own home", "MedicationStatement"): True,
    ("nurse other home", "MedicationStatement"): False,
    ("pharmacist", "MedicationStatement"): False,
    ("patient self", "MedicationStatement"): True,
    ("other patient", "MedicationStatement"): False,
    ("gp", "MedicationAdministration"): True,
    ("nurse own home", "MedicationAdministration"): True,
    ("nurse other home", "MedicationAdministration"): False,
    ("pharmacist", "MedicationAdministration"): False,
    ("patient self", "MedicationAdministration"): True,
    ("other patient", "MedicationAdministration"): False,
}


@pytest.fixture(scope="module")
def admitted_world(module_db_url):
    """One world per database for the whole read matrix: the reads change nothing but the
    access log, and each cell checks the newest audit event (its own)."""
    engine = make_engine(module_db_url)
    upgrade(engine)
    world = make_world(engine)
    admitted(world)  # two entries, admitted to a ward of NURSING_HOME
    yield world
    engine.dispose()


@pytest.mark.parametrize("resource", ["MedicationStatement", "MedicationAdministration"])
@pytest.mark.parametrize("person", list(PEOPLE))
@pytest.mark.parametrize("scope_name", list(SCOPES))
def test_reads_need_both_a_scope_and_the_policy(admitted_world, scope_name, person, resource):
    world = admitted_world
    token = _token(person, scope_name, world.patient_id)
    query = "" if PEOPLE[person][0] == "patient" else f"?patient={world.patient_id}"
    response = world.client.get(
        f"/fhir/{resource}{query}", headers={"Authorization": f"Bearer {token}"}
    )
    allowed = _read_granted(scope_name, resource, person) and POLICY_READ[(person, resource)]
    if PEOPLE[person] == PEOPLE["other patient"] and allowed is False:
        # No list is kept for the other person: refused alike (no patient data).
        assert response.status_code == 403, response.text
    assert response.status_code == (200 if allowed else 403), response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    if not allowed and PEOPLE[person][0] != "patient":
        with world.engine.connect() as conn:
            latest = audit.events_for_patient(conn, NATIONAL_ID).events[0]
        assert str(latest.outcome) == "refused"


WRITE_GRANTED = {"user/MedicationRequest.c", "user/*.cruds"}


@pytest.mark.parametrize("person", list(PEOPLE))
@pytest.mark.parametrize("scope_name", list(SCOPES))
def test_prescribing_needs_a_create_scope_and_the_prescriber_role(world, scope_name, person):
    token = _token(person, scope_name, world.patient_id)
    response = world.client.post(
        "/fhir/MedicationRequest",
        content=json.dumps(medication_request(world)),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": FHIR_JSON,
            "If-Match": '"0"',
        },
    )
    allowed = scope_name in WRITE_GRANTED and person == "gp"
    assert response.status_code == (201 if allowed else 403), response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    assert world.version() == (1 if allowed else 0)


def _second_patient(world) -> UUID:
    return another_patient(world.engine)


def _stored(world, patient_id: UUID) -> tuple[int, int]:
    """(list version, prescriptions) of ``patient_id`` as stored."""
    with world.engine.connect() as conn:
        return list_version(conn, patient_id), conn.execute(
            select(func.count())
            .select_from(prescription)
            .where(prescription.c.patient_id == str(patient_id))
        ).scalar_one()


def _prescribe_for(world, patient_id: UUID, token: str):
    body = medication_request(world, subject={"reference": f"Patient/{patient_id}"})
    return world.client.post(
        "/fhir/MedicationRequest",
        content=json.dumps(body),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": FHIR_JSON,
            "If-Match": f'"{_stored(world, patient_id)[0]}"',
        },
    )


@pytest.mark.parametrize(
    "scope", ["patient/MedicationRequest.c", "patient/MedicationRequest.cruds"]
)
def test_a_patient_launch_scope_writes_only_for_the_launch_patient(world, scope):
    """A GP's token launched for one patient (SMART ``patient`` context) with a
    ``patient/MedicationRequest`` create scope prescribes for that patient and for nobody
    else (refused, audited, nothing stored); without a launch patient it prescribes for no
    one."""
    other = _second_patient(world)
    launched = issue_token(
        "gp", *PEOPLE["gp"][1:], scope=f"launch/patient {scope}", patient=str(world.patient_id)
    )
    elsewhere = _prescribe_for(world, other, launched)
    assert elsewhere.status_code == 403, elsewhere.text
    assert elsewhere.json()["resourceType"] == "OperationOutcome"
    assert _stored(world, other) == (0, 0)
    with world.engine.connect() as conn:
        refusal = audit.events_for_patient(conn, OTHER_NATIONAL_ID).events[0]
    assert str(refusal.outcome) == "refused"
    assert refusal.action == "api.fhir.MedicationRequest.create"
    unlaunched = issue_token("gp", *PEOPLE["gp"][1:], scope=scope)
    assert _prescribe_for(world, world.patient_id, unlaunched).status_code == 403
    assert _stored(world, world.patient_id) == (0, 0)
    created = _prescribe_for(world, world.patient_id, launched)
    assert created.status_code == 201, created.text
    assert _stored(world, world.patient_id) == (1, 1)
    assert _stored(world, other) == (0, 0)


@pytest.mark.parametrize(
    "person", ["patient self", "nurse own home", "pharmacist"], ids=lambda p: p.replace(" ", "-")
)
def test_launch_scopes_never_let_a_role_prescribe_that_the_policy_refuses(world, person):
    """The same launch-context create scopes held by a patient (their own record is their
    launch context), an admitted patient's nurse and a pharmacist: the role × organisation
    policy refuses the prescription, whatever the scopes grant."""
    admitted(world)  # two prescriptions by the GP; admitted to a ward of NURSING_HOME
    before = _stored(world, world.patient_id)
    role, subject, org = PEOPLE[person]
    context = None if role == "patient" else str(world.patient_id)
    token = issue_token(
        role, subject, org, scope="launch/patient patient/MedicationRequest.cruds", patient=context
    )
    refused = _prescribe_for(world, world.patient_id, token)
    assert refused.status_code == 403, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert _stored(world, world.patient_id) == before
    with world.engine.connect() as conn:
        latest = audit.events_for_patient(conn, NATIONAL_ID).events[0]
    assert str(latest.outcome) == "refused"
