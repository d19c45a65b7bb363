"""What HelseID needs of the OpenID Connect client (``medloop.pages.oidc``): ``private_key_jwt``
client authentication at the token endpoint, and RP-initiated logout on sign-out.

``oidc-provider-mock`` (0.3.4) does not accept ``private_key_jwt``: its client authentication
methods are ``none``, ``client_secret_basic`` and ``client_secret_post``, and it answers a token
request with a client assertion ``invalid_client``. So the test of the key signs in against it
with the key configured, captures the token request medloop sends, and checks the client
assertion's claims and signature against the public key itself (and that no secret goes with
it); the sign-out test signs in with a client secret."""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey, RSAKey
from oidc_provider_mock import User, run_server_in_thread

from medloop.api.app import create_app
from medloop.pages import oidc
from medloop.settings import InvalidSetting, Settings
from tests.pages.helpers import client_signed_in, csrf_of

NURSE = User(
    sub="nina",
    claims={
        "name": "Nina Nilsen",
        "medloop_role": "nurse",
        "helseid://claims/hpr/hpr_number": "5551234",
        "helseid://claims/client/claims/orgnr_child": "974600951",
    },
)


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with run_server_in_thread(user_claims=[NURSE]) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "medloop-test-1"}, private=True)


def _settings(sqlite_url: str, environ: dict[str, str]) -> Settings:
    return dataclasses.replace(
        Settings.from_env(sqlite_url, environ=environ), database_url=sqlite_url
    )


@pytest.fixture
def key_file(tmp_path, rsa_key) -> str:
    path = tmp_path / "client.jwk.json"
    path.write_text(json.dumps(rsa_key.as_dict(private=True)))
    return str(path)


@pytest.fixture
def signed_client(provider, sqlite_url, key_file) -> Iterator[TestClient]:
    settings = _settings(
        sqlite_url,
        {
            "MEDLOOP_OIDC_ISSUER": provider,
            "MEDLOOP_OIDC_CLIENT_ID": "medloop-pages",
            "MEDLOOP_OIDC_CLIENT_KEY_FILE": key_file,
        },
    )
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def _sign_in(client: TestClient) -> httpx.Response:
    page = client.get("/app/sign-in")
    started = client.post("/app/sign-in/oidc", data={"csrf_token": csrf_of(page.text)})
    approved = httpx.post(started.headers["location"], data={"sub": "nina"})
    return client.get(approved.headers["location"])


