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

Every subsystem's variables are read here too, into a section of their own (``jobs``, ``ops``,
``replicas``, ``eresept``, ``cds``, ``checkpoints``, ``fest_limits``, ``renal_max_age_days``):
same names, defaults and error messages as the README's "Configuration" lists. The process's
settings are read once (:func:`current`); the CLI and each server worker :func:`install` the
ones they were given. ``fest/`` and ``interactions/`` never read the environment: they get their
values as parameters (``fest.parser.Limits``, ``renal_max_age_days``). The two variables read
elsewhere are ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's own, read where it is set up)
and the run folder the CLI sets for it (tests/test_architecture.py lists them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fest.errors import FestConfigurationError
from fest.parser import Limits

DEFAULT_DATABASE_URL = "sqlite:///medloop.db"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEV_ISSUER = "medloop-dev"
DEFAULT_AUDIENCE = "medloop-api"
DEFAULT_MAX_LIFETIME_SECONDS = 4 * 3600
"""The longest token lifetime (``exp - iat``) accepted by default: half a shift."""
MAX_LIFETIME_RANGE = (60, 24 * 3600)
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_ROUTE_THREADS_POSTGRES = 4
"""Route threads per serving process on PostgreSQL when ``MEDLOOP_ROUTE_THREADS`` is unset: a
worker keeps serving while a request waits on the database (bench/RESULTS.md, issue #20: on a
quiet machine 1.7x the requests/s of routes on the event loop at the same CPU per request).
On SQLite (one process, one writer) the routes stay on the event loop."""
DEFAULT_SESSION_LIFETIME_SECONDS = 8 * 3600
"""A web page session lasts a shift by default."""
SESSION_LIFETIME_RANGE = (60, 24 * 3600)


class InvalidSetting(ValueError):
    """A ``MEDLOOP_*`` setting medloop cannot start with."""


_OFF = ("off", "0", "false", "no")


@dataclass(frozen=True)
class JobsSettings:
    """The scheduled jobs: whether the server runs them (``MEDLOOP_SCHEDULER``: ``on``/``off``)
    and where new catalogue files appear (``MEDLOOP_CATALOGUE_DIR``)."""

    scheduler: bool = True
    catalogue_dir: Path | None = None


@dataclass(frozen=True)
class OpsSettings:
    """Operations: the server's run folder (``MEDLOOP_RUN_DIR``, set by ``medloop serve``), logs
    (``MEDLOOP_LOG_LEVEL``, ``MEDLOOP_LOG_FORMAT`` json/console, ``MEDLOOP_ACCESS_LOG``), the
    metrics token (``MEDLOOP_METRICS_TOKEN``), the state-cache check of the test suite
    (``MEDLOOP_VERIFY_STATE_CACHE=1``) and per-request tracing of the serving processes for
    benchmarks (``MEDLOOP_TRACE``, a directory: ``medloop.api.trace``; off when unset)."""

    run_dir: Path | None = None
    log_level: str = "INFO"
    log_format: str = "json"
    access_log: bool = True
    metrics_token: str | None = None
    verify_state_cache: bool = False
    trace_dir: Path | None = None


@dataclass(frozen=True)
class ReplicaSettings:
    """Read replicas (``MEDLOOP_DATABASE_REPLICA_URLS``, comma-separated) and how often each is
    checked (``MEDLOOP_REPLICA_CHECK_SECONDS``)."""

    urls: tuple[str, ...] = ()
    check_seconds: float = 1.0


DEFAULT_ERESEPT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_ERESEPT_MAX_DEPTH = 64
DEFAULT_ERESEPT_MAX_EMBEDDING = 4


@dataclass(frozen=True)
class EreseptSettings:
    """The e-prescription reader: schemas (``MEDLOOP_ERESEPT_XSD_DIR``), trusted signing
    certificates (``MEDLOOP_ERESEPT_TRUST_STORE``) and its limits (``MEDLOOP_ERESEPT_MAX_BYTES``,
    ``…_MAX_DEPTH``, ``…_MAX_EMBEDDING``)."""

    xsd_dir: Path | None = None
    trust_store: Path | None = None
    max_bytes: int = DEFAULT_ERESEPT_MAX_BYTES
    max_depth: int = DEFAULT_ERESEPT_MAX_DEPTH
    max_embedding: int = DEFAULT_ERESEPT_MAX_EMBEDDING


@dataclass(frozen=True)
class CdsSettingsSection:
    """CDS Hooks clients: the trusted clients' file (``MEDLOOP_CDS_CLIENTS_FILE``), the
    services' public URL (``MEDLOOP_CDS_BASE_URL``) and the EHR origins allowed by CORS
    (``MEDLOOP_CDS_CORS_ORIGINS``); ``medloop.api.cds_auth.CdsSettings`` loads the file."""

    clients_file: Path | None = None
    base_url: str | None = None
    cors_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckpointSettings:
    """Signed audit checkpoints: the folder (``MEDLOOP_AUDIT_CHECKPOINT_DIR``) and the Ed25519
    signing key (``MEDLOOP_AUDIT_SIGNING_KEY_FILE``); ``None`` when not set."""

    directory: Path | None = None
    key_file: Path | None = None


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
    with worker processes); N: in a pool of N threads (``medloop.api.routing``). Unset:
    ``DEFAULT_ROUTE_THREADS_POSTGRES`` on PostgreSQL, 0 on SQLite."""
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
    oidc_client_key: dict[str, Any] | None = None
    """The client's private key for ``private_key_jwt`` (HelseID), a JWK read from the file
    ``MEDLOOP_OIDC_CLIENT_KEY_FILE`` (a JWK in JSON, or a PEM private key; at most 64 KiB)."""
    oidc_client_assertion_audience: str = "issuer"
    """``MEDLOOP_OIDC_CLIENT_ASSERTION_AUDIENCE``: ``issuer`` (HelseID) or ``token_endpoint``."""
    oidc_post_logout_redirect_url: str | None = None
    """``MEDLOOP_OIDC_POST_LOGOUT_REDIRECT_URL``: where the issuer sends the browser after the
    sign-out (registered with the issuer); default the sign-in page's address."""
    demo_sign_in: bool = False
    """The pages' demo sign-in (sign in as a demo person without credentials): set by
    ``medloop demo`` only, never from the environment, so no production server has it."""
    smart_authorize_url: str | None = None
    """``MEDLOOP_SMART_AUTHORIZE_URL``: the authorisation server's authorize endpoint, as
    ``/.well-known/smart-configuration`` advertises it (the issuer's; medloop issues no
    tokens itself)."""
    smart_token_url: str | None = None
    """``MEDLOOP_SMART_TOKEN_URL``: the authorisation server's token endpoint."""
    fhir_cors_origins: tuple[str, ...] = ()
    """``MEDLOOP_FHIR_CORS_ORIGINS``: the origins of SMART on FHIR browser apps that may call
    ``/fhir`` (``api.cors.FhirCors``); none by default."""
    fhir_export_dir: Path | None = None
    """``MEDLOOP_FHIR_EXPORT_DIR``: where FHIR bulk exports write their NDJSON files (default:
    ``medloop-fhir-export`` in the system's temporary directory)."""

    @property
    def export_dir(self) -> Path:
        """Where FHIR bulk exports write (``fhir_export_dir`` or the temporary default)."""
        import tempfile

        return self.fhir_export_dir or Path(tempfile.gettempdir()) / "medloop-fhir-export"

    jobs: JobsSettings = field(default_factory=JobsSettings)
    ops: OpsSettings = field(default_factory=OpsSettings)
    replicas: ReplicaSettings = field(default_factory=ReplicaSettings)
    eresept: EreseptSettings = field(default_factory=EreseptSettings)
    cds: CdsSettingsSection = field(default_factory=CdsSettingsSection)
    checkpoints: CheckpointSettings = field(default_factory=CheckpointSettings)
    fest_limits: Limits = field(default_factory=Limits)
    """The FEST parser's limits (``MEDLOOP_FEST_MAX_*``), handed to ``fest`` as a parameter."""
    renal_max_age_days: int | None = None
    """``MEDLOOP_RENAL_MAX_AGE_DAYS``: how many days old a kidney-function value may be and still
    be trusted by dose checks; ``None``: the rule file's ``renal_max_age_days`` (90)."""

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
        url = _database_url(database_url or env.get("MEDLOOP_DATABASE_URL") or DEFAULT_DATABASE_URL)
        return cls(
            database_url=url,
            public_key_file=Path(key) if key else None,
            jwks_file=Path(jwks) if jwks else None,
            issuer=env.get("MEDLOOP_JWT_ISSUER") or (DEV_ISSUER if dev else ""),
            audience=env.get("MEDLOOP_JWT_AUDIENCE") or (DEFAULT_AUDIENCE if dev else ""),
            max_lifetime_seconds=_max_lifetime(env.get("MEDLOOP_JWT_MAX_LIFETIME_SECONDS")),
            route_threads=_route_threads(env.get("MEDLOOP_ROUTE_THREADS"), url),
            max_body_bytes=_max_body_bytes(env.get("MEDLOOP_MAX_BODY_BYTES")),
            session_lifetime_seconds=_session_lifetime(env.get("MEDLOOP_SESSION_LIFETIME_SECONDS")),
            **_oidc(env),
            allow_dev_keys=env.get("MEDLOOP_ALLOW_DEV_KEYS") == "1",
            fest_xsd_dir=Path(xsd) if xsd else _shared_xsd_dir(),
            demo_catalogue=Path(
                env.get("MEDLOOP_DEMO_CATALOGUE") or REPO_ROOT / "seeds" / "demo-fest.xml"
            ),
            smart_authorize_url=env.get("MEDLOOP_SMART_AUTHORIZE_URL") or None,
            smart_token_url=env.get("MEDLOOP_SMART_TOKEN_URL") or None,
            fhir_cors_origins=_origins(
                env.get("MEDLOOP_FHIR_CORS_ORIGINS"), "MEDLOOP_FHIR_CORS_ORIGINS"
            ),
            fhir_export_dir=Path(env["MEDLOOP_FHIR_EXPORT_DIR"])
            if env.get("MEDLOOP_FHIR_EXPORT_DIR")
            else None,
            jobs=JobsSettings(
                scheduler=env.get("MEDLOOP_SCHEDULER", "on").strip().lower() not in _OFF,
                catalogue_dir=_path(env.get("MEDLOOP_CATALOGUE_DIR")),
            ),
            ops=OpsSettings(
                run_dir=_path(env.get("MEDLOOP_RUN_DIR")),
                log_level=(env.get("MEDLOOP_LOG_LEVEL") or "INFO").upper(),
                log_format=env.get("MEDLOOP_LOG_FORMAT") or "json",
                access_log=env.get("MEDLOOP_ACCESS_LOG", "on").strip().lower() not in _OFF,
                metrics_token=env.get("MEDLOOP_METRICS_TOKEN") or None,
                verify_state_cache=env.get("MEDLOOP_VERIFY_STATE_CACHE") == "1",
                trace_dir=_trace_dir(env.get("MEDLOOP_TRACE")),
            ),
            replicas=ReplicaSettings(
                urls=tuple(
                    url.strip()
                    for url in env.get("MEDLOOP_DATABASE_REPLICA_URLS", "").split(",")
                    if url.strip()
                ),
                check_seconds=_seconds(
                    "MEDLOOP_REPLICA_CHECK_SECONDS", env.get("MEDLOOP_REPLICA_CHECK_SECONDS")
                ),
            ),
            eresept=EreseptSettings(
                xsd_dir=_path(env.get("MEDLOOP_ERESEPT_XSD_DIR")) or _eresept_xsd_dir(),
                trust_store=_path(env.get("MEDLOOP_ERESEPT_TRUST_STORE")),
                max_bytes=_positive(
                    "MEDLOOP_ERESEPT_MAX_BYTES",
                    env.get("MEDLOOP_ERESEPT_MAX_BYTES"),
                    DEFAULT_ERESEPT_MAX_BYTES,
                ),
                max_depth=_positive(
                    "MEDLOOP_ERESEPT_MAX_DEPTH",
                    env.get("MEDLOOP_ERESEPT_MAX_DEPTH"),
                    DEFAULT_ERESEPT_MAX_DEPTH,
                ),
                max_embedding=_positive(
                    "MEDLOOP_ERESEPT_MAX_EMBEDDING",
                    env.get("MEDLOOP_ERESEPT_MAX_EMBEDDING"),
                    DEFAULT_ERESEPT_MAX_EMBEDDING,
                ),
            ),
            cds=_cds(env),
            checkpoints=CheckpointSettings(
                directory=_path(env.get("MEDLOOP_AUDIT_CHECKPOINT_DIR")),
                key_file=_path(env.get("MEDLOOP_AUDIT_SIGNING_KEY_FILE")),
            ),
            fest_limits=_fest_limits(env),
            renal_max_age_days=_renal_max_age_days(env.get("MEDLOOP_RENAL_MAX_AGE_DAYS")),
        )


