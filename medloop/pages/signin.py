"""Signing in and out, the language switch and the home page.

- ``GET /`` and ``GET /app/``: a signed-out browser is sent to the sign-in page; a signed-in
  person to the landing page of their role (``LANDINGS``, filled by the page modules).
- ``GET /app/sign-in``: the ways to sign in. With ``medloop demo`` (``PagesConfig.demo_sign_in``,
  never set by ``medloop serve``) a DEMO panel lists the demo people, each a button whose
  accessible name contains the role in Norwegian (``Lege``, ``Sykepleier``, ``Farmasøyt``,
  ``Pasient``); ``POST /app/sign-in/demo`` starts a session with the same claims as that
  person's demo bearer token. OpenID Connect sign-in (production) is ``medloop.pages.oidc``.
- ``POST /app/sign-out``: the session is deleted server-side and the cookie cleared; signed in
  through OpenID Connect, the browser then goes to the issuer's sign-out
  (``medloop.pages.oidc.logout_address``).
- ``POST /app/language``: ``nb`` or ``en`` for this browser (a cookie), back to ``next``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from medloop import demo as demo_world
from medloop.api.auth import Role
from medloop.api.routing import BlockingRoute
from medloop.ops import logs
from medloop.pages import i18n
from medloop.pages.i18n import N_
from medloop.pages.web import (
    LANGUAGE_COOKIE,
    ROLE_NAMES_NB,
    AnonymousFormDep,
    FormDep,
    PageDep,
    anonymous_csrf,
    api_state,
    end_session,
    local_path,
    optional_page,
    pages_config,
    remember_anonymous_csrf,
    render,
    set_cookie,
    start_session,
    url,
)

router = APIRouter(route_class=BlockingRoute, include_in_schema=False)
_log = logs.get_logger("medloop.pages")

LANDINGS: dict[Role, str] = {}
"""Where each role lands after signing in (a page module adds its role's page here)."""


@dataclass(frozen=True)
class DemoPerson:
    key: str
    claims: dict[str, Any]
    role_nb: str
    """The role in Norwegian, always part of the button's accessible name."""
    detail: str


def demo_people() -> list[DemoPerson]:
    """The demo world's people (``medloop.demo``), with the claims of their demo tokens."""

    def staff(key: str, actor: Any, role: Role, detail: str, **extra: Any) -> DemoPerson:
        claims = {
            "sub": actor.personnel.hpr_number,
            "role": role.value,
            "org": actor.organisation.id,
            "name": actor.personnel.name,
            "org_name": actor.organisation.name,
            **extra,
        }
        return DemoPerson(key, claims, ROLE_NAMES_NB[role], detail)

    first = demo_world.RESIDENTS[0]
    resident_id = demo_world.national_id(first.birth, 100)
    return [
        staff("nurse", demo_world.NURSE, Role.NURSE, demo_world.NURSING_HOME.name),
        staff(
            "ward-admin",
            demo_world.SECOND_NURSE,
            Role.NURSE,
            demo_world.NURSING_HOME.name,
            ward_admin=True,
        ),
        staff("gp", demo_world.GP, Role.GP, demo_world.GP_PRACTICE.name),
        staff("pharmacist", demo_world.PHARMACIST, Role.PHARMACIST, demo_world.PHARMACY.name),
        DemoPerson(
            "patient",
            {"sub": resident_id, "role": Role.PATIENT.value, "name": "Kari Nordmann"},
            ROLE_NAMES_NB[Role.PATIENT],
            "",
        ),
    ]


def _landing(role: Role) -> str:
    return LANDINGS.get(role, url("home"))


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse(url(), status_code=303)


@router.get("/app/")
def home_redirect(request: Request) -> RedirectResponse:
    page = optional_page(request)
    if page is None:
        return RedirectResponse(url("sign-in"), status_code=303)
    return RedirectResponse(_landing(page.principal.role), status_code=303)


@router.get("/app/home")
def home(page: PageDep) -> Response:
    """A role without pages of its own yet: who is signed in and the way out."""
    return page.render("home.html")


@router.get("/app/sign-in")
def sign_in(request: Request) -> Response:
    signed_in = optional_page(request)
    config = pages_config(request)
    response = render(
        request,
        "sign_in.html",
        people=demo_people() if config.demo_sign_in else [],
        oidc=config.oidc is not None,
        signed_in=signed_in.principal if signed_in else None,
        csrf_token=anonymous_csrf(request),
        next=local_path(request.query_params.get("next"), ""),
    )
    remember_anonymous_csrf(request, response)
    return response


@router.post("/app/sign-in/demo")
def sign_in_demo(request: Request, form: AnonymousFormDep) -> Response:
    config = pages_config(request)
    person = next((p for p in demo_people() if p.key == form.get("person")), None)
    if not config.demo_sign_in or person is None:
        # Production (``medloop serve``) has no demo sign-in at all.
        return render(
            request,
            "error.html",
            status=404,
            title_key=N_("Not found"),
            message_key=N_("There is no demo sign-in here."),
        )
    state = api_state(request)
    response = RedirectResponse(
        local_path(str(form.get("next") or ""), _landing(Role(person.claims["role"]))),
        status_code=303,
    )
    start_session(request, response, person.claims, now=state.clock())
    _log.info("page sign-in", method="demo", role=person.claims["role"])
    return response


@router.post("/app/sign-out")
def sign_out(request: Request, page: PageDep, form: FormDep) -> Response:
    """The session ends here; a session signed in through OpenID Connect then goes on to the
    issuer's ``end_session_endpoint`` (RP-initiated logout) to end the sign-in there too."""
    from medloop.pages import oidc

    response = RedirectResponse(
        oidc.logout_address(request, page.session.claims) or url("sign-in"), status_code=303
    )
    end_session(request, response)
    _log.info("page sign-out", role=page.principal.role.value)
    return response


@router.post("/app/language")
async def switch_language(request: Request) -> Response:
    """The language switch of every page, signed in (session CSRF) or not (double submit)."""
    from medloop.pages.web import anonymous_form, checked_form

    page = optional_page(request)
    form = await (checked_form(request, page) if page else anonymous_form(request))
    lang = str(form.get("lang") or "")
    if lang not in i18n.LANGUAGES:
        return render(
            request,
            "error.html",
            status=422,
            title_key=N_("Unknown language"),
            message_key=N_("Choose Norsk (bokmål) or English."),
        )
    response = RedirectResponse(local_path(str(form.get("next") or "")), status_code=303)
    set_cookie(request, response, LANGUAGE_COOKIE, lang, 365 * 24 * 3600)
    return response
