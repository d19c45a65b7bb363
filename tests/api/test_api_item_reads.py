"""Every 201 points at the thing it created (issue #15): an admission, a charting, an urgent
pack and a proposal each have an item GET, authorised like the collection it belongs to and
audited like every read of patient data; the Location of the 201 is that GET."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tests.api.helpers import (
    GP_TOKEN,
    NEXT_MORNING,
    NURSE_TOKEN,
    OTHER_HOME_NURSE_TOKEN,
    OTHER_PHARMACY_TOKEN,
    PATIENT_TOKEN,
    PHARMACIST_TOKEN,
    WARD_ADMIN_TOKEN,
    admission_body,
    admitted,
    auth,
    multidose_patient,
)


def read_actions(world) -> list[tuple[str, str]]:
    log = world.get("/me/access-log", token=PATIENT_TOKEN).json()["events"]
    return [(e["actor_role"], e["action"]) for e in log]


def test_an_admission_is_read_where_its_201_points(world):
    ward_id, _, _ = admitted(world)
    second_ward = str(uuid.uuid4())
    created = world.post(
        "/nursing/wards", {"ward_id": second_ward, "name": "Avdeling 3"}, token=WARD_ADMIN_TOKEN
    )
    assert created.status_code == 201
    # The admission made by admitted() is open: a second one is refused, so read the first
    # through the ward chart's admission id and check the Location of a fresh admission below.
    chart = world.get(f"/nursing/wards/{ward_id}/chart?day=2026-11-20", token=NURSE_TOKEN)
    (patient,) = chart.json()["patients"]
    path = f"/nursing/patients/{world.patient_id}/admissions/{patient['admission_id']}"
    found = world.get(path, token=NURSE_TOKEN)
    assert found.status_code == 200, found.text
    assert found.json()["admission"]["ward_id"] == ward_id
    assert found.json()["admission"]["discharged_at"] is None
    assert ("nurse", "medication-list.read.admission") in read_actions(world)
    # Another home's nurse has no access to the patient; nobody finds an admission not there.
    assert world.get(path, token=OTHER_HOME_NURSE_TOKEN).status_code == 403
    missing = world.get(
        f"/nursing/patients/{world.patient_id}/admissions/{uuid.uuid4()}", token=GP_TOKEN
    )
    assert missing.status_code == 404 and missing.json()["code"] == "admission-not-found"


def test_the_location_of_an_admission_is_its_item(world):
    ward_id = str(uuid.uuid4())
    assert (
        world.post(
            "/nursing/wards", {"ward_id": ward_id, "name": "Avdeling 2"}, token=WARD_ADMIN_TOKEN
        ).status_code
        == 201
    )
    body = admission_body(ward_id, "2026-11-20T09:00:00Z")
    admission = world.post(
        f"/nursing/patients/{world.patient_id}/admissions", body, token=WARD_ADMIN_TOKEN
    )
    assert admission.status_code == 201, admission.text
    location = admission.headers["Location"]
    assert location == (f"/nursing/patients/{world.patient_id}/admissions/{body['admission_id']}")
    found = world.get(location, token=NURSE_TOKEN)
    assert found.status_code == 200, found.text
    assert found.json()["admission"]["id"] == body["admission_id"]
    assert found.json()["admission"]["decision_reference"] == body["decision_reference"]


def test_a_charting_is_read_where_its_201_points(world):
    ward_id, simvastatin, _ = admitted(world)
    world.clock.at = NEXT_MORNING
    chart = world.get(f"/nursing/wards/{ward_id}/chart?day=2026-11-21", token=NURSE_TOKEN)
    (dose,) = [d for d in chart.json()["patients"][0]["doses"] if d["entry_id"] == simvastatin]
    body = {
        "administration_id": str(uuid.uuid4()),
        "entry_id": simvastatin,
        "planned_dose_id": dose["planned_dose_id"],
        "outcome": "refused",
        "reason": "ville ikke",
    }
    charted = world.post(
        f"/nursing/patients/{world.patient_id}/administrations", body, token=NURSE_TOKEN
    )
    assert charted.status_code == 201, charted.text
    location = charted.headers["Location"]
    assert location.endswith(f"/administrations/{body['administration_id']}")
    found = world.get(location, token=NURSE_TOKEN)
    assert found.status_code == 200, found.text
    assert found.json()["administration"]["outcome"] == "refused"
    assert found.json()["stands"] is True and found.json()["correction"] is None
    assert ("nurse", "medication-list.read.administration") in read_actions(world)
    assert world.get(location, token=OTHER_HOME_NURSE_TOKEN).status_code == 403
    other = world.get(
        f"/nursing/patients/{world.patient_id}/administrations/{uuid.uuid4()}", token=NURSE_TOKEN
    )
    assert other.status_code == 404 and other.json()["code"] == "administration-not-found"


def test_an_urgent_pack_is_read_where_its_201_points(world):
    period_id = multidose_patient(world)
    base = f"/multidose/patients/{world.patient_id}"
    world.clock.at = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # after the order deadline
    pack_id = str(uuid.uuid4())
    ordered = world.post(
        f"{base}/periods/{period_id}/urgent-packs",
        {"pack_id": pack_id, "reason": "ny dosering etter fristen"},
        token=PHARMACIST_TOKEN,
    )
    assert ordered.status_code == 201, ordered.text
    location = ordered.headers["Location"]
    assert location == f"{base}/periods/{period_id}/urgent-packs/{pack_id}"
    found = world.get(location, token=PHARMACIST_TOKEN)
    assert found.status_code == 200, found.text
    assert found.json()["id"] == pack_id and found.json()["period_id"] == period_id
    assert world.get(location, token=OTHER_PHARMACY_TOKEN).status_code == 403
    assert ("pharmacist", "medication-list.read.multidose-urgent-pack") in read_actions(world)
    missing = world.get(f"{base}/periods/{period_id}/urgent-packs/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["code"] == "multidose-urgent-pack-not-found"
    assert missing.json()["title"] == "Urgent pack not found"


def test_a_proposal_is_read_where_its_201_points_with_its_decision(world):
    multidose_patient(world)
    base = f"/multidose/patients/{world.patient_id}"
    question = {
        "proposal_id": str(uuid.uuid4()),
        "kind": "question",
        "question": "Kan simvastatin gis om morgenen?",
    }
    proposed = world.post(f"{base}/proposals", question, token=PHARMACIST_TOKEN)
    assert proposed.status_code == 201, proposed.text
    location = proposed.headers["Location"]
    assert location == f"{base}/proposals/{question['proposal_id']}"
    pending = world.get(location)
    assert pending.status_code == 200, pending.text
    assert pending.json()["proposal"]["id"] == question["proposal_id"]
    assert pending.json()["decision"] is None
    version = world.version()
    accepted = world.post(f"{location}/accept", {"reason": "Ja"}, **{"If-Match": f'"{version}"'})
    assert accepted.status_code == 200, accepted.text
    assert ("doctor", "medication-list.read.multidose-proposal") in read_actions(world)
    decided = world.get(location, token=PHARMACIST_TOKEN).json()
    assert decided["decision"]["accepted"] is True
    assert world.get(location, token=OTHER_PHARMACY_TOKEN).status_code == 403
    missing = world.get(f"{base}/proposals/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["code"] == "multidose-proposal-not-found"


def test_the_item_reads_are_documented_with_their_models(world):
    paths = world.client.get("/openapi.json", headers=auth(GP_TOKEN)).json()["paths"]
    expected = {
        "/nursing/patients/{patient_id}/admissions/{admission_id}": "AdmissionRecord",
        "/nursing/patients/{patient_id}/administrations/{administration_id}": (
            "AdministrationRecord"
        ),
        "/multidose/patients/{patient_id}/periods/{period_id}/urgent-packs/{pack_id}": (
            "UrgentPack"
        ),
        "/multidose/patients/{patient_id}/proposals/{proposal_id}": "ProposalRecord",
    }
    for path, model in expected.items():
        ok = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": f"#/components/schemas/{model}"}, (path, ok)
