"""What every page handler shares: the templates, the signed-in ``Page``, CSRF, cookies.

- ``PageDep`` (a dependency): the signed-in person's ``Page``. It looks the session cookie up
  (``medloop.store.sessions``), turns the session's claims into the API's ``Principal``
  (``medloop.api.auth.principal_from_claims``, as a bearer token's) and wraps it in the API's
  own ``Caller`` (``page.caller``): ``caller.authorize(Action…, patient_id)``,
  ``caller.call(...)`` for a command, ``caller.read(...)`` for an audited read — the same
  policy, commands and audit as the JSON API. Signed out (no cookie, signed out, expired): a
  GET is redirected to the sign-in page (303), anything else is refused with a page (401).
- ``FormDep`` (a dependency for POST handlers): the form, read only after the session was
  found, with its CSRF token checked against the session's (``csrf_token`` field, constant-time
  comparison). Missing or wrong: ``CsrfRefused``, a 403 page, nothing done.
- ``page.render(template, **context)``: HTML in the reader's language with ``_()`` and the
  formatters (``format_datetime``, ``format_date``, ``format_time``, ``format_decimal``:
  Norwegian formats, Europe/Oslo times) in every template, plus ``page``, ``principal``,
  ``csrf_token`` and ``url()`` (a path under the prefix).
- Forms of signed-out pages (sign-in, language) use a double-submit token instead: a random
  value in an HttpOnly, SameSite=Strict cookie that the form repeats (``anonymous_csrf``).

Cookies: ``Path=/app``, HttpOnly, SameSite=Strict, and Secure when the request came over HTTPS
(``request.url.scheme``; behind a proxy, uvicorn's ``--proxy-headers`` sets it).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData

from medloop.api import policy
from medloop.api.auth import Principal, Role, Unauthenticated, principal_from_claims
from medloop.api.deps import ApiState, Caller, api_state
from medloop.api.policy import Action
from medloop.pages import i18n
from medloop.store import sessions

PREFIX = "/app"
SESSION_COOKIE = "medloop_session"
ANONYMOUS_CSRF_COOKIE = "medloop_csrf"
LANGUAGE_COOKIE = "medloop_lang"
CSRF_FIELD = "csrf_token"
HERE = Path(__file__).resolve().parent

ROLE_NAMES = {
    # The role as the pages name it (translated); the demo buttons add the Norwegian word.
    Role.GP: i18n.N_("Doctor"),
    Role.NURSE: i18n.N_("Nurse"),
    Role.PHARMACIST: i18n.N_("Pharmacist"),
    Role.PATIENT: i18n.N_("Patient"),
}
ROLE_NAMES_NB = {
    Role.GP: "Lege",
    Role.NURSE: "Sykepleier",
    Role.PHARMACIST: "Farmasøyt",
    Role.PATIENT: "Pasient",
}


def url(path: str = "") -> str:
    """``path`` under the pages' prefix (``url("nurse")`` → ``/app/nurse``)."""
    return f"{PREFIX}/{path.lstrip('/')}" if path else f"{PREFIX}/"


def local_path(candidate: str | None, fallback: str | None = None) -> str:
    """``candidate`` when it is a path under the prefix (a ``next`` to go back to), else
    ``fallback`` (the home page): never an address elsewhere (no open redirect)."""
    if (
        candidate
        and candidate.startswith(PREFIX + "/")
        and not candidate.startswith("//")
        and "\\" not in candidate
        and all(ord(c) > 31 for c in candidate)
    ):
        return candidate
    return fallback or url()


environment = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(("html", "svg", "xml")),
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
environment.globals.update(url=url, PREFIX=PREFIX, CSRF_FIELD=CSRF_FIELD)


def translator(lang: str) -> Callable[..., str]:
    """``_("text")`` in ``lang``; ``_("Given %(n)s", n=3)`` fills named values in after."""
    gettext = i18n.gettext_for(lang)

    def _(message: str, **values: Any) -> str:
        found = gettext(message)
        return found % values if values else found

    return _


def template_context(lang: str) -> dict[str, Any]:
    """What every template gets to speak the reader's language."""
    return {
        "_": translator(lang),
        "lang": lang,
        "languages": i18n.LANGUAGES,
        "format_datetime": partial(_fmt_datetime, lang=lang),
        "format_date": partial(_fmt_date, lang=lang),
        "format_time": partial(i18n.format_time, lang=lang),
        "format_decimal": partial(i18n.format_decimal, lang=lang),
        "role_name": lambda role: translator(lang)(ROLE_NAMES[Role(role)]),
        "amount_text": partial(_amount_text, lang=lang),
        "period_text": partial(_period_text, lang=lang),
        "severity_name": partial(_severity, lang=lang),
        "alert_text": partial(_alert_text, lang=lang),
        "entry_status_name": partial(_entry_status, lang=lang),
    }