_current: Settings | None = None


def current() -> Settings:
    """The process's settings: those the CLI or the server worker installed, else read from the
    environment once (``InvalidSetting`` for an unusable value)."""
    global _current
    if _current is None:
        _current = Settings.from_env()
    return _current


def install(settings: Settings) -> None:
    """Make ``settings`` the process's (the CLI, once per command; each server worker)."""
    global _current
    _current = settings


def forget() -> None:
    """Read the environment again on the next :func:`current` (tests that change it)."""
    global _current
    _current = None


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _trace_dir(value: str | None) -> Path | None:
    """``MEDLOOP_TRACE``: a directory (made when the first serving process starts), never a
    file; unset or empty is off."""
    path = _path(value)
    if path is not None and path.exists() and not path.is_dir():
        raise InvalidSetting(
            f"MEDLOOP_TRACE must name a directory to write traces into, not the file {value!r}"
        )
    return path


def _eresept_xsd_dir() -> Path | None:
    """``../shared/reference/xsd`` beside the repository (holding ``eresept/`` and
    ``felleskomponenter/``), when it is there."""
    candidate = REPO_ROOT.parent / "shared" / "reference" / "xsd"
    return candidate if candidate.is_dir() else None


def _positive(name: str, raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidSetting(f"{name} must be a whole number, not {raw!r}") from None
    if value <= 0:
        raise InvalidSetting(f"{name} must be positive, not {value}")
    return value


def _seconds(name: str, value: str | None) -> float:
    if value is None or not value.strip():
        return 1.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise InvalidSetting(f"{name} must be a number of seconds, not {value!r}")
    return seconds


def _cds(env: Mapping[str, str]) -> CdsSettingsSection:
    file = env.get("MEDLOOP_CDS_CLIENTS_FILE")
    return CdsSettingsSection(
        clients_file=Path(file) if file else None,
        base_url=(env.get("MEDLOOP_CDS_BASE_URL") or "").strip().rstrip("/") or None,
        cors_origins=_origins(env.get("MEDLOOP_CDS_CORS_ORIGINS"), "MEDLOOP_CDS_CORS_ORIGINS"),
    )


def _origins(value: str | None, name: str) -> tuple[str, ...]:
    """The comma-separated origins in ``value``, the variable ``name``'s (a trailing ``/``
    dropped): each ``http(s)://host[:port]`` as a browser sends it in ``Origin``, never ``*``
    (any page of any site) and never an address with a path, query or user (no browser sends
    one: a setting that could match nothing)."""
    origins = tuple(o.strip().rstrip("/") for o in (value or "").split(",") if o.strip())
    for origin in origins:
        if origin == "*":
            raise InvalidSetting(f"{name} names origins, not '*'")
        if not _is_origin(origin):
            raise InvalidSetting(
                f"{name}: {origin!r} is not an origin (scheme://host[:port], lower case)"
            )
    return origins


def _is_origin(text: str) -> bool:
    """Whether ``text`` is a serialised web origin: ``http`` or ``https``, a host, at most a
    port, nothing else, in lower case (as a browser's ``Origin`` header has it)."""
    try:
        parts = urlsplit(text)
        if parts.port is not None and not 0 < parts.port:
            return False
    except ValueError:  # a port that is no number, or out of range
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not (parts.path or parts.query or parts.fragment or "@" in parts.netloc)
        and text == text.lower()
    )


