"""The GP's pages without a browser (TestClient, SQLite and PostgreSQL): finding a patient,
the list, prescribing with the alerts before saving and an override reason, changes to an
entry, a stale form, multidose proposals, the timeline, and who may open what."""

from __future__ import annotations

import re

from lxml import html as lxml_html

from medloop import queries
from tests.pages.gp_helpers import (
    KLARITROMYCIN,
    SIMVASTATIN,
    as_person,
    hidden,
    list_version,
    prescribe_form,
    prescription,
    resident,
)
from tests.pages.helpers import csrf_of


def test_a_gp_finds_a_patient_by_national_id_and_sees_the_list(client, pages_world):
    as_person(client, "gp")
    national_id, patient_id = resident(pages_world.world, 1)
    form = client.get("/app/gp")
    assert form.status_code == 200

    found = client.post(
        "/app/gp/find", data={"csrf_token": csrf_of(form.text), "national_id": national_id}
    )
    assert found.status_code == 303
    assert found.headers["location"] == f"/app/gp/patients/{patient_id}"
    listed = client.get(found.headers["location"])
    assert listed.status_code == 200
    assert "Per Hansen" in listed.text
    # each entry with its dosage and its prescription's dispensed total
    assert "Simvastatin" in listed.text and "1 tablett om kvelden" in listed.text
    assert "0 av 2 pakning utlevert" in listed.text or "0 av 2" in listed.text
    assert "I bruk" in listed.text


def test_an_unknown_or_malformed_national_id_is_said_next_to_the_field(client):
    as_person(client, "gp")
    token = csrf_of(client.get("/app/gp").text)
    short = client.post("/app/gp/find", data={"csrf_token": token, "national_id": "123"})
    assert short.status_code == 422 and "Et fødselsnummer har 11 sifre." in short.text
    unknown = client.post("/app/gp/find", data={"csrf_token": token, "national_id": "01010112345"})
    assert unknown.status_code == 404
    assert "Det finnes ingen legemiddelliste for dette fødselsnummeret." in unknown.text


