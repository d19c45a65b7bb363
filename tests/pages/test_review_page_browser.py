"""The GP's medication review meeting in a real browser (Playwright, Debian's chromium) on the
demo world: from Per Hansen's list to the review page, a decision per finding (quetiapine
stopped, the rest continued with a reason), the three participants, signing; the signed review
is listed with its PDF and the list shows quetiapine discontinued. axe-core on the page before
and after; screenshots at 768 and 1280 px."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.pages.gp_helpers import resident
from tests.pages.helpers import assert_no_axe_violations, screenshots, sign_in


def test_a_gp_holds_the_review_meeting_and_signs_it(page, live_world):
    national_id, patient_id = resident(live_world.world, 1)
    sign_in(page, live_world.base_url, "Lege")
    page.get_by_label("Fødselsnummer (11 sifre)").fill(national_id)
    page.get_by_role("button", name="Åpne listen").click()
    page.get_by_role("link", name="Legemiddelgjennomgang").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Legemiddelgjennomgang")
    assert_no_axe_violations(page)
    screenshots(page, "gp-review")

    findings = page.locator("fieldset.finding")
    assert findings.count() >= 5
    for index in range(findings.count()):
        finding = findings.nth(index)
        if "Kvetiapin" in finding.locator("p").first.inner_text():
            finding.get_by_label("Seponer", exact=True).check()
            entry = finding.get_by_label("Legemiddel som endres eller seponeres")
            if entry.count():
                option = entry.locator("option", has_text="Kvetiapin").first
                entry.select_option(option.get_attribute("value"))
        else:
            finding.get_by_label("Fortsett", exact=True).check()
        finding.get_by_label("Begrunnelse (påkrevd for å fortsette)").fill("Vurdert i møtet")
    page.get_by_label("Sykepleier", exact=True).fill("Nina Sykepleier")
    page.get_by_label("Farmasøyt", exact=True).fill("Per Apoteker")
    page.get_by_role("button", name="Signer gjennomgangen").click()

    expect(page.get_by_role("status")).to_have_text("Legemiddelgjennomgangen er signert.")
    assert page.get_by_role("link", name=re.compile("^PDF")).count() == 1
    assert "Siden forrige gjennomgang" in page.content()
    assert_no_axe_violations(page)
    screenshots(page, "gp-review-signed")

    page.get_by_role("link", name="Tilbake til listen").click()
    row = page.get_by_role("row", name=re.compile("Kvetiapin"))
    assert "Seponert" in row.first.inner_text()
    assert patient_id in page.url
