"""The application's settings: one frozen object, read from the environment (``MEDLOOP_*``) in
one place, :meth:`Settings.from_env`, and passed explicitly from there.

The command line reads them once per command (``--db`` overrides ``MEDLOOP_DATABASE_URL``) and
hands them on: to the API (:func:`medloop.api.app.create_app`, the token verifier), the scheduler
and, with ``medloop serve --workers N``, to every worker process inside uvicorn's own
configuration (:class:`medloop.api.server.SettingsConfig`), never through ``os.environ``.

Token keys: ``MEDLOOP_JWT_PUBLIC_KEY_FILE`` (a PEM public key) or ``MEDLOOP_JWT_JWKS_FILE`` (a
JSON Web Key Set), with ``MEDLOOP_JWT_ISSUER`` and ``MEDLOOP_JWT_AUDIENCE`` (both required with a
production key). Without either key setting the bundled development key pair
(``medloop/dev_keys``, not secret) is trusted with the issuer ``medloop-dev`` and the audience
``medloop-api``; ``medloop serve`` refuses that unless ``MEDLOOP_ALLOW_DEV_KEYS=1``.
``MEDLOOP_JWT_MAX_LIFETIME_SECONDS`` bounds a token's lifetime (``exp - iat``).

Settings of one subsystem that only that subsystem reads stay beside it (the FEST parser's
limits, the e-prescription reader, logging, metrics, replicas, the scheduler, audit checkpoints:
README, "Configuration").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///medloop.db"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEV_ISSUER = "medloop-dev"
DEFAULT_AUDIENCE = "medloop-api"
DEFAULT_MAX_LIFETIME_SECONDS = 4 * 3600
"""The longest token lifetime (``exp - iat``) accepted by default: half a shift."""
MAX_LIFETIME_RANGE = (60, 24 * 3600)
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_SESSION_LIFETIME_SECONDS = 8 * 3600
"""A web page session lasts a shift by default."""
SESSION_LIFETIME_RANGE = (60, 24 * 3600)


class InvalidSetting(ValueError):
    """A ``MEDLOOP_*`` setting medloop cannot start with."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    public_key_file: Path | None = None
    jwks_file: Path | None = None
    issuer: str = DEV_ISSUER
    audience: str = DEFAULT_AUDIENCE
    leeway_seconds: int = 30
    max_lifetime_seconds: int = DEFAULT_MAX_LIFETIME_SECONDS
    route_threads: int = 0
    """0: routes run on the event loop's thread, one request at a time per process (scale
    with worker processes); N: in a pool of N threads (``medloop.api.routing``)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """The largest request body taken (``MEDLOOP_MAX_BODY_BYTES``; larger: 413)."""
    allow_dev_keys: bool = False
    """``MEDLOOP_ALLOW_DEV_KEYS=1``: ``medloop serve`` may trust the bundled development keys."""
    fest_xsd_dir: Path | None = None
    demo_catalogue: Path = REPO_ROOT / "seeds" / "demo-fest.xml"
    session_lifetime_seconds: int = DEFAULT_SESSION_LIFETIME_SECONDS
    """How long a web page session lasts after sign-in (``MEDLOOP_SESSION_LIFETIME_SECONDS``)."""
    oidc_issuer: str | None = None
    """OpenID Connect sign-in for the pages (``MEDLOOP_OIDC_ISSUER``; ``medloop.pages.oidc``)."""
    oidc_client_id: str = ""
    oidc_client_secret: str | None = None
    oidc_redirect_url: str | None = None
    oidc_scopes: str = "openid profile"
    oidc_claims: dict[str, str] | None = None
    """Claim names that differ from the defaults (``MEDLOOP_OIDC_*_CLAIM``)."""
    demo_sign_in: bool = False
    """The pages' demo sign-in (sign in as a demo person without credentials): set by
    ``medloop demo`` only, never from the environment, so no production server has it."""

    @property
    def uses_dev_keys(self) -> bool:
        return self.public_key_file is None and self.jwks_file is None

    @classmethod
    def from_env(
        cls, database_url: str | None = None, *, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """The settings in ``environ`` (default: this process's environment); ``database_url``
        (``--db``) wins over ``MEDLOOP_DATABASE_URL``. An unusable value: ``InvalidSetting``
        naming the variable."""
        env = os.environ if environ is None else environ
        key = env.get("MEDLOOP_JWT_PUBLIC_KEY_FILE")
        jwks = env.get("MEDLOOP_JWT_JWKS_FILE")
        dev = not key and not jwks
        xsd = env.get("MEDLOOP_FEST_XSD_DIR")
        return cls(
            database_url=database_url or env.get("MEDLOOP_DATABASE_URL") or DEFAULT_DATABASE_URL,
            public_key_file=Path(key) if key else None,
            jwks_file=Path(jwks) if jwks else None,
            issuer=env.get("MEDLOOP_JWT_ISSUER") or (DEV_ISSUER if dev else ""),
            audience=env.get("MEDLOOP_JWT_AUDIENCE") or (DEFAULT_AUDIENCE if dev else ""),
            max_lifetime_seconds=_max_lifetime(env.get("MEDLOOP_JWT_MAX_LIFETIME_SECONDS")),
            route_threads=_route_threads(env.get("MEDLOOP_ROUTE_THREADS")),
            max_body_bytes=_max_body_bytes(env.get("MEDLOOP_MAX_BODY_BYTES")),
            session_lifetime_seconds=_session_lifetime(env.get("MEDLOOP_SESSION_LIFETIME_SECONDS")),
            **_oidc(env),
            allow_dev_keys=env.get("MEDLOOP_ALLOW_DEV_KEYS") == "1",
            fest_xsd_dir=Path(xsd) if xsd else _shared_xsd_dir(),
            demo_catalogue=Path(
                env.get("MEDLOOP_DEMO_CATALOGUE") or REPO_ROOT / "seeds" / "demo-fest.xml"
            ),
        )


def _shared_xsd_dir() -> Path | None:
    """The official schemas in the team's shared reference folder, when it is beside us."""
    candidate = REPO_ROOT.parent / "shared" / "reference" / "xsd" / "eresept"
    return candidate if candidate.is_dir() else None


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


OIDC_CLAIMS = {
    "hpr_claim": "MEDLOOP_OIDC_HPR_CLAIM",
    "pid_claim": "MEDLOOP_OIDC_PID_CLAIM",
    "org_claim": "MEDLOOP_OIDC_ORG_CLAIM",
    "org_name_claim": "MEDLOOP_OIDC_ORG_NAME_CLAIM",
    "role_claim": "MEDLOOP_OIDC_ROLE_CLAIM",
    "ward_admin_claim": "MEDLOOP_OIDC_WARD_ADMIN_CLAIM",
}


def _oidc(env: Mapping[str, str]) -> dict[str, object]:
    issuer = (env.get("MEDLOOP_OIDC_ISSUER") or "").strip()
    if not issuer:
        return {}
    if not issuer.startswith(("https://", "http://")):
        raise InvalidSetting(f"MEDLOOP_OIDC_ISSUER must be an http(s) URL, not {issuer!r}")
    client_id = (env.get("MEDLOOP_OIDC_CLIENT_ID") or "").strip()
    if not client_id:
        raise InvalidSetting("MEDLOOP_OIDC_CLIENT_ID must be set with MEDLOOP_OIDC_ISSUER")
    return {
        "oidc_issuer": issuer,
        "oidc_client_id": client_id,
        "oidc_client_secret": env.get("MEDLOOP_OIDC_CLIENT_SECRET") or None,
        "oidc_redirect_url": env.get("MEDLOOP_OIDC_REDIRECT_URL") or None,
        "oidc_scopes": env.get("MEDLOOP_OIDC_SCOPES") or "openid profile",
        "oidc_claims": {name: env[var] for name, var in OIDC_CLAIMS.items() if env.get(var)},
    }


def _session_lifetime(value: str | None) -> int:
    if value is None or not value.strip():
        return DEFAULT_SESSION_LIFETIME_SECONDS
    low, high = SESSION_LIFETIME_RANGE
    try:
        seconds = int(value)
    except ValueError:
        seconds = -1
    if not low <= seconds <= high:
        raise InvalidSetting(
            f"MEDLOOP_SESSION_LIFETIME_SECONDS must be a whole number of seconds from {low} to "
            f"{high}, not {value!r}"
        )
    return seconds


def _max_body_bytes(value: str | None) -> int:
    if value is None or not value.strip():
        return DEFAULT_MAX_BODY_BYTES
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


def renal_max_age_days() -> int | None:
    """``MEDLOOP_RENAL_MAX_AGE_DAYS``: how many days old a kidney-function value may be and still
    be trusted by dose checks; unset, the rule file's ``renal_max_age_days`` (90) applies."""
    value = os.environ.get("MEDLOOP_RENAL_MAX_AGE_DAYS", "").strip()
    if not value:
        return None
    days = int(value)
    if days <= 0:
        raise ValueError("MEDLOOP_RENAL_MAX_AGE_DAYS must be a positive number of days")
    return days