SEVERITIES = {
    # Decision support's severities as the pages name them.
    "avoid": i18n.N_("Avoid"),
    "precautions": i18n.N_("Take precautions"),
    "info": i18n.N_("For information"),
    "no-action": i18n.N_("No action needed"),
}


ENTRY_STATUSES = {
    "active": i18n.N_("Active"),
    "on-hold": i18n.N_("On hold"),
    "discontinued": i18n.N_("Discontinued"),
    "entered-in-error": i18n.N_("Entered in error"),
}


def _entry_status(value: Any, *, lang: str) -> str:
    key = str(getattr(value, "value", value))
    return translator(lang)(ENTRY_STATUSES[key]) if key in ENTRY_STATUSES else key


def _alert_text(alert: Any, names: Any = None, *, lang: str) -> Any:
    """A decision-support alert in the reader's language (``medloop.pages.alert_text``)."""
    from medloop.pages.alert_text import alert_text

    return alert_text(alert, names, lang)


def _severity(value: Any, *, lang: str) -> str:
    key = str(getattr(value, "value", value))
    return translator(lang)(SEVERITIES[key]) if key in SEVERITIES else key


PERIOD_UNITS = {
    "minute": (i18n.N_("minute"), i18n.N_("minutes")),
    "hour": (i18n.N_("hour"), i18n.N_("hours")),
    "day": (i18n.N_("day"), i18n.N_("days")),
    "week": (i18n.N_("week"), i18n.N_("weeks")),
    "month": (i18n.N_("month"), i18n.N_("months")),
}


def _amount_text(quantity: Any, *, lang: str) -> str:
    """``1,5 tablett``: a dose's amount in the reader's number format, with its unit."""
    if quantity is None:
        return ""
    return f"{i18n.format_decimal(quantity.value, lang)} {quantity.unit}"


def _period_text(period: Any, *, lang: str) -> str:
    """``6 timer``: a period's length in the reader's words."""
    if period is None:
        return ""
    one, many = PERIOD_UNITS.get(str(getattr(period.unit, "value", period.unit)), ("", ""))
    word = translator(lang)(one if period.value == 1 else many) if one else str(period.unit)
    return f"{i18n.format_decimal(period.value, lang)} {word}"


def _fmt_datetime(moment: Any, format: str = "medium", *, lang: str) -> str:
    return i18n.format_datetime(moment, lang, format)


def _fmt_date(day: Any, format: str = "medium", *, lang: str) -> str:
    return i18n.format_date(day, lang, format)


def language(request: Request) -> str:
    return i18n.language_of(request.cookies.get(LANGUAGE_COOKIE))


@dataclass(frozen=True)
class PagesConfig:
    """The pages' part of the settings: ``app.state.pages``."""

    session_lifetime: timedelta
    demo_sign_in: bool = False
    #: Sign-in through OpenID Connect (``medloop.pages.oidc``), when configured.
    oidc: Any = None


def pages_config(request: Request) -> PagesConfig:
    return request.app.state.pages


# -- errors the pages answer with a page ---------------------------------------------------


class SignInRequired(Exception):
    """No live session: a GET goes to the sign-in page, anything else is refused (401)."""


class CsrfRefused(Exception):
    """A form came without the CSRF token of its session (or with another one)."""


# -- the signed-in page -----------------------------------------------------------------------