def test_the_token_request_carries_a_private_key_jwt_and_no_secret(
    signed_client, provider, rsa_key, monkeypatch
):
    sent: list[urllib.request.Request] = []
    real = urllib.request.urlopen

    def recording(request, *args, **kwargs):
        if isinstance(request, urllib.request.Request):
            sent.append(request)
        return real(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", recording)
    _sign_in(signed_client)  # the mock refuses the assertion (see above); the request is sent
    (token_request,) = [r for r in sent if r.full_url.endswith("/oauth2/token")]
    assert "Authorization" not in token_request.headers
    body = dict(urllib.parse.parse_qsl(token_request.data.decode()))
    assert "client_secret" not in body
    assert body["client_assertion_type"] == (
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    assertion = body["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "RS256" and header["kid"] == "medloop-test-1"
    public = jwt.PyJWK(rsa_key.as_dict(private=False)).key
    claims = jwt.decode(assertion, public, algorithms=["RS256"], audience=provider)
    assert claims["iss"] == claims["sub"] == "medloop-pages"
    assert claims["exp"] - claims["iat"] == 60 and len(claims["jti"]) >= 32
    # Signed by the configured key only: another key does not verify it.
    other = RSAKey.generate_key(2048, private=True)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            assertion,
            jwt.PyJWK(other.as_dict(private=False)).key,
            algorithms=["RS256"],
            audience=provider,
        )


def test_the_assertion_audience_can_be_the_token_endpoint(sqlite_url, key_file):
    settings = Settings.from_env(
        sqlite_url,
        environ={
            "MEDLOOP_OIDC_ISSUER": "https://helseid-sts.test.nhn.no",
            "MEDLOOP_OIDC_CLIENT_ID": "medloop",
            "MEDLOOP_OIDC_CLIENT_KEY_FILE": key_file,
            "MEDLOOP_OIDC_CLIENT_ASSERTION_AUDIENCE": "token_endpoint",
        },
    )
    config = oidc.OidcConfig.from_settings(settings)
    token = oidc.client_assertion(config, "https://helseid-sts.test.nhn.no/connect/token")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == "https://helseid-sts.test.nhn.no/connect/token"


def test_a_pem_ec_key_signs_with_es256(tmp_path):
    key = ECKey.generate_key("P-256", private=True)
    path = tmp_path / "client.pem"
    path.write_bytes(key.as_pem(private=True))
    settings = Settings.from_env(
        environ={
            "MEDLOOP_OIDC_ISSUER": "https://idp.example",
            "MEDLOOP_OIDC_CLIENT_ID": "medloop",
            "MEDLOOP_OIDC_CLIENT_KEY_FILE": str(path),
        }
    )
    config = oidc.OidcConfig.from_settings(settings)
    token = oidc.client_assertion(config, "https://idp.example/token")
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    public = jwt.PyJWK(key.as_dict(private=False)).key
    assert jwt.decode(token, public, algorithms=["ES256"], audience="https://idp.example")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("not a key", "not a JWK or PEM"),
        ("public", "private RSA or EC key"),
        ("x" * (70 * 1024), "larger than"),
    ],
)
def test_a_client_key_file_that_cannot_sign_is_refused_at_start(
    tmp_path, rsa_key, content, message
):
    path = tmp_path / "key"
    if content == "public":
        path.write_text(json.dumps(rsa_key.as_dict(private=False)))
    elif content is not None:
        path.write_text(content)
    with pytest.raises(InvalidSetting, match=message):
        Settings.from_env(
            environ={
                "MEDLOOP_OIDC_ISSUER": "https://idp.example",
                "MEDLOOP_OIDC_CLIENT_ID": "medloop",
                "MEDLOOP_OIDC_CLIENT_KEY_FILE": str(path),
            }
        )


@pytest.fixture
def secret_client(provider, sqlite_url) -> Iterator[TestClient]:
    settings = _settings(
        sqlite_url,
        {
            "MEDLOOP_OIDC_ISSUER": provider,
            "MEDLOOP_OIDC_CLIENT_ID": "medloop-pages",
            "MEDLOOP_OIDC_CLIENT_SECRET": "test-secret",
        },
    )
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def test_signing_out_ends_the_sign_in_at_the_issuer_too(secret_client, provider):
    signed_client = secret_client
    assert _sign_in(signed_client).status_code == 200
    home = signed_client.get("/app/home")
    assert home.status_code == 200
    out = signed_client.post("/app/sign-out", data={"csrf_token": csrf_of(home.text)})
    assert out.status_code == 303
    address = out.headers["location"]
    assert address.startswith(provider + "/oauth2/end_session?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(address).query))
    assert query["post_logout_redirect_uri"] == "http://testserver/app/sign-in"
    assert query["client_id"] == "medloop-pages"
    hint = jwt.decode(query["id_token_hint"], options={"verify_signature": False})
    assert hint["sub"] == "nina" and "medloop-pages" in hint["aud"]
    # medloop's session is gone at once, whatever the issuer does next.
    assert signed_client.get("/app/home").status_code == 303
    # The issuer confirms and sends the browser back to the sign-in page.
    confirm = httpx.post(
        provider + "/oauth2/end_session/confirm",
        data={"redirect_uri": query["post_logout_redirect_uri"]},
    )
    assert confirm.headers["location"] == "http://testserver/app/sign-in"


def test_a_demo_session_signs_out_at_medloop_only(client):
    client_signed_in(client, "nurse")
    home = client.get("/app/home")
    out = client.post("/app/sign-out", data={"csrf_token": csrf_of(home.text)})
    assert out.status_code == 303 and out.headers["location"] == "/app/sign-in"
