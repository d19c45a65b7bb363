"""Keyboard alone (Tab, Enter, Space and typing; no mouse, no clicks) in a real browser on the
demo world, with the focus visible on every control reached: the GP prescribing with an
interaction override, and the pharmacist dispensing a prescription and uploading a packing
report. axe-core on every new state; screenshots at 768 and 1280 px."""

from __future__ import annotations

import re

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from tests.pages.gp_helpers import plan_csv, resident
from tests.pages.helpers import assert_no_axe_violations, screenshots

FOCUS_VISIBLE = """(() => {
  const e = document.activeElement;
  if (!e || e === document.body) { return false; }
  const style = getComputedStyle(e);
  return e.matches(':focus-visible') && style.outlineStyle !== 'none'
    && parseFloat(style.outlineWidth) >= 2;
})()"""


def _tab_to(page, predicate: str, limit: int = 80) -> None:
    """Tab until the focused element meets ``predicate`` (JS over ``e``); its focus is seen."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const e = document.activeElement; return {predicate}; }})()"):
            assert page.evaluate(FOCUS_VISIBLE), f"focus not visible on {predicate}"
            return
    raise AssertionError(f"no focusable element where {predicate}")


def _choose_file(page, payload: dict) -> None:
    """Open the focused file field's chooser by keyboard and give it ``payload``.

    Space opens a focused file field, Enter does too. A busy machine has once let a Space go
    by without a chooser (CI, stop 29): then the user presses Enter, as a keyboard user would
    on seeing nothing open. The chooser must come from one of the two.
    """
    for key in ("Space", "Enter", "Space"):
        try:
            with page.expect_file_chooser(timeout=10_000) as chooser:
                page.keyboard.press(key)
        except PlaywrightTimeoutError:
            continue
        chooser.value.set_files(payload)
        return
    raise AssertionError("neither Space nor Enter opened the file field's chooser")


def _checked(page, name: str) -> None:
    assert_no_axe_violations(page)
    screenshots(page, name)


def test_a_gp_prescribes_with_an_override_by_keyboard_alone(page, live_world):
    national_id, _ = resident(live_world.world, 1)
    page.goto(live_world.base_url + "/")
    _tab_to(page, "e.tagName === 'BUTTON' && e.textContent.includes('Lege')")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("/app/gp$"))
    _tab_to(page, "e.id === 'national_id'")
    page.keyboard.type(national_id)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("/app/gp/patients/[^/]+$"))
    _tab_to(page, "e.tagName === 'A' && e.textContent.trim() === 'Forskriv'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("/prescribe"))

    # the catalogue answers as the GP types; Tab reaches the radio group, Space chooses
    _tab_to(page, "e.id === 'q'")
    page.keyboard.type("klari", delay=40)
    page.get_by_role("radio", name=re.compile("Klaritromycin", re.I)).first.wait_for()
    _tab_to(page, "e.type === 'radio' && e.name === 'varenr'")
    page.keyboard.press("Space")
    assert page.evaluate("document.activeElement.checked") is True
    _tab_to(page, "e.id === 'indication'")
    page.keyboard.type("Pneumoni")
    _tab_to(page, "e.textContent.trim() === 'Lagre resepten'")
    page.keyboard.press("Enter")

    # refused: the reason is asked for next to the alert; the focus goes on from there
    page.locator("#override_reason-refusal").wait_for()
    assert "Interaksjon, bør unngås" in page.locator("#alerts-heading + *").first.inner_text() or (
        "Interaksjon, bør unngås" in page.content()
    )
    _checked(page, "gp-prescribe-keyboard-override")
    _tab_to(page, "e.id === 'override-0'")
    assert page.evaluate("document.activeElement.getAttribute('aria-invalid')") == "true"
    page.keyboard.type("Kort kur; simvastatin holdes i en uke")
    _tab_to(page, "e.textContent.trim() === 'Lagre resepten'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"\?saved=prescribed"))
    expect(page.get_by_role("status")).to_have_text("Lagret.")
    assert "Kort kur; simvastatin holdes i en uke" in page.content()
    _checked(page, "gp-list-keyboard-saved")


def test_a_pharmacist_dispenses_and_uploads_a_packing_report_by_keyboard_alone(page, live_world):
    national_id, patient_id = resident(live_world.world, 1)
    period_id, data, lines = plan_csv(live_world.engine, patient_id)
    page.goto(live_world.base_url + "/")
    _tab_to(page, "e.tagName === 'BUTTON' && e.textContent.includes('Farmasøyt')")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("/app/pharmacy"))
    _tab_to(page, "e.id === 'national_id'")
    page.keyboard.type(national_id)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(f"/app/pharmacy/patients/{patient_id}$"))

    # the Simvastatin prescription: the prescribed package is chosen; batch and expiry typed
    simvastatin = page.locator("section.panel", has=page.get_by_role("heading", name="Simva"))
    rx = simvastatin.first.get_attribute("aria-labelledby")
    # A date field's segments come in the browser's own order (its UI locale, not the page's
    # language): type day-first, and if the field read it otherwise reload (F5) and type it
    # month-first, as a keyboard user would on seeing the field.
    parts = {"day": "30", "month": "06", "year": "2028"}
    for order in (("day", "month", "year"), ("month", "day", "year")):
        _tab_to(page, f"e.id === '{rx}-batch'")
        page.keyboard.press("Control+A")  # a reload may have kept what was typed
        page.keyboard.type("NK2291")
        _tab_to(page, f"e.id === '{rx}-expiry'")
        page.keyboard.type("".join(parts[part] for part in order))
        if page.locator(f"#{rx}-expiry").input_value() == "2028-06-30":
            break
        page.keyboard.press("F5")
        page.wait_for_load_state()
    assert page.locator(f"#{rx}-expiry").input_value() == "2028-06-30"
    _tab_to(page, "e.tagName === 'BUTTON' && e.textContent.includes('Simva')")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"\?saved=dispensed"))
    expect(page.get_by_role("status")).to_have_text("Utlevert.")
    _checked(page, "pharmacy-dispensing-keyboard-dispensed")

    _tab_to(page, "e.tagName === 'A' && e.textContent.trim() === 'Multidose'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("/multidose$"))
    _tab_to(page, "e.id === 'period_id'")
    assert page.locator("#period_id").input_value() == period_id
    _tab_to(page, "e.id === 'report'")
    _choose_file(page, {"name": "pakkerapport.csv", "mimeType": "text/csv", "buffer": data})
    _tab_to(page, "e.tagName === 'BUTTON' && e.textContent.trim() === 'Last opp og avstem'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("/reconciliations/|/packing-reports/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Avstemming av pakkerapporten")
    table = page.locator("#reconciliation").inner_text()
    assert table.count("Riktig") == len(lines)
    _checked(page, "pharmacy-reconciliation-keyboard")
