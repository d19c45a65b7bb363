"""Who calls the CDS services: a prescriber with their own token, or a trusted CDS client.

CDS Hooks 2.0 ("Trusting CDS Clients"): the EHR signs a short-lived JWT per call with its own
key and sends it as the bearer token. medloop accepts it when

- the header names ``alg`` ES384 or RS384 and a ``kid`` of that client's configured keys, and
  any ``jku`` is one of the URLs configured for the client (keys are never fetched: the
  allow-list holds them);
- ``iss`` is a configured client, ``aud`` is the URL of the service called
  (``MEDLOOP_CDS_BASE_URL`` + the request path), ``exp``, ``iat`` and ``jti`` are present, the
  token lives at most five minutes (``exp - iat``) and its ``jti`` was not seen before (kept in
  the idempotency table under the client's scope, so every worker process refuses a replay).

Such a token is good for the CDS routes only (its issuer is never the end-user issuer, which
is refused at start-up). The call then acts as a prescriber of the client's organisation: the
practitioner is ``context.userId`` (``Practitioner/…`` or ``PractitionerRole/…``), and the
audit records that reference, the client's organisation and the request id.

The trusted clients are a JSON file (``MEDLOOP_CDS_CLIENTS_FILE``)::

    {"clients": [{"iss": "https://ehr.example.org", "name": "Example EHR",
                  "organisation": "974589095",
                  "jku": ["https://ehr.example.org/.well-known/jwks.json"],
                  "jwks": {"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1", ...}]}}]}
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from medloop.api.auth import Principal, Role, Unauthenticated, algorithms_for
from medloop.api.config import InvalidSetting
from medloop.api.cors import PathCors
from medloop.api.deps import Caller, api_state
from medloop.api.deps import caller as end_user_caller

CDS_ALGORITHMS = ("ES384", "RS384")
"""The algorithms CDS Hooks 2.0 has clients use and services support."""
MAX_LIFETIME_SECONDS = 300
"""CDS Hooks: ``exp`` SHOULD be no more than five minutes after ``iat``."""
LEEWAY_SECONDS = 30
PREFIX = "/cds-services"
_REQUIRED = ("iss", "aud", "exp", "iat", "jti")


@dataclass(frozen=True)
class TrustedClient:
    iss: str
    name: str
    organisation: str
    jku: tuple[str, ...]
    keys: dict[str, tuple[Any, frozenset[str]]]
    """kid → (public key, the algorithms it may verify)."""


@dataclass(frozen=True)
class CdsSettings:
    clients: dict[str, TrustedClient]
    base_url: str | None
    origins: tuple[str, ...]

    @classmethod
    def from_env(cls, end_user_issuer: str | None = None) -> CdsSettings:
        """The trusted clients (their file loaded) of the process's settings
        (``medloop.settings.CdsSettingsSection``)."""
        from medloop.settings import current

        section = current().cds
        base, origins = section.base_url, section.cors_origins
        clients = _clients(section.clients_file) if section.clients_file else {}
        if clients and base is None:
            raise InvalidSetting(
                "MEDLOOP_CDS_BASE_URL (the services' public URL, e.g. https://medloop.example.org)"
                " must be set with MEDLOOP_CDS_CLIENTS_FILE: it is the audience of client tokens"
            )
        if end_user_issuer and end_user_issuer in clients:
            raise InvalidSetting(
                f"MEDLOOP_CDS_CLIENTS_FILE: {end_user_issuer!r} is the end-user token issuer; a "
                "CDS client has an issuer of its own"
            )
        return cls(clients, base, origins)


def _clients(path: Path) -> dict[str, TrustedClient]:
    where = f"MEDLOOP_CDS_CLIENTS_FILE {path}"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidSetting(f"{where}: cannot be read ({error.strerror or error})") from None
    except ValueError:
        raise InvalidSetting(f"{where}: not JSON") from None
    listed = document.get("clients") if isinstance(document, dict) else None
    if not isinstance(listed, list):
        raise InvalidSetting(f'{where}: an object with a "clients" array')
    found: dict[str, TrustedClient] = {}
    for index, entry in enumerate(listed):
        at = f"{where}: client {index}"
        if not isinstance(entry, dict):
            raise InvalidSetting(f"{at} is not an object")
        iss, org = entry.get("iss"), entry.get("organisation")
        if not isinstance(iss, str) or not iss or not isinstance(org, str) or not org:
            raise InvalidSetting(f"{at} needs an iss and an organisation")
        if iss in found:
            raise InvalidSetting(f"{at}: the iss {iss!r} is listed twice")
        jku = entry.get("jku", [])
        if not isinstance(jku, list) or not all(isinstance(u, str) for u in jku):
            raise InvalidSetting(f"{at}: jku is an array of URLs")
        keys = _keys(entry.get("jwks"), at)
        found[iss] = TrustedClient(iss, str(entry.get("name") or iss), org, tuple(jku), keys)
    return found


def _keys(jwks: Any, at: str) -> dict[str, tuple[Any, frozenset[str]]]:
    listed = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(listed, list) or not listed:
        raise InvalidSetting(f'{at}: jwks is a JWKS object with a non-empty "keys" array')
    keys: dict[str, tuple[Any, frozenset[str]]] = {}
    for index, data in enumerate(listed):
        if not isinstance(data, dict) or not isinstance(data.get("kid"), str):
            raise InvalidSetting(f"{at}: key {index} is not a JWK with a kid")
        if data.get("kty") == "oct" or "d" in data:
            raise InvalidSetting(f"{at}: key {index} is a secret or private key")
        try:
            key = jwt.PyJWK(data).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as error:
            raise InvalidSetting(f"{at}: key {index} is not usable ({error})") from None
        algorithms = algorithms_for(key) & set(CDS_ALGORITHMS)
        if not algorithms:
            raise InvalidSetting(f"{at}: key {index} fits neither ES384 nor RS384")
        keys[data["kid"]] = (key, frozenset(algorithms))
    return keys


@dataclass(frozen=True)
class ClientToken:
    client: TrustedClient
    jti: str
    expires: float


class CdsClientVerifier:
    """Checks CDS client JWTs against the allow-list (``CdsSettings``)."""

    def __init__(self, settings: CdsSettings) -> None:
        self.settings = settings

    def is_client_token(self, token: str) -> bool:
        """Whether ``token`` says it comes from a trusted CDS client (unverified)."""
        if not self.settings.clients:
            return False
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        return isinstance(claims, dict) and claims.get("iss") in self.settings.clients

    def verify(self, token: str, path: str | None) -> ClientToken:
        """The client of a valid token for the service at ``path`` (``None``: any CDS
        service; the route checks its own). Does not consume the ``jti``."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        client = self.settings.clients.get(unverified.get("iss"))
        if client is None:
            raise Unauthenticated("iss: not a trusted CDS client")
        algorithm, kid, jku = header.get("alg"), header.get("kid"), header.get("jku")
        if algorithm not in CDS_ALGORITHMS:
            raise Unauthenticated(f"alg: {algorithm!r} is not ES384 or RS384")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("kid: a CDS client token names its key (JWT header kid)")
        if jku is not None and jku not in client.jku:
            raise Unauthenticated("jku: not a key set URL configured for this client")
        found = client.keys.get(kid)
        if found is None:
            raise Unauthenticated("kid: not one of the client's configured keys")
        key, algorithms = found
        if algorithm not in algorithms:
            raise Unauthenticated(f"alg: {algorithm} does not fit the client's key {kid}")
        base = self.settings.base_url or ""
        audience = None if path is None else f"{base}{path}"
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=audience,
                issuer=client.iss,
                leeway=LEEWAY_SECONDS,
                options={"require": list(_REQUIRED), "verify_aud": audience is not None},
            )
        except jwt.MissingRequiredClaimError as error:
            raise Unauthenticated(f"{error.claim}: the claim is required") from None
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("exp: the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("iat/nbf: the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"aud: the token is not for {audience}") from None
        except jwt.InvalidIssuedAtError:
            raise Unauthenticated("iat: not a time in the past") from None
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"the token is not valid: {type(error).__name__}") from None
        except (ValueError, TypeError, OverflowError):
            raise Unauthenticated("the token is not valid") from None
        if path is None:
            aud = claims.get("aud")
            given = aud if isinstance(aud, list) else [aud]
            if not any(isinstance(a, str) and a.startswith(f"{base}{PREFIX}") for a in given):
                raise Unauthenticated(f"aud: the token is not for {base}{PREFIX}")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 200:
            raise Unauthenticated("jti: a string of 1 to 200 characters")
        lifetime = float(claims["exp"]) - float(claims["iat"])
        if lifetime > MAX_LIFETIME_SECONDS:
            raise Unauthenticated(
                f"exp: the token lives {lifetime:g} s; a CDS client token lives at most "
                f"{MAX_LIFETIME_SECONDS} s after iat"
            )
        if float(claims["iat"]) > time.time() + LEEWAY_SECONDS:
            raise Unauthenticated("iat: in the future")
        return ClientToken(client, jti, float(claims["exp"]))


