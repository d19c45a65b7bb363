"""OpenID Connect sign-in (authorisation code + PKCE) against a local provider started by the
test (``oidc-provider-mock``): the claims of the ID token become the page session's."""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from oidc_provider_mock import User, run_server_in_thread

from medloop.api.app import create_app
from medloop.pages.oidc import OidcConfig, map_claims
from medloop.settings import InvalidSetting, Settings
from tests.pages.helpers import csrf_of

NURSE = User(
    sub="nina",
    claims={
        "name": "Nina Nilsen",
        "medloop_role": "nurse",
        "helseid://claims/hpr/hpr_number": "5551234",
        "helseid://claims/client/claims/orgnr_child": "974600951",
        "org_name": "Solbakken sykehjem (demo)",
    },
)
NO_ROLE = User(sub="nobody", claims={"name": "Ingen Rolle"})


@pytest.fixture
def provider() -> Iterator[str]:
    with run_server_in_thread(user_claims=[NURSE, NO_ROLE]) as server:
        yield f"http://localhost:{server.server_port}"


def _client(provider: str, database_url: str) -> TestClient:
    settings = dataclasses.replace(
        Settings.from_env(
            database_url,
            environ={
                "MEDLOOP_OIDC_ISSUER": provider,
                "MEDLOOP_OIDC_CLIENT_ID": "medloop-pages",
                "MEDLOOP_OIDC_CLIENT_SECRET": "test-secret",
            },
        ),
        database_url=database_url,
    )
    return TestClient(create_app(settings), follow_redirects=False)


@pytest.fixture
def oidc_client(provider, sqlite_url) -> Iterator[TestClient]:
    with _client(provider, sqlite_url) as client:
        yield client


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def pending_client(request, provider) -> Iterator[TestClient]:
    """A client on either database: the pending sign-ins are rows of the session table."""
    database_url = request.getfixturevalue(f"{request.param}_url")
    with _client(provider, database_url) as client:
        yield client


def _authorize(client: TestClient, provider: str, subject: str) -> tuple[str, dict[str, str]]:
    """Start the sign-in and let ``subject`` approve at the provider; the callback URL."""
    page = client.get("/app/sign-in")
    assert "Logg inn gjennom virksomheten din" in page.text
    started = client.post("/app/sign-in/oidc", data={"csrf_token": csrf_of(page.text)})
    assert started.status_code == 303
    address = started.headers["location"]
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(address).query))
    approved = httpx.post(address, data={"sub": subject}, follow_redirects=False)
    assert approved.status_code in (302, 303), approved.text
    return approved.headers["location"], query


