"""The prescriber's API over HTTP: list with ETag, prescribing with If-Match, overrides,
idempotent retries, stale writes, the dry-run check and every list change."""

from __future__ import annotations

import uuid

from medloop.store import audit
from tests.api.helpers import (
    GP_TOKEN,
    NATIONAL_ID,
    auth,
    prescribe_body,
)
from tests.loop.helpers import ATORVASTATIN, KLARITROMYCIN, SIMVASTATIN_28

PROBLEM = "application/problem+json"


def _prescribe(world, varenr=SIMVASTATIN_28, **headers):
    body = prescribe_body(varenr)
    return body, world.write(f"/patients/{world.patient_id}/prescriptions", body, **headers)


def test_reading_the_list_gives_its_version_as_etag_and_audits_the_read(world):
    response = world.get(f"/patients/{world.patient_id}/list")
    assert response.status_code == 200
    assert response.headers["ETag"] == '"0"'
    assert response.json() == {
        "patient_id": str(world.patient_id),
        "list_version": 0,
        "entries": [],
        "open_alerts": [],
        "overrides": [],
    }
    request_id = response.headers["X-Request-ID"]
    with world.engine.connect() as conn:
        events = audit.events_for_patient(conn, NATIONAL_ID).events
    assert events[0].action == "medication-list.read.list"
    assert events[0].request_id == request_id and events[0].actor_role == "doctor"


def test_prescribing_answers_201_with_the_new_version_as_etag(world):
    body, response = _prescribe(world)
    assert response.status_code == 201, response.text
    assert response.headers["ETag"] == '"1"'
    payload = response.json()
    assert payload["entry_id"] == body["entry_id"] and payload["list_version"] == 1
    listed = world.get(f"/patients/{world.patient_id}/list").json()
    assert [e["id"] for e in listed["entries"]] == [body["entry_id"]]


def test_a_write_without_if_match_is_428_and_changes_nothing(world):
    response = world.post(
        f"/patients/{world.patient_id}/prescriptions", prescribe_body(SIMVASTATIN_28)
    )
    assert response.status_code == 428
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "https://medloop.dev/problems/if-match-required"
    assert world.version() == 0


def test_a_stale_write_is_412_with_the_current_version_and_what_changed(world):
    _prescribe(world)
    response = world.post(
        f"/patients/{world.patient_id}/prescriptions",
        prescribe_body(ATORVASTATIN),
        **{"If-Match": '"0"'},
    )
    assert response.status_code == 412
    problem = response.json()
    assert problem["code"] == "stale-list-version" and problem["current_version"] == 1
    assert problem["changes_since"] and response.headers["ETag"] == '"1"'
    assert world.version() == 1


def test_an_interaction_needing_override_is_409_until_each_alert_has_a_reason(world):
    _prescribe(world)
    body = prescribe_body(KLARITROMYCIN)
    path = f"/patients/{world.patient_id}/prescriptions"
    refused = world.write(path, body)
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["code"] == "override-required" and problem["alerts"]
    assert world.version() == 1
    overrides = dict.fromkeys(problem["alert_keys"], "short course, statin paused")
    accepted = world.write(path, {**body, "overrides": overrides})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["overridden"] == sorted(overrides)
    listed = world.get(f"/patients/{world.patient_id}/list").json()
    assert [o["key"] for o in listed["overrides"]] == sorted(overrides)


