"""axe-core and screenshots (768 and 1280 px) of the page states added for issue #16's
remaining gaps, in a real browser on the demo world: a refusal next to its field on the GP's
entry page and the entered-in-error action; the pharmacist's urgent pack refused and ordered,
and a dispense annulled; the nurse's PRN form with doses left and the next time allowed."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect

from tests.pages.gp_helpers import resident
from tests.pages.helpers import BUILT, assert_no_axe_violations, screenshots, sign_in


def _checked(page, name: str) -> None:
    assert_no_axe_violations(page)
    screenshots(page, name)


def test_the_gps_entry_page_refusal_by_its_field_and_entered_in_error(page, live_world):
    national_id, _ = resident(live_world.world, 2)
    sign_in(page, live_world.base_url, "Lege")
    page.get_by_label("Fødselsnummer (11 sifre)").fill(national_id)
    page.get_by_role("button", name="Åpne listen").click()
    page.get_by_role("link", name=re.compile("^Endre")).first.click()
    page.get_by_role("button", name="Marker som feilregistrert").click()
    field = page.get_by_label("Hva som var feil (påkrevd)")
    assert field.get_attribute("aria-invalid") == "true"
    assert "Skriv en begrunnelse." in page.locator("#reason-refusal").inner_text()
    _checked(page, "gp-entry-entered-in-error-refused")
    field.fill("Registrert på feil pasient")
    page.get_by_role("button", name="Marker som feilregistrert").click()
    expect(page.get_by_role("status")).to_have_text("Lagret.")


def test_the_pharmacists_urgent_pack_and_annulment(page, live_world):
    national_id, patient_id = resident(live_world.world, 1)
    live_world.clock.at = BUILT  # the order deadline, not yet passed
    sign_in(page, live_world.base_url, "Farmasøyt")
    page.goto(live_world.base_url + f"/app/pharmacy/patients/{patient_id}/multidose")
    page.get_by_label("Hvorfor den trengs (påkrevd)").fill("Ny medisin fra legevakt")
    page.get_by_role("button", name="Bestill hastepakken").click()
    assert "har ikke gått ut" in page.locator("#urgent_period-refusal").inner_text()
    _checked(page, "pharmacy-urgent-pack-refused")
    live_world.clock.at = BUILT + timedelta(hours=1)
    page.get_by_label("Hvorfor den trengs (påkrevd)").fill("Ny medisin fra legevakt")
    page.get_by_role("button", name="Bestill hastepakken").click()
    expect(page.get_by_role("status")).to_contain_text("Hastepakk bestilt")
    _checked(page, "pharmacy-urgent-pack-ordered")

    page.goto(live_world.base_url + f"/app/pharmacy/patients/{patient_id}")
    simvastatin = page.locator("section.panel", has=page.get_by_role("heading", name="Simva"))
    simvastatin.get_by_label("Batch").fill("NK2291")
    simvastatin.get_by_label("Utløpsdato").fill("2028-06-30")
    simvastatin.get_by_role("button", name=re.compile("Utlever")).click()
    page.get_by_role("button", name=re.compile("^Annuller")).click()
    assert "Skriv hvorfor" in page.locator(".field-error").inner_text()
    _checked(page, "pharmacy-annul-refused")
    page.get_by_label("Hvorfor den annulleres (påkrevd)").fill("Feil pakning registrert")
    page.get_by_role("button", name=re.compile("^Annuller")).click()
    expect(page.get_by_role("status")).to_contain_text("Utleveringen er annullert")
    _checked(page, "pharmacy-dispense-annulled")


def test_the_nurses_prn_form_shows_doses_left_and_the_next_time(page, live_world):
    national_id, _ = live_world.patient(0)
    sign_in(page, live_world.base_url, "Sykepleier")
    page.get_by_role("link", name="Dokumenter for Kari Nordmann").click()
    field = page.get_by_role("textbox", name="ID-armbånd")
    field.fill(national_id)
    field.press("Enter")
    page.get_by_text("Beboeren er bekreftet med ID-armbåndet.").wait_for()
    page.get_by_role("link", name=re.compile("Gi ved behov: Paracet", re.I)).click()
    assert page.locator("#prn-remaining").inner_text() == "Doser igjen nå: 4 (à 1 tablett)"
    assert page.locator("#prn-next").inner_text() == "Neste dose tillatt: nå"
    _checked(page, "nurse-chart-prn-status")
