"""Recording weight and kidney function over HTTP (issue #22): the GP and the nurse of an
admitting ward record them through the command layer, audited; dose checks, the dry run and
prescribing then judge the recorded values; bad values are refused and change nothing."""

from __future__ import annotations

import json

from medloop.store import audit
from tests.api.helpers import (
    NATIONAL_ID,
    NURSE_TOKEN,
    PHARMACIST_TOKEN,
    admitted,
    prescribe_body,
)

PROBLEMS = "https://medloop.dev/problems/"
METFORMIN_500 = "090555"
TWO_TABLETS_TWICE = {
    "use": "regular",
    "fixed": [
        {"amount": {"value": 2, "unit": "tablett"}, "time_of_day": "morning"},
        {"amount": {"value": 2, "unit": "tablett"}, "time_of_day": "evening"},
    ],
}


def observe(world, body, token=None):
    path = f"/patients/{world.patient_id}/observations"
    return world.post(path, body) if token is None else world.post(path, body, token)


def renal(value: float, measured_at: str = "2026-11-19T08:00:00Z", kind: str = "egfr"):
    return {"renal_function": {"kind": kind, "value": value, "measured_at": measured_at}}


def dose_rules(alerts) -> set[tuple[str, str]]:
    return {
        (a["detail"]["rule_id"], a["detail"].get("measure") or a["detail"]["reason_code"])
        for a in alerts
        if a["kind"] in ("dose", "dose-not-checked")
    }


def test_recorded_kidney_function_reaches_the_dry_run_and_prescribing(world):
    check = {
        "proposed": [{"id": "new", "drug": {"varenr": METFORMIN_500}, "dosage": TWO_TABLETS_TWICE}]
    }
    path = f"/patients/{world.patient_id}/list/check"
    before = world.post(path, check).json()["alerts"]
    # one alert for the missing fact, naming both limits it keeps from being checked
    [missing] = [a for a in before if a["kind"] == "dose-not-checked"]
    assert dose_rules([missing]) == {("metformin-oral-renal-30", "renal-function-unknown")}
    assert "contraindicated" in missing["detail"]["reason"]
    assert "daily limit 1000 mg" in missing["detail"]["reason"]

    recorded = observe(
        world,
        {
            **renal(40),
            "weight": {"kg": 58.5, "measured_at": "2026-11-18T08:00:00Z"},
            "reason": "monthly weighing and blood tests",
        },
    )
    assert recorded.status_code == 200, recorded.text
    facts = recorded.json()["patient"]
    assert facts["renal_function"]["value"] == 40 and facts["weight"]["kg"] == 58.5

    after = world.post(path, check).json()["alerts"]
    assert dose_rules(after) == {("metformin-oral-renal-30-44", "daily")}
    refused = world.write(
        f"/patients/{world.patient_id}/prescriptions",
        prescribe_body(METFORMIN_500, dosage=TWO_TABLETS_TWICE),
    )
    assert refused.status_code == 409
    assert refused.json()["type"] == PROBLEMS + "override-required"

    with world.engine.connect() as conn:
        events = audit.events_for_patient(conn, NATIONAL_ID).events
    [event] = [e for e in events if e.action == "medication-list.record-observation"]
    assert event.reason == "monthly weighing and blood tests"
    assert event.detail["patient"]["renal_function"]["kind"] == "egfr"


def test_bad_observations_are_refused_and_change_nothing(world):
    assert observe(world, renal(55)).status_code == 200
    future = observe(world, renal(40, "2026-11-21T08:00:00Z"))
    assert future.status_code == 422 and future.json()["type"] == PROBLEMS + "observation-invalid"
    implausible = observe(world, {"weight": {"kg": 4000, "measured_at": "2026-11-19T08:00:00Z"}})
    assert implausible.status_code == 422
    older = observe(world, renal(30, "2026-10-01T08:00:00Z"))
    assert older.status_code == 409
    assert older.json()["type"] == PROBLEMS + "observation-older-than-recorded"
    empty = observe(world, {})
    assert empty.status_code == 422
    negative = observe(world, renal(-3))
    assert negative.status_code == 422
    unknown_kind = observe(world, renal(40, kind="cystatin"))
    assert unknown_kind.status_code == 422
    again = observe(world, {"hepatic_risk": True})
    assert again.json()["patient"]["renal_function"]["value"] == 55  # the accepted one stays


def test_only_the_gp_and_nurses_of_an_admitting_ward_record_observations(world):
    assert observe(world, renal(55), PHARMACIST_TOKEN).status_code == 403
    assert observe(world, renal(55), NURSE_TOKEN).status_code == 403  # not admitted
    admitted(world)
    recorded = observe(world, renal(55), NURSE_TOKEN)
    assert recorded.status_code == 200, recorded.text


def test_a_recorded_fact_keeps_the_audit_log_verifying_and_an_edited_record_is_found(world):
    """The patient record is rewritten by every recorded fact: each writing command claims the
    record's digest, so verify accepts the command's record and finds one edited behind it."""
    from sqlalchemy import text

    from medloop.store.audit import verify

    assert observe(world, renal(40)).status_code == 200
    with world.engine.connect() as conn, conn.begin():
        found = verify(conn)
    assert found.problem_count == 0, found.problems
    with world.engine.begin() as conn:
        record = conn.execute(text("SELECT record FROM patient")).scalar_one()
        record = json.loads(record) if isinstance(record, str) else record
        record["allergies"] = []  # an intruder drops the CAVE list
        record["weight"] = {"kg": 99.0, "measured_at": "2026-11-19T08:00:00Z"}
        conn.execute(text("UPDATE patient SET record = :r"), {"r": json.dumps(record)})
    with world.engine.connect() as conn, conn.begin():
        found = verify(conn)
    assert [p.problem for p in found.problems] == ["record"]
    assert found.problems[0].row == f"patient {world.patient_id}"
