"""FHIR Bulk Data ``$export`` over HTTP: a ward's MedicationAdministrations for the registry
(kick-off, polling, the NDJSON files, delete), restricted to the exporter role with system
scopes and to wards of its organisation, ``_type`` and ``_since``, every exported patient
audited, every line a valid resource."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from medloop.api.app import create_app
from medloop.api.auth import issue_token
from medloop.api.config import ApiSettings
from medloop.jobs import run_job
from medloop.store import audit
from medloop.store.patients import patient
from tests.api.helpers import (
    NATIONAL_ID,
    NEXT_MORNING,
    NURSE_TOKEN,
    NURSING_HOME,
    OTHER_NATIONAL_ID,
    SIMVASTATIN_GENERIC_EAN,
    admitted,
)
from tests.fhir.helpers import gp_token, outcome_of, validated
from tests.loop.helpers import another_patient
from tests.store.helpers import intruded

EXPORTER = issue_token("exporter", "registry-client", NURSING_HOME, scope="system/*.r")
OTHER_EXPORTER = issue_token("exporter", "other-client", "8012399", scope="system/*.r")
UNSCOPED_EXPORTER = issue_token("exporter", "registry-client", NURSING_HOME, scope="user/*.rs")
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}  # as the spec asks


@pytest.fixture
def exporting(world, tmp_path, monkeypatch):
    """The world admitted to a ward, one dose charted, and an app whose exports go to
    ``tmp_path/exports``; returns (client, ward id)."""
    monkeypatch.setenv("MEDLOOP_FHIR_EXPORT_DIR", str(tmp_path / "exports"))
    ward_id, simvastatin, _ = admitted(world)
    world.clock.at = NEXT_MORNING
    chart = world.get(f"/nursing/wards/{ward_id}/chart?day=2026-11-21", token=NURSE_TOKEN).json()
    (dose,) = [d for d in chart["patients"][0]["doses"] if d["entry_id"] == simvastatin]
    given = world.post(
        f"/nursing/patients/{world.patient_id}/administrations",
        {
            "administration_id": str(uuid.uuid4()),
            "entry_id": simvastatin,
            "planned_dose_id": dose["planned_dose_id"],
            "outcome": "given",
            "given_at": NEXT_MORNING.isoformat(),
            "dose": {"value": 1, "unit": "tablett"},
            "scan": SIMVASTATIN_GENERIC_EAN,
        },
        token=NURSE_TOKEN,
    )
    assert given.status_code == 201, given.text
    app = create_app(ApiSettings.from_env("sqlite://"), engine=world.engine, clock=world.clock)
    return TestClient(app), ward_id


def _get(client, path: str, token: str = EXPORTER, **headers: str):
    return client.get(path, headers={"Authorization": f"Bearer {token}", **headers})


def _kick_off(client, path: str, token: str = EXPORTER) -> str:
    response = _get(client, path, token, **ASYNC)
    assert response.status_code == 202, response.text
    return response.headers["Content-Location"].replace("http://testserver", "")


def test_a_wards_administrations_are_exported_as_ndjson_and_each_patient_audited(world, exporting):
    client, ward_id = exporting
    status = _kick_off(
        client, f"/fhir/Group/{ward_id}/$export?_type=MedicationAdministration,Patient"
    )
    waiting = _get(client, status)
    assert waiting.status_code == 202 and waiting.headers["X-Progress"] == "accepted"
    result = run_job(world.engine, "fhir-export")
    assert result["exports"] == 1 and result["resources"] == 2
    done = _get(client, status)
    assert done.status_code == 200, done.text
    manifest = done.json()
    assert manifest["requiresAccessToken"] is True
    files = {item["type"]: item["url"] for item in manifest["output"]}
    assert set(files) == {"MedicationAdministration", "Patient"}
    file = files["MedicationAdministration"].replace("http://testserver", "")
    lines = _get(client, file, Accept="application/fhir+ndjson")
    assert lines.status_code == 200
    assert lines.headers["content-type"].startswith("application/fhir+ndjson")
    assert _get(client, file).text == lines.text  # no Accept: NDJSON too
    json_only = _get(client, file, Accept="application/fhir+json")  # a file is NDJSON only
    assert "application/fhir+ndjson" in outcome_of(json_only, 406)["issue"][0]["diagnostics"]
    (administration,) = [validated(json.loads(line)) for line in lines.text.splitlines()]
    assert administration["status"] == "completed"
    assert administration["subject"]["reference"] == f"Patient/{world.patient_id}"
    with world.engine.connect() as conn:
        events = audit.events_for_patient(conn, NATIONAL_ID).events
    exported = [e for e in events if e.action == "fhir.export"]
    assert [(e.actor, e.actor_role, e.organisation) for e in exported] == [
        ("registry-client", "exporter", NURSING_HOME)
    ]


def test_since_leaves_out_what_was_not_changed_after_it(world, exporting):
    client, _ = exporting
    status = _kick_off(client, "/fhir/$export?_since=2030-01-01T00:00:00Z")
    run_job(world.engine, "fhir-export")
    manifest = _get(client, status).json()
    assert manifest["output"] == []
    everything = _kick_off(client, "/fhir/$export")
    run_job(world.engine, "fhir-export")
    kinds = {item["type"]: item["count"] for item in _get(client, everything).json()["output"]}
    assert kinds == {
        "Patient": 1,
        "MedicationStatement": 2,
        "MedicationRequest": 2,
        "MedicationAdministration": 1,
    }


def test_a_deleted_export_is_gone_with_its_files(world, exporting, tmp_path):
    client, ward_id = exporting
    status = _kick_off(client, f"/fhir/Group/{ward_id}/$export")
    run_job(world.engine, "fhir-export")
    assert any((tmp_path / "exports").iterdir())
    deleted = client.delete(status, headers={"Authorization": f"Bearer {EXPORTER}"})
    assert deleted.status_code == 202
    outcome_of(_get(client, status), 404)
    assert not any((tmp_path / "exports").iterdir())


def test_export_is_for_the_exporter_role_with_system_scopes_and_its_own_wards(world, exporting):
    client, ward_id = exporting
    path = f"/fhir/Group/{ward_id}/$export"
    outcome_of(_get(client, path, gp_token(scope="system/*.r user/*.rs"), **ASYNC), 403)
    outcome_of(_get(client, path, UNSCOPED_EXPORTER, **ASYNC), 403)
    outcome_of(_get(client, path, OTHER_EXPORTER, **ASYNC), 404)
    outcome_of(_get(client, path), 400)  # not asynchronous
    outcome_of(_get(client, f"{path}?_type=Observation", **ASYNC), 400)
    outcome_of(_get(client, f"{path}?_since=yesterday", **ASYNC), 400)
    outcome_of(_get(client, f"{path}?_outputFormat=text/csv", **ASYNC), 400)
    status = _kick_off(client, path)
    # Another client cannot poll, read or delete it.
    outcome_of(_get(client, status, OTHER_EXPORTER), 404)
    assert run_job(world.engine, "fhir-export")["exports"] == 1


def test_a_patient_whose_record_cannot_be_read_is_an_error_of_the_export_not_its_end(
    world, exporting
):
    """A system export goes on past a patient whose stored record no longer loads: the other
    patients' resources are exported, and the manifest's ``error`` lists an OperationOutcome
    file naming the record (never its value); the patient left out is not audited as
    exported."""
    client, _ = exporting
    other_id = another_patient(world.engine)
    with world.engine.connect() as conn:
        stored = conn.execute(select(patient.c.record).where(patient.c.id == str(other_id)))
        record = stored.scalar_one()
    broken = {**record, "birth_date": "not a day"}
    intruded(world.engine, patient, patient.c.id == str(other_id), record=broken)
    status = _kick_off(client, "/fhir/$export?_type=Patient,MedicationAdministration")
    result = run_job(world.engine, "fhir-export")
    assert result["exports"] == 1 and result["failed"] == 0
    manifest = _get(client, status).json()
    assert {item["type"]: item["count"] for item in manifest["output"]} == {
        "Patient": 1,
        "MedicationAdministration": 1,
    }
    (error,) = manifest["error"]
    assert error["type"] == "OperationOutcome"
    lines = _get(client, error["url"].replace("http://testserver", "")).text.splitlines()
    (outcome,) = [validated(json.loads(line)) for line in lines]
    diagnostics = outcome["issue"][0]["diagnostics"]
    assert f"Patient/{other_id} is not in this export" in diagnostics
    assert "birth_date" in diagnostics and "not a day" not in diagnostics
    with world.engine.connect() as conn:
        events = audit.events_for_patient(conn, OTHER_NATIONAL_ID).events
    assert not [e for e in events if e.action == "fhir.export"]
