"""Production sign-in: OpenID Connect, authorisation code flow with PKCE (S256), against the
issuer configured in ``MEDLOOP_OIDC_ISSUER`` (HelseID, ID-porten or a municipality's IdP).

1. ``POST /app/sign-in/oidc`` (the sign-in page's button, CSRF-checked): a fresh ``state``,
   ``nonce`` and PKCE ``code_verifier`` are kept server-side under that ``state`` (a pending
   row of the session table, for 10 minutes), bound to the browser: an HttpOnly
   ``SameSite=Lax`` cookie on ``/app/sign-in/oidc`` (the IdP's redirect back is a cross-site
   navigation, on which a Strict cookie would not be sent) holds a random key, and the pending
   row keeps only its SHA-256 digest. There is no session yet to bind it to; the key is drawn
   once and reused while the cookie lives, so sign-ins started in several tabs are each
   pending on their own and each completes, in whatever order. The browser goes to the
   issuer's authorisation endpoint (the URL built by Authlib's
   ``OAuth2Client.create_authorization_url``, with ``code_challenge``).
2. ``GET /app/sign-in/oidc/callback``: the pending row of the answer's ``state`` is taken
   (once: it is deleted whatever happens next); one pending for another browser (its cookie
   missing or another) is refused, and ``verify_callback`` checks the answer — an error
   response is refused, the ``state`` must be the pending one, the code is exchanged at the
   token endpoint with the ``code_verifier``, the ID token's signature (the issuer's JWKS),
   ``iss``, ``aud``, ``exp`` and ``nonce`` are checked (PyJWT), and ``auth_time`` against
   ``max_age`` when one was asked for (the witness's step-up, ``medloop.pages.witness``, uses
   the same function). The claims are mapped to medloop's (below). A new page session starts;
   the answer is a small page that continues to ``/app/`` (a same-site navigation, so the
   Strict session cookie goes with it). The pending cookie stays until it expires (sign-ins of
   other tabs may still be pending under it).

Claim names (settings, defaults as HelseID names them where it has one):

- person: ``MEDLOOP_OIDC_HPR_CLAIM`` (``helseid://claims/hpr/hpr_number``) for health personnel,
  ``MEDLOOP_OIDC_PID_CLAIM`` (``helseid://claims/identity/pid``) for a patient;
- organisation: ``MEDLOOP_OIDC_ORG_CLAIM`` (``helseid://claims/client/claims/orgnr_child``);
- role: ``MEDLOOP_OIDC_ROLE_CLAIM`` (``medloop_role``): ``gp``, ``nurse``, ``pharmacist`` or
  ``patient``, as the IdP's role mapping for medloop sets it;
- ward admin: ``MEDLOOP_OIDC_WARD_ADMIN_CLAIM`` (``medloop_ward_admin``), ``true`` or absent;
- display names: ``name`` and ``MEDLOOP_OIDC_ORG_NAME_CLAIM`` (``org_name``).

Anything missing or wrong refuses the sign-in with a page saying why; no session is made.
"""

from __future__ import annotations

import base64
import json
import re
import secrets as secrets_module
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from authlib.common.security import generate_token
from authlib.oauth2.client import OAuth2Client
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from joserfc.jwk import import_key
from sqlalchemy import Engine

from medloop.api.auth import Unauthenticated, principal_from_claims
from medloop.ops import logs
from medloop.pages.i18n import N_
from medloop.pages.web import (
    AnonymousFormDep,
    api_state,
    local_path,
    pages_config,
    render,
    start_session,
    url,
)
from medloop.store import sessions

# A plain router, not BlockingRoute: the callback takes whatever parameters the issuer adds
# (``iss``, ``session_state``, ``scope`` …), which BlockingRoute would refuse as unknown.
router = APIRouter(include_in_schema=False)
_log = logs.get_logger("medloop.pages")