JTI_RETENTION_SECONDS = MAX_LIFETIME_SECONDS + 3 * LEEWAY_SECONDS
"""How long a used ``jti`` is kept: past it, any token that carried it has expired (``iat`` at
most a leeway ahead of its first use, ``exp`` at most five minutes after ``iat``, a leeway on
``exp``)."""


def consume_jti(engine: Any, token: ClientToken) -> None:
    """Record the token's ``jti``; a second use is a replay (401). Shared by every worker
    process: the idempotency table holds it under the client's own scope, and the client's
    ``jti``s older than ``JTI_RETENTION_SECONDS`` are deleted in the same transaction
    (``loop.runner.claim_once``)."""
    from datetime import UTC, datetime, timedelta

    from medloop.loop.runner import Once, claim_once

    scope = "cds-client-jti/" + hashlib.sha256(token.client.iss.encode()).hexdigest()[:32]
    fingerprint = hashlib.sha256(token.jti.encode()).hexdigest()
    expired = datetime.now(UTC) - timedelta(seconds=JTI_RETENTION_SECONDS)
    if not claim_once(engine, Once(scope, token.jti, fingerprint), forget_before=expired):
        raise Unauthenticated("jti: this token was used before (replay)")


class BodyVerifier:
    """The verifier ``BodyGuard`` authenticates bodies with: end-user tokens as ever; a CDS
    client token (signature, issuer, keys, claims) for a CDS route, after which the route
    itself checks the audience against its own URL and consumes the ``jti``."""

    def __init__(self, end_user: Any, clients: CdsClientVerifier) -> None:
        self.end_user = end_user
        self.clients = clients

    def verify(self, token: str) -> Principal | None:
        if self.clients.is_client_token(token):
            self.clients.verify(token, None)
            return None
        return self.end_user.verify(token)


