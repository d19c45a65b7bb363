"""The web pages: server-rendered HTML for the people who use medloop every day (issue #16).

A page is another thin layer over ``medloop.loop`` and the queries, exactly like a route of
the JSON API: it authorises with the API's policy (``medloop.api.policy`` through the API's
``Caller``), runs the loop's commands with the same ``Call`` (so the same audit, idempotency
and decision support), reads through the same audited reads, and renders the answer. No
business rule lives in a page handler or a template.

Layout of the package:

- ``web``: the templates (Jinja2, autoescaped), ``PageDep`` (the signed-in person's ``Page``:
  session → the API's ``Principal`` and ``Caller``), ``FormDep`` (a POSTed form with its CSRF
  token checked), cookies, ``page.render`` / ``page.redirect``.
- ``i18n``: Babel catalogues (``locale/<lang>/LC_MESSAGES/messages.po``, ``nb`` default,
  ``en``; compiled in memory at start), Norwegian date/number formats, Europe/Oslo times.
- ``messages``: ``explain(error, lang)``, the ONE mapping of the loop's refusals to words on a
  page (field, stale list with its changes, alerts that need an override).
- ``signin``: ``/`` → sign-in or the role's landing page; the demo sign-in (``medloop demo``
  only); sign-out (server-side); the language switch.
- ``templates/`` (``base.html``: skip link, header with who is signed in, role, organisation,
  language switch and sign-out, ``<main>``), ``static/`` (our own CSS and a little JS; no
  library, no CDN: every form works with JavaScript off).

Every page lives under ``/app`` (``web.PREFIX``). To add pages, write a module with a
``router`` (``APIRouter(route_class=BlockingRoute, include_in_schema=False)``, paths starting
``/app/``) and add its name to ``MODULES`` below — one line. A module may set its role's
landing page with ``signin.LANDINGS[Role.X] = "/app/…"`` at import.

Errors: a refusal the handler does not render into its own form (and ``SignInRequired``,
``CsrfRefused``, 404, 405, invalid query, forbidden, any other failure) becomes an HTML page
for paths under ``/app`` (``install`` wraps the API's problem handlers; elsewhere they answer
problem+json as before).
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from medloop.pages.i18n import N_
from medloop.pages.web import (
    HERE,
    PREFIX,
    CsrfRefused,
    PagesConfig,
    SignInRequired,
    render,
    url,
)

MODULES: tuple[str, ...] = (
    "medloop.pages.signin",
    "medloop.pages.oidc",
    # -- the report pages (h3-reports) --
    "medloop.pages.reports",
    # -- the nurse's pages (h3-pages) --
    "medloop.pages.nurse",
    "medloop.pages.witness",
    "medloop.pages.wristband",
    #
    # -- the GP's, the multidose pharmacist's and the patient's pages (h3-pages-gp) --
    "medloop.pages.gp",
    "medloop.pages.pharmacy",
    "medloop.pages.patient",
    # -- the GP's medication review meeting (h3-reviewpage) --
    "medloop.pages.review",
)
"""The page modules whose ``router`` is served (one line per module)."""


def install(
    app: FastAPI,
    *,
    session_lifetime: timedelta,
    demo_sign_in: bool = False,
    oidc: Any = None,
) -> None:
    """Serve the pages from ``app`` (the API's application, already set up); ``oidc`` is the
    OpenID Connect sign-in (``medloop.pages.oidc.OidcConfig``), when configured."""
    app.state.pages = PagesConfig(
        session_lifetime=session_lifetime, demo_sign_in=demo_sign_in, oidc=oidc
    )
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="pages-static")
    routes = []
    for name in MODULES:
        module = importlib.import_module(name)
        app.include_router(module.router)
        routes += module.router.routes
    app.state.routes = (*getattr(app.state, "routes", ()), *routes)
    _install_error_pages(app)


def is_page(request: Request) -> bool:
    path = request.url.path
    return path == "/" or path == PREFIX or path.startswith(PREFIX + "/")


def _install_error_pages(app: FastAPI) -> None:
    """Under ``/app`` a refusal or failure is a page; elsewhere the API's handler answers."""
    from starlette.exceptions import HTTPException

    from medloop.api.auth import Unauthenticated
    from medloop.api.problems import Forbidden
    from medloop.domain.errors import DomainError
    from medloop.store.columns import StoredRecordUnreadable

    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    handlers = dict(app.exception_handlers)
    for cls in (
        HTTPException,
        DomainError,
        Forbidden,
        Unauthenticated,
        StoredRecordUnreadable,
        Exception,
        *[c for c in handlers if isinstance(c, type) and c.__name__ == "RequestValidationError"],
    ):
        original = handlers.get(cls)
        if original is not None:
            app.add_exception_handler(cls, _page_or(original, unexpected=cls is Exception))


def _page_or(original: Any, *, unexpected: bool = False) -> Any:
    """``original`` outside the pages; under ``/app`` the error page. ``unexpected``: the
    handler of any other exception, which Starlette's server-error layer calls outside
    ``RequestId``, so the page carries the pages' security headers and the request id's header
    itself."""

    async def handler(request: Request, error: Exception) -> Response:
        if not is_page(request):
            return await original(request, error)
        response = _error_page(request, error)
        if unexpected:
            from medloop.api.app import PAGE_SECURITY_HEADERS
            from medloop.api.problems import with_request_id

            for name, value in PAGE_SECURITY_HEADERS:
                response.headers[name.decode()] = value.decode()
            with_request_id(response, request)
        return response

    return handler


def _sign_in_required(request: Request, _: Exception) -> Response:
    if request.method in ("GET", "HEAD"):
        target = url("sign-in")
        if request.url.path not in (PREFIX, PREFIX + "/"):
            from urllib.parse import quote

            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            target += "?next=" + quote(path, safe="")
        return RedirectResponse(target, status_code=303)
    return render(
        request,
        "error.html",
        status=401,
        title_key=N_("Signed out"),
        message_key=N_(
            "You are not signed in (or the session has ended). Nothing was saved. "
            "Sign in and try again."
        ),
        sign_in_link=True,
    )


def _csrf_refused(request: Request, _: Exception) -> Response:
    return render(
        request,
        "error.html",
        status=403,
        title_key=N_("The form could not be sent"),
        message_key=N_(
            "The form's security token was missing or wrong, so nothing was saved. "
            "Open the page again and repeat what you did."
        ),
    )


def _error_page(request: Request, error: Exception) -> Response:
    from starlette.exceptions import HTTPException

    from medloop.api.auth import Unauthenticated
    from medloop.api.problems import Forbidden
    from medloop.domain.errors import DomainError
    from medloop.pages.messages import explain
    from medloop.pages.web import language
    from medloop.store.columns import StoredRecordUnreadable

    if isinstance(error, Unauthenticated):
        return _sign_in_required(request, error)
    if isinstance(error, DomainError | Forbidden):
        refusal = explain(error, language(request))
        return render(
            request,
            "error.html",
            status=refusal.status,
            title_key=N_("Not possible"),
            message=refusal.text,
        )
    if isinstance(error, HTTPException):
        status = error.status_code
        titles = {404: N_("Not found"), 405: N_("Not possible"), 413: N_("Too large")}
        messages = {
            404: N_("There is no page at this address."),
            405: N_("This page cannot be used like that."),
            413: N_("What was sent is too large."),
        }
        return render(
            request,
            "error.html",
            status=status,
            title_key=titles.get(status, N_("Not possible")),
            message_key=messages.get(status, N_("The request could not be handled.")),
        )
    if type(error).__name__ == "RequestValidationError":
        return render(
            request,
            "error.html",
            status=422,
            title_key=N_("Not possible"),
            message_key=N_(
                "The address or the form has a value the page does not know. Nothing was saved."
            ),
        )
    request_id = getattr(request.state, "request_id", "")
    if isinstance(error, StoredRecordUnreadable):
        # The row, as the API's problem names it (never the stored value): what support needs
        # to find it (``medloop records check`` lists it too).
        return render(
            request,
            "error.html",
            status=500,
            title_key=N_("A stored record cannot be read"),
            message_key=N_(
                "A stored record this page needs no longer loads, so the page cannot be shown. "
                "Nothing was changed. Quote the record and this request id to support:"
            ),
            record=error.record,
            request_id=request_id,
        )
    return render(
        request,
        "error.html",
        status=500,
        title_key=N_("Something went wrong"),
        message_key=N_("An unexpected error. Quote this request id to support:"),
        request_id=request_id,
    )