PENDING_COOKIE = "medloop_oidc"
"""The browser the sign-ins were started in (a random key, not a session id)."""
_BROWSER_KEY = re.compile(r"[A-Za-z0-9_-]{43}")
ID_TOKEN_CLAIM = "oidc_id_token"
"""Where a session keeps the ID token it was signed in with (the sign-out's ``id_token_hint``)."""
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PENDING_LIFETIME = timedelta(minutes=10)
AUTH_TIME_LEEWAY = 30
"""Seconds the issuer's ``auth_time`` may lie before the request (clock skew)."""
_TIMEOUT = 10


@dataclass(frozen=True)
class OidcConfig:
    """The configured issuer and how its claims map to medloop's."""

    issuer: str
    client_id: str
    client_secret: str | None = None
    redirect_url: str | None = None
    scopes: str = "openid profile"
    hpr_claim: str = "helseid://claims/hpr/hpr_number"
    pid_claim: str = "helseid://claims/identity/pid"
    org_claim: str = "helseid://claims/client/claims/orgnr_child"
    org_name_claim: str = "org_name"
    role_claim: str = "medloop_role"
    ward_admin_claim: str = "medloop_ward_admin"
    client_key: dict[str, Any] | None = None
    """The client's private key (a JWK) for ``private_key_jwt``; with it no secret is sent."""
    assertion_audience: str = "issuer"
    post_logout_redirect_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> OidcConfig | None:
        if not getattr(settings, "oidc_issuer", None):
            return None
        return cls(
            issuer=settings.oidc_issuer.rstrip("/"),
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            redirect_url=settings.oidc_redirect_url,
            scopes=settings.oidc_scopes,
            client_key=settings.oidc_client_key,
            assertion_audience=settings.oidc_client_assertion_audience,
            post_logout_redirect_url=settings.oidc_post_logout_redirect_url,
            **{
                name: value
                for name, value in (settings.oidc_claims or {}).items()
                if name in cls.__dataclass_fields__
            },
        )


class OidcRefused(Exception):
    """The sign-in could not be completed; ``message`` is said on the page. ``reason`` names
    which check of the issuer's answer failed (``verify_callback``: ``error``, ``state``,
    ``auth_time``; empty for the others), for a caller that words it its own way."""

    def __init__(self, message: str, detail: str = "", reason: str = "") -> None:
        super().__init__(detail or message)
        self.message = message
        self.reason = reason


_discovered: dict[str, tuple[float, dict[str, Any]]] = {}
_jwks: dict[str, jwt.PyJWKClient] = {}
_lock = threading.Lock()


def _get_json(address: str) -> dict[str, Any]:
    with urllib.request.urlopen(address, timeout=_TIMEOUT) as answer:  # noqa: S310 - configured
        return json.loads(answer.read())


def discovery(config: OidcConfig) -> dict[str, Any]:
    """The issuer's metadata (``/.well-known/openid-configuration``), kept for an hour."""
    with _lock:
        found = _discovered.get(config.issuer)
    if found is not None and found[0] > time.monotonic():
        return found[1]
    try:
        metadata = _get_json(config.issuer + "/.well-known/openid-configuration")
    except (OSError, ValueError) as error:
        raise OidcRefused(
            N_("The sign-in service cannot be reached. Try again in a moment."), str(error)
        ) from None
    with _lock:
        _discovered[config.issuer] = (time.monotonic() + 3600, metadata)
    return metadata


def _redirect_url(request: Request, config: OidcConfig) -> str:
    return config.redirect_url or str(request.url_for("oidc_callback"))


def _config(request: Request) -> OidcConfig:
    config = pages_config(request).oidc
    if config is None:
        raise OidcRefused(N_("Sign-in with an identity provider is not configured here."))
    return config


def authorization_request(
    config: OidcConfig, redirect_url: str, **extra: str
) -> tuple[str, dict[str, str]]:
    """The authorisation request's address (the issuer's endpoint, ``code`` with PKCE S256, a
    fresh ``state`` and ``nonce``; ``extra`` parameters such as ``prompt`` and ``max_age``)
    and what the callback needs kept server-side (state, nonce, verifier)."""
    metadata = discovery(config)
    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
    client = OAuth2Client(
        None,
        client_id=config.client_id,
        redirect_uri=redirect_url,
        scope=config.scopes,
        code_challenge_method="S256",
    )
    address, _ = client.create_authorization_url(
        metadata["authorization_endpoint"],
        state=state,
        code_verifier=verifier,
        nonce=nonce,
        **extra,
    )
    return address, {"state": state, "nonce": nonce, "verifier": verifier}