@dataclass(frozen=True)
class CdsCaller:
    """A CDS route's caller: a prescriber (``end_user``) or a trusted client (``client``)."""

    end_user: Caller | None
    client: ClientToken | None
    base: Caller | None = None

    def for_user(self, user_id: str | None, *, required: bool = False) -> Caller:
        """The caller the route acts as: the prescriber, or for a client the practitioner
        ``context.userId`` names (``required``: a hook call must name one) in the client's
        organisation; without one (feedback) the client itself."""
        if self.end_user is not None:
            return self.end_user
        assert self.client is not None and self.base is not None
        client = self.client.client
        if user_id is None and required:
            raise _user_id_problem("")
        if user_id is None:
            subject = f"cds-client:{client.iss}"
        else:
            kind, _, ident = user_id.partition("/")
            if kind not in ("Practitioner", "PractitionerRole") or not ident or len(user_id) > 64:
                raise _user_id_problem(user_id)
            subject = user_id
        principal = Principal(Role.GP, subject[:64], client.organisation, subject, client.name)
        return replace(self.base, principal=principal)


def _user_id_problem(user_id: str) -> Exception:
    from medloop.api.cds import _unusable

    return _unusable(
        "context.userId",
        "a client call names the practitioner as Practitioner/<id> or PractitionerRole/<id> "
        "(at most 64 characters)",
    )


class _CdsBearer(HTTPBearer):
    async def __call__(self, request: Request) -> CdsCaller:  # type: ignore[override]
        verifier: CdsClientVerifier | None = getattr(request.app.state, "cds_clients", None)
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        token = token.strip()
        if (
            verifier is not None
            and scheme.lower() == "bearer"
            and token
            and verifier.is_client_token(token)
        ):
            found = verifier.verify(token, request.url.path)
            state = api_state(request)
            consume_jti(state.engine, found)
            base = Caller(state, _NOBODY, request.state.request_id, state.clock())
            return CdsCaller(None, found, base)
        return CdsCaller(await end_user_caller(request), None)


_NOBODY = Principal(Role.GP, "cds-client", None, "cds-client", None)
cds_caller = _CdsBearer(
    auto_error=False,
    scheme_name="CdsBearer",
    description="A prescriber's JWT, or a CDS Hooks client JWT of a trusted client "
    "(MEDLOOP_CDS_CLIENTS_FILE)",
)
CdsCallerDep = Annotated[CdsCaller, Depends(cds_caller)]


class CdsCors(PathCors):
    """CORS for the configured EHR origins (``MEDLOOP_CDS_CORS_ORIGINS``) on the CDS routes
    only, preflight included (``api.cors.PathCors``); other routes get no CORS."""

    prefixes = (PREFIX,)
    allow_headers = ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID")
    expose_headers = ("X-Request-ID", "Idempotent-Replayed")
