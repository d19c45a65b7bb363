"""The GP's, the multidose pharmacist's and the patient's main workflows in a real browser
(Playwright, Debian's chromium) on the demo world: a GP prescribing with an interaction
override and then seeing it on the timeline; a multidose period reconciled from an uploaded
CSV; a patient reading the access log. axe-core on every page; screenshots at 768 and 1280 px."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect

from tests.pages.gp_helpers import plan_csv, resident
from tests.pages.helpers import BUILT, assert_no_axe_violations, screenshots, sign_in


def checked(page, name: str) -> None:
    """axe-core finds nothing on the page, and it is saved at both widths."""
    assert_no_axe_violations(page)
    screenshots(page, name)


def test_a_gp_prescribes_with_an_interaction_override_and_sees_it_on_the_timeline(page, live_world):
    national_id, _ = resident(live_world.world, 1)
    sign_in(page, live_world.base_url, "Lege")
    assert page.url.endswith("/app/gp")
    checked(page, "gp-find")

    page.get_by_label("Fødselsnummer (11 sifre)").fill(national_id)
    page.get_by_role("button", name="Åpne listen").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Legemiddelliste")
    assert "Per Hansen" in page.content()
    checked(page, "gp-list")

    page.get_by_role("link", name="Forskriv").click()
    # the catalogue search answers as the GP types (no button pressed)
    page.get_by_label("Søk i katalogen: navn, varenummer eller ATC-kode").press_sequentially(
        "klari", delay=40
    )
    choice = page.get_by_role("radio", name=re.compile("Klaritromycin", re.I))
    choice.wait_for()
    choice.check()
    page.get_by_label("Indikasjon").fill("Pneumoni")
    page.get_by_label("kveld").check()
    page.get_by_label("morgen", exact=True).check()
    checked(page, "gp-prescribe")

    page.get_by_role("button", name="Lagre resepten").click()
    assert page.get_by_role("alert").first.is_visible()
    reason = page.get_by_label("Hvorfor du går videre likevel (påkrevd)")
    assert reason.count() == 1
    checked(page, "gp-prescribe-override")
    reason.fill("Kort kur; simvastatin holdes i en uke")
    page.get_by_role("button", name="Lagre resepten").click()

    expect(page.get_by_role("status")).to_have_text("Lagret.")
    assert "Kort kur; simvastatin holdes i en uke" in page.content()
    page.get_by_role("link", name=re.compile("Endre.*Simvastatin", re.I)).first.click()
    # the click returns before the entry page replaces the list: axe must not run in between
    page.wait_for_url(re.compile(r"/entries/[^/?]+$"))
    checked(page, "gp-entry")
    page.get_by_role("link", name="Tilbake til listen").click()

    page.get_by_role("link", name="Legemiddeltidslinje").click()
    assert page.get_by_role("img", name="Legemiddeltidslinje").count() == 1
    rows = page.locator("#timeline-table tbody tr")
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert any("Klaritromycin" in t and "Startet" in t for t in texts), texts
    checked(page, "gp-timeline")


def test_a_multidose_period_is_reconciled_from_an_uploaded_csv(page, live_world):
    _, patient_id = resident(live_world.world, 0)
    period_id, data, lines = plan_csv(live_world.engine, patient_id, drop=0)
    live_world.clock.at = BUILT + timedelta(hours=1)  # the deadline just passed, before Monday
    sign_in(page, live_world.base_url, "Farmasøyt")
    page.goto(live_world.base_url + "/app/pharmacy?days=14")
    assert "Kari Nordmann" in page.content()
    checked(page, "pharmacy-worklist")

    page.get_by_role("link", name="Kari Nordmann").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Multidose")
    checked(page, "pharmacy-multidose")

    page.get_by_role("link", name=re.compile("Produksjonsplan")).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Produksjonsplan")
    checked(page, "pharmacy-plan")
    page.get_by_role("link", name="Tilbake til multidose").click()

    page.get_by_label("Periode", exact=True).select_option(period_id)
    page.get_by_label("Pakkerapport (CSV eller JSON)").set_input_files(
        {"name": "pakkerapport.csv", "mimeType": "text/csv", "buffer": data}
    )
    page.get_by_role("button", name="Last opp og avstem").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Avstemming av pakkerapporten")
    table = page.locator("#reconciliation").inner_text()
    assert table.count("Mangler i posene") == 1
    assert table.count("Riktig") == len(lines) - 1
    assert "Pakk dosen som mangler før posene sendes." in table
    checked(page, "pharmacy-reconciliation")

    page.goto(live_world.base_url + f"/app/pharmacy/patients/{patient_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Ekspedering")
    checked(page, "pharmacy-dispensing")


def test_a_patient_reads_who_has_seen_their_data(page, live_world):
    sign_in(page, live_world.base_url, "Pasient")
    assert page.url.endswith("/app/me")
    expect(page.get_by_role("heading", level=1)).to_have_text("Mine legemidler")
    checked(page, "patient-list")

    page.get_by_role("link", name="Hvem har sett mine opplysninger").click()
    rows = page.locator("#access-log tbody tr")
    assert rows.count() >= 1
    assert "own-list" in page.locator("#access-log").inner_text()  # the read just made
    checked(page, "patient-access-log")