@router.post("/app/sign-in/oidc")
def oidc_start(request: Request, form: AnonymousFormDep) -> Response:
    try:
        config = _config(request)
        address, secrets = authorization_request(config, _redirect_url(request, config))
    except OidcRefused as refused:
        return _refused(request, refused)
    at = api_state(request).clock()
    browser = _browser_key(request.cookies.get(PENDING_COOKIE))
    pending = {
        "oidc_pending": {
            **secrets,
            "browser": sessions.digest(browser),
            "next": local_path(str(form.get("next") or ""), ""),
        }
    }
    sessions.keep(
        api_state(request).engine,
        _pending_key(secrets["state"]),
        pending,
        now=at,
        expires_at=at + PENDING_LIFETIME,
    )
    return pending_redirect(request, address, PENDING_COOKIE, browser, url("sign-in/oidc"))


def _browser_key(found: str | None) -> str:
    """The pending cookie's value: the browser's key while its cookie lives (sign-ins started
    in other tabs are pending under it), else a new random one (32 bytes, URL-safe)."""
    if found and _BROWSER_KEY.fullmatch(found):
        return found
    return secrets_module.token_urlsafe(32)


def _pending_key(state: str | None) -> str | None:
    """The session-table id of the sign-in pending under ``state`` (a name of its own: a
    ``state`` seen in an address is no session id)."""
    return f"oidc-sign-in:{state}" if state else None