def _fest_limits(env: Mapping[str, str]) -> Limits:
    try:
        return Limits.from_env(env)
    except FestConfigurationError as error:
        raise InvalidSetting(str(error)) from None


def _renal_max_age_days(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        days = int(value)
    except ValueError:
        days = 0
    if days <= 0:
        raise InvalidSetting("MEDLOOP_RENAL_MAX_AGE_DAYS must be a positive number of days")
    return days


def _shared_xsd_dir() -> Path | None:
    """The official schemas in the team's shared reference folder, when it is beside us."""
    candidate = REPO_ROOT.parent / "shared" / "reference" / "xsd" / "eresept"
    return candidate if candidate.is_dir() else None


_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")
"""The database URLs medloop runs on: SQLite, and PostgreSQL through psycopg 3."""


def _database_url(url: str) -> str:
    """``url`` when medloop can run on it; ``InvalidSetting`` (naming the database, never its
    password) when it is no URL, or one of another database or driver."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidSetting(
            "MEDLOOP_DATABASE_URL (or --db) must be a database URL such as "
            "sqlite:///medloop.db or postgresql://user@host/medloop"
        ) from None
    if parsed.drivername not in _DRIVERS:
        raise InvalidSetting(
            "MEDLOOP_DATABASE_URL (or --db) must name SQLite (sqlite:///…) or PostgreSQL "
            f"(postgresql:// or postgresql+psycopg://…), not "
            f"{parsed.render_as_string(hide_password=True)!r}"
        )
    return url


def _route_threads(value: str | None, database_url: str) -> int:
    if value is None or not value.strip():
        return DEFAULT_ROUTE_THREADS_POSTGRES if database_url.startswith("postgres") else 0
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
        "oidc_client_key": _client_key(env.get("MEDLOOP_OIDC_CLIENT_KEY_FILE")),
        "oidc_client_assertion_audience": _choice(
            "MEDLOOP_OIDC_CLIENT_ASSERTION_AUDIENCE",
            env.get("MEDLOOP_OIDC_CLIENT_ASSERTION_AUDIENCE"),
            ("issuer", "token_endpoint"),
        ),
        "oidc_post_logout_redirect_url": _http_url(
            "MEDLOOP_OIDC_POST_LOGOUT_REDIRECT_URL",
            env.get("MEDLOOP_OIDC_POST_LOGOUT_REDIRECT_URL"),
        ),
    }


CLIENT_KEY_MAX_BYTES = 64 * 1024


def _client_key(path: str | None) -> dict[str, Any] | None:
    """The private JWK of ``MEDLOOP_OIDC_CLIENT_KEY_FILE`` (JSON JWK or PEM), read by joserfc:
    refused at start-up when missing, too large, not a private RSA/EC key."""
    if not path or not path.strip():
        return None
    from joserfc.errors import JoseError
    from joserfc.jwk import ECKey, RSAKey, import_key

    name = "MEDLOOP_OIDC_CLIENT_KEY_FILE"
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise InvalidSetting(f"{name}: cannot read {path!r}: {error.strerror}") from None
    if len(data) > CLIENT_KEY_MAX_BYTES:
        raise InvalidSetting(f"{name}: {path!r} is larger than {CLIENT_KEY_MAX_BYTES} bytes")
    parsed: Any = None
    key: Any = None
    try:
        text = data.decode("utf-8").strip()
        if text.startswith("{"):
            parsed = json.loads(text)
            key = import_key(parsed)  # its ``kty`` names the type
        else:
            for kind in (RSAKey, ECKey):
                try:
                    key = kind.import_key(text)
                    break
                except (ValueError, JoseError, TypeError):
                    continue
    except (ValueError, JoseError, TypeError) as error:
        raise InvalidSetting(f"{name}: {path!r} is not a JWK or PEM key: {error}") from None
    if key is None:
        raise InvalidSetting(f"{name}: {path!r} is not a JWK or PEM key")
    if not isinstance(key, RSAKey | ECKey) or not key.is_private:
        raise InvalidSetting(f"{name}: {path!r} must hold a private RSA or EC key")
    found = key.as_dict(private=True)
    if isinstance(parsed, dict):
        found.update({k: parsed[k] for k in ("kid", "alg") if k in parsed})
    return found


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str:
    if value is None or not value.strip():
        return allowed[0]
    if value.strip() not in allowed:
        raise InvalidSetting(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value.strip()


def _http_url(name: str, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if not value.strip().startswith(("https://", "http://")) or len(value) > 2000:
        raise InvalidSetting(f"{name} must be an http(s) URL (at most 2000 characters)")
    return value.strip()


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
    """``MEDLOOP_RENAL_MAX_AGE_DAYS`` as the process's settings read it."""
    return current().renal_max_age_days


def none_of_these_set(names: tuple[str, ...]) -> Callable[[], bool] | None:
    """A check, true while none of the environment variables ``names`` is set in this process,
    read live at every call: not a setting, but another library's variables that it reads
    whenever asked (OpenTelemetry's provider variables: ``api.app.MedloopApp`` must answer as
    OpenTelemetry's getters would at that moment). Each name is looked up in ``os.environ``'s
    own dict under the key ``os.environ`` encodes it to: the look-up ``name in os.environ``
    makes, without the mapping's Python layers (it runs on every request, issue #20).
    ``None`` when ``os.environ`` is not built that way (the caller then asks its library)."""
    environ = getattr(os.environ, "_data", None)
    encode = getattr(os.environ, "encodekey", None)
    if not isinstance(environ, dict) or encode is None:
        return None
    keys = tuple(encode(name) for name in names)

    def none_set() -> bool:
        for key in keys:
            if key in environ:
                return False
        return True

    return none_set