def test_the_authorisation_request_uses_pkce_state_and_nonce(oidc_client, provider):
    page = oidc_client.get("/app/sign-in")
    started = oidc_client.post("/app/sign-in/oidc", data={"csrf_token": csrf_of(page.text)})
    address = started.headers["location"]
    assert address.startswith(provider + "/oauth2/authorize?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(address).query))
    assert query["response_type"] == "code" and query["client_id"] == "medloop-pages"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    assert query["redirect_uri"] == "http://testserver/app/sign-in/oidc/callback"
    pending = started.headers["set-cookie"]
    assert "HttpOnly" in pending and "SameSite=lax" in pending


def test_a_nurse_signs_in_with_her_identity_providers_claims(oidc_client, provider):
    callback, _ = _authorize(oidc_client, provider, "nina")
    answer = oidc_client.get(callback)
    assert answer.status_code == 200
    assert 'http-equiv="refresh"' in answer.text
    assert "medloop_session=" in answer.headers["set-cookie"]
    home = oidc_client.get("/app/home")
    assert home.status_code == 200
    assert "Nina Nilsen" in home.text and "Solbakken sykehjem (demo)" in home.text
    assert oidc_client.get("/app/").headers["location"] == "/app/nurse"
    # The answer is used once: replaying the callback signs nobody in.
    oidc_client.cookies.delete("medloop_session")
    assert oidc_client.get(callback).status_code == 401


@pytest.mark.parametrize("order", ["first-first", "second-first"])
def test_two_sign_ins_started_in_parallel_tabs_both_complete(pending_client, provider, order):
    first, first_query = _authorize(pending_client, provider, "nina")
    second, second_query = _authorize(pending_client, provider, "nina")
    assert first_query["state"] != second_query["state"]
    for callback in (first, second) if order == "first-first" else (second, first):
        pending_client.cookies.delete("medloop_session")
        answer = pending_client.get(callback)
        assert answer.status_code == 200, answer.text
        assert "medloop_session=" in answer.headers["set-cookie"]
        assert "Nina Nilsen" in pending_client.get("/app/home").text
        # Each answer is used once.
        pending_client.cookies.delete("medloop_session")
        assert pending_client.get(callback).status_code == 401


def test_a_callback_in_a_browser_without_the_pending_cookie_is_refused(pending_client, provider):
    callback, _ = _authorize(pending_client, provider, "nina")
    with TestClient(pending_client.app, follow_redirects=False) as other:
        answer = other.get(callback)
        assert answer.status_code == 401
        assert "medloop_session" not in answer.headers.get("set-cookie", "")
        assert other.get("/app/home").status_code == 303
    # The answer was taken by that attempt: the browser that started it cannot use it either.
    assert pending_client.get(callback).status_code == 401


def test_a_callback_in_a_browser_with_its_own_pending_sign_in_is_refused(pending_client, provider):
    callback, _ = _authorize(pending_client, provider, "nina")
    with TestClient(pending_client.app, follow_redirects=False) as other:
        _authorize(other, provider, "nina")
        assert other.cookies.get("medloop_oidc") != pending_client.cookies.get("medloop_oidc")
        answer = other.get(callback)
        assert answer.status_code == 401
        assert other.get("/app/home").status_code == 303


def test_a_callback_with_another_state_is_refused(oidc_client, provider):
    callback, query = _authorize(oidc_client, provider, "nina")
    forged = callback.replace(query["state"], "x" * 43)
    answer = oidc_client.get(forged)
    assert answer.status_code == 401
    assert "medloop_session" not in answer.headers.get("set-cookie", "")
    assert oidc_client.get("/app/home").status_code == 303


def test_an_identity_without_medloops_claims_is_refused(oidc_client, provider):
    callback, _ = _authorize(oidc_client, provider, "nobody")
    answer = oidc_client.get(callback)
    assert answer.status_code == 401
    assert "rolle, virksomhet, HPR" in answer.text
    assert oidc_client.get("/app/home").status_code == 303


def test_the_issuer_needs_a_client_id():
    with pytest.raises(InvalidSetting, match="MEDLOOP_OIDC_CLIENT_ID"):
        Settings.from_env(environ={"MEDLOOP_OIDC_ISSUER": "https://helseid.example"})
    with pytest.raises(InvalidSetting, match="http"):
        Settings.from_env(environ={"MEDLOOP_OIDC_ISSUER": "helseid", "MEDLOOP_OIDC_CLIENT_ID": "x"})


def test_claim_names_are_configurable():
    settings = Settings.from_env(
        environ={
            "MEDLOOP_OIDC_ISSUER": "https://idp.example",
            "MEDLOOP_OIDC_CLIENT_ID": "medloop",
            "MEDLOOP_OIDC_ROLE_CLAIM": "roles",
            "MEDLOOP_OIDC_HPR_CLAIM": "hpr",
        }
    )
    config = OidcConfig.from_settings(settings)
    assert config is not None and config.role_claim == "roles"
    mapped = map_claims(config, {"roles": "gp", "hpr": "431002737", config.org_claim: "8095068"})
    assert mapped == {"sub": "431002737", "role": "gp", "org": "8095068"}
    patient = map_claims(config, {"roles": "patient", config.pid_claim: "14033810012"})
    assert patient == {"sub": "14033810012", "role": "patient", "name": "14033810012"}
    assert not re.search("ward_admin", str(mapped))