def test_a_retry_with_the_same_idempotency_key_returns_the_identical_response(world):
    body = prescribe_body(SIMVASTATIN_28)
    path = f"/patients/{world.patient_id}/prescriptions"
    headers = {"If-Match": '"0"', "Idempotency-Key": "rx-1"}
    first = world.post(path, body, **headers)
    second = world.post(path, body, **headers)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert first.headers["ETag"] == second.headers["ETag"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert world.version() == 1


def test_the_same_idempotency_key_for_another_request_is_422(world):
    path = f"/patients/{world.patient_id}/prescriptions"
    headers = {"If-Match": '"0"', "Idempotency-Key": "rx-1"}
    world.post(path, prescribe_body(SIMVASTATIN_28), **headers)
    reused = world.post(path, prescribe_body(ATORVASTATIN), **headers)
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency-key-reused"


def test_the_dry_run_check_returns_alerts_and_writes_nothing_to_the_list(world):
    _prescribe(world)
    before = world.get(f"/patients/{world.patient_id}/list").json()
    response = world.post(
        f"/patients/{world.patient_id}/list/check",
        {"proposed": [{"id": "new", "drug": {"varenr": KLARITROMYCIN}}]},
    )
    assert response.status_code == 200, response.text
    alerts = response.json()["alerts"]
    assert any(a["kind"] == "interaction" and a["severity"] == "avoid" for a in alerts)
    assert world.get(f"/patients/{world.patient_id}/list").json() == before


def test_hold_resume_change_discontinue_and_entered_in_error(world):
    body, _ = _prescribe(world)
    entry = f"/patients/{world.patient_id}/list/entries/{body['entry_id']}"
    assert world.write(f"{entry}/hold", {"reason": "surgery"}).status_code == 200
    assert world.write(f"{entry}/resume", {}).status_code == 200
    dosage = {"use": "regular", "text": "1 tablett om kvelden"}
    assert world.write(f"{entry}/dosage", {"dosage": dosage}).status_code == 200
    stopped = world.write(f"{entry}/discontinue", {"code": "A", "note": "done"})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["recalled"] == [body["terms"]["prescription_id"]]
    again = world.write(f"{entry}/discontinue", {"code": "A"})
    assert again.status_code == 409
    assert again.json()["code"] == "entry-already-discontinued"
    other, _ = _prescribe(world, ATORVASTATIN)
    wrong = f"/patients/{world.patient_id}/list/entries/{other['entry_id']}/entered-in-error"
    assert world.write(wrong, {}).status_code == 422
    assert world.write(wrong, {"reason": "wrong patient"}).status_code == 200
    history = world.get(f"{entry}/history").json()["versions"]
    assert len(history) == 5


def test_renew_add_entry_reconcile_and_acknowledge(world):
    body, _ = _prescribe(world)
    rx = body["terms"]["prescription_id"]
    renewed = world.write(
        f"/patients/{world.patient_id}/prescriptions/{rx}/renew",
        {"terms": {"prescription_id": str(uuid.uuid4()), "quantity": {"packages": 2}}},
    )
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["recalled"] == rx
    otc = world.write(
        f"/patients/{world.patient_id}/list/entries",
        {
            "entry_id": str(uuid.uuid4()),
            "item": {"name": "Tran", "text": "5 ml daglig"},
            "use": "regular",
            "start": "2026-11-01",
        },
    )
    assert otc.status_code == 201, otc.text
    reconciled = world.write(
        f"/patients/{world.patient_id}/list/reconciliations",
        {
            "reconciliation_id": str(uuid.uuid4()),
            "sources": [{"kind": "patient"}],
            "outcomes": [
                {"entry_id": e["id"], "outcome": "confirmed"}
                for e in world.get(f"/patients/{world.patient_id}/list").json()["entries"]
                if e["status"] in ("active", "on-hold")
            ],
        },
    )
    assert reconciled.status_code == 201, reconciled.text
    acknowledged = world.post(
        f"/patients/{world.patient_id}/alerts/acknowledge",
        {"alert_key": "interaction/X/a,b", "reason": "known and monitored"},
    )
    assert acknowledged.status_code == 200, acknowledged.text


def test_unknown_patient_is_404_problem(world):
    response = world.get(f"/patients/{uuid.uuid4()}/list")
    assert response.status_code == 404
    assert response.json()["code"] == "patient-not-found"


def test_malformed_json_is_a_422_problem(world):
    response = world.client.post(
        f"/patients/{world.patient_id}/prescriptions",
        content=b"{not json",
        headers=auth(GP_TOKEN, **{"If-Match": '"0"', "Content-Type": "application/json"}),
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "malformed-json"


def test_a_body_that_is_not_even_text_is_a_422_problem(world):
    response = world.client.post(
        f"/patients/{world.patient_id}/list/check",
        content=b"\x14Yn\xff\xfe\x10N",
        headers=auth(GP_TOKEN, **{"Content-Type": "application/json"}),
    )
    assert response.status_code == 422
    assert response.json()["code"] == "malformed-json"


def test_finding_a_patient_by_national_id(world):
    found = world.get(f"/patients?national_id={NATIONAL_ID}")
    assert found.json() == {"patient_id": str(world.patient_id)}
    assert world.get("/patients?national_id=12345678901").status_code == 404