def pending_redirect(
    request: Request, address: str, cookie: str, value: str, path: str
) -> RedirectResponse:
    """The browser sent to the issuer's ``address`` (303) with the cookie that names its
    pending request: HttpOnly, ``SameSite=Lax`` (the issuer's redirect back is a cross-site
    navigation, on which a Strict cookie would not be sent), Secure behind HTTPS, sent to
    ``path`` only, for ``PENDING_LIFETIME``."""
    response = RedirectResponse(address, status_code=303)
    response.set_cookie(
        cookie,
        value,
        max_age=int(PENDING_LIFETIME.total_seconds()),
        path=path,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


def take_pending(engine: Engine, pending_id: str | None, name: str, *, now: datetime) -> Any:
    """The pending authorisation request kept under ``pending_id`` (its claims' ``name``), or
    ``None``; the row is deleted either way: an answer is used once, whatever happens next
    (taken in one transaction: of two callbacks with the same answer, one finds it)."""
    found = sessions.take_alone(engine, pending_id, now=now)
    return None if found is None else found.claims.get(name)


def verify_callback(
    config: OidcConfig,
    params: Any,
    redirect_url: str,
    *,
    state: str,
    nonce: str,
    verifier: str,
    max_age: int | None = None,
    requested_at: float | None = None,
) -> tuple[dict[str, Any], str]:
    """The issuer's answer to an authorisation request (``params``: the callback's query)
    checked against what the request kept (``state``, ``nonce``, the PKCE ``verifier``): an
    error response is refused, the ``state`` must be the request's and a ``code`` present, the
    code is exchanged (``exchange``: signature, ``iss``, ``aud``, ``exp``, ``nonce``), and with
    ``max_age`` the ID token's ``auth_time`` must be no earlier than ``max_age`` seconds before
    ``requested_at`` (seconds since the epoch, as ``auth_time``: when the request was made;
    without it, now), ``AUTH_TIME_LEEWAY`` allowed for clock skew. Answers the ID token's
    verified claims and the token; ``OidcRefused`` (with its ``reason``) otherwise."""
    if params.get("error"):
        raise OidcRefused(
            N_("The identity provider refused the sign-in."), params["error"], reason="error"
        )
    if not state or params.get("state") != state or not params.get("code"):
        raise OidcRefused(
            N_("The sign-in answer does not belong to this browser. Start again."),
            reason="state",
        )
    claims, id_token = exchange(
        config, params["code"], redirect_url, verifier=verifier, nonce=nonce
    )
    if max_age is not None:
        auth_time = claims.get("auth_time")
        asked = time.time() if requested_at is None else requested_at
        if not isinstance(auth_time, int | float) or auth_time < (
            asked - max_age - AUTH_TIME_LEEWAY
        ):
            raise OidcRefused(
                N_("The identity provider's token is not valid."), "auth_time", reason="auth_time"
            )
    return claims, id_token


@router.get("/app/sign-in/oidc/callback", name="oidc_callback")
def oidc_callback(request: Request) -> Response:
    state = api_state(request)
    at = state.clock()
    pending = take_pending(
        state.engine, _pending_key(request.query_params.get("state")), "oidc_pending", now=at
    )
    browser = request.cookies.get(PENDING_COOKIE)
    if isinstance(pending, dict) and (
        not browser or pending.get("browser") != sessions.digest(browser)
    ):
        pending = None  # started in another browser: taken, and refused
    try:
        config = _config(request)
        if not isinstance(pending, dict):
            raise OidcRefused(
                N_("The sign-in took too long or was started elsewhere. Start again.")
            )
        id_claims, id_token = verify_callback(
            config,
            request.query_params,
            _redirect_url(request, config),
            state=pending["state"],
            nonce=pending["nonce"],
            verifier=pending["verifier"],
        )
        claims = map_claims(config, id_claims)
        principal_from_claims(claims)
    except OidcRefused as refused:
        return _refused(request, refused)
    except Unauthenticated as error:
        return _refused(
            request,
            OidcRefused(
                N_("Your identity does not carry what medloop needs (role, organisation, HPR)."),
                str(error),
            ),
        )
    target = pending["next"] or url()
    response = render(request, "continue.html", target=target)
    # The ID token goes with the session (not into its claims) for the sign-out at the issuer.
    start_session(request, response, {**claims, ID_TOKEN_CLAIM: id_token}, now=at)
    # The browser's cookie stays (until it expires): sign-ins of other tabs may be pending.
    _log.info("page sign-in", method="oidc", role=claims.get("role"))
    return response


def client_assertion(config: OidcConfig, token_endpoint: str) -> str:
    """``private_key_jwt`` (OpenID Connect Core 9; RFC 7523): a JWT signed with the client's
    private key, ``iss`` = ``sub`` = the client id, a fresh ``jti``, valid for 60 seconds, its
    ``aud`` the issuer (HelseID requires the issuer; the token endpoint is what OIDC Core
    suggests, and an issuer that wants it is configured with
    ``MEDLOOP_OIDC_CLIENT_ASSERTION_AUDIENCE=token_endpoint``). Signed by Authlib."""
    assert config.client_key is not None
    audience = token_endpoint if config.assertion_audience == "token_endpoint" else config.issuer
    key = config.client_key
    header = {"kid": key["kid"]} if key.get("kid") else {}
    return private_key_jwt_sign(
        import_key(key),
        config.client_id,
        audience,
        alg=key_algorithm(key),
        header=header,
        expires_in=60,
    )


def key_algorithm(key: dict[str, Any]) -> str:
    """The signature algorithm of a private JWK: its ``alg``, else RS256 (RSA) or ES256/384/512
    (EC, by curve)."""
    if key.get("alg"):
        return str(key["alg"])
    if key.get("kty") == "EC":
        return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[key["crv"]]
    return "RS256"


def exchange(
    config: OidcConfig, code: str, redirect_url: str, *, verifier: str, nonce: str
) -> tuple[dict[str, Any], str]:
    """The code for tokens (with the PKCE ``verifier``): the ID token's verified claims (its
    ``nonce`` the request's) and the ID token itself."""
    metadata = discovery(config)
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_url,
        "client_id": config.client_id,
        "code_verifier": verifier,
    }
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if config.client_key is not None:
        body["client_assertion_type"] = ASSERTION_TYPE
        body["client_assertion"] = client_assertion(config, metadata["token_endpoint"])
    elif config.client_secret:
        # client_secret_basic (RFC 6749 2.3.1); without a secret a public client (PKCE only).
        pair = f"{urllib.parse.quote(config.client_id)}:{urllib.parse.quote(config.client_secret)}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    token_request = urllib.request.Request(
        metadata["token_endpoint"], data=urllib.parse.urlencode(body).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(token_request, timeout=_TIMEOUT) as answer:  # noqa: S310
            tokens = json.loads(answer.read())
    except (OSError, ValueError) as error:
        raise OidcRefused(N_("The identity provider did not give a token."), str(error)) from None
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise OidcRefused(N_("The identity provider did not give a token."), "no id_token")
    with _lock:
        keys = _jwks.get(metadata["jwks_uri"])
        if keys is None:
            keys = _jwks[metadata["jwks_uri"]] = jwt.PyJWKClient(metadata["jwks_uri"])
    try:
        kid = jwt.get_unverified_header(id_token).get("kid")
        if kid is not None:
            key = keys.get_signing_key(kid)
        else:  # no key id: only an issuer with one signing key is unambiguous
            found = keys.get_signing_keys()
            if len(found) != 1:
                raise jwt.PyJWTError("the ID token names no key and the issuer has several")
            key = found[0]
        claims = jwt.decode(
            id_token,
            key.key,
            algorithms=["RS256", "ES256", "PS256", "RS384", "ES384", "RS512", "EdDSA"],
            audience=config.client_id,
            issuer=metadata.get("issuer", config.issuer),
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            leeway=30,
        )
    except jwt.PyJWTError as error:
        raise OidcRefused(N_("The identity provider's token is not valid."), str(error)) from None
    if not nonce or claims.get("nonce") != nonce:
        raise OidcRefused(N_("The identity provider's token is not valid."), "nonce")
    return claims, id_token


