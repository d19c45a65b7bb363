"""The pharmacy's, the catalogue's and the patient's API over HTTP."""

from __future__ import annotations

from medloop.store import audit
from tests.api.helpers import (
    NATIONAL_ID,
    PATIENT_TOKEN,
    PHARMACIST_TOKEN,
    dispense_body,
    pharmacy_version,
    prescribe_body,
)
from tests.loop.helpers import ATORVASTATIN, SIMVASTATIN_28, SIMVASTATIN_NORDKYST


def _prescribed(world, varenr=SIMVASTATIN_28):
    body = prescribe_body(varenr)
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201
    return body


def test_the_pharmacy_sees_dispensable_prescriptions_with_their_entries(world):
    body = _prescribed(world)
    response = world.get(
        f"/pharmacy/patients/{world.patient_id}/prescriptions", token=PHARMACIST_TOKEN
    )
    assert response.status_code == 200
    found = response.json()
    assert [p["id"] for p in found["prescriptions"]] == [body["terms"]["prescription_id"]]
    assert found["prescriptions"][0]["status"] == "E"
    assert [e["id"] for e in found["entries"]] == [body["entry_id"]]
    assert response.headers["ETag"] == '"1"'


def test_dispensing_a_generic_from_the_substitution_group_then_annulling_it(world):
    body = _prescribed(world)
    rx = body["terms"]["prescription_id"]
    path = f"/pharmacy/patients/{world.patient_id}/dispenses"
    dispensed = world.post(
        path,
        dispense_body(rx, SIMVASTATIN_NORDKYST),
        token=PHARMACIST_TOKEN,
        **{"If-Match": pharmacy_version(world), "Idempotency-Key": "d-1"},
    )
    assert dispensed.status_code == 201, dispensed.text
    assert dispensed.json()["substituted"] is True
    assert dispensed.json()["prescription_status"] == "R"
    annulled = world.post(
        f"{path}/{dispensed.json()['dispense_id']}/annul",
        {"reason": "wrong package"},
        token=PHARMACIST_TOKEN,
    )
    assert annulled.status_code == 200, annulled.text
    assert annulled.json()["prescription_status"] == "E"


def test_a_substitute_in_a_restricted_group_needs_the_pharmacists_reasoned_decision(world):
    # Demo group 900103 (metoprolol depot tablets) carries MerknadTilByttbarhet true.
    rx = _prescribed(world, "090283")["terms"]["prescription_id"]
    path = f"/pharmacy/patients/{world.patient_id}/dispenses"
    body = dispense_body(rx, "090317")
    refused = world.post(
        path, body, token=PHARMACIST_TOKEN, **{"If-Match": pharmacy_version(world)}
    )
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["type"] == "https://medloop.dev/problems/override-required"
    (alert,) = problem["alerts"]
    assert alert["kind"] == "substitution-restriction" and alert["requires_override"] is True
    assert alert["detail"]["group_code"] == "900103"
    reason = "patient swallows the tablet whole"
    dispensed = world.post(
        path,
        {**body, "overrides": {alert["key"]: reason}},
        token=PHARMACIST_TOKEN,
        **{"If-Match": pharmacy_version(world)},
    )
    assert dispensed.status_code == 201, dispensed.text
    substitution = dispensed.json()["substitution"]
    assert substitution["restricted"] is True
    assert substitution["decision"]["reason"] == reason
    shown = world.get(
        f"/pharmacy/patients/{world.patient_id}/prescriptions", token=PHARMACIST_TOKEN
    ).json()
    assert reason in str(shown), "the decision is on record where the pharmacy looks"


def test_a_package_outside_the_substitution_group_is_refused_with_its_code(world):
    body = _prescribed(world)
    refused = world.post(
        f"/pharmacy/patients/{world.patient_id}/dispenses",
        dispense_body(body["terms"]["prescription_id"], ATORVASTATIN),
        token=PHARMACIST_TOKEN,
        **{"If-Match": pharmacy_version(world)},
    )
    assert refused.status_code == 409
    assert refused.json()["type"] == "https://medloop.dev/problems/package-not-substitutable"


def test_lock_and_release_a_prescription(world):
    rx = _prescribed(world)["terms"]["prescription_id"]
    base = f"/pharmacy/patients/{world.patient_id}/prescriptions/{rx}"
    locked = world.post(f"{base}/lock", None, token=PHARMACIST_TOKEN)
    assert locked.status_code == 200 and locked.json()["prescription_status"] == "U"
    released = world.post(f"{base}/release", None, token=PHARMACIST_TOKEN)
    assert released.status_code == 200 and released.json()["prescription_status"] == "E"


def test_catalogue_version_search_and_package_with_its_substitution_group(world):
    version = world.get("/catalogue").json()
    assert version["version"] == 1 and version["hentet_dato"].startswith("2026-11-02")
    by_name = world.get("/catalogue/packages?name=simvastatin").json()
    assert {p["varenr"] for p in by_name} == {"090436", "090453", "090470"}
    by_ean = world.get("/catalogue/packages?ean=7046260904361").json()
    assert [p["varenr"] for p in by_ean] == ["090436"]
    by_atc = world.get("/catalogue/packages?atc=C10AA05").json()
    assert {p["varenr"] for p in by_atc} == {"090487", "090504", "090521"}
    detail = world.get(f"/catalogue/packages/{SIMVASTATIN_28}").json()
    group = detail["substitution_group"]
    assert group["code"] == "900104"
    assert [p["varenr"] for p in group["packages"]] == ["090436", "090453", "090470"]
    assert world.get("/catalogue/packages/999999").status_code == 404


def test_the_patient_reads_their_list_and_who_accessed_it(world):
    body = _prescribed(world)
    world.get(f"/pharmacy/patients/{world.patient_id}/prescriptions", token=PHARMACIST_TOKEN)
    own = world.get("/me/list", token=PATIENT_TOKEN)
    assert own.status_code == 200
    assert [e["id"] for e in own.json()["entries"]] == [body["entry_id"]]
    log = world.get("/me/access-log?limit=10", token=PATIENT_TOKEN).json()
    actions = [e["action"] for e in log["events"]]
    assert "medication-list.read.own-list" in actions
    assert "medication-list.read.dispensable" in actions
    assert "medication-list.prescribe" in actions
    roles = {e["actor_role"] for e in log["events"]}
    assert {"doctor", "pharmacist", "patient"} <= roles
    with world.engine.connect() as conn:
        newest = audit.events_for_patient(conn, NATIONAL_ID, limit=1).events[0]
    assert newest.action == "medication-list.read.access-log"
