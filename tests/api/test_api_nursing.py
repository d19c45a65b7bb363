"""The nursing home over HTTP: a ward of the nurse's organisation, admission (which is what
gives the nurse access), the ward chart for a day, the morning dose charted with a scan, a
witnessed PRN narcotic (the witness signs with their own token), entered-in-error, the
administration history, and the other nursing home's nurse refused throughout."""

from __future__ import annotations

import uuid

from tests.api.helpers import (
    NEXT_MORNING,
    NURSE_TOKEN,
    OKSYKODON_EAN,
    OTHER_HOME_NURSE_TOKEN,
    OTHER_HOME_WARD_ADMIN_TOKEN,
    PATIENT_TOKEN,
    SECOND_NURSE_TOKEN,
    SIMVASTATIN_GENERIC_EAN,
    admission_body,
    admitted,
    auth,
)


def test_the_morning_round_with_a_scan_and_a_witnessed_narcotic(world):
    ward_id, simvastatin, oksykodon = admitted(world)
    assert world.get(f"/patients/{world.patient_id}/list", token=NURSE_TOKEN).status_code == 200
    world.clock.at = NEXT_MORNING
    chart = world.get(f"/nursing/wards/{ward_id}/chart?day=2026-11-21", token=NURSE_TOKEN)
    assert chart.status_code == 200, chart.text
    (patient,) = chart.json()["patients"]
    (dose,) = [d for d in patient["doses"] if d["entry_id"] == simvastatin]
    assert dose["status"] == "due"

    path = f"/nursing/patients/{world.patient_id}/administrations"
    given = world.post(
        path,
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
    assert given.json()["scan"] is not None

    prn = {
        "administration_id": str(uuid.uuid4()),
        "entry_id": oksykodon,
        "outcome": "given",
        "given_at": NEXT_MORNING.isoformat(),
        "dose": {"value": 1, "unit": "kapsel"},
        "scan": OKSYKODON_EAN,
    }
    alone = world.post(path, prn, token=NURSE_TOKEN)
    assert alone.status_code == 409 and alone.json()["code"] == "witness-required"
    herself = world.client.post(
        path,
        json=prn,
        headers=auth(NURSE_TOKEN, **{"X-Witness-Authorization": f"Bearer {NURSE_TOKEN}"}),
    )
    assert herself.json()["code"] == "witness-same-person"
    outsider = world.client.post(
        path,
        json=prn,
        headers=auth(
            NURSE_TOKEN, **{"X-Witness-Authorization": f"Bearer {OTHER_HOME_NURSE_TOKEN}"}
        ),
    )
    assert outsider.status_code == 403
    witnessed = world.client.post(
        path,
        json=prn,
        headers=auth(NURSE_TOKEN, **{"X-Witness-Authorization": f"Bearer {SECOND_NURSE_TOKEN}"}),
    )
    assert witnessed.status_code == 201, witnessed.text
    assert witnessed.json()["witness"] == "Siri Sykepleier"

    corrected = world.post(
        f"{path}/{given.json()['administration_id']}/entered-in-error",
        {"reason": "charted on the wrong patient"},
        token=NURSE_TOKEN,
    )
    assert corrected.status_code == 200, corrected.text
    history = world.get(path, token=NURSE_TOKEN).json()
    stands = {h["administration"]["id"]: h["stands"] for h in history}
    assert stands == {
        given.json()["administration_id"]: False,
        witnessed.json()["administration_id"]: True,
    }

    log = world.get("/me/access-log", token=PATIENT_TOKEN).json()["events"]
    actions = {(e["actor_role"], e["action"]) for e in log}
    assert ("nurse", "medication-list.administer") in actions
    assert ("nurse", "administration.read.ward-chart") in actions


def test_a_nurse_of_another_home_sees_and_charts_nothing(world):
    ward_id, simvastatin, _ = admitted(world)
    world.clock.at = NEXT_MORNING
    token = OTHER_HOME_NURSE_TOKEN
    assert world.get(f"/nursing/wards/{ward_id}/chart", token=token).status_code == 403
    assert world.get(f"/nursing/wards/{uuid.uuid4()}/chart", token=token).status_code == 403
    assert world.get(f"/patients/{world.patient_id}/list", token=token).status_code == 403
    refused = world.post(
        f"/nursing/patients/{world.patient_id}/administrations",
        {
            "administration_id": str(uuid.uuid4()),
            "entry_id": simvastatin,
            "outcome": "refused",
            "reason": "patient refused",
        },
        token=token,
    )
    assert refused.status_code == 403
    assert str(world.patient_id) not in refused.text
    history = world.get(f"/nursing/patients/{world.patient_id}/administrations", token=token)
    assert history.status_code == 403
    into_our_ward = world.post(
        f"/nursing/patients/{world.patient_id}/admissions",
        admission_body(ward_id, "2026-11-21T07:00:00Z"),
        token=OTHER_HOME_WARD_ADMIN_TOKEN,
    )
    assert into_our_ward.status_code == 403
    assert into_our_ward.json()["code"] == "ward-of-another-organisation"
    assert str(world.patient_id) not in into_our_ward.text and ward_id not in into_our_ward.text


def test_the_ward_chart_shows_each_prn_entry_with_its_limits_and_what_remains(world):
    ward_id, _, oksykodon = admitted(world)
    world.clock.at = NEXT_MORNING
    chart = world.get(f"/nursing/wards/{ward_id}/chart?day=2026-11-21", token=NURSE_TOKEN)
    (patient,) = chart.json()["patients"]
    assert patient["as_needed"] == []  # nothing given yet, and still on the chart:
    assert patient["prn"] == [
        {
            "entry_id": oksykodon,
            "drug": "Oksykodon Fjordfarma Kaps 5 mg",
            "amount": {"value": 1.0, "unit": "kapsel"},
            "limits": {
                "max_per_24h": {"value": 4.0, "unit": "kapsel"},
                "max_per_period": None,
                "period": None,
                "min_interval": {"value": 4.0, "unit": "hour"},
            },
            "given_last_24h": 0.0,
            "doses_remaining": 4,
            "next_allowed_at": "2026-11-21T07:05:00+00:00",
            "not_checked": [],
        }
    ]
    given = world.client.post(
        f"/nursing/patients/{world.patient_id}/administrations",
        json={
            "administration_id": str(uuid.uuid4()),
            "entry_id": oksykodon,
            "outcome": "given",
            "given_at": NEXT_MORNING.isoformat(),
            "dose": {"value": 1, "unit": "kapsel"},
            "scan": OKSYKODON_EAN,
        },
        headers=auth(NURSE_TOKEN, **{"X-Witness-Authorization": f"Bearer {SECOND_NURSE_TOKEN}"}),
    )
    assert given.status_code == 201, given.text
    chart = world.get(f"/nursing/wards/{ward_id}/chart?day=2026-11-21", token=NURSE_TOKEN)
    (line,) = chart.json()["patients"][0]["prn"]
    assert line["given_last_24h"] == 1.0
    assert line["doses_remaining"] == 3
    assert line["next_allowed_at"] == "2026-11-21T11:05:00+00:00"


def test_the_prn_line_is_typed_in_the_openapi_document(world):
    schemas = world.client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["PatientChart"]["properties"]["prn"]["items"] == {
        "$ref": "#/components/schemas/PrnLine"
    }
    line = schemas["PrnLine"]
    assert set(line["required"]) >= {
        "entry_id",
        "limits",
        "given_last_24h",
        "doses_remaining",
        "next_allowed_at",
    }
    assert line["properties"]["limits"] == {"$ref": "#/components/schemas/PrnLimits"}