def test_checking_shows_the_interaction_before_saving_and_writes_nothing(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    before = list_version(client, patient_id)
    page = prescribe_form(client, patient_id, q="klari")
    assert f'value="{KLARITROMYCIN}"' in page

    checked = client.post(
        f"/app/gp/patients/{patient_id}/prescribe",
        data=prescription(page, KLARITROMYCIN, "check"),
    )
    assert checked.status_code == 200
    assert "Varsler før lagring" in checked.text and "Unngå" in checked.text
    assert "Hvorfor du går videre likevel (påkrevd)" in checked.text
    assert list_version(client, patient_id) == before


def test_prescribing_an_interacting_drug_needs_an_override_reason_then_saves_it(
    client, pages_world
):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    before = list_version(client, patient_id)
    page = prescribe_form(client, patient_id, q=KLARITROMYCIN)
    body = prescription(page, KLARITROMYCIN, "save")

    refused = client.post(f"/app/gp/patients/{patient_id}/prescribe", data=body)
    assert refused.status_code == 409
    assert "Dette trenger en begrunnelse" in refused.text or "begrunnelse" in refused.text
    assert list_version(client, patient_id) == before  # nothing saved
    key = hidden(refused.text, "override-0-key")
    assert body["entry_id"] in key  # the alert names the new entry the retry keeps

    saved = client.post(
        f"/app/gp/patients/{patient_id}/prescribe",
        data={
            **prescription(refused.text, KLARITROMYCIN, "save"),
            "override-0-key": key,
            "override-0-reason": "Kort kur, simvastatin pauses i fem dager",
        },
    )
    assert saved.status_code == 303, saved.text
    listed = client.get(saved.headers["location"]).text
    assert "Klaritromycin" in listed or "klaritromycin" in listed.lower()
    assert "Kort kur, simvastatin pauses i fem dager" in listed  # the override on record
    assert list_version(client, patient_id) == before + 1


def test_an_invalid_dosage_is_shown_next_to_its_field_and_nothing_is_saved(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 2)
    before = list_version(client, patient_id)
    page = prescribe_form(client, patient_id, q=SIMVASTATIN)
    answer = client.post(
        f"/app/gp/patients/{patient_id}/prescribe",
        data=prescription(page, SIMVASTATIN, "save", amount="en", slot=[]),
    )
    assert answer.status_code == 422
    tree = lxml_html.fromstring(answer.text)
    assert tree.get_element_by_id("amount-error").text_content().startswith("Skriv dosen")
    assert tree.get_element_by_id("slot-error") is not None
    assert list_version(client, patient_id) == before


def test_the_catalogue_search_finds_by_name_varenr_and_atc(client):
    as_person(client, "gp")
    for q in ("simva", SIMVASTATIN, "C10AA01"):
        options = client.get("/app/gp/catalogue-options", params={"q": q})
        assert options.status_code == 200
        assert f'value="{SIMVASTATIN}"' in options.text, q
    assert 'name="varenr"' not in client.get("/app/gp/catalogue-options?q=s").text


def test_hold_resume_change_dosage_renew_and_discontinue_from_the_entry_page(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 2)
    listed = client.get(f"/app/gp/patients/{patient_id}").text
    entry_url = re.search(rf'href="(/app/gp/patients/{patient_id}/entries/[^"]+)"', listed)[1]

    def act(action: str, **fields: str) -> None:
        page = client.get(entry_url).text
        body = {
            "csrf_token": csrf_of(page),
            "based_on": hidden(page, "based_on"),
            "idempotency_key": hidden(page, "idempotency_key"),
            **fields,
        }
        answer = client.post(f"{entry_url}/{action}", data=body)
        assert answer.status_code == 303, (action, answer.text[:2000])

    act("hold", reason="Operasjon")
    assert "Pause" in client.get(f"/app/gp/patients/{patient_id}").text
    act("resume")
    act("dosage", use="regular", amount="2", unit="tablett", slot="evening", reason="Økt dose")
    page = client.get(entry_url).text
    rx = re.search(r'name="prescription_id">\s*<option value="([^"]+)"', page)[1]
    act("renew", prescription_id=rx, packages="2", repeats="1")
    act("discontinue", code="L", note="Kvalme")
    entry_id = entry_url.rsplit("/", 1)[1]
    with pages_world.engine.connect() as conn:
        import uuid

        kinds = [
            v.kind.value
            for v in queries.entry_history(conn, uuid.UUID(patient_id), uuid.UUID(entry_id))
        ]
    assert kinds[-5:] == [
        "put-on-hold",
        "resumed",
        "edited",
        "prescription-renewed",
        "discontinued",
    ]


def test_a_stale_form_says_what_changed_and_shows_the_form_on_the_fresh_list(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 2)
    listed = client.get(f"/app/gp/patients/{patient_id}").text
    entry_url = re.search(rf'href="(/app/gp/patients/{patient_id}/entries/[^"]+)"', listed)[1]
    old = client.get(entry_url).text
    other = client.get(entry_url).text
    client.post(
        f"{entry_url}/hold",
        data={
            "csrf_token": csrf_of(other),
            "based_on": hidden(other, "based_on"),
            "idempotency_key": hidden(other, "idempotency_key"),
            "reason": "Sykehusinnleggelse",
        },
    )
    stale = client.post(
        f"{entry_url}/discontinue",
        data={
            "csrf_token": csrf_of(old),
            "based_on": hidden(old, "based_on"),
            "idempotency_key": hidden(old, "idempotency_key"),
            "code": "A",
        },
    )
    assert stale.status_code == 412
    assert "Noen andre endret listen" in stale.text
    assert "Sykehusinnleggelse" in stale.text  # what changed, with its reason
    assert int(hidden(stale.text, "based_on")) == int(hidden(old, "based_on")) + 1


def test_the_timeline_page_draws_one_mark_per_row_of_its_table(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 0)
    answer = client.get(f"/app/gp/patients/{patient_id}/timeline")
    assert answer.status_code == 200
    tree = lxml_html.fromstring(answer.text)
    rows = tree.xpath('//table[@id="timeline-table"]/tbody/tr')
    svg = answer.text[answer.text.index("<svg") : answer.text.index("</svg>") + 6]
    from lxml import etree

    marks = [
        p
        for g in etree.fromstring(svg.encode()).iter("{http://www.w3.org/2000/svg}g")
        if "events_marks" in (g.get("class") or "")
        for p in g.iter("{http://www.w3.org/2000/svg}path")
    ]
    assert len(rows) == len(marks) >= 4  # four entries started (and prescribed) in the demo
    assert "Legemiddeltidslinje" in answer.text and 'role="img"' in svg


def test_a_nurse_cannot_open_the_prescribe_form(client, pages_world):
    as_person(client, "nurse")
    _, patient_id = resident(pages_world.world, 1)
    answer = client.get(f"/app/gp/patients/{patient_id}/prescribe")
    assert answer.status_code == 403
    assert "Per Hansen" not in answer.text and 'name="varenr"' not in answer.text


def test_a_prescription_without_the_sessions_csrf_token_is_refused_and_nothing_saved(
    client, pages_world
):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 2)
    before = list_version(client, patient_id)
    page = prescribe_form(client, patient_id, q=SIMVASTATIN)
    for token in (None, "wrong"):
        body = prescription(page, SIMVASTATIN, "save")
        if token is None:
            del body["csrf_token"]
        else:
            body["csrf_token"] = token
        answer = client.post(f"/app/gp/patients/{patient_id}/prescribe", data=body)
        assert answer.status_code == 403
    assert list_version(client, patient_id) == before