def logout_address(request: Request, claims: dict[str, Any]) -> str | None:
    """RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0, section 2): the issuer's
    ``end_session_endpoint`` with the session's ID token as ``id_token_hint``, the client id
    and ``post_logout_redirect_uri`` (the configured one, else the sign-in page). ``None`` when
    the session did not come from the issuer, or the issuer has no such endpoint or cannot be
    reached (then the sign-out is medloop's alone)."""
    config = pages_config(request).oidc
    id_token = claims.get(ID_TOKEN_CLAIM)
    if config is None or not isinstance(id_token, str):
        return None
    try:
        endpoint = discovery(config).get("end_session_endpoint")
    except OidcRefused:
        return None
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        return None
    back = config.post_logout_redirect_url or str(request.url_for("sign_in"))
    query = urllib.parse.urlencode(
        {"id_token_hint": id_token, "client_id": config.client_id, "post_logout_redirect_uri": back}
    )
    return endpoint + ("&" if "?" in endpoint else "?") + query


def map_claims(config: OidcConfig, found: dict[str, Any]) -> dict[str, Any]:
    """medloop's claims (those of an API bearer token) from an ID token's."""
    role = found.get(config.role_claim)
    if role == "patient":
        subject = found.get(config.pid_claim)
        return {"sub": subject, "role": role, "name": found.get("name") or subject}
    claims = {
        "sub": found.get(config.hpr_claim),
        "role": role,
        "org": found.get(config.org_claim),
        "name": found.get("name"),
        "org_name": found.get(config.org_name_claim),
    }
    if found.get(config.ward_admin_claim) is True:
        claims["ward_admin"] = True
    return {name: value for name, value in claims.items() if value is not None}


def _refused(request: Request, refused: OidcRefused) -> Response:
    _log.info("page sign-in refused", method="oidc", why=str(refused)[:200])
    return render(
        request,
        "error.html",
        status=401,
        title_key=N_("Sign-in failed"),
        message_key=refused.message,
        sign_in_link=True,
    )
