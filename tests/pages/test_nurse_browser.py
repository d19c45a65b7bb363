"""The nurse's morning round in a real browser (Playwright driving Debian's chromium) on the
demo world at Monday 08:05 in Oslo: wristband scan, pack scans (right, wrong, expired), a
refusal, a witnessed insulin, a PRN over the limit with an override; the same charting by
keyboard alone; axe on every nurse page; screenshots at 768 and 1280 px."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import select

from medloop.store.administration import administration as administration_table
from tests.pages.helpers import assert_no_axe_violations, screenshots, sign_in

LEVOTYROKSIN_EAN = "7046260906068"
METFORMIN_EAN = "7046260905559"
INSULIN_EAN = "7046260905726"
PARACETAMOL_EAN = "7046260900288"


def _charted(world) -> list[dict]:
    with world.engine.connect() as conn:
        return [dict(r.record) for r in conn.execute(select(administration_table.c.record))]


def _to_bedside(page, world, index: int, name: str) -> None:
    """From the ward overview to the resident's bedside, wristband scanned."""
    national_id, _ = world.patient(index)
    page.get_by_role("link", name=f"Dokumenter for {name}").click()
    field = page.get_by_role("textbox", name="ID-armbånd")
    field.fill(national_id)
    field.press("Enter")
    page.get_by_text("Beboeren er bekreftet med ID-armbåndet.").wait_for()


def _open_dose(page, drug: str) -> None:
    page.get_by_role("link", name=re.compile(f"^Dokumenter {drug}", re.I)).first.click()
    page.get_by_label("Strekkode på pakningen").wait_for()


def _scan_pack(page, code: str) -> str:
    """Type the code and Enter as a keyboard-wedge scanner does; the answer shown in place."""
    field = page.get_by_label("Strekkode på pakningen")
    field.fill(code)
    field.press("Enter")
    # The answer for this code (not the one before it) has replaced the result in place.
    result = page.locator(f'#pack-result[data-code="{code}"]')
    result.locator("p").wait_for()
    return result.inner_text()


def test_the_morning_round_on_the_demo_ward(page, live_world):
    world = live_world
    sign_in(page, world.base_url, "Sykepleier", "Nina Nilsen")
    assert "/app/nurse/wards/" in page.url
    heading = page.get_by_role("heading", level=1).inner_text()
    assert heading.startswith("Solbakken 1. etasje") and "mandag 7. desember 2026" in heading
    overview = page.locator("#overview").inner_text()
    assert "Kari Nordmann" in overview and "Ingrid Berg" in overview and "Per Hansen" in overview
    assert "skal gis" in overview  # the 08:00 doses are due
    assert_no_axe_violations(page)
    screenshots(page, "nurse-ward-overview")

    # Ingrid Berg: wristband, then levotyroksin with a scan, after a wrong and an expired pack.
    _to_bedside(page, world, 2, "Ingrid Berg")
    assert_no_axe_violations(page)
    screenshots(page, "nurse-bedside")
    _open_dose(page, "Levotyroksin")
    assert "Feil pakning" in _scan_pack(page, METFORMIN_EAN)
    assert "utløpt" in _scan_pack(page, f"(01)0{LEVOTYROKSIN_EAN}(17)261101(10)B7")
    assert "Riktig pakning" in _scan_pack(page, LEVOTYROKSIN_EAN)
    assert_no_axe_violations(page)
    screenshots(page, "nurse-chart-dose")
    page.get_by_role("button", name="Lagre").click()
    page.get_by_text(re.compile("Lagret: Levotyroksin", re.I)).wait_for()

    # Metformin refused by the resident, with the reason code.
    _open_dose(page, "Metformin")
    page.get_by_label("Nektet av beboeren").check()
    page.get_by_label("Årsak (når ikke gitt, nektet eller holdt tilbake)").select_option("refused")
    page.get_by_role("button", name="Lagre").click()
    page.get_by_text(re.compile("Lagret: Metformin", re.I)).wait_for()

    # Insulin: refused without a witness, saved once the second nurse has signed.
    _open_dose(page, "Glargin")
    assert "Riktig pakning" in _scan_pack(page, INSULIN_EAN)
    page.get_by_role("button", name="Lagre").click()
    error = page.locator("#witness-error")
    assert (
        "En annen sykepleier eller en lege ved dette sykehjemmet må signere som kontrollør"
        in error.inner_text()
    )
    assert_no_axe_violations(page)
    screenshots(page, "nurse-chart-witness-required")
    page.get_by_label(re.compile("^Kontrollør \\(DEMO")).select_option("ward-admin")
    page.get_by_role("button", name="Signer som kontrollør").click()
    page.get_by_text("Signert av Ola Olsen som kontrollør.").wait_for()
    page.get_by_role("button", name="Lagre").click()
    page.get_by_text(re.compile("Lagret: Glargin", re.I)).wait_for()

    # Kari Nordmann: paracetamol as needed, twice; the second is too soon and needs a reason.
    page.get_by_role("link", name="Avdelingsoversikt").click()
    _to_bedside(page, world, 0, "Kari Nordmann")
    for attempt in (1, 2):
        page.get_by_role("link", name=re.compile("Gi ved behov: Paracet", re.I)).click()
        limits = page.locator("#prn-limits").inner_text()
        assert "høyst 4 tablett per døgn" in limits and "minst 6 timer mellom dosene" in limits
        given = "08:05 (1 tablett)" if attempt == 2 else "Gitt siste døgn: ingenting"
        assert given in limits
        assert "Riktig pakning" in _scan_pack(page, PARACETAMOL_EAN)
        page.get_by_role("button", name="Lagre").click()
        if attempt == 2:
            refusal = page.locator("#override-error")
            assert "over maksimal dose eller for kort tid" in refusal.inner_text()
            assert_no_axe_violations(page)
            screenshots(page, "nurse-chart-prn-over-limit")
            page.get_by_label("Begrunnelse for å gi over grensen (bare ved behov)").fill(
                "Sterke smerter etter fall, lege kontaktet"
            )
            page.get_by_role("button", name="Lagre").click()
        page.get_by_text(re.compile("Lagret: Paracet", re.I)).wait_for()

    # What was saved is what the nurse did.
    records = _charted(world)
    outcomes = sorted(r["outcome"] for r in records if r.get("performer"))
    assert outcomes == ["given", "given", "given", "given", "refused"]
    insulin = next(r for r in records if r.get("witness"))
    assert insulin["witness"]["personnel"]["name"] == "Ola Olsen"
    assert insulin["scan"]["varenr"] == "090572"
    assert any(
        r.get("limit_override") == "Sterke smerter etter fall, lege kontaktet" for r in records
    )
    refused = next(r for r in records if r["outcome"] == "refused")
    assert refused["reason"] == "refused"


