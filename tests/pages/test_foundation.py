"""The pages' foundation without a browser (TestClient, SQLite and PostgreSQL): sign-in and
sessions, CSRF, session fixation, sign-out, expiry, cookies, redirects, error pages."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from medloop.api.app import create_app
from medloop.api.auth import TokenVerifier
from medloop.settings import Settings
from medloop.store.sessions import page_session
from tests.pages.helpers import client_signed_in, csrf_of, demo_app


def _plant(client, value: str) -> None:
    """The browser's session cookie is ``value`` (a planted or replayed one)."""
    client.cookies.delete("medloop_session")
    client.cookies.set("medloop_session", value, domain="testserver.local", path="/app")


def _sessions(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(page_session)).scalar_one()


def test_root_sends_a_signed_out_browser_to_the_sign_in_page(client):
    assert client.get("/").headers["location"] == "/app/"
    assert client.get("/app/").headers["location"] == "/app/sign-in"
    answer = client.get("/app/home")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/app/sign-in?next=%2Fapp%2Fhome"


def test_the_demo_sign_in_lists_every_demo_person_with_the_norwegian_role(client):
    html = client.get("/app/sign-in").text
    for role in ("Lege", "Sykepleier", "Farmasøyt", "Pasient"):
        assert f'<span class="person-role">{role}' in html, role
    assert "DEMO" in html


def test_a_session_carries_the_same_claims_as_the_demo_bearer_token(client, pages_world):
    client_signed_in(client, "ward-admin")
    with pages_world.engine.connect() as conn:
        stored = conn.execute(select(page_session.c.claims)).scalar_one()
    import json

    from medloop.api.auth import principal_from_claims

    token = pages_world.world.tokens["ward-admin"]
    expected = TokenVerifier(Settings.from_env()).verify(token)
    assert principal_from_claims(json.loads(stored)) == expected
    home = client.get("/app/home")
    assert home.status_code == 200
    assert "Ola Olsen" in home.text and "avdelingsleder" in home.text


