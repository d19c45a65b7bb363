"""Bearer tokens: who calls (``Principal``), how a token is checked, and the development issuer.

A token is a JWT signed with an asymmetric key. ``TokenVerifier`` checks the signature against
the configured public key or JWKS, the issuer, the audience, ``exp``, ``nbf`` and ``iat`` (all
required), then reads the claims:

- ``sub``: the person — an HPR number (health personnel) or a national id (patient);
- ``role``: ``gp``, ``nurse``, ``pharmacist``, ``patient`` or ``exporter`` (a registry's or
  analytics service's system client: FHIR bulk export only, ``sub`` is its client id);
- ``org``: the organisation (HER-id or organisation number) the person acts for; not for
  patients; ``org_name`` and ``name`` are display names (optional);
- ``ward_admin``: ``true`` for a nurse who may create and configure wards, admit and discharge
  (the stronger permission, ``medloop.api.policy``); absent or ``false`` otherwise; only nurse
  tokens carry it.
- ``scope``: SMART on FHIR scopes, space-separated (``user/MedicationRequest.rs``,
  ``patient/*.r``, ``system/*.r``): what the token lets its holder do through ``/fhir``, next
  to (never instead of) the role × organisation policy (``medloop.fhir.scopes``); the JSON API
  does not read it;
- ``patient``: a SMART launch context, the id of the patient a clinician's app was launched
  for (``patient/`` scopes of a health personnel token reach only that patient).

Lifetime: a token's lifetime is ``exp - iat`` and must not exceed the configured maximum
(``MEDLOOP_JWT_MAX_LIFETIME_SECONDS``); ``iat`` must not lie in the future (beyond the leeway),
so no accepted token stays valid longer than the maximum after it could first be used.

Algorithms follow the key: each configured key (the PEM key, or each JWKS key, chosen by the
token's ``kid``) accepts only the algorithms of its type — an EC key the ES algorithm of its
curve (P-256 ES256, P-384 ES384, P-521 ES512), an RSA key (2048 bits or more) RS256/384/512 and
PS256/384/512, an Ed25519/Ed448 key EdDSA (and a JWK's own ``alg`` narrows that to one). A token
whose algorithm does not fit its key is 401, never a crash.

``issue_token`` signs with the development key (``medloop token``, the demo and the tests).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import ValidationError

from medloop.api.config import (
    ALGORITHMS,
    DEFAULT_AUDIENCE,
    DEV_ISSUER,
    DEV_PRIVATE_KEY,
    DEV_PUBLIC_KEY,
    ApiSettings,
    InvalidSetting,
)
from medloop.domain.codes import OrganisationKind, PersonnelRole
from medloop.domain.errors import DomainError
from medloop.domain.patient import NationalId
from medloop.domain.personnel import Actor, HealthPersonnel, Organisation


class Role(StrEnum):
    GP = "gp"
    NURSE = "nurse"
    PHARMACIST = "pharmacist"
    PATIENT = "patient"
    EXPORTER = "exporter"
    """A system client of a registry or analytics service: FHIR bulk export only."""


_PERSONNEL = {
    Role.GP: (PersonnelRole.DOCTOR, OrganisationKind.GP_PRACTICE),
    Role.NURSE: (PersonnelRole.NURSE, OrganisationKind.NURSING_HOME),
    Role.PHARMACIST: (PersonnelRole.PHARMACIST, OrganisationKind.PHARMACY),
}


_REMEMBERED = 10_000
"""Verified tokens remembered per verifier (the memory is cleared when full)."""


class Unauthenticated(Exception):
    """No usable bearer token (HTTP 401); the message says why without echoing the token."""


@dataclass(frozen=True)
class Principal:
    """The caller, from a verified token."""

    role: Role
    subject: str
    organisation: str | None
    name: str
    organisation_name: str | None
    ward_admin: bool = False
    """A nurse who may create and configure wards, admit and discharge (claim ``ward_admin``)."""
    scopes: tuple[str, ...] | None = None
    """SMART scopes (claim ``scope``); ``None`` when the token carries none."""
    patient_context: str | None = None
    """SMART launch context (claim ``patient``): the patient id an app was launched for."""

    @property
    def is_patient(self) -> bool:
        return self.role is Role.PATIENT

    @property
    def actor(self) -> Actor:
        """The health personnel acting for their organisation (not for patients)."""
        if self.is_patient or self.organisation is None:
            raise ValueError("a patient is not health personnel")
        role, kind = _PERSONNEL[self.role]
        return Actor(
            personnel=HealthPersonnel(hpr_number=self.subject, name=self.name, role=role),
            organisation=Organisation(
                id=self.organisation, name=self.organisation_name or self.organisation, kind=kind
            ),
        )

    @property
    def audit_role(self) -> str:
        if self.role is Role.EXPORTER:
            return "exporter"
        return "patient" if self.is_patient else _PERSONNEL[self.role][0].value


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """The principal the claims describe; ``Unauthenticated`` when they do not describe one."""
    try:
        role = Role(claims.get("role"))
    except ValueError:
        raise Unauthenticated("the token has no known role claim") from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthenticated("the token has no subject")
    organisation = claims.get("org")
    name = claims.get("name") or subject
    ward_admin = claims.get("ward_admin", False)
    if not isinstance(ward_admin, bool):
        raise Unauthenticated("the ward_admin claim is true or false")
    if ward_admin and role is not Role.NURSE:
        raise Unauthenticated("only a nurse token carries the ward_admin claim")
    scope = claims.get("scope")
    if scope is not None and (not isinstance(scope, str) or len(scope) > _MAX_SCOPE):
        raise Unauthenticated("the scope claim is a space-separated string of SMART scopes")
    scopes = None if scope is None else tuple(scope.split())
    context = claims.get("patient")
    if context is not None and (not isinstance(context, str) or len(context) > 64):
        raise Unauthenticated("the patient claim is a patient id")
    if role is Role.PATIENT:
        try:
            NationalId(subject)
        except (ValidationError, DomainError):
            raise Unauthenticated("a patient token's subject is a national id") from None
        return Principal(
            role, subject, None, str(name), None, scopes=scopes, patient_context=context
        )
    if not isinstance(organisation, str) or not organisation:
        raise Unauthenticated("a health personnel token names its organisation (org)")
    principal = Principal(
        role,
        subject,
        organisation,
        str(name),
        claims.get("org_name"),
        ward_admin=ward_admin,
        scopes=scopes,
        patient_context=context,
    )
    if role is Role.EXPORTER:
        return principal  # a system client: its subject is a client id, not an HPR number
    try:
        principal.actor  # noqa: B018 - validates the HPR number and names
    except (ValidationError, DomainError):
        raise Unauthenticated("a health personnel token's subject is an HPR number") from None
    return principal


_MAX_SCOPE = 4000
"""The longest ``scope`` claim read (characters)."""

_RSA = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_CURVES = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
MIN_RSA_BITS = 2048


def algorithms_for(key: Any) -> frozenset[str]:
    """The JWS algorithms a public key may verify (empty: a key type medloop does not trust)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        found = _EC_CURVES.get(key.curve.name)
        return frozenset({found}) if found else frozenset()
    if isinstance(key, rsa.RSAPublicKey):
        return _RSA if key.key_size >= MIN_RSA_BITS else frozenset()
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    return frozenset()


