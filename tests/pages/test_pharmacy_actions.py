"""The pharmacist's page actions beside dispensing (SQLite and PostgreSQL): ordering an urgent
pack for the rest of a multidose period, and annulling one of the pharmacy's dispenses, each
through the loop's command, refused in words next to the field and with nothing saved."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from lxml import html as lxml_html

from medloop.loop import multidose
from tests.pages.gp_helpers import (
    OTHER_PHARMACIST,
    as_claims,
    as_person,
    dispense_simvastatin,
    hidden,
    resident,
)
from tests.pages.helpers import BUILT, csrf_of


def _urgent_packs(engine, patient_id: str) -> int:
    with engine.connect() as conn:
        return sum(len(v.urgent_packs) for v in multidose.periods(conn, uuid.UUID(patient_id)))


def _order(client, patient_id: str, **fields: str):
    page = client.get(f"/app/pharmacy/patients/{patient_id}/multidose").text
    period = re.search(
        r'<select id="urgent_period" name="period_id"[^>]*>\s*<option value="([^"]+)"', page
    )
    return client.post(
        f"/app/pharmacy/patients/{patient_id}/multidose/urgent-packs",
        data={
            "csrf_token": csrf_of(page),
            "pack_id": hidden(page, "pack_id"),
            "period_id": period[1],
            **fields,
        },
    )


def test_an_urgent_pack_before_the_deadline_is_refused_by_the_period_then_ordered_after(
    client, pages_world
):
    as_person(client, "pharmacist")
    _, patient_id = resident(pages_world.world, 0)
    pages_world.clock.at = BUILT  # the demo's periods' order deadline, not yet passed

    early = _order(client, patient_id, reason="Ny smertestillende fra legevakt")
    assert early.status_code == 409, early.text[:2000]
    tree = lxml_html.fromstring(early.text)
    control = tree.get_element_by_id("urgent_period")
    assert control.get("aria-invalid") == "true"
    words = tree.get_element_by_id("urgent_period-refusal").text_content()
    assert "Bestillingsfristen" in words and "har ikke gått ut" in words
    assert re.search(r"\d{1,2}\. des\. 2026 kl\. \d\d:\d\d", words)  # Oslo time, Norwegian
    assert _urgent_packs(pages_world.engine, patient_id) == 0

    # an hour after the demo was built its periods' order deadline has passed
    pages_world.clock.at = BUILT + timedelta(hours=1)
    no_reason = _order(client, patient_id, reason=" ")
    assert no_reason.status_code == 422
    assert 'id="urgent_reason-refusal"' in no_reason.text
    assert _urgent_packs(pages_world.engine, patient_id) == 0

    ordered = _order(client, patient_id, reason="Ny smertestillende fra legevakt")
    assert ordered.status_code == 303, ordered.text[:2000]
    shown = client.get(ordered.headers["location"]).text
    assert "Hastepakk bestilt" in shown and "Ny smertestillende fra legevakt" in shown
    assert _urgent_packs(pages_world.engine, patient_id) == 1


def test_another_pharmacy_cannot_order_an_urgent_pack(client, pages_world):
    pages_world.clock.at = BUILT + timedelta(hours=1)
    _, patient_id = resident(pages_world.world, 0)
    as_person(client, "pharmacist")
    page = client.get(f"/app/pharmacy/patients/{patient_id}/multidose").text
    as_claims(client, pages_world, OTHER_PHARMACIST)
    other = client.get("/app/pharmacy").text
    period = re.search(r'name="period_id"[^>]*>\s*<option value="([^"]+)"', page)[1]
    answer = client.post(
        f"/app/pharmacy/patients/{patient_id}/multidose/urgent-packs",
        data={
            "csrf_token": csrf_of(other),
            "pack_id": str(uuid.uuid4()),
            "period_id": period,
            "reason": "Forsøk",
        },
    )
    assert answer.status_code == 403
    assert _urgent_packs(pages_world.engine, patient_id) == 0


def _dispense(client, patient_id: str) -> None:
    _, answer = dispense_simvastatin(client, patient_id)
    assert answer.status_code == 303, answer.text[:2000]


def _annul_forms(page: str) -> list[str]:
    return re.findall(r'action="(/app/pharmacy/patients/[^"]+/dispenses/[^"]+/annul)"', page)


def test_a_dispense_is_annulled_with_a_reason_and_the_prescription_reopens(client, pages_world):
    as_person(client, "pharmacist")
    _, patient_id = resident(pages_world.world, 1)
    before = client.get(f"/app/pharmacy/patients/{patient_id}").text
    assert _annul_forms(before) == []
    _dispense(client, patient_id)
    page = client.get(f"/app/pharmacy/patients/{patient_id}").text
    (action,) = _annul_forms(page)
    dispense_id = action.rsplit("/", 2)[1]
    assert "1 av 2" in page or "1 of 2" in page

    refused = client.post(
        action,
        data={"csrf_token": csrf_of(page), "idempotency_key": str(uuid.uuid4()), "reason": ""},
    )
    assert refused.status_code == 422
    tree = lxml_html.fromstring(refused.text)
    field = tree.get_element_by_id(f"annul-{dispense_id}")
    assert field.get("aria-invalid") == "true"
    assert "Skriv hvorfor" in tree.get_element_by_id(f"annul-{dispense_id}-refusal").text_content()
    assert len(_annul_forms(refused.text)) == 1  # nothing annulled

    annulled = client.post(
        action,
        data={
            "csrf_token": csrf_of(page),
            "idempotency_key": str(uuid.uuid4()),
            "reason": "Feil pakning registrert",
        },
    )
    assert annulled.status_code == 303, annulled.text[:2000]
    after = client.get(annulled.headers["location"]).text
    assert "Utleveringen er annullert" in after
    assert _annul_forms(after) == []
    assert "0 av 2" in after

    again = client.post(
        action,
        data={"csrf_token": csrf_of(page), "idempotency_key": str(uuid.uuid4()), "reason": "x"},
    )
    assert again.status_code == 409
    assert "allerede annullert" in again.text


def test_another_pharmacy_sees_no_dispense_of_ours_to_annul_and_is_refused(client, pages_world):
    as_person(client, "pharmacist")
    _, patient_id = resident(pages_world.world, 1)
    _dispense(client, patient_id)
    (action,) = _annul_forms(client.get(f"/app/pharmacy/patients/{patient_id}").text)
    as_claims(client, pages_world, OTHER_PHARMACIST)
    other = client.get(f"/app/pharmacy/patients/{patient_id}")
    if other.status_code == 200:
        assert _annul_forms(other.text) == []
    answer = client.post(
        action,
        data={
            "csrf_token": csrf_of(client.get("/app/pharmacy").text),
            "idempotency_key": str(uuid.uuid4()),
            "reason": "Forsøk",
        },
    )
    assert answer.status_code in (403, 409)
    as_person(client, "pharmacist")
    assert len(_annul_forms(client.get(f"/app/pharmacy/patients/{patient_id}").text)) == 1
