"""Token hardening: a bounded lifetime (``exp - iat`` at most the configured maximum, ``iat``
required), algorithms that follow the configured key's type (a token signed for another key
type is 401, never a 500, in ``Authorization`` and in ``X-Witness-Authorization``), a JWKS of
several key types chosen per ``kid``, and ``medloop serve`` refusing a token configuration it
cannot verify with (exit 2, before "Serving on")."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from typer.testing import CliRunner

from medloop.api.auth import Role, TokenVerifier, Unauthenticated, algorithms_for, issue_token
from medloop.api.config import DEV_ISSUER, DEV_PRIVATE_KEY, ApiSettings, InvalidSetting
from medloop.cli import app

ISSUER = "https://helseid.example"
runner = CliRunner()


def _pem(private) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_pem(private) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def _claims(**changes) -> dict:
    now = int(time.time())
    return {
        "sub": "431002737",
        "role": "gp",
        "org": "8095068",
        "iss": DEV_ISSUER,
        "aud": "medloop-api",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        **changes,
    }


def _dev_signed(**changes) -> str:
    return jwt.encode(_claims(**changes), DEV_PRIVATE_KEY.read_bytes(), algorithm="ES256")


# -- lifetime ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        _dev_signed(exp=10**30),
        _dev_signed(exp=int(time.time()) + 5 * 3600),
        _dev_signed(iat=None),
        jwt.encode(
            {k: v for k, v in _claims().items() if k != "iat"},
            DEV_PRIVATE_KEY.read_bytes(),
            algorithm="ES256",
        ),
        _dev_signed(iat=int(time.time()) + 3600, nbf=int(time.time()), exp=int(time.time()) + 3700),
    ],
    ids=["exp-1e30", "five-hours", "iat-null", "no-iat", "iat-in-the-future"],
)
def test_a_token_living_longer_than_the_maximum_or_without_iat_is_401(world, token):
    response = world.get(f"/patients/{world.patient_id}/list", token=token)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthenticated"
    assert str(world.patient_id) not in response.text


def test_the_maximum_lifetime_is_configuration(monkeypatch):
    monkeypatch.setenv("MEDLOOP_JWT_MAX_LIFETIME_SECONDS", "300")
    verifier = TokenVerifier(ApiSettings.from_env("sqlite://"))
    assert verifier.verify(_dev_signed(exp=int(time.time()) + 300)).role is Role.GP
    with pytest.raises(Unauthenticated, match="lifetime"):
        verifier.verify(_dev_signed(exp=int(time.time()) + 301))
    for bad in ("0", "-5", "soon", "10000000"):
        monkeypatch.setenv("MEDLOOP_JWT_MAX_LIFETIME_SECONDS", bad)
        with pytest.raises(InvalidSetting, match="MEDLOOP_JWT_MAX_LIFETIME_SECONDS"):
            ApiSettings.from_env("sqlite://")


def test_the_default_maximum_is_a_few_hours_and_development_tokens_fit_it():
    verifier = TokenVerifier(ApiSettings.from_env("sqlite://"))
    assert 3600 <= verifier.max_lifetime <= 8 * 3600
    assert verifier.verify(issue_token("gp", "431002737", "8095068")).role is Role.GP


# -- algorithms follow the key -----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "PS256", "RS512"])
def test_an_rsa_signed_token_against_the_ec_key_is_401_not_500(world, algorithm):
    token = jwt.encode(_claims(), _pem(RSA_KEY), algorithm=algorithm)
    response = world.get(f"/patients/{world.patient_id}/list", token=token)
    assert response.status_code == 401, response.text
    assert "does not fit" in response.json()["detail"]


def test_an_es384_token_is_refused_by_a_p256_key():
    p384 = ec.generate_private_key(ec.SECP384R1())
    verifier = TokenVerifier(ApiSettings.from_env("sqlite://"))
    with pytest.raises(Unauthenticated, match="does not fit"):
        verifier.verify(jwt.encode(_claims(), _pem(p384), algorithm="ES384"))


def _settings(
    tmp_path: Path,
    *,
    pem: bytes | None = None,
    jwks: dict | None = None,
    issuer: str = ISSUER,
    audience: str = "medloop-api",
) -> ApiSettings:
    key_file = jwks_file = None
    if pem is not None:
        key_file = tmp_path / "issuer.pem"
        key_file.write_bytes(pem)
    if jwks is not None:
        jwks_file = tmp_path / "jwks.json"
        jwks_file.write_text(json.dumps(jwks))
    return ApiSettings("sqlite://", key_file, jwks_file, issuer, audience)


def test_each_key_type_accepts_only_its_own_algorithms(tmp_path):
    claims = _claims(iss=ISSUER)
    rsa_verifier = TokenVerifier(_settings(tmp_path, pem=_public_pem(RSA_KEY)))
    for algorithm in ("RS256", "PS256", "PS512"):
        assert rsa_verifier.verify(jwt.encode(claims, _pem(RSA_KEY), algorithm=algorithm))
    with pytest.raises(Unauthenticated, match="does not fit"):
        rsa_verifier.verify(jwt.encode(claims, _pem(EC_KEY), algorithm="ES256"))
    ed_verifier = TokenVerifier(_settings(tmp_path, pem=_public_pem(ED_KEY)))
    assert ed_verifier.verify(jwt.encode(claims, _pem(ED_KEY), algorithm="EdDSA"))
    for key, algorithm in ((RSA_KEY, "RS256"), (EC_KEY, "ES256")):
        with pytest.raises(Unauthenticated, match="does not fit"):
            ed_verifier.verify(jwt.encode(claims, _pem(key), algorithm=algorithm))
    assert algorithms_for(EC_KEY.public_key()) == {"ES256"}


def _jwk(private, kid: str, **extra) -> dict:
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    kind = {
        rsa.RSAPrivateKey: RSAAlgorithm,
        ec.EllipticCurvePrivateKey: ECAlgorithm,
        ed25519.Ed25519PrivateKey: OKPAlgorithm,
    }
    algorithm = next(a for cls, a in kind.items() if isinstance(private, cls))
    return {**json.loads(algorithm.to_jwk(private.public_key())), "kid": kid, "use": "sig", **extra}


def test_a_jwks_of_several_key_types_picks_the_key_by_kid_and_its_type(tmp_path):
    jwks = {"keys": [_jwk(EC_KEY, "ec"), _jwk(RSA_KEY, "rsa"), _jwk(ED_KEY, "ed")]}
    verifier = TokenVerifier(_settings(tmp_path, jwks=jwks))
    claims = _claims(iss=ISSUER)
    for private, kid, algorithm in (
        (EC_KEY, "ec", "ES256"),
        (RSA_KEY, "rsa", "PS256"),
        (RSA_KEY, "rsa", "RS256"),
        (ED_KEY, "ed", "EdDSA"),
    ):
        token = jwt.encode(claims, _pem(private), algorithm=algorithm, headers={"kid": kid})
        assert verifier.verify(token).role is Role.GP, (kid, algorithm)
    # An RSA token naming the EC key's kid (the 500 of the issue), and a forged one.
    for private, kid, algorithm in (
        (RSA_KEY, "ec", "RS256"),
        (RSA_KEY, "ec", "PS256"),
        (EC_KEY, "rsa", "ES256"),
    ):
        with pytest.raises(Unauthenticated, match="does not fit"):
            verifier.verify(
                jwt.encode(claims, _pem(private), algorithm=algorithm, headers={"kid": kid})
            )
    # Without a kid: the one key of the token's type, never a guess between several.
    assert verifier.verify(jwt.encode(claims, _pem(ED_KEY), algorithm="EdDSA"))
    second_ec = ec.generate_private_key(ec.SECP256R1())
    jwks["keys"].append(_jwk(second_ec, "ec2"))
    two_ec = TokenVerifier(_settings(tmp_path, jwks=jwks))
    with pytest.raises(Unauthenticated, match="several"):
        two_ec.verify(jwt.encode(claims, _pem(EC_KEY), algorithm="ES256"))


def test_a_jwk_alg_narrows_its_key_to_that_algorithm(tmp_path):
    jwks = {"keys": [_jwk(RSA_KEY, "rsa", alg="PS256")]}
    verifier = TokenVerifier(_settings(tmp_path, jwks=jwks))
    claims = _claims(iss=ISSUER)
    assert verifier.verify(
        jwt.encode(claims, _pem(RSA_KEY), algorithm="PS256", headers={"kid": "rsa"})
    )
    with pytest.raises(Unauthenticated, match="does not fit"):
        verifier.verify(
            jwt.encode(claims, _pem(RSA_KEY), algorithm="RS256", headers={"kid": "rsa"})
        )


@pytest.mark.parametrize(
    ("configure", "message"),
    [
        (lambda tmp: _settings(tmp, pem=_public_pem(EC_KEY), issuer=""), "MEDLOOP_JWT_ISSUER"),
        (lambda tmp: _settings(tmp, pem=_public_pem(EC_KEY), audience=""), "MEDLOOP_JWT_AUDIENCE"),
        (
            lambda tmp: ApiSettings("sqlite://", tmp / "missing.pem", None, ISSUER, "a"),
            "cannot be read",
        ),
        (lambda tmp: _settings(tmp, pem=b"-----BEGIN NONSENSE-----"), "not a PEM public key"),
        (
            lambda tmp: _settings(
                tmp, pem=_public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
            ),
            "not accepted",
        ),
        (lambda tmp: _settings(tmp, jwks={"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}), "secret"),
        (lambda tmp: _settings(tmp, jwks={"keys": []}), "no signing key"),
        (lambda tmp: _settings(tmp, jwks={"nokeys": 1}), "keys"),
        (
            lambda tmp: _settings(tmp, jwks={"keys": [_jwk(EC_KEY, "a"), _jwk(RSA_KEY, "a")]}),
            "used twice",
        ),
    ],
    ids=[
        "no-issuer",
        "no-audience",
        "missing-file",
        "not-pem",
        "rsa-1024",
        "jwks-secret",
        "jwks-empty",
        "jwks-shape",
        "jwks-duplicate-kid",
    ],
)
def test_a_configuration_that_cannot_verify_tokens_is_an_invalid_setting(
    tmp_path, configure, message
):
    with pytest.raises(InvalidSetting, match=message):
        TokenVerifier(configure(tmp_path))


# -- serve refuses to start --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MEDLOOP_JWT_ISSUER": ""}, "MEDLOOP_JWT_ISSUER"),
        ({"MEDLOOP_JWT_AUDIENCE": ""}, "MEDLOOP_JWT_AUDIENCE"),
        ({"MEDLOOP_JWT_PUBLIC_KEY_FILE": "/nonexistent/issuer.pem"}, "cannot be read"),
        ({"MEDLOOP_JWT_MAX_LIFETIME_SECONDS": "forever"}, "MEDLOOP_JWT_MAX_LIFETIME_SECONDS"),
    ],
    ids=["no-issuer", "no-audience", "missing-key-file", "bad-max-lifetime"],
)
def test_serve_refuses_a_token_configuration_it_cannot_use_before_serving(
    tmp_path, sqlite_url, monkeypatch, env, message
):
    key = tmp_path / "issuer.pem"
    key.write_bytes(_public_pem(EC_KEY))
    base = {
        "MEDLOOP_JWT_PUBLIC_KEY_FILE": str(key),
        "MEDLOOP_JWT_ISSUER": ISSUER,
        "MEDLOOP_JWT_AUDIENCE": "medloop-api",
        "MEDLOOP_SCHEDULER": "off",
    }
    monkeypatch.delenv("MEDLOOP_JWT_JWKS_FILE", raising=False)
    monkeypatch.delenv("MEDLOOP_JWT_MAX_LIFETIME_SECONDS", raising=False)
    for name, value in {**base, **env}.items():
        monkeypatch.setenv(name, value)
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: served.append(a))
    result = runner.invoke(app, ["serve", "--db", sqlite_url])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Serving on" not in result.stdout and "Traceback" not in result.output
    assert not served


def test_serve_starts_with_a_complete_production_configuration(tmp_path, sqlite_url, monkeypatch):
    key = tmp_path / "issuer.pem"
    key.write_bytes(_public_pem(EC_KEY))
    for name, value in {
        "MEDLOOP_JWT_PUBLIC_KEY_FILE": str(key),
        "MEDLOOP_JWT_ISSUER": ISSUER,
        "MEDLOOP_JWT_AUDIENCE": "medloop-api",
        "MEDLOOP_SCHEDULER": "off",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MEDLOOP_JWT_JWKS_FILE", raising=False)
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: served.append(a))
    result = runner.invoke(app, ["serve", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert "Serving on" in result.stdout and len(served) == 1


# -- medloop token -----------------------------------------------------------------------------


def test_medloop_token_refuses_a_lifetime_the_server_would_refuse():
    result = runner.invoke(
        app, ["token", "--role", "gp", "--hpr", "431002737", "--org", "1", "--hours", "12"]
    )
    assert result.exit_code == 1 and "--hours" in result.stderr
    nurse_admin = runner.invoke(
        app, ["token", "--role", "nurse", "--hpr", "5551234", "--org", "974600951", "--ward-admin"]
    )
    assert nurse_admin.exit_code == 0, nurse_admin.output
    principal = TokenVerifier(ApiSettings.from_env("sqlite://")).verify(nurse_admin.stdout.strip())
    assert principal.role is Role.NURSE and principal.ward_admin
    gp_admin = runner.invoke(
        app, ["token", "--role", "gp", "--hpr", "431002737", "--org", "1", "--ward-admin"]
    )
    assert gp_admin.exit_code == 1


@pytest.mark.parametrize(
    "claims",
    [
        {"role": "gp", "ward_admin": True},
        {"role": "nurse", "ward_admin": "true"},
        {"role": "nurse", "ward_admin": 1},
    ],
    ids=["gp-ward-admin", "string", "number"],
)
def test_the_ward_admin_claim_is_a_boolean_of_nurse_tokens(claims):
    verifier = TokenVerifier(ApiSettings.from_env("sqlite://"))
    with pytest.raises(Unauthenticated, match="ward_admin"):
        verifier.verify(_dev_signed(sub="5551234", **claims))


def test_a_test_identity_token_is_issued_when_first_sent_and_again_before_it_expires():
    from datetime import timedelta

    from tests.api.helpers import Token

    token = Token("gp", "431002737", "8095068", name="Anja Fos Eidsvik")
    assert token._value is None  # nothing issued at import (or construction) time
    first = f"{token}"
    assert str(token) == first  # reused while fresh
    issued = token._issued
    token._issued = issued - Token.REFRESH_AFTER - timedelta(seconds=1)  # as after a long run
    again = str(token)
    assert token._issued >= issued and again != first  # issued anew
    claims = jwt.decode(again, options={"verify_signature": False})
    assert claims["exp"] - time.time() > 3000  # a fresh hour, not the first token's remains