@dataclass
class Page:
    """One request of a signed-in person: who (``principal``), the API's ``Caller`` for the
    policy, commands and audited reads, the session's CSRF token and the language."""

    request: Request
    caller: Caller
    session_id: str
    session: sessions.PageSession
    lang: str
    _context: dict[str, Any] = field(default_factory=dict)

    @property
    def principal(self) -> Principal:
        return self.caller.principal

    @property
    def state(self) -> ApiState:
        return self.caller.state

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token

    @property
    def _(self) -> Callable[..., str]:
        return translator(self.lang)

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return render(
            self.request,
            template,
            status=status,
            lang=self.lang,
            principal=self.principal,
            csrf_token=self.csrf_token,
            page=self,
            **context,
        )

    def redirect(self, path: str) -> RedirectResponse:
        """303 See Other to ``path`` (after a POST: the browser GETs the result)."""
        return RedirectResponse(path, status_code=303)

    def permits(self, action: Action, patient_id: UUID) -> bool:
        """Whether the policy lets this person do ``action`` on the patient now (nothing
        refused, nothing audited): what decides whether a page shows a link or a form."""
        caller = self.caller
        return policy.permits(caller.engine, self.principal, action, patient_id, at=caller.at)


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    lang: str | None = None,
    principal: Principal | None = None,
    csrf_token: str | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered in ``lang`` (default: the reader's) as an HTML response."""
    lang = lang or language(request)
    body = environment.get_template(template).render(
        **template_context(lang),
        request=request,
        principal=principal,
        csrf_token=csrf_token,
        # Where the language switch returns to: this page, its query too (GET only: a
        # form's answer is not a page to go back to).
        current_path=request.url.path
        + (f"?{request.url.query}" if request.url.query and request.method == "GET" else ""),
        demo=getattr(request.app.state, "pages", None) is not None
        and pages_config(request).demo_sign_in,
        **context,
    )
    response = HTMLResponse(body, status_code=status, headers=headers)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _session_page(request: Request) -> Page:
    state = api_state(request)
    at = state.clock()
    session_id = request.cookies.get(SESSION_COOKIE)
    found = sessions.find(state.engine, session_id, now=at)
    if found is None or session_id is None:
        raise SignInRequired()
    try:
        principal = principal_from_claims(found.claims)
    except Unauthenticated:
        raise SignInRequired() from None
    caller = Caller(state, principal, request.state.request_id, at)
    return Page(request, caller, session_id, found, language(request))


async def signed_in(request: Request) -> Page:
    """The signed-in person's page (a session lookup: one indexed read)."""
    return _session_page(request)


PageDep = Annotated[Page, Depends(signed_in)]


async def checked_form(request: Request, page: PageDep) -> FormData:
    """The POSTed form, read after the session was found, its CSRF token checked."""
    form = await request.form()
    given = form.get(CSRF_FIELD)
    if not isinstance(given, str) or not secrets.compare_digest(
        given.encode(), page.csrf_token.encode()
    ):
        raise CsrfRefused()
    return form


FormDep = Annotated[FormData, Depends(checked_form)]


# -- cookies ------------------------------------------------------------------------------------


def set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def start_session(
    request: Request, response: Response, claims: dict[str, Any], *, now: datetime
) -> None:
    """Sign in: end the session the browser had (if any) and start a NEW one (a fresh id: a
    session id planted before the sign-in is never the one signed in)."""
    state = api_state(request)
    sessions.end(state.engine, request.cookies.get(SESSION_COOKIE))
    lifetime = pages_config(request).session_lifetime
    session_id, _ = sessions.start(state.engine, claims, now=now, expires_at=now + lifetime)
    set_cookie(request, response, SESSION_COOKIE, session_id, int(lifetime.total_seconds()))


def end_session(request: Request, response: Response) -> None:
    sessions.end(api_state(request).engine, request.cookies.get(SESSION_COOKIE))
    clear_cookie(request, response, SESSION_COOKIE)


# -- signed-out forms: double-submit CSRF -------------------------------------------------------


def anonymous_csrf(request: Request) -> str:
    """The token a signed-out form repeats: the browser's cookie value, or a new one (which
    ``remember_anonymous_csrf`` then sets on the response)."""
    found = request.cookies.get(ANONYMOUS_CSRF_COOKIE)
    if found and 20 <= len(found) <= 100:
        return found
    token = getattr(request.state, "anonymous_csrf", None)
    if token is None:
        token = secrets.token_urlsafe(32)
        request.state.anonymous_csrf = token
    return token


def remember_anonymous_csrf(request: Request, response: Response) -> None:
    token = getattr(request.state, "anonymous_csrf", None)
    if token is not None:
        set_cookie(request, response, ANONYMOUS_CSRF_COOKIE, token, None)


async def anonymous_form(request: Request) -> FormData:
    """A signed-out form whose token matches the browser's cookie; ``CsrfRefused`` if not."""
    form = await request.form()
    given = form.get(CSRF_FIELD)
    cookie = request.cookies.get(ANONYMOUS_CSRF_COOKIE)
    if (
        not isinstance(given, str)
        or not cookie
        or not secrets.compare_digest(given.encode(), cookie.encode())
    ):
        raise CsrfRefused()
    return form


AnonymousFormDep = Annotated[FormData, Depends(anonymous_form)]


def optional_page(request: Request) -> Page | None:
    """The signed-in page when there is a live session, else ``None`` (pages open to both)."""
    try:
        return _session_page(request)
    except SignInRequired:
        return None
