"""The witness's step-up at the identity provider: a second health worker signs for a dose with
their OWN credentials, never the charting nurse's session.

Who may witness is one rule, the API's (``medloop.api.policy.WITNESS_ROLES`` and
``authorize_witness``): another person than the charting nurse, a nurse or a doctor (GP) of the
same organisation. A doctor on the ward is another authorised health worker, as Norwegian
nursing homes use for the second check; a pharmacist or a patient is not. Narrowing it (nurses
only) is a clinical decision made there, once, for the API and the pages alike.

1. ``POST /app/nurse/residents/{patient}/entries/{entry}/witness/oidc?dose=`` (the charting
   form's button, CSRF-checked, the charting nurse signed in): an OpenID Connect authorisation
   request with ``prompt=login`` and ``max_age=0`` (the issuer must authenticate whoever is at
   the tablet afresh, whatever sign-in it remembers) and its own ``state``, ``nonce`` and PKCE
   verifier, kept server-side for 10 minutes under its ``state`` (a pending row of the session
   table) together with what they are bound to: the charting nurse's session (its digest), the
   resident, the entry, the planned dose and the form as it was. The callback must come to the
   same browser: an HttpOnly ``SameSite=Lax`` cookie on ``/app/witness`` (the issuer's redirect
   back is a cross-site navigation, on which the Strict session cookie is not sent) carries a
   key derived one-way from the charting nurse's session id, the same for every step-up of that
   session, so step-ups started in several tabs are each pending on their own and each
   completes, whatever order their callbacks come in.
2. ``GET /app/witness/callback``: the pending row of the answer's ``state`` is used once (an
   unknown ``state``, or one pending for another browser, is refused and nothing is kept); the
   answer is checked by ``medloop.pages.oidc.verify_callback``, as the sign-in's is (error
   response, ``state``, the code exchanged with PKCE and the client's authentication, the ID
   token's signature, ``iss``, ``aud``, ``exp``, ``nonce``), with ``max_age=0``: its
   ``auth_time`` must be no earlier than the request. The identity must be another person than
   the charting nurse and may witness for them (``authorize_witness``, the API's
   ``X-Witness-Authorization`` check). Then a one-use witness grant
   (``medloop.pages.nurse.store_witness_grant``) is made for that charting, and the browser
   continues to the charting form, which comes back signed.
3. Saving the form: the charting command (``medloop.loop.administration.chart``) checks the
   witness as for the API (the ward's policy, another person, the same organisation) and uses
   the grant up in its own transaction; a grant that is gone, expired or made for another dose
   is refused with nothing saved.

The callback's address is ``/app/witness/callback`` under the same origin as the sign-in's
(``MEDLOOP_OIDC_REDIRECT_URL``'s, when that is set); register it with the issuer as well.
"""

from __future__ import annotations

import hashlib
import time
import urllib.parse
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from medloop.api.auth import Unauthenticated, principal_from_claims
from medloop.api.policy import Action, authorize_witness
from medloop.api.problems import Forbidden
from medloop.domain.administration import WitnessSamePerson
from medloop.ops import logs
from medloop.pages import nurse, oidc
from medloop.pages.i18n import N_
from medloop.pages.messages import explain
from medloop.pages.web import FormDep, PageDep, api_state, language, render, url
from medloop.store import sessions

router = APIRouter(include_in_schema=False)
_log = logs.get_logger("medloop.pages")

PENDING_COOKIE = "medloop_witness"
"""The browser the witness's step-ups were started in (``_browser_key``, not a session id)."""
PENDING_LIFETIME = oidc.PENDING_LIFETIME
_REFUSED_ANSWER = {
    "error": N_("The identity provider refused the witness's sign-in."),
    "state": N_("The witness's sign-in answer does not belong to this charting."),
    "auth_time": N_("The witness was not asked for their password just now. Sign again."),
}
"""The witness's own words for the checks of ``oidc.verify_callback`` that fail."""


def _browser_key(session_id: str) -> str:
    """The pending cookie's value for the charting nurse's session: derived one way from the
    session id (which it does not reveal), the same for every step-up of the session."""
    return hashlib.sha256(b"medloop witness browser\0" + session_id.encode()).hexdigest()


def _pending_key(state: str | None) -> str | None:
    """The session-table id of the step-up pending under ``state`` (a name of its own: a
    ``state`` seen in an address is no session id)."""
    return f"witness-step-up:{state}" if state else None


def _callback_url(request: Request, config: oidc.OidcConfig) -> str:
    if config.redirect_url:
        return urllib.parse.urljoin(config.redirect_url, url("witness/callback"))
    return str(request.url_for("witness_callback"))


def _chart_address(pending: dict[str, Any], **query: str) -> str:
    base = url(f"nurse/residents/{pending['patient']}/entries/{pending['entry']}/chart")
    params = {"dose": pending["dose"]} if pending.get("dose") else {}
    params.update(query)
    return base + ("?" + urllib.parse.urlencode(params) if params else "")


