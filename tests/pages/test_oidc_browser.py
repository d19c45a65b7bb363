"""OpenID Connect in a real browser (Playwright driving Debian's chromium) against a local
``oidc-provider-mock`` on another host name (``localhost`` vs the app's ``127.0.0.1``: the
redirects are cross-site, as with a real issuer): Nina signs in at the provider and lands on her
ward; a GSRN wristband confirms the resident; the insulin's witness, Ola, signs at the provider
with his own sign-in and the dose is saved; signing out ends the sign-in at the provider too and
returns to the sign-in page. Axe on the pages that changed; screenshots."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from oidc_provider_mock import User, run_server_in_thread
from sqlalchemy import select

from medloop import demo
from medloop.store.administration import administration as administration_table
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.pages.helpers import PagesWorld, assert_no_axe_violations, demo_app, screenshots, serve

INSULIN_EAN = "7046260905726"
ORG = demo.NURSING_HOME.id


def _nurse(sub: str, actor: Any) -> User:
    return User(
        sub=sub,
        claims={
            "name": actor.personnel.name,
            "medloop_role": "nurse",
            "helseid://claims/hpr/hpr_number": actor.personnel.hpr_number,
            "helseid://claims/client/claims/orgnr_child": ORG,
            "org_name": demo.NURSING_HOME.name,
        },
    )


@pytest.fixture
def provider() -> Iterator[str]:
    users = [_nurse("nina", demo.NURSE), _nurse("ola", demo.SECOND_NURSE)]
    with run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def live_world(sqlite_url: str, provider: str) -> Iterator[PagesWorld]:
    """The demo world with OpenID Connect configured, served on a free port."""
    engine = make_engine(sqlite_url)
    upgrade(engine)
    world = demo_app(
        engine,
        oidc_issuer=provider,
        oidc_client_id="medloop-pages",
        oidc_client_secret="test-secret",
    )
    try:
        with serve(world.app) as base_url:
            world.base_url = base_url
            yield world
    finally:
        engine.dispose()


def _at_provider(page: Any, provider: str, subject: str) -> None:
    """The provider's sign-in page: ``subject`` signs in (the mock's button for that user)."""
    page.wait_for_url(re.compile(re.escape(provider) + "/oauth2/authorize"))
    page.get_by_role("button", name=subject, exact=True).click()


def test_sign_in_witness_and_sign_out_through_the_identity_provider(page, live_world, provider):
    world = live_world
    page.goto(world.base_url + "/")
    assert page.url.endswith("/app/sign-in")
    page.locator("section[aria-labelledby=oidc-heading]").get_by_role("button").click()
    _at_provider(page, provider, "nina")
    page.wait_for_url(re.compile(r"/app/nurse/wards/"))
    header = page.locator("header").inner_text()
    assert "Nina Nilsen" in header and "Sykepleier" in header

    # The resident confirmed by the GSRN on her wristband (the AI 8018 element string).
    page.get_by_role("link", name="Dokumenter for Ingrid Berg").click()
    field = page.get_by_role("textbox", name="ID-armbånd")
    field.fill(f"(8018){demo.gsrn(2)}")
    field.press("Enter")
    page.get_by_text("Beboeren er bekreftet med ID-armbåndet.").wait_for()

    # Insulin: the witness signs at the identity provider with his own sign-in.
    page.get_by_role("link", name=re.compile("^Dokumenter Glargin", re.I)).first.click()
    pack = page.get_by_label("Strekkode på pakningen")
    pack.fill(INSULIN_EAN)
    pack.press("Enter")
    page.locator(f'#pack-result[data-code="{INSULIN_EAN}"] p').wait_for()
    step_up = page.get_by_role("button", name="Kontrollør logger inn med egen innlogging")
    assert_no_axe_violations(page)
    screenshots(page, "nurse-chart-witness-oidc")
    step_up.click()
    _at_provider(page, provider, "ola")
    page.get_by_text("Signert av Ola Olsen som kontrollør.").wait_for()
    assert page.get_by_label("Strekkode på pakningen").input_value() == INSULIN_EAN
    assert "Nina Nilsen" in page.locator("header").inner_text()  # still Nina's session
    page.get_by_role("button", name="Lagre").click()
    page.get_by_text(re.compile("Lagret: Glargin", re.I)).wait_for()
    with world.engine.connect() as conn:
        records = [dict(r.record) for r in conn.execute(select(administration_table.c.record))]
    (insulin,) = [r for r in records if r.get("witness")]
    assert insulin["witness"]["personnel"]["name"] == "Ola Olsen"
    assert insulin["performer"]["personnel"]["name"] == "Nina Nilsen"

    # Signing out: medloop's session ends, then the provider's (RP-initiated logout).
    page.get_by_role("button", name="Logg ut").click()
    page.wait_for_url(re.compile(re.escape(provider) + "/oauth2/end_session"))
    assert "id_token_hint" in page.url
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(re.compile(r"/app/sign-in$"))
    page.goto(world.base_url + "/app/home")
    assert "/app/sign-in" in page.url
