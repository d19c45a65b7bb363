"""GS1 GSRN wristbands: the demo residents wear one; the bedside scan (the AI 8018 element string
or the bare 18 digits) confirms the resident whose stay it is registered for, and another
resident's GSRN is refused as a wrong resident; a nurse registers a new wristband on the
resident's wristband page or over the API (a command: audited, check digit checked, a GSRN of
another stay refused, nothing stored on a refusal). SQLite and PostgreSQL."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from medloop import demo
from medloop.store.administration import wristband
from medloop.store.audit import audit_event
from tests.pages.helpers import client_signed_in, csrf_of

NEW_GSRN = "709999900000000994"  # the GS1 check digit of 70999990000000099 is 4


def _scan(client, patient_id, code: str):
    page = client.get(f"/app/nurse/residents/{patient_id}/bedside")
    return client.post(
        f"/app/nurse/residents/{patient_id}/bedside",
        data={"csrf_token": csrf_of(page.text), "wristband": code},
    )


def _wristbands(world) -> int:
    with world.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(wristband)).scalar_one()


def _register(client, patient_id, code: str):
    page = client.get(f"/app/nurse/residents/{patient_id}/wristband")
    assert page.status_code == 200, page.text
    return client.post(
        f"/app/nurse/residents/{patient_id}/wristband",
        data={"csrf_token": csrf_of(page.text), "gsrn": code},
    )


def test_the_demo_residents_wristband_gsrn_confirms_the_resident(client, pages_world):
    client_signed_in(client, "nurse")
    _, patient_id = pages_world.patient(2)
    for code in (f"(8018){demo.gsrn(2)}", f"8018{demo.gsrn(2)}", demo.gsrn(2)):
        answer = _scan(client, patient_id, code)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"].endswith("bedside?identity=scan")


def test_another_residents_gsrn_is_refused_as_a_wrong_resident(client, pages_world):
    client_signed_in(client, "nurse")
    _, patient_id = pages_world.patient(2)
    answer = _scan(client, patient_id, f"(8018){demo.gsrn(0)}")
    assert answer.status_code == 409 and "Feil beboer" in answer.text
    assert "Dagens doser" not in answer.text


def test_a_gsrn_with_a_wrong_check_digit_is_refused_at_the_bedside(client, pages_world):
    client_signed_in(client, "nurse")
    _, patient_id = pages_world.patient(2)
    wrong = demo.gsrn(2)[:17] + str((int(demo.gsrn(2)[17]) + 1) % 10)
    answer = _scan(client, patient_id, wrong)
    assert answer.status_code == 422 and 'id="wristband-error"' in answer.text


def test_a_new_wristband_replaces_the_old_one_and_is_audited(client, pages_world):
    client_signed_in(client, "nurse")
    national_id, patient_id = pages_world.patient(2)
    before = _wristbands(pages_world)
    saved = _register(client, patient_id, f"(8018){NEW_GSRN}")
    assert saved.status_code == 303 and saved.headers["location"].endswith("/bedside")
    assert _wristbands(pages_world) == before + 1
    assert NEW_GSRN in client.get(f"/app/nurse/residents/{patient_id}/wristband").text
    assert _scan(client, patient_id, NEW_GSRN).status_code == 303
    assert _scan(client, patient_id, demo.gsrn(2)).status_code == 409  # the old band no longer
    with pages_world.engine.connect() as conn:
        actions = conn.execute(
            select(audit_event.c.action).where(audit_event.c.patient == national_id)
        ).scalars()
        assert any(a.endswith("register-wristband") for a in actions)


def test_registering_refuses_a_bad_check_digit_and_another_stays_gsrn(client, pages_world):
    client_signed_in(client, "nurse")
    _, patient_id = pages_world.patient(2)
    before = _wristbands(pages_world)
    bad = _register(client, patient_id, NEW_GSRN[:17] + "5")
    assert bad.status_code == 422 and 'id="gsrn-error"' in bad.text
    assert "kontrollsiffer" in bad.text
    taken = _register(client, patient_id, demo.gsrn(0))
    assert taken.status_code == 409 and "allerede registrert" in taken.text
    assert _wristbands(pages_world) == before


def test_the_api_registers_a_wristband_for_the_nurses_resident(pages_world):
    _, patient_id = pages_world.patient(2)
    tokens = pages_world.world.tokens
    path = f"/nursing/patients/{patient_id}/wristband"
    with TestClient(pages_world.app) as api:
        nurse = {"Authorization": f"Bearer {tokens['nurse']}"}
        done = api.post(path, json={"gsrn": NEW_GSRN}, headers=nurse)
        assert done.status_code == 200, done.text
        assert done.json()["gsrn"] == NEW_GSRN
        bad = api.post(path, json={"gsrn": NEW_GSRN[:17] + "5"}, headers=nurse)
        assert bad.status_code == 422 and bad.json()["code"] == "gsrn-invalid"
        assert bad.headers["content-type"].startswith("application/problem+json")
        gp = {"Authorization": f"Bearer {tokens['gp']}"}
        assert api.post(path, json={"gsrn": demo.gsrn(5)}, headers=gp).status_code == 403
    assert _wristbands(pages_world) == len(demo.RESIDENTS) + 1
