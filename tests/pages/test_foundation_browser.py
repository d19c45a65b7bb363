"""The pages' foundation in a real browser: the demo sign-in reached from ``/``, the layout's
landmarks and skip link, the language switch, sign-out; axe and screenshots."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.pages.helpers import assert_no_axe_violations, screenshots, sign_in


def test_a_signed_out_browser_opening_the_root_reaches_the_demo_sign_in(page, live_world):
    page.goto(live_world.base_url + "/")
    assert page.url.endswith("/app/sign-in")
    expect(page.get_by_role("heading", level=1)).to_have_text("Logg inn i medloop")
    for role in ("Lege", "Sykepleier", "Farmasøyt", "Pasient"):
        assert page.get_by_role("button", name=re.compile(role)).count() >= 1, role
    assert page.get_by_text("DEMO").first.is_visible()
    assert_no_axe_violations(page)
    screenshots(page, "sign-in")


def test_signing_in_shows_who_and_signing_out_returns_to_the_sign_in(page, live_world):
    sign_in(page, live_world.base_url, "Farmasøyt")
    header = page.locator("header")
    assert "Per Apoteker" in header.inner_text()
    assert "Farmasøyt" in header.inner_text()
    assert "Apotek Fjordbyen (demo)" in header.inner_text()
    assert page.get_by_role("main").count() == 1
    assert_no_axe_violations(page)
    page.get_by_role("button", name="Logg ut").click()
    assert page.url.endswith("/app/sign-in")
    page.goto(live_world.base_url + "/app/home")
    assert "/app/sign-in" in page.url


def test_the_skip_link_is_the_first_stop_and_moves_focus_to_main(page, live_world):
    page.goto(live_world.base_url + "/app/sign-in")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused.strip() == "Hopp til hovedinnholdet"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_the_language_switch_turns_the_page_english_and_back(page, live_world):
    page.goto(live_world.base_url + "/app/sign-in")
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to medloop")
    assert page.locator("html").get_attribute("lang") == "en"
    # The Norwegian role stays in the demo buttons' names, whatever the language.
    assert page.get_by_role("button", name=re.compile("Sykepleier")).count() >= 1
    assert_no_axe_violations(page)
    page.get_by_role("button", name="Norsk (bokmål)").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Logg inn i medloop")


def test_the_home_and_error_pages_pass_axe(page, live_world):
    sign_in(page, live_world.base_url, "Lege")
    page.goto(live_world.base_url + "/app/home")
    assert "Anja Fos Eidsvik" in page.locator("header").inner_text()
    assert_no_axe_violations(page)
    screenshots(page, "home")
    page.goto(f"{live_world.base_url}/app/nurse/wards/{live_world.world.ward_id}")
    assert "Du har ikke tilgang til dette." in page.get_by_role("alert").inner_text()
    assert_no_axe_violations(page)
    screenshots(page, "error-forbidden")
    page.goto(live_world.base_url + "/app/no-such-page")
    expect(page.get_by_role("heading", level=1)).to_have_text("Ikke funnet")
    assert_no_axe_violations(page)