@dataclass(frozen=True)
class _Key:
    """One trusted public key: its key id (``None``: the one PEM key, whatever ``kid`` a token
    names) and the algorithms it accepts."""

    kid: str | None
    key: Any
    algorithms: frozenset[str]


def _pem_key(path: Any) -> _Key:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InvalidSetting(
            f"MEDLOOP_JWT_PUBLIC_KEY_FILE {path}: cannot be read ({error.strerror or error})"
        ) from None
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError):
        raise InvalidSetting(f"MEDLOOP_JWT_PUBLIC_KEY_FILE {path}: not a PEM public key") from None
    algorithms = algorithms_for(key)
    if not algorithms:
        raise InvalidSetting(
            f"MEDLOOP_JWT_PUBLIC_KEY_FILE {path}: a {type(key).__name__} is not accepted "
            f"(EC P-256/P-384/P-521, RSA of {MIN_RSA_BITS} bits or more, Ed25519 or Ed448)"
        )
    return _Key(None, key, algorithms)


def _jwks_keys(path: Any) -> list[_Key]:
    """The signing keys of a JWKS file; keys for encryption (``"use": "enc"``) are skipped,
    anything else that is not a trusted public key refuses the file."""
    where = f"MEDLOOP_JWT_JWKS_FILE {path}"
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise InvalidSetting(f"{where}: cannot be read ({error.strerror or error})") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidSetting(f"{where}: not JSON") from None
    listed = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(listed, list):
        raise InvalidSetting(f'{where}: a JWKS is an object with a "keys" array')
    keys: list[_Key] = []
    for index, data in enumerate(listed):
        if not isinstance(data, dict):
            raise InvalidSetting(f"{where}: key {index} is not an object")
        if data.get("use", "sig") != "sig":
            continue
        kid = data.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidSetting(f"{where}: key {index} has a kid that is not a string")
        if data.get("kty") == "oct" or "d" in data:
            raise InvalidSetting(
                f"{where}: key {index} is a secret (symmetric or private) key; only public "
                "keys are trusted"
            )
        try:
            key = jwt.PyJWK(data).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as error:
            raise InvalidSetting(f"{where}: key {index} is not usable ({error})") from None
        algorithms = algorithms_for(key)
        named = data.get("alg")
        if named is not None:
            algorithms = algorithms & {named}
        if not algorithms:
            raise InvalidSetting(
                f"{where}: key {index} ({data.get('kty')}"
                f"{', alg ' + str(named) if named else ''}) is not a key type medloop accepts"
            )
        if kid is not None and any(k.kid == kid for k in keys):
            raise InvalidSetting(f"{where}: the key id {kid!r} is used twice")
        keys.append(_Key(kid, key, algorithms))
    if not keys:
        raise InvalidSetting(f"{where}: no signing key")
    return keys


