"""Every 201 points at the thing it created (issue #15): an admission, a charting, an urgent
pack, a proposal, a list reconciliation, a packing reconciliation, a packing period, a dispense,
an entry and a ward each have an item GET, authorised like the collection it belongs to and
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
    dispense_body,
    multidose_patient,
    pharmacy_version,
    prescribe_body,
)
from tests.loop.helpers import another_patient


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


def _reconcile(world) -> tuple[dict, object]:
    body = {
        "reconciliation_id": str(uuid.uuid4()),
        "sources": [{"kind": "patient", "detail": "samtale med pasienten"}],
        "outcomes": [
            {"entry_id": e["id"], "outcome": "confirmed"}
            for e in world.get(f"/patients/{world.patient_id}/list").json()["entries"]
            if e["status"] in ("active", "on-hold")
        ],
    }
    return body, world.write(f"/patients/{world.patient_id}/list/reconciliations", body)


def test_a_list_reconciliation_is_read_where_its_201_points(world):
    world.write(f"/patients/{world.patient_id}/prescriptions", prescribe_body("090436"))
    body, reconciled = _reconcile(world)
    assert reconciled.status_code == 201, reconciled.text
    location = reconciled.headers["Location"]
    base = f"/patients/{world.patient_id}/list/reconciliations"
    assert location == f"{base}/{body['reconciliation_id']}"
    found = world.get(location)
    assert found.status_code == 200, found.text
    assert found.json() == world.get(base).json()[0]
    assert found.json()["id"] == body["reconciliation_id"]
    assert found.json()["sources"][0]["detail"] == "samtale med pasienten"
    assert [e["entry_id"] for e in found.json()["entries"]] == [
        o["entry_id"] for o in body["outcomes"]
    ]
    assert ("doctor", "medication-list.read.reconciliation") in read_actions(world)
    # Authorised as the collection is (LIST_READ): the same answer for every role.
    for token in (PHARMACIST_TOKEN, NURSE_TOKEN, OTHER_HOME_NURSE_TOKEN, PATIENT_TOKEN):
        assert (
            world.get(location, token=token).status_code == world.get(base, token=token).status_code
        )
    assert world.get(location, token=OTHER_HOME_NURSE_TOKEN).status_code == 403
    missing = world.get(f"{base}/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    assert missing.json()["code"] == "reconciliation-not-found"
    assert missing.json()["title"] == "Reconciliation not found"


def test_a_reconciliation_of_another_patient_is_not_found(world):
    world.write(f"/patients/{world.patient_id}/prescriptions", prescribe_body("090436"))
    body, reconciled = _reconcile(world)
    assert reconciled.status_code == 201, reconciled.text
    other_id = another_patient(world.engine)
    elsewhere = f"/patients/{other_id}/list/reconciliations/{body['reconciliation_id']}"
    answer = world.get(elsewhere)
    assert answer.status_code == 404 and answer.json()["code"] == "reconciliation-not-found"
    mine = f"/patients/{world.patient_id}/list/reconciliations/{body['reconciliation_id']}"
    assert world.get(mine).status_code == 200


def _packing_report(world, period_id: str) -> dict:
    base = f"/multidose/patients/{world.patient_id}"
    bags = world.get(f"{base}/periods/{period_id}/plan", token=PHARMACIST_TOKEN).json()["bags"]
    return {
        "report_id": str(uuid.uuid4()),
        "period_id": period_id,
        "bags": [
            {
                "day": b["day"],
                "intake": b["intake"],
                "lines": [
                    {"varenr": "090470", "quantity": line["quantity"], "entry_id": line["entry_id"]}
                    for line in b["lines"]
                ],
            }
            for b in bags
        ],
    }


def test_a_packing_reconciliation_is_read_where_its_201_points(world):
    period_id = multidose_patient(world)
    base = f"/multidose/patients/{world.patient_id}"
    report = _packing_report(world, period_id)
    reconciled = world.post(f"{base}/packing-reports", report, token=PHARMACIST_TOKEN)
    assert reconciled.status_code == 201, reconciled.text
    location = reconciled.headers["Location"]
    assert location == f"{base}/reconciliations/{report['report_id']}"
    found = world.get(location, token=PHARMACIST_TOKEN)
    assert found.status_code == 200, found.text
    assert found.json() == world.get(f"{base}/reconciliations", token=PHARMACIST_TOKEN).json()[0]
    assert found.json()["report_id"] == report["report_id"]
    assert found.json()["period_id"] == period_id
    assert len(found.json()["lines"]) == sum(len(b["lines"]) for b in report["bags"])
    assert ("pharmacist", "medication-list.read.multidose-reconciliation") in read_actions(world)
    assert world.get(location, token=GP_TOKEN).status_code == 200
    assert world.get(location, token=OTHER_PHARMACY_TOKEN).status_code == 403
    collection = f"{base}/reconciliations"
    for token in (NURSE_TOKEN, OTHER_PHARMACY_TOKEN, PATIENT_TOKEN):
        expected = world.get(collection, token=token).status_code
        assert world.get(location, token=token).status_code == expected
    missing = world.get(f"{base}/reconciliations/{uuid.uuid4()}", token=PHARMACIST_TOKEN)
    assert missing.status_code == 404
    assert missing.json()["code"] == "multidose-reconciliation-not-found"
    assert missing.json()["title"] == "Packing reconciliation not found"


def test_the_item_reads_behind_every_201_are_documented_with_models_and_404(world):
    paths = world.client.get("/openapi.json", headers=auth(GP_TOKEN)).json()["paths"]
    expected = {
        "/patients/{patient_id}/list/reconciliations/{reconciliation_id}": "Reconciliation",
        "/multidose/patients/{patient_id}/reconciliations/{reconciliation_id}": (
            "PackReconciliation"
        ),
        "/multidose/patients/{patient_id}/periods/{period_id}": "PeriodOverview",
        "/pharmacy/patients/{patient_id}/dispenses/{dispense_id}": "Dispense",
        "/patients/{patient_id}/list/entries/{entry_id}": "ListEntry",
        "/nursing/wards/{ward_id}": "WardRecord",
    }
    for path, model in expected.items():
        get = paths[path]["get"]
        ok = get["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": f"#/components/schemas/{model}"}, (path, ok)
        # An unknown ward is refused like another organisation's (403), never 404.
        assert ("404" in get["responses"]) is (model != "WardRecord"), path


def test_a_dispense_is_read_where_its_201_points(world):
    body = prescribe_body("090436")
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201
    sent = dispense_body(body["terms"]["prescription_id"], "090436")
    dispensed = world.post(
        f"/pharmacy/patients/{world.patient_id}/dispenses",
        sent,
        PHARMACIST_TOKEN,
        **{"If-Match": pharmacy_version(world)},
    )
    assert dispensed.status_code == 201, dispensed.text
    location = dispensed.headers["Location"]
    assert location == f"/pharmacy/patients/{world.patient_id}/dispenses/{sent['dispense_id']}"
    found = world.get(location, token=PHARMACIST_TOKEN)
    assert found.status_code == 200, found.text
    assert found.json()["id"] == sent["dispense_id"]
    assert found.json()["prescription_id"] == sent["prescription_id"]
    assert found.json()["batch"] == "B123" and found.json()["annulment"] is None
    assert ("pharmacist", "medication-list.read.dispense") in read_actions(world)
    # Authorised as the pharmacy's read of the patient (DISPENSING_READ): pharmacists only.
    collection = f"/pharmacy/patients/{world.patient_id}/prescriptions"
    for token in (GP_TOKEN, NURSE_TOKEN, OTHER_PHARMACY_TOKEN, PATIENT_TOKEN):
        expected = world.get(collection, token=token).status_code
        assert world.get(location, token=token).status_code == expected
    missing = world.get(
        f"/pharmacy/patients/{world.patient_id}/dispenses/{uuid.uuid4()}", token=PHARMACIST_TOKEN
    )
    assert missing.status_code == 404 and missing.json()["code"] == "dispense-not-found"
    assert missing.json()["title"] == "Dispense not found"


def test_a_packing_period_is_read_where_its_201_points(world):
    period_id = multidose_patient(world)
    base = f"/multidose/patients/{world.patient_id}"
    overview = world.get(base, token=PHARMACIST_TOKEN).json()
    found = world.get(f"{base}/periods/{period_id}", token=PHARMACIST_TOKEN)
    assert found.status_code == 200, found.text
    (listed,) = overview["periods"]
    assert found.json() == listed and found.json()["period"]["id"] == period_id
    assert ("pharmacist", "medication-list.read.multidose-period") in read_actions(world)
    assert world.get(f"{base}/periods/{period_id}", token=OTHER_PHARMACY_TOKEN).status_code == 403
    second = {
        "period_id": str(uuid.uuid4()),
        "first_day": "2026-12-14",
        "order_deadline": "2026-12-09T12:00:00Z",
    }
    opened = world.post(f"{base}/periods", second, token=PHARMACIST_TOKEN)
    assert opened.status_code == 201, opened.text
    assert opened.headers["Location"] == f"{base}/periods/{second['period_id']}"
    missing = world.get(f"{base}/periods/{uuid.uuid4()}", token=PHARMACIST_TOKEN)
    assert missing.status_code == 404 and missing.json()["code"] == "multidose-period-not-found"


def test_a_ward_is_read_where_its_201_points_by_its_own_organisation_only(world):
    ward_id = str(uuid.uuid4())
    created = world.post(
        "/nursing/wards", {"ward_id": ward_id, "name": "Avdeling 4"}, token=WARD_ADMIN_TOKEN
    )
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"/nursing/wards/{ward_id}"
    for token in (WARD_ADMIN_TOKEN, NURSE_TOKEN):
        found = world.get(f"/nursing/wards/{ward_id}", token=token)
        assert found.status_code == 200, found.text
        assert found.json()["name"] == "Avdeling 4" and found.json()["config_version"] == 1
        assert "config" in found.json()
    # Like the ward's chart: another home, another role, or no such ward are refused alike.
    for token in (OTHER_HOME_NURSE_TOKEN, GP_TOKEN):
        assert world.get(f"/nursing/wards/{ward_id}", token=token).status_code == 403
    assert world.get(f"/nursing/wards/{uuid.uuid4()}", token=NURSE_TOKEN).status_code == 403


def test_an_entry_of_another_patient_is_not_found(world):
    body = prescribe_body("090436")
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201
    mine = world.get(f"/patients/{world.patient_id}/list/entries/{body['entry_id']}")
    assert mine.status_code == 200 and mine.json()["id"] == body["entry_id"]
    assert ("doctor", "medication-list.read.entry") in read_actions(world)
    other_id = another_patient(world.engine)
    answer = world.get(f"/patients/{other_id}/list/entries/{body['entry_id']}")
    assert answer.status_code == 404 and answer.json()["code"] == "entry-not-found"