def test_the_session_cookie_is_httponly_strict_and_scoped_to_the_pages(client):
    page = client.get("/app/sign-in")
    answer = client.post(
        "/app/sign-in/demo", data={"csrf_token": csrf_of(page.text), "person": "nurse"}
    )
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("medloop_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/app" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back


def test_the_session_cookie_is_secure_over_https(pages_world):
    with TestClient(pages_world.app, base_url="https://testserver", follow_redirects=False) as c:
        page = c.get("/app/sign-in")
        assert "Secure" in page.headers["set-cookie"]
        answer = c.post(
            "/app/sign-in/demo", data={"csrf_token": csrf_of(page.text), "person": "nurse"}
        )
        assert "Secure" in answer.headers["set-cookie"]


@pytest.mark.parametrize("token", [None, "", "wrong-token-of-the-right-length-xxxxxxx"])
def test_sign_in_without_the_right_csrf_token_is_refused_and_starts_no_session(
    client, pages_world, token
):
    client.get("/app/sign-in")
    data = {"person": "nurse"} | ({} if token is None else {"csrf_token": token})
    answer = client.post("/app/sign-in/demo", data=data)
    assert answer.status_code == 403
    assert "sikkerhetsnøkkel" in answer.text
    assert "medloop_session" not in answer.headers.get("set-cookie", "")
    assert _sessions(pages_world.engine) == 0


@pytest.mark.parametrize("token", [None, "not-the-session-token"])
def test_sign_out_without_the_sessions_csrf_token_is_refused_and_the_session_lives(client, token):
    client_signed_in(client, "nurse")
    data = {} if token is None else {"csrf_token": token}
    answer = client.post("/app/sign-out", data=data)
    assert answer.status_code == 403
    assert client.get("/app/home").status_code == 200


def test_sign_out_ends_the_session_on_the_server(client, pages_world):
    client_signed_in(client, "nurse")
    cookie = client.cookies.get("medloop_session")
    home = client.get("/app/home")
    answer = client.post("/app/sign-out", data={"csrf_token": csrf_of(home.text)})
    assert answer.status_code == 303 and answer.headers["location"] == "/app/sign-in"
    assert _sessions(pages_world.engine) == 0
    # The old cookie, replayed (as a stolen copy would be), opens nothing.
    _plant(client, cookie)
    assert client.get("/app/home").headers["location"].startswith("/app/sign-in")


def test_signing_in_issues_a_new_session_id_and_ends_the_one_before(client, pages_world):
    planted = "planted-by-an-attacker-0123456789abcdef"
    _plant(client, planted)
    client_signed_in(client, "nurse")
    first = client.cookies.get("medloop_session")
    assert first and first != planted
    client_signed_in(client, "gp")
    second = client.cookies.get("medloop_session")
    assert second != first
    assert _sessions(pages_world.engine) == 1  # the nurse's session was ended
    _plant(client, first)
    assert client.get("/app/home").status_code == 303


def test_a_session_expires_after_its_lifetime(engine):
    world = demo_app(engine, session_lifetime_seconds=3600)
    with TestClient(world.app, follow_redirects=False) as client:
        client_signed_in(client, "nurse")
        world.clock.at += timedelta(minutes=59)
        assert client.get("/app/home").status_code == 200
        world.clock.at += timedelta(minutes=2)
        assert client.get("/app/home").headers["location"].startswith("/app/sign-in")


def test_a_post_without_a_session_is_refused_with_a_page_not_a_bearer_problem(client):
    answer = client.post("/app/sign-out", data={"csrf_token": "x"})
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("text/html")
    assert "Logg inn" in answer.text


def test_production_has_no_demo_sign_in(engine):
    settings = dataclasses.replace(Settings.from_env(), demo_sign_in=False)
    app = create_app(settings, engine=engine)
    with TestClient(app, follow_redirects=False) as client:
        page = client.get("/app/sign-in")
        assert "Sykepleier" not in page.text and "sign-in/demo" not in page.text
        answer = client.post(
            "/app/sign-in/demo", data={"csrf_token": csrf_of(page.text), "person": "nurse"}
        )
        assert answer.status_code == 404
        assert "medloop_session" not in answer.headers.get("set-cookie", "")


def test_next_is_followed_only_to_a_page_of_medloop(client):
    page = client.get("/app/sign-in")
    token = csrf_of(page.text)
    from medloop.api.auth import Role
    from medloop.pages.signin import LANDINGS

    home = LANDINGS.get(Role.PHARMACIST, "/app/home")  # the pharmacist's pages land elsewhere
    for target, expected in (
        ("/app/home", "/app/home"),
        ("https://evil.example/", home),
        ("//evil.example/app/", home),
        ("/docs", home),
    ):
        answer = client.post(
            "/app/sign-in/demo", data={"csrf_token": token, "person": "pharmacist", "next": target}
        )
        assert answer.headers["location"] == expected, target


def test_the_language_switch_sets_english_and_refuses_an_unknown_language(client):
    page = client.get("/app/sign-in")
    token = csrf_of(page.text)
    answer = client.post(
        "/app/language", data={"csrf_token": token, "lang": "en", "next": "/app/sign-in"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/app/sign-in"
    assert "Sign in to medloop" in client.get("/app/sign-in").text
    refused = client.post("/app/language", data={"csrf_token": token, "lang": "xx"})
    assert refused.status_code == 422
    no_token = client.post("/app/language", data={"lang": "nb"})
    assert no_token.status_code == 403


def test_unknown_pages_are_html_while_the_api_keeps_problem_json(client):
    missing = client.get("/app/no-such-page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "Ikke funnet" in missing.text
    api = client.get("/patients/not-a-uuid/list")
    assert api.headers["content-type"] == "application/problem+json"


def test_pages_are_not_cached(client):
    assert client.get("/app/sign-in").headers["cache-control"] == "no-store"


def test_the_stylesheet_is_served_from_the_app(client):
    css = client.get("/app/static/medloop.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
