"""Bearer tokens: who calls (``Principal``), how a token is checked, and the development issuer.

A token is a JWT signed with an asymmetric key. ``TokenVerifier`` checks the signature against
the configured public key or JWKS, the issuer, the audience, ``exp`` and ``nbf`` (all required),
then reads the claims:

- ``sub``: the person — an HPR number (health personnel) or a national id (patient);
- ``role``: ``gp``, ``nurse``, ``pharmacist`` or ``patient``;
- ``org``: the organisation (HER-id or organisation number) the person acts for; not for
  patients; ``org_name`` and ``name`` are display names (optional).

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
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import ValidationError

from medloop.api.config import (
    ALGORITHMS,
    DEFAULT_AUDIENCE,
    DEV_ISSUER,
    DEV_PRIVATE_KEY,
    DEV_PUBLIC_KEY,
    ApiSettings,
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
    if role is Role.PATIENT:
        try:
            NationalId(subject)
        except (ValidationError, DomainError):
            raise Unauthenticated("a patient token's subject is a national id") from None
        return Principal(role, subject, None, str(name), None)
    if not isinstance(organisation, str) or not organisation:
        raise Unauthenticated("a health personnel token names its organisation (org)")
    principal = Principal(role, subject, organisation, str(name), claims.get("org_name"))
    try:
        principal.actor  # noqa: B018 - validates the HPR number and names
    except (ValidationError, DomainError):
        raise Unauthenticated("a health personnel token's subject is an HPR number") from None
    return principal


class TokenVerifier:
    """Checks bearer tokens against one issuer's keys (a PEM public key or a JWKS file)."""

    def __init__(self, settings: ApiSettings) -> None:
        if not settings.issuer:
            raise ValueError("MEDLOOP_JWT_ISSUER must be set when a production key is configured")
        self.issuer = settings.issuer
        self.audience = settings.audience
        self.leeway = settings.leeway_seconds
        # Key objects, not PEM text: PyJWT would parse a PEM key again for every signature.
        self._keys: dict[str | None, Any] = {}
        self._verified: dict[str, _Verified] = {}
        self._lock = threading.Lock()
        if settings.jwks_file is not None:
            jwks = jwt.PyJWKSet.from_json(settings.jwks_file.read_text())
            self._keys = {key.key_id: key.key for key in jwks.keys}
        else:
            path = settings.public_key_file or DEV_PUBLIC_KEY
            self._keys = {None: load_pem_public_key(path.read_bytes())}

    def _key_for(self, token: str) -> Any:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthenticated("the token's algorithm is not accepted")
        if None in self._keys:
            return self._keys[None]
        key = self._keys.get(header.get("kid"))
        if key is None:
            raise Unauthenticated("the token's key id (kid) is not one of the issuer's keys")
        return key

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
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=list(ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "nbf", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token is from another issuer") from None
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"the token is not valid: {type(error).__name__}") from None
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
    lifetime: timedelta = timedelta(hours=12),
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
    principal_from_claims(claims)
    return jwt.encode(claims, private_key or DEV_PRIVATE_KEY.read_bytes(), algorithm="ES256")


def jwks_of(public_pem: bytes, kid: str) -> str:
    """A one-key JWKS document for ``public_pem`` (for configuring a verifier in tests/docs)."""
    from jwt.algorithms import ECAlgorithm

    key = json.loads(ECAlgorithm.to_jwk(ECAlgorithm(ECAlgorithm.SHA256).prepare_key(public_pem)))
    return json.dumps({"keys": [{**key, "kid": kid, "use": "sig", "alg": "ES256"}]})
