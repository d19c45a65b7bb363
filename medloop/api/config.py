"""The API's configuration, read from the environment (``MEDLOOP_*``).

Production keys are configuration only: ``MEDLOOP_JWT_PUBLIC_KEY_FILE`` (a PEM public key) or
``MEDLOOP_JWT_JWKS_FILE`` (a JSON Web Key Set), with ``MEDLOOP_JWT_ISSUER`` and
``MEDLOOP_JWT_AUDIENCE`` (both required with a production key). Without either key setting
the bundled development key pair (``medloop/dev_keys``, not secret) is trusted with the issuer
``medloop-dev`` and the audience ``medloop-api``. ``MEDLOOP_JWT_MAX_LIFETIME_SECONDS`` bounds a
token's lifetime (``exp - iat``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medloop.settings import DEFAULT_DATABASE_URL

DEV_KEYS = Path(__file__).resolve().parents[1] / "dev_keys"
DEV_PRIVATE_KEY = DEV_KEYS / "dev-private.pem"
DEV_PUBLIC_KEY = DEV_KEYS / "dev-public.pem"
DEV_ISSUER = "medloop-dev"
DEFAULT_AUDIENCE = "medloop-api"
ALGORITHMS = (
    "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
)
"""Asymmetric algorithms only: a shared-secret (HS*) or ``none`` token is never accepted; each
key accepts only those of its own type (``medloop.api.auth.algorithms_for``)."""
DEFAULT_MAX_LIFETIME_SECONDS = 4 * 3600
"""The longest token lifetime (``exp - iat``) accepted by default: half a shift."""
MAX_LIFETIME_RANGE = (60, 24 * 3600)


@dataclass(frozen=True)
class ApiSettings:
    database_url: str
    public_key_file: Path | None
    jwks_file: Path | None
    issuer: str
    audience: str
    leeway_seconds: int = 30
    max_lifetime_seconds: int = DEFAULT_MAX_LIFETIME_SECONDS
    route_threads: int = 0
    """0: routes run on the event loop's thread, one request at a time per process (scale
    with worker processes); N: in a pool of N threads (``medloop.api.routing``)."""
    max_body_bytes: int = 1024 * 1024
    """The largest request body taken (``MEDLOOP_MAX_BODY_BYTES``; larger: 413)."""

    @property
    def uses_dev_keys(self) -> bool:
        return self.public_key_file is None and self.jwks_file is None

    @classmethod
    def from_env(cls, database_url: str | None = None) -> ApiSettings:
        key = os.environ.get("MEDLOOP_JWT_PUBLIC_KEY_FILE")
        jwks = os.environ.get("MEDLOOP_JWT_JWKS_FILE")
        dev = not key and not jwks
        return cls(
            database_url=database_url
            or os.environ.get("MEDLOOP_DATABASE_URL", DEFAULT_DATABASE_URL),
            public_key_file=Path(key) if key else None,
            jwks_file=Path(jwks) if jwks else None,
            issuer=os.environ.get("MEDLOOP_JWT_ISSUER") or (DEV_ISSUER if dev else ""),
            audience=os.environ.get("MEDLOOP_JWT_AUDIENCE") or (DEFAULT_AUDIENCE if dev else ""),
            max_lifetime_seconds=_max_lifetime(
                os.environ.get("MEDLOOP_JWT_MAX_LIFETIME_SECONDS")
            ),
            route_threads=_route_threads(os.environ.get("MEDLOOP_ROUTE_THREADS")),
            max_body_bytes=_max_body_bytes(os.environ.get("MEDLOOP_MAX_BODY_BYTES")),
        )


class InvalidSetting(ValueError):
    """A ``MEDLOOP_*`` setting the API cannot start with."""


def _route_threads(value: str | None) -> int:
    if value is None or not value.strip():
        return 0
    try:
        threads = int(value)
    except ValueError:
        threads = -1
    if not 0 <= threads <= 256:
        raise InvalidSetting(
            f"MEDLOOP_ROUTE_THREADS must be a whole number from 0 (routes on the event loop) "
            f"to 256, not {value!r}"
        )
    return threads


def _max_lifetime(value: str | None) -> int:
    if value is None or not value.strip():
        return DEFAULT_MAX_LIFETIME_SECONDS
    low, high = MAX_LIFETIME_RANGE
    try:
        seconds = int(value)
    except ValueError:
        seconds = -1
    if not low <= seconds <= high:
        raise InvalidSetting(
            f"MEDLOOP_JWT_MAX_LIFETIME_SECONDS must be a whole number of seconds from {low} to "
            f"{high}, not {value!r}"
        )
    return seconds


def _max_body_bytes(value: str | None) -> int:
    if value is None or not value.strip():
        return 1024 * 1024
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1024 <= limit <= 1024**3:
        raise InvalidSetting(
            f"MEDLOOP_MAX_BODY_BYTES must be a whole number of bytes from 1024 to 1073741824, "
            f"not {value!r}"
        )
    return limit
