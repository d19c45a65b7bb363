"""The loop end to end over HTTP on the demo world: a GP prescribes with an interaction
override, the pharmacy dispenses a generic and sees the override, the multidose pharmacy packs
the period and it reconciles, a nurse charts the morning round with a scan and a witnessed
narcotic, and the patient reads the list and who accessed it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from medloop.api.app import create_app
from medloop.api.auth import issue_token
from medloop.api.config import ApiSettings
from medloop.demo import NURSING_HOME, RESIDENTS, build, national_id
from medloop.store.audit import verify
from tests.api.helpers import Clock
from tests.reference import DEMO

KLARITROMYCIN = "091014"
SIMVASTATIN_NORDKYST = "090470"
LEVOTYROKSIN_EAN = "7046260906068"
OKSYKODON_EAN = "7046260910997"
BUILT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # a Friday
NEXT_MORNING = datetime(2026, 11, 21, 7, 5, tzinfo=UTC)  # 08:05 in Oslo


def _bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def test_the_whole_loop_over_http_on_the_demo_world(engine):
    world = build(engine, DEMO, now=BUILT)
    clock = Clock()
    clock.at = BUILT
    client = TestClient(create_app(ApiSettings.from_env("sqlite://"), engine=engine, clock=clock))
    gp, pharmacy = _bearer(world.tokens["gp"]), _bearer(world.tokens["pharmacist"])
    nurse = _bearer(world.tokens["nurse"])
    witness = issue_token("nurse", "5559876", NURSING_HOME.id, name="Ola Olsen")
    per = national_id(RESIDENTS[1].birth, 100 + 37)
    ingrid = national_id(RESIDENTS[2].birth, 100 + 2 * 37)
    per_id = client.get(f"/patients?national_id={per}", headers=gp).json()["patient_id"]
    ingrid_id = client.get(f"/patients?national_id={ingrid}", headers=gp).json()["patient_id"]

    # 1. The GP prescribes klaritromycin to Per, on simvastatin: avoid-tier, 409 first.
    listed = client.get(f"/patients/{per_id}/list", headers=gp)
    order = {
        "entry_id": str(uuid.uuid4()),
        "drug": {"varenr": KLARITROMYCIN},
        "use": "course",
        "start": "2026-11-20",
        "stop": "2026-11-26",
        "indication": "Pneumoni",
        "terms": {"prescription_id": str(uuid.uuid4()), "quantity": {"packages": 1}},
    }
    write = {**gp, "If-Match": listed.headers["ETag"], "Idempotency-Key": "e2e-rx"}
    refused = client.post(f"/patients/{per_id}/prescriptions", json=order, headers=write)
    assert refused.status_code == 409 and refused.json()["code"] == "override-required"
    reasons = dict.fromkeys(refused.json()["alert_keys"], "simvastatin paused during the course")
    prescribed = client.post(
        f"/patients/{per_id}/prescriptions", json={**order, "overrides": reasons}, headers=write
    )
    assert prescribed.status_code == 201, prescribed.text

    # 2. The pharmacy sees the override and dispenses a generic simvastatin; the handled
    # interaction does not stop it again.
    shown = client.get(f"/pharmacy/patients/{per_id}/prescriptions", headers=pharmacy)
    assert {o["key"] for o in shown.json()["overrides"]} == set(reasons)
    simvastatin = next(p for p in shown.json()["prescriptions"] if "Simvastatin" in p["drug"])
    dispensed = client.post(
        f"/pharmacy/patients/{per_id}/dispenses",
        json={
            "dispense_id": str(uuid.uuid4()),
            "prescription_id": simvastatin["id"],
            "varenr": SIMVASTATIN_NORDKYST,
            "dispensed_on": "2026-11-20",
            "quantity": {"packages": 1},
            "batch": "N42",
            "expiry": "2028-06-30",
        },
        headers={**pharmacy, "If-Match": shown.headers["ETag"]},
    )
    assert dispensed.status_code == 201, dispensed.text
    assert dispensed.json()["substituted"] is True

    # 3. The multidose pharmacy packs Per's period as planned; it reconciles cleanly.
    base = f"/multidose/patients/{per_id}"
    (period,) = client.get(base, headers=pharmacy).json()["periods"]
    period_id = period["period"]["id"]
    plan = client.get(f"{base}/periods/{period_id}/plan", headers=pharmacy).json()
    assert plan["bags"]
    assert client.post(f"{base}/periods/{period_id}/plan/take", headers=pharmacy).status_code == 200
    report = {
        "report_id": str(uuid.uuid4()),
        "period_id": period_id,
        "bags": [
            {
                "day": b["day"],
                "intake": b["intake"],
                "lines": [
                    {
                        "varenr": line["varenr"],
                        "quantity": line["quantity"],
                        "entry_id": line["entry_id"],
                    }
                    for line in b["lines"]
                ],
            }
            for b in plan["bags"]
        ],
    }
    reconciled = client.post(f"{base}/packing-reports", json=report, headers=pharmacy)
    assert reconciled.status_code == 201, reconciled.text
    assert reconciled.json()["discrepancies"] == 0

    # 4. Next morning the nurse charts the round: Ingrid's levotyroksin with a scan, Per's
    # multidose bag, and a PRN oksykodon for Per with a second nurse as witness.
    clock.at = NEXT_MORNING
    chart = client.get(f"/nursing/wards/{world.ward_id}/chart?day=2026-11-21", headers=nurse)
    assert chart.status_code == 200, chart.text
    by_patient = {p["patient_id"]: p for p in chart.json()["patients"]}
    assert set(by_patient) == {str(p) for p in world.patients.values()}
    levotyroksin = next(
        d
        for d in by_patient[ingrid_id]["doses"]
        if "Levotyroksin" in d["drug"] and d["status"] == "due"
    )
    given = client.post(
        f"/nursing/patients/{ingrid_id}/administrations",
        headers=nurse,
        json={
            "administration_id": str(uuid.uuid4()),
            "entry_id": levotyroksin["entry_id"],
            "planned_dose_id": levotyroksin["planned_dose_id"],
            "outcome": "given",
            "given_at": NEXT_MORNING.isoformat(),
            "dose": {"value": 1, "unit": "tablett"},
            "scan": LEVOTYROKSIN_EAN,
        },
    )
    assert given.status_code == 201, given.text
    bag = next(d for d in by_patient[per_id]["doses"] if d["multidose"] and d["status"] == "due")
    from_bag = client.post(
        f"/nursing/patients/{per_id}/administrations",
        headers=nurse,
        json={
            "administration_id": str(uuid.uuid4()),
            "entry_id": bag["entry_id"],
            "planned_dose_id": bag["planned_dose_id"],
            "outcome": "given",
            "given_at": NEXT_MORNING.isoformat(),
            "dose": bag["amount"],
            "scan_skipped": "multidose-bag",
        },
    )
    assert from_bag.status_code == 201, from_bag.text
    per_list = client.get(f"/patients/{per_id}/list", headers=nurse).json()
    oksykodon = next(e for e in per_list["entries"] if e["drug"].get("varenr") == "091099")
    prn = client.post(
        f"/nursing/patients/{per_id}/administrations",
        headers={**nurse, "X-Witness-Authorization": f"Bearer {witness}"},
        json={
            "administration_id": str(uuid.uuid4()),
            "entry_id": oksykodon["id"],
            "outcome": "given",
            "given_at": NEXT_MORNING.isoformat(),
            "dose": {"value": 1, "unit": "kapsel"},
            "scan": OKSYKODON_EAN,
        },
    )
    assert prn.status_code == 201, prn.text
    assert prn.json()["witness"] == "Ola Olsen"

    # 5. Per reads the list (with the override) and who accessed it.
    patient = _bearer(issue_token("patient", per))
    own = client.get("/me/list", headers=patient).json()
    assert {o["key"] for o in own["overrides"]} == set(reasons)
    log = client.get("/me/access-log?limit=100", headers=patient).json()["events"]
    seen = {(e["actor_role"], e["action"]) for e in log}
    assert {
        ("doctor", "medication-list.prescribe"),
        ("pharmacist", "medication-list.dispense"),
        ("pharmacist", "medication-list.multidose-reconcile"),
        ("nurse", "administration.read.ward-chart"),
        ("nurse", "medication-list.administer"),
        ("patient", "medication-list.read.own-list"),
    } <= seen

    # Every row all of that appended is attested by the audit record of its command.
    with engine.connect() as conn:
        verified = verify(conn)
    assert verified.problems == () and verified.ok
    assert verified.rows > 100
