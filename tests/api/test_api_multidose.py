"""Multidose over HTTP: the GP registers the multidose pharmacy, the pharmacy opens a period,
reads and takes the production plan, posts what it packed and gets the reconciliation; only the
patient's multidose pharmacy may; proposals go to the GP, who decides them."""

from __future__ import annotations

import uuid

from tests.api.helpers import (
    GP_TOKEN,
    NURSE_TOKEN,
    OTHER_PHARMACY_TOKEN,
    PHARMACIST_TOKEN,
    multidose_patient,
)


def test_the_pharmacy_packs_the_plan_and_the_reconciliation_finds_no_discrepancy(world):
    period_id = multidose_patient(world)
    base = f"/multidose/patients/{world.patient_id}"
    plan = world.get(f"{base}/periods/{period_id}/plan", token=PHARMACIST_TOKEN)
    assert plan.status_code == 200, plan.text
    bags = plan.json()["bags"]
    assert len(bags) == 14 and all(b["intake"] == "morning" for b in bags)
    taken = world.post(f"{base}/periods/{period_id}/plan/take", None, token=PHARMACIST_TOKEN)
    assert taken.status_code == 200, taken.text
    report = {
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
    reconciled = world.post(
        f"{base}/packing-reports", report, token=PHARMACIST_TOKEN, **{"Idempotency-Key": "pack-1"}
    )
    assert reconciled.status_code == 201, reconciled.text
    assert reconciled.json()["discrepancies"] == 0
    again = world.post(
        f"{base}/packing-reports", report, token=PHARMACIST_TOKEN, **{"Idempotency-Key": "pack-1"}
    )
    assert again.content == reconciled.content
    lines = world.get(f"{base}/reconciliations", token=PHARMACIST_TOKEN).json()
    assert [r["id"] for r in lines] == [report["report_id"]]


def test_only_the_patients_multidose_pharmacy_may_act_and_read(world):
    period_id = multidose_patient(world)
    base = f"/multidose/patients/{world.patient_id}"
    assert (
        world.get(f"{base}/periods/{period_id}/plan", token=OTHER_PHARMACY_TOKEN).status_code == 403
    )
    assert (
        world.post(
            f"{base}/periods/{period_id}/plan/take", None, token=OTHER_PHARMACY_TOKEN
        ).status_code
        == 403
    )
    assert world.get(base, token=GP_TOKEN).status_code == 200
    assert world.get(base, token=NURSE_TOKEN).status_code == 403  # not admitted
    period = {
        "period_id": str(uuid.uuid4()),
        "first_day": "2026-12-14",
        "order_deadline": "2026-12-09T12:00:00Z",
    }
    assert world.post(f"{base}/periods", period, token=GP_TOKEN).status_code == 403


def test_a_pharmacy_proposal_is_decided_by_the_gp(world):
    multidose_patient(world)
    base = f"/multidose/patients/{world.patient_id}"
    question = {
        "proposal_id": str(uuid.uuid4()),
        "kind": "question",
        "question": "Kan simvastatin gis om morgenen?",
    }
    proposed = world.post(f"{base}/proposals", question, token=PHARMACIST_TOKEN)
    assert proposed.status_code == 201, proposed.text
    pending = world.get(base).json()["pending_proposals"]
    assert [p["id"] for p in pending] == [question["proposal_id"]]
    assert (
        world.post(
            f"{base}/proposals/{question['proposal_id']}/accept",
            {"reason": "Ja"},
            token=PHARMACIST_TOKEN,
            **{"If-Match": '"1"'},
        ).status_code
        == 403
    )
    version = world.version()
    accepted = world.post(
        f"{base}/proposals/{question['proposal_id']}/accept",
        {"reason": "Ja, om morgenen er fint"},
        **{"If-Match": f'"{version}"'},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["decision"] == "accepted"
    assert world.get(base).json()["pending_proposals"] == []