def test_the_resident_chart_for_a_day_and_a_week(page, live_world):
    world = live_world
    sign_in(page, world.base_url, "Sykepleier", "Nina Nilsen")
    page.get_by_role("link", name="Ingrid Berg", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ingrid Berg – Legemiddelkurve")
    day = page.locator("table.mar-day").inner_text()
    assert "Levotyroksin" in day and "08:00" in day
    entries = page.locator("table.entries").inner_text()
    assert "Anja Fos Eidsvik" in entries and "10 E subkutant om morgenen" in entries
    assert_no_axe_violations(page)
    screenshots(page, "nurse-mar-day")
    page.get_by_role("link", name="Vis uken").click()
    week = page.locator("table.mar-week")
    assert "man. 7.12." in week.inner_text() and "søn. 13.12." in week.inner_text()
    assert_no_axe_violations(page)
    screenshots(page, "nurse-mar-week")


def _tab_to(page, predicate: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const e = document.activeElement; return {predicate}; }})()"):
            return
    raise AssertionError(f"no focusable element where {predicate}")


def test_charting_a_dose_by_keyboard_alone(page, live_world):
    world = live_world
    national_id, _ = world.patient(2)
    page.goto(world.base_url + "/")
    _tab_to(page, "e.textContent.includes('Nina Nilsen')")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("/app/nurse/wards/"))
    _tab_to(page, "(e.getAttribute('aria-label') || '') === 'Dokumenter for Ingrid Berg'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("/bedside$"))
    # The wristband field has the focus: the scanner types the national id and Enter.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'wristband'")
    page.keyboard.type(national_id)
    page.keyboard.press("Enter")
    page.get_by_text("Beboeren er bekreftet med ID-armbåndet.").wait_for()
    _tab_to(page, "(e.getAttribute('aria-label') || '').startsWith('Dokumenter Levotyroksin')")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("/chart"))
    # The pack field has the focus (autofocus; a keyboard user starts there): scan, Enter
    # checks the pack in place. Wait for the focus rather than type into a page still settling.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'pack'")
    page.keyboard.type(LEVOTYROKSIN_EAN)
    page.keyboard.press("Enter")
    page.locator(f'#pack-result[data-code="{LEVOTYROKSIN_EAN}"] p').wait_for(timeout=30_000)
    assert "Riktig pakning" in page.locator("#pack-result").inner_text()
    _tab_to(page, "e.id === 'save'")
    page.keyboard.press("Enter")
    page.get_by_text(re.compile("Lagret: Levotyroksin", re.I)).wait_for()
    assert [r["outcome"] for r in _charted(world) if r.get("performer")] == ["given"]