@router.post("/app/nurse/residents/{patient_id}/entries/{entry_id}/witness/oidc")
def witness_step_up(
    page: PageDep,
    form: FormDep,
    patient_id: UUID,
    entry_id: UUID,
    dose: Annotated[UUID | None, Query()] = None,
) -> Response:
    """Send the witness to the identity provider to sign in afresh for this dose."""
    nurse._nurse_only(page)
    page.caller.authorize(Action.CHART_WRITE, patient_id)
    config = page.request.app.state.pages.oidc
    values = nurse._values(form)
    try:
        if config is None:
            raise oidc.OidcRefused(N_("Sign-in with an identity provider is not configured here."))
        address, secrets_ = oidc.authorization_request(
            config, _callback_url(page.request, config), prompt="login", max_age="0"
        )
    except oidc.OidcRefused as refused:
        return nurse._chart_page(
            page,
            patient_id,
            entry_id,
            dose,
            values=values,
            refusal=nurse.Refusal("witness-sign-in", page._(refused.message), "witness", 503),
            status=503,
        )
    at = page.caller.at
    browser = _browser_key(page.session_id)
    pending = {
        "witness_pending": {
            **secrets_,
            "browser": sessions.digest(browser),
            "requested": int(time.time()),  # the issuer's clock: compared with auth_time
            "performer": {k: v for k, v in page.session.claims.items() if k != oidc.ID_TOKEN_CLAIM},
            "session": sessions.digest(page.session_id),
            "patient": str(patient_id),
            "entry": str(entry_id),
            "dose": None if dose is None else str(dose),
            "values": values,
        }
    }
    sessions.keep(
        page.state.engine,
        _pending_key(secrets_["state"]),
        pending,
        now=at,
        expires_at=at + PENDING_LIFETIME,
    )
    _log.info("witness step-up started")
    return oidc.pending_redirect(page.request, address, PENDING_COOKIE, browser, url("witness"))


class _Refused(Exception):
    def __init__(self, message: str, detail: str = "", text: str | None = None) -> None:
        super().__init__(detail or message)
        self.message = message
        self.text = text


@router.get("/app/witness/callback", name="witness_callback")
def witness_callback(request: Request) -> Response:
    state = api_state(request)
    at = state.clock()
    params = request.query_params
    pending = oidc.take_pending(
        state.engine, _pending_key(params.get("state")), "witness_pending", now=at
    )
    browser = request.cookies.get(PENDING_COOKIE)
    if isinstance(pending, dict) and (
        not browser or pending.get("browser") != sessions.digest(browser)
    ):
        pending = None  # started in another browser: taken, and refused
    try:
        config = request.app.state.pages.oidc
        if config is None:
            raise _Refused(N_("Sign-in with an identity provider is not configured here."))
        if not isinstance(pending, dict):
            raise _Refused(N_("The witness's sign-in took too long or was started elsewhere."))
        try:
            id_claims, _ = oidc.verify_callback(
                config,
                params,
                _callback_url(request, config),
                state=pending["state"],
                nonce=pending["nonce"],
                verifier=pending["verifier"],
                max_age=0,
                requested_at=pending["requested"],
            )
        except oidc.OidcRefused as refused:
            message = _REFUSED_ANSWER.get(refused.reason, refused.message)
            raise _Refused(message, str(refused)) from None
        witness_claims = oidc.map_claims(config, id_claims)
        try:
            witness = principal_from_claims(witness_claims)
            performer = principal_from_claims(pending["performer"])
        except Unauthenticated as error:
            raise _Refused(
                N_("The witness's identity does not carry what medloop needs."), str(error)
            ) from None
        lang = language(request)
        if witness.subject == performer.subject:
            raise _Refused("", "same person", explain(WitnessSamePerson("same"), lang).text)
        try:
            authorize_witness(performer, witness)
        except Forbidden as error:
            raise _Refused(
                N_("The witness must be a nurse or doctor at this nursing home."), str(error)
            ) from None
    except _Refused as refused:
        _log.info("witness step-up refused", why=str(refused)[:200])
        back = _chart_address(pending) if isinstance(pending, dict) else url()
        return render(
            request,
            "error.html",
            status=403,
            title_key=N_("The witness could not sign"),
            message_key=refused.message,
            message=refused.text,
            back=back,
        )
    grant = nurse.store_witness_grant(
        state.engine,
        at,
        witness_claims,
        {k: pending[k] for k in ("session", "patient", "entry", "dose", "values")}
        | {"for": performer.subject},
    )
    identity = str((pending.get("values") or {}).get("identity") or "")
    target = _chart_address(pending, identity=identity, witness=grant)
    # The browser's cookie stays (until it expires): step-ups of other tabs may be pending.
    response = render(request, "continue.html", target=target)
    _log.info("witness step-up signed")
    return response
