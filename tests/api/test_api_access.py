"""Authentication and the role × action matrix: no token is 401, a token from another key,
issuer or audience, expired or not yet valid is 401; every role is allowed exactly its actions
and refused the rest with a 403 that carries no patient data, audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from medloop.api.auth import Role, TokenVerifier, Unauthenticated, issue_token, jwks_of
from medloop.api.config import DEV_ISSUER, ApiSettings
from medloop.api.policy import MATRIX, Action
from medloop.store import audit
from tests.api.helpers import (
    GP_TOKEN,
    NATIONAL_ID,
    NURSE_TOKEN,
    OTHER_PATIENT_TOKEN,
    PATIENT_TOKEN,
    PHARMACIST_TOKEN,
    prescribe_body,
)
from tests.loop.helpers import SIMVASTATIN_28


def _other_key() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_no_token_is_401_with_a_bearer_challenge(world):
    response = world.client.get(f"/patients/{world.patient_id}/list")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthenticated"


@pytest.mark.parametrize(
    "token",
    [
        issue_token("gp", "431002737", "8095068", private_key=_other_key()),
        issue_token("gp", "431002737", "8095068", issuer="someone-else"),
        issue_token("gp", "431002737", "8095068", audience="another-api"),
        issue_token(
            "gp",
            "431002737",
            "8095068",
            now=datetime.now(UTC) - timedelta(days=2),
            lifetime=timedelta(hours=1),
        ),
        issue_token("gp", "431002737", "8095068", now=datetime.now(UTC) + timedelta(hours=1)),
        jwt.encode(
            {
                "sub": "431002737",
                "role": "gp",
                "org": "8095068",
                "iss": DEV_ISSUER,
                "aud": "medloop-api",
                "exp": 4102444800,
                "nbf": 0,
            },
            "s" * 32,
            algorithm="HS256",
        ),
        "not-a-jwt",
    ],
    ids=[
        "other-key",
        "other-issuer",
        "other-audience",
        "expired",
        "not-yet-valid",
        "hs256",
        "garbage",
    ],
)
def test_a_token_that_does_not_verify_is_401(world, token):
    response = world.get(f"/patients/{world.patient_id}/list", token=token)
    assert response.status_code == 401
    assert str(world.patient_id) not in response.text


def test_claims_must_name_a_role_an_hpr_number_and_an_organisation():
    verifier = TokenVerifier(ApiSettings.from_env("sqlite://"))
    for claims in ({"role": "admin"}, {"role": "gp", "org": None}, {"role": "gp", "sub": "x"}):
        base = {
            "sub": "431002737",
            "iss": DEV_ISSUER,
            "aud": "medloop-api",
            "exp": 4102444800,
            "nbf": 0,
            "org": "8095068",
            **claims,
        }
        token = jwt.encode(base, _dev_private(), algorithm="ES256")
        with pytest.raises(Unauthenticated):
            verifier.verify(token)


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch):
    verifier = TokenVerifier(ApiSettings.from_env("sqlite://"))
    token = issue_token("gp", "431002737", "8095068", lifetime=timedelta(minutes=5))
    assert verifier.verify(token).role is Role.GP  # verified and remembered
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    later = expires + verifier.leeway + 1
    monkeypatch.setattr("medloop.api.auth.time.time", lambda: later)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(token)


def test_a_remembered_token_is_refused_before_its_not_before_time(monkeypatch):
    verifier = TokenVerifier(ApiSettings.from_env("sqlite://"))
    token = issue_token("gp", "431002737", "8095068")
    assert verifier.verify(token).role is Role.GP
    not_before = jwt.decode(token, options={"verify_signature": False})["nbf"]
    earlier = not_before - verifier.leeway - 1
    monkeypatch.setattr("medloop.api.auth.time.time", lambda: earlier)
    with pytest.raises(Unauthenticated, match="not valid yet"):
        verifier.verify(token)


def _dev_private() -> bytes:
    from medloop.api.config import DEV_PRIVATE_KEY

    return DEV_PRIVATE_KEY.read_bytes()


def test_a_production_jwks_is_used_by_key_id(tmp_path):
    private = _other_key()
    public = (
        serialization.load_pem_private_key(private, None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "jwks.json").write_text(jwks_of(public, "k1"))
    settings = ApiSettings(
        "sqlite://", None, tmp_path / "jwks.json", "https://helseid.example", "medloop-api"
    )
    verifier = TokenVerifier(settings)
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "sub": "431002737",
        "role": "gp",
        "org": "8095068",
        "iss": "https://helseid.example",
        "aud": "medloop-api",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    good = jwt.encode(claims, private, algorithm="ES256", headers={"kid": "k1"})
    assert verifier.verify(good).role is Role.GP
    with pytest.raises(Unauthenticated):
        verifier.verify(jwt.encode(claims, private, algorithm="ES256", headers={"kid": "k2"}))
    with pytest.raises(Unauthenticated):  # the dev key is not trusted once keys are configured
        verifier.verify(issue_token("gp", "431002737", "8095068", issuer="https://helseid.example"))


def test_production_keys_need_an_issuer(tmp_path):
    with pytest.raises(ValueError, match="ISSUER"):
        TokenVerifier(ApiSettings("sqlite://", tmp_path / "k.pem", None, "", "medloop-api"))


def _refused(response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.text
    assert "patient_id" not in response.json() and NATIONAL_ID not in body


def test_pharmacists_may_not_read_the_full_list_or_prescribe(world):
    _refused(world.get(f"/patients/{world.patient_id}/list", token=PHARMACIST_TOKEN))
    _refused(
        world.post(
            f"/patients/{world.patient_id}/prescriptions",
            prescribe_body(SIMVASTATIN_28),
            token=PHARMACIST_TOKEN,
            **{"If-Match": '"0"'},
        )
    )


def test_gps_may_not_dispense(world):
    _refused(world.get(f"/pharmacy/patients/{world.patient_id}/prescriptions"))


def test_patients_read_only_their_own_record(world):
    _refused(world.get(f"/patients/{world.patient_id}/list", token=PATIENT_TOKEN))
    assert world.get("/me/list", token=PATIENT_TOKEN).status_code == 200
    _refused(world.get("/me/list", token=OTHER_PATIENT_TOKEN))
    _refused(world.get("/me/list", token=GP_TOKEN))
    _refused(
        world.post(
            f"/patients/{world.patient_id}/list/check",
            {"proposed": [{"drug": {"varenr": SIMVASTATIN_28}}]},
            token=PATIENT_TOKEN,
        )
    )


def test_a_nurse_not_admitted_to_the_patient_is_refused(world):
    _refused(world.get(f"/patients/{world.patient_id}/list", token=NURSE_TOKEN))


def test_refusals_about_a_patient_are_audited(world):
    world.get(f"/patients/{world.patient_id}/list", token=PHARMACIST_TOKEN)
    with world.engine.connect() as conn:
        events = audit.events_for_patient(conn, NATIONAL_ID).events
    assert events[0].outcome == audit.Outcome.REFUSED
    assert events[0].actor_role == "pharmacist" and events[0].action == "api.list.read"


def test_every_action_is_in_the_matrix_and_only_patients_read_their_own_record():
    assert set(MATRIX) == set(Action)
    assert MATRIX[Action.OWN_RECORD] == {Role.PATIENT: MATRIX[Action.OWN_RECORD][Role.PATIENT]}
    writes = (Action.LIST_WRITE, Action.DISPENSE, Action.CHART_WRITE, Action.MULTIDOSE_WRITE)
    assert not any(Role.PATIENT in MATRIX[action] for action in writes)


def test_the_catalogue_is_open_to_every_role_and_needs_a_token(world):
    for token in (GP_TOKEN, PHARMACIST_TOKEN, NURSE_TOKEN, PATIENT_TOKEN):
        assert world.get("/catalogue", token=token).status_code == 200
    assert world.client.get("/catalogue").status_code == 401