class TokenVerifier:
    """Checks bearer tokens against one issuer's keys (a PEM public key or a JWKS file).
    ``InvalidSetting`` when the configuration cannot verify anything (no issuer or audience,
    a key file that is missing, unreadable or holds no trusted public key)."""

    def __init__(self, settings: ApiSettings) -> None:
        if not settings.issuer:
            raise InvalidSetting(
                "MEDLOOP_JWT_ISSUER must be set when a production key is configured"
            )
        if not settings.audience:
            raise InvalidSetting(
                "MEDLOOP_JWT_AUDIENCE must be set when a production key is configured"
            )
        self.issuer = settings.issuer
        self.audience = settings.audience
        self.leeway = settings.leeway_seconds
        self.max_lifetime = settings.max_lifetime_seconds
        # Key objects, not PEM text: PyJWT would parse a PEM key again for every signature.
        self._verified: dict[str, _Verified] = {}
        self._lock = threading.Lock()
        if settings.jwks_file is not None:
            self._keys = _jwks_keys(settings.jwks_file)
        else:
            self._keys = [_pem_key(settings.public_key_file or DEV_PUBLIC_KEY)]
        self._any_kid = settings.jwks_file is None  # one PEM key: whatever kid a token names

    def _key_for(self, token: str) -> tuple[Any, str]:
        """The key that verifies ``token`` and the algorithm to verify it with."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise Unauthenticated("the token's algorithm is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("the token's key id (kid) is not a string")
        if kid is None or self._any_kid:
            candidates = self._keys
        else:
            candidates = [k for k in self._keys if k.kid == kid]
            if not candidates:
                raise Unauthenticated("the token's key id (kid) is not one of the issuer's keys")
        fitting = [k for k in candidates if algorithm in k.algorithms]
        if not fitting:
            raise Unauthenticated(
                f"the token's algorithm {algorithm} does not fit the issuer's key"
            )
        if len(fitting) > 1:
            raise Unauthenticated(
                "the token names no key id (kid) and several of the issuer's keys fit"
            )
        return fitting[0].key, algorithm

    def verify(self, token: str) -> Principal:
        """The principal of a valid token. A verified token is remembered (at most
        ``_REMEMBERED`` of them), so a client's next request skips the signature check; its
        ``nbf`` and ``exp`` are checked again at every request."""
        now = time.time()
        with self._lock:
            known = self._verified.get(token)
        if known is None:
            known = self._verify(token)
            with self._lock:
                if len(self._verified) >= _REMEMBERED:
                    self._verified.clear()
                self._verified[token] = known
        if now >= known.expires + self.leeway:
            raise Unauthenticated("the token has expired")
        if now < known.not_before - self.leeway:
            raise Unauthenticated("the token is not valid yet")
        return known.principal

    def _verify(self, token: str) -> _Verified:
        key, algorithm = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token is from another issuer") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthenticated(f"the token has no {error.claim} claim") from None
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"the token is not valid: {type(error).__name__}") from None
        except (ValueError, TypeError, OverflowError):
            # A key or claim the library could not handle: never a server error.
            raise Unauthenticated("the token is not valid") from None
        lifetime = int(claims["exp"]) - int(claims["iat"])
        if lifetime > self.max_lifetime:
            raise Unauthenticated(
                f"the token's lifetime (exp - iat, {lifetime} s) is longer than the "
                f"{self.max_lifetime} s accepted"
            )
        return _Verified(principal_from_claims(claims), float(claims["nbf"]), float(claims["exp"]))


@dataclass(frozen=True)
class _Verified:
    """A token whose signature, issuer and audience have been checked."""

    principal: Principal
    not_before: float
    expires: float


def issue_token(
    role: Role | str,
    subject: str,
    organisation: str | None = None,
    *,
    name: str | None = None,
    organisation_name: str | None = None,
    ward_admin: bool = False,
    scope: str | None = None,
    patient: str | None = None,
    lifetime: timedelta = timedelta(hours=1),
    now: datetime | None = None,
    audience: str = DEFAULT_AUDIENCE,
    issuer: str = DEV_ISSUER,
    private_key: bytes | None = None,
) -> str:
    """A token signed with the development key (or ``private_key``); claims as described in
    the module docstring. Checks the claims the verifier will read."""
    moment = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "role": Role(role).value,
        "iat": int(moment.timestamp()),
        "nbf": int(moment.timestamp()),
        "exp": int((moment + lifetime).timestamp()),
    }
    if organisation is not None:
        claims["org"] = organisation
    if name is not None:
        claims["name"] = name
    if organisation_name is not None:
        claims["org_name"] = organisation_name
    if ward_admin:
        claims["ward_admin"] = True
    if scope is not None:
        claims["scope"] = scope
    if patient is not None:
        claims["patient"] = patient
    principal_from_claims(claims)
    return jwt.encode(claims, private_key or DEV_PRIVATE_KEY.read_bytes(), algorithm="ES256")


def jwks_of(public_pem: bytes, kid: str) -> str:
    """A one-key JWKS document for ``public_pem`` (for configuring a verifier in tests/docs)."""
    from jwt.algorithms import ECAlgorithm

    key = json.loads(ECAlgorithm.to_jwk(ECAlgorithm(ECAlgorithm.SHA256).prepare_key(public_pem)))
    return json.dumps({"keys": [{**key, "kid": kid, "use": "sig", "alg": "ES256"}]})
