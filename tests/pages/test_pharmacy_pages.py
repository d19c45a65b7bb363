"""The pharmacist's and the patient's pages without a browser (TestClient, SQLite and
PostgreSQL): the multidose worklist, the production plan, a packing report uploaded as CSV or
JSON and reconciled line by line, proposals and their state, dispensing with generic
substitution, scoping to the pharmacy's own patients, and the patient's own list and access
log."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta

from lxml import html as lxml_html
from sqlalchemy import func, select

from medloop.store.multidose import reconciliation as multidose_reconciliation
from tests.pages.gp_helpers import (
    OTHER_PHARMACIST,
    SIMVASTATIN_NORDKYST,
    as_claims,
    as_person,
    dispense_simvastatin,
    hidden,
    plan_csv,
    resident,
)
from tests.pages.helpers import BUILT, csrf_of


def upload(client, patient_id: str, period_id: str, name: str, data: bytes):
    page = client.get(f"/app/pharmacy/patients/{patient_id}/multidose").text
    return client.post(
        f"/app/pharmacy/patients/{patient_id}/multidose/packing-reports",
        data={
            "csrf_token": csrf_of(page),
            "period_id": period_id,
            "report_id": hidden(page, "report_id"),
        },
        files={"report": (name, data, "text/csv")},
    )


def reconciliations(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(multidose_reconciliation)).scalar_one()


def test_the_worklist_lists_only_the_pharmacys_multidose_patients(client, pages_world):
    # an hour after the demo world was built: its periods' deadline just passed (the demo
    # orders from the Wednesday before, or at once), the periods begin on Monday
    pages_world.clock.at = BUILT + timedelta(hours=1)
    as_person(client, "pharmacist")
    answer = client.get("/app/pharmacy", params={"days": 14})
    assert answer.status_code == 200
    assert "Kari Nordmann" in answer.text and "Per Hansen" in answer.text
    assert "Ingrid Berg" not in answer.text  # not a multidose patient
    # neither lists changed since a plan was taken: none was taken yet
    assert answer.text.count("Ikke hentet") == 2

    as_claims(client, pages_world, OTHER_PHARMACIST)
    other = client.get("/app/pharmacy", params={"days": 14})
    assert "Kari Nordmann" not in other.text and "Per Hansen" not in other.text


def test_a_period_is_reconciled_from_an_uploaded_csv_with_every_line_labelled(client, pages_world):
    as_person(client, "pharmacist")
    _, patient_id = resident(pages_world.world, 0)
    period_id, data, lines = plan_csv(pages_world.engine, patient_id, drop=0, double=1)
    plan = client.get(f"/app/pharmacy/patients/{patient_id}/multidose/periods/{period_id}/plan")
    assert plan.status_code == 200 and "Produksjonsplan" in plan.text

    answer = upload(client, patient_id, period_id, "pakkerapport.csv", data)
    assert answer.status_code == 303, answer.text[:3000]
    shown = client.get(answer.headers["location"])
    assert shown.status_code == 200
    rows = lxml_html.fromstring(shown.text).xpath('//table[@id="reconciliation"]/tbody/tr')
    classes = [row.xpath(".//span[@data-class]")[0].get("data-class") for row in rows]
    assert classes.count("missing-from-bags") == 1
    assert classes.count("dose-mismatch") == 1
    assert classes.count("ok") == len(lines) - 2
    labels = {row.xpath(".//span[@data-class]")[0].text_content().strip() for row in rows}
    assert {"! Mangler i posene", "! Feil dose", "✓ Riktig"} <= labels  # words, not colour
    assert "Pakk dosen som mangler før posene sendes." in shown.text  # what to do
    assert "2 linjer må følges opp." in shown.text


def test_a_bad_csv_is_refused_with_line_and_column_and_nothing_is_reconciled(client, pages_world):
    as_person(client, "pharmacist")
    _, patient_id = resident(pages_world.world, 0)
    period_id, data, _ = plan_csv(pages_world.engine, patient_id)
    broken = data.replace(b";090", b";90", 1)  # the first line's varenr lost its leading zero
    answer = upload(client, patient_id, period_id, "feil.csv", broken)
    assert answer.status_code == 422
    assert "feil.csv:2:3: csv-varenr-invalid" in answer.text
    assert "Filen ble ikke lest, og ingenting ble lagret." in answer.text
    assert reconciliations(pages_world.engine) == 0


def test_the_apis_json_report_is_taken_too(client, pages_world):
    as_person(client, "pharmacist")
    _, patient_id = resident(pages_world.world, 1)
    period_id, _, lines = plan_csv(pages_world.engine, patient_id)
    bags: dict = {}
    for bag, line in lines:
        bags.setdefault((bag.day.isoformat(), bag.intake), []).append(
            {"varenr": line.varenr, "quantity": {"value": line.quantity.value, "unit": "tablett"}}
        )
    body = {
        "report_id": str(uuid.uuid4()),
        "period_id": period_id,
        "bags": [{"day": d, "intake": i, "lines": ls} for (d, i), ls in bags.items()],
    }
    answer = upload(client, patient_id, period_id, "report.json", json.dumps(body).encode())
    assert answer.status_code == 303, answer.text[:2000]
    assert "Alle linjer er riktige." in client.get(answer.headers["location"]).text


def test_a_proposal_is_sent_the_gp_accepts_it_and_the_pharmacist_sees_its_state(
    client, pages_world
):
    as_person(client, "pharmacist")
    _, patient_id = resident(pages_world.world, 1)
    page = client.get(f"/app/pharmacy/patients/{patient_id}/multidose").text
    entry_id = re.search(r'<option value="([0-9a-f-]{36})">Simvastatin', page)[1]
    sent = client.post(
        f"/app/pharmacy/patients/{patient_id}/multidose/proposals",
        data={
            "csrf_token": csrf_of(page),
            "proposal_id": hidden(page, "proposal_id"),
            "kind": "change-dosage",
            "entry_id": entry_id,
            "note": "Pasienten sover dårlig; morgen i stedet?",
            "use": "regular",
            "amount": "1",
            "unit": "tablett",
            "slot": "morning",
        },
    )
    assert sent.status_code == 303, sent.text[:2000]
    assert "Venter på legen" in client.get(sent.headers["location"]).text

    as_person(client, "gp")
    listed = client.get(f"/app/gp/patients/{patient_id}").text
    assert "Pasienten sover dårlig; morgen i stedet?" in listed
    accept = re.search(r'action="(/app/gp/patients/[^"]+/accept)"', listed)[1]
    decided = client.post(
        accept,
        data={
            "csrf_token": csrf_of(listed),
            "based_on": hidden(listed, "based_on"),
            "idempotency_key": hidden(listed, "idempotency_key"),
        },
    )
    assert decided.status_code == 303, decided.text[:2000]

    as_person(client, "pharmacist")
    assert "Godtatt" in client.get(f"/app/pharmacy/patients/{patient_id}/multidose").text


def test_dispensing_a_generic_substitute_of_the_same_group(client, pages_world):
    as_person(client, "pharmacist")
    _, patient_id = resident(pages_world.world, 1)
    page, answer = dispense_simvastatin(client, patient_id, SIMVASTATIN_NORDKYST)
    assert f'value="{SIMVASTATIN_NORDKYST}"' in page  # the same substitution group's package
    assert answer.status_code == 303, answer.text[:3000]
    assert "Utlevert." in client.get(answer.headers["location"]).text


def test_a_pharmacist_of_another_pharmacy_cannot_open_a_patients_multidose_pages(
    client, pages_world
):
    _, patient_id = resident(pages_world.world, 0)
    as_claims(client, pages_world, OTHER_PHARMACIST)
    answer = client.get(f"/app/pharmacy/patients/{patient_id}/multidose")
    assert answer.status_code == 403
    assert "Kari" not in answer.text


def test_a_patient_reads_their_own_list_and_who_read_it(client, pages_world):
    national_id, patient_id = resident(pages_world.world, 0)
    as_person(client, "gp")
    assert client.get(f"/app/gp/patients/{patient_id}").status_code == 200

    as_person(client, "patient")
    assert client.get("/app/").headers["location"] == "/app/me"
    mine = client.get("/app/me")
    assert mine.status_code == 200 and "Mine legemidler" in mine.text
    assert 'method="post"' not in mine.text.split("<main")[1]  # read-only: no form but the header's
    log = client.get("/app/me/access-log")
    assert log.status_code == 200
    rows = lxml_html.fromstring(log.text).xpath('//table[@id="access-log"]/tbody/tr')
    assert any("431002737" in row.text_content() for row in rows)  # the GP's read


def test_staff_cannot_open_the_patients_own_pages(client):
    as_person(client, "gp")
    assert client.get("/app/me").status_code == 403


def test_the_dispensing_page_links_the_multidose_page_only_where_this_pharmacy_packs(
    client, pages_world
):
    """Per Hansen's multidose pharmacy is the demo pharmacy: his dispensing page links his
    multidose page. Ingrid Berg has none: a link would lead to a refusal (and its audit)."""
    as_person(client, "pharmacist")
    for index, linked in ((1, True), (2, False)):
        _, patient_id = resident(pages_world.world, index)
        page = client.get(f"/app/pharmacy/patients/{patient_id}")
        assert page.status_code == 200
        href = f'href="/app/pharmacy/patients/{patient_id}/multidose"'
        assert (href in page.text) is linked
        answer = client.get(f"/app/pharmacy/patients/{patient_id}/multidose")
        assert answer.status_code == (200 if linked else 403)