def test_a_nurse_of_another_nursing_home_sees_no_page_of_the_resident(client, pages_world):
    from tests.pages.gp_helpers import as_claims

    _, patient_id = resident(pages_world.world, 0)
    as_claims(
        client,
        pages_world,
        {"sub": "5557777", "role": "nurse", "org": "974600999", "name": "Siv Annenhjem"},
    )
    for path in ("", "/timeline", "/prescribe"):
        answer = client.get(f"/app/gp/patients/{patient_id}{path}")
        assert answer.status_code == 403, path
        assert "Kari" not in answer.text


def test_override_reasons_are_read_whichever_alerts_carry_them():
    from starlette.datastructures import FormData

    from medloop.pages.gp import overrides_posted

    form = FormData(
        [
            ("override-1-key", "interaction/a/b"),
            ("override-1-reason", "Kort kur"),
            ("override-3-key", "dose/c/d"),
            ("override-3-reason", "  "),
            ("override-4-key", "allergy/e/f"),
            ("override-4-reason", "Tålt før"),
        ]
    )
    assert overrides_posted(form) == {"interaction/a/b": "Kort kur", "allergy/e/f": "Tålt før"}


def test_a_gp_rejects_a_proposal_with_a_reason_and_it_is_no_longer_waiting(client, pages_world):
    as_person(client, "pharmacist")
    _, patient_id = resident(pages_world.world, 1)
    page = client.get(f"/app/pharmacy/patients/{patient_id}/multidose").text
    sent = client.post(
        f"/app/pharmacy/patients/{patient_id}/multidose/proposals",
        data={
            "csrf_token": csrf_of(page),
            "proposal_id": hidden(page, "proposal_id"),
            "kind": "question",
            "note": "Skal donepezil fortsette?",
        },
    )
    assert sent.status_code == 303, sent.text[:2000]

    as_person(client, "gp")
    listed = client.get(f"/app/gp/patients/{patient_id}").text
    reject = re.search(r'action="(/app/gp/patients/[^"]+/reject)"', listed)[1]
    without = client.post(reject, data={"csrf_token": csrf_of(listed), "reason": ""})
    assert without.status_code in (409, 422) and "Skal donepezil fortsette?" in without.text
    rejected = client.post(
        reject, data={"csrf_token": csrf_of(listed), "reason": "Ja, uendret til neste kontroll"}
    )
    assert rejected.status_code == 303
    assert "Ingen forslag venter." in client.get(f"/app/gp/patients/{patient_id}").text
