"""The application factory: ``create_app`` wires the routers, the problem handlers, the
request id, the token verifier, the database and the offline docs page."""

from __future__ import annotations

import copy
import random
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi._body_limit import AppBodyLimitMiddleware
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware
from sqlalchemy import Engine
from starlette._exception_handler import _lookup_exception_handler
from starlette._utils import is_async_callable
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request

from medloop import settings as settings_module
from medloop.api import cds, cds_auth, problems, route_index
from medloop.api.auth import TokenVerifier
from medloop.api.config import ApiSettings
from medloop.api.cors import FhirCors
from medloop.api.deps import ApiState
from medloop.api.docs import DOCS_HTML
from medloop.api.hot import HotRoutes
from medloop.api.limits import _NO_BODY, BodyGuard, refuse
from medloop.api.problems import Problem, responses
from medloop.api.routes import (
    catalogue,
    eresept,
    gp,
    multidose,
    nursing,
    observations,
    ops,
    patient,
    pharmacy,
    reports,
    review,
)
from medloop.api.routing import route_limiter
from medloop.ops import logs, metrics
from medloop.store.replicas import ReadRouter

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

PAGE_PREFIX = "/app/"
_NOSNIFF = (b"x-content-type-options", b"nosniff")
# An address of a page holds a patient's id, and a search's query a national id: sent to this
# origin's own pages only.
_REFERRER = (b"referrer-policy", b"same-origin")
PAGE_SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    # Only this origin's scripts, styles, pictures and fetches (the pages have no inline
    # script or style, and their drawn SVG none either); no plug-ins, no <base>; no page of
    # another origin may frame them (a framed page could be clicked through unseen: its forms
    # carry their CSRF token). ``form-action`` is not set: the OpenID Connect sign-in and
    # sign-out are forms redirected to the issuer, whose origin is the operator's.
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers without CSP level 2
    _NOSNIFF,
    _REFERRER,
    (b"cross-origin-opener-policy", b"same-origin"),
)
"""What every HTML response under ``/app/`` (a page, a redirect, a refusal or error page)
carries besides its own headers (``RequestId``)."""
PAGE_FILE_HEADERS: tuple[tuple[bytes, bytes], ...] = (_NOSNIFF, _REFERRER)
"""What any other response under ``/app/`` carries (a script, a style sheet, a review's PDF
shown by the browser's own viewer, a report's CSV): no page policy for what is no page."""


NO_STORE = (b"cache-control", b"no-store")
"""What every response outside ``/app/`` carries unless it sets its own ``Cache-Control``: a
list, a chart, a FHIR resource or a problem names a patient, and no cache may keep it (a
browser's disk cache on a ward's shared computer included). A client's own conditional read
(``If-None-Match`` with the ``ETag`` it kept) still answers 304: that is the client's copy, not
an HTTP cache's. The pages set ``no-store`` themselves and leave their static files cacheable."""


def add_edge_headers(headers: list, page: bool) -> None:
    """Adds to ``headers`` (a response's ASGI pairs, a list of the edge's own) what the edge
    adds besides the request id: under ``/app/`` (``page``) ``page_security_headers``,
    elsewhere ``nosniff`` (no browser takes a JSON answer for a script or a page) and
    ``NO_STORE`` when the response has no ``Cache-Control`` of its own."""
    if page:
        headers += page_security_headers(headers)
        return
    headers.append(_NOSNIFF)
    for name, _ in headers:
        if name == b"cache-control":
            return
    headers.append(NO_STORE)


def page_security_headers(headers: Any) -> tuple[tuple[bytes, bytes], ...]:
    """The headers to add to a response under ``/app/`` with ``headers`` (ASGI's pairs): the
    page's for HTML or a response without a body type, the file's for any other type."""
    for name, value in headers:
        if name == b"content-type":
            return PAGE_SECURITY_HEADERS if value.startswith(b"text/html") else PAGE_FILE_HEADERS
    return PAGE_SECURITY_HEADERS


DESCRIPTION = """\
Closed-loop medication management on the FEST catalogue: one shared medication list per
patient, written by GPs, pharmacies and nursing homes through commands with decision support.

* **Authentication**: bearer JWTs (claims `sub`, `role`, `org`); `medloop token` signs
  development tokens.
* **Concurrency**: a list's `ETag` is its version; writes send it back in `If-Match` (428
  without it, 412 with the current version and what changed when stale).
* **Retries**: every POST accepts `Idempotency-Key`; a retry returns the first response.
* **Errors**: RFC 9457 `application/problem+json` with a stable `type` per refusal.
* **Alerts** that need an override answer 409 `override-required`; repeat the call with
  `overrides: {alert key: reason}`.
"""


def create_app(
    settings: ApiSettings | None = None,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] | None = None,
    cds_settings: cds_auth.CdsSettings | None = None,
) -> FastAPI:
    """The API over ``engine`` (default: a migrated engine on ``settings.database_url``);
    ``cds_settings`` (default: from the environment) are the trusted CDS clients and origins."""
    settings = settings or ApiSettings.from_env()
    cds_settings = cds_settings or cds_auth.CdsSettings.from_env(settings.issuer)
    if engine is None:
        from medloop.store.db import make_engine
        from medloop.store.migrate import upgrade

        engine = make_engine(settings.database_url)
        upgrade(engine)
    app = MedloopApp(
        title="medloop",
        version="0.1.0",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    reads = ReadRouter.from_env(engine) if engine.dialect.name == "postgresql" else None
    state = ApiState(engine=engine, verifier=TokenVerifier(settings), reads=reads)
    if clock is not None:
        state = ApiState(engine=engine, verifier=state.verifier, clock=clock, reads=reads)
    app.state.api = state
    app.state.settings = settings
    app.state.route_limiter = route_limiter(settings.route_threads)
    problems.install(app)

    logs.ensure_configured()
    # Inner first: RequestId (outermost) gives even a refused body its request id.
    cds_clients = cds_auth.CdsClientVerifier(cds_settings)
    app.state.cds_clients = cds_clients
    app.add_middleware(
        BodyGuard,
        limit=settings.max_body_bytes,
        verifier=cds_auth.BodyVerifier(state.verifier, cds_clients),
        # The pages authenticate with their session cookie (checked before the form is read).
        page_prefix="/app/",
    )
    # CORS inside RequestId: a preflight (answered by the CORS layer itself) is logged, counted
    # and answered with its request id and the edge's headers like any other request.
    if cds_settings.origins:
        app.add_middleware(cds_auth.CdsCors, origins=cds_settings.origins)
    if settings.fhir_cors_origins:
        app.add_middleware(FhirCors, origins=settings.fhir_cors_origins)
    app.add_middleware(RequestId, engine=engine, access_log=settings_access_log())

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_HTML)

    modules = (
        gp,
        pharmacy,
        multidose,
        nursing,
        reports,
        catalogue,
        patient,
        observations,
        review,
        eresept,
        cds,
        ops,
    )
    for module in modules:
        app.include_router(module.router)
    from medloop import fhir as _fhir_package  # noqa: F401 - the FHIR face (translation only)
    from medloop.fhir import bulk as fhir_bulk
    from medloop.fhir import outcome as fhir_outcome
    from medloop.fhir import router as fhir_router
    from medloop.fhir import writes as fhir_writes

    fhir_routers = (
        fhir_router.router,
        fhir_writes.router,
        fhir_bulk.router,
        fhir_router.well_known,
    )
    for found in fhir_routers:
        app.include_router(found)
    # The FHIR routes alone, for requests under /fhir/ (api.hot.HotRoutes).
    app.state.fhir_router = fhir_router.dispatch_router(
        app, [found for found in fhir_routers if found.prefix == "/fhir"]
    )
    # Every error under /fhir is an OperationOutcome (the problem handlers, re-expressed).
    fhir_outcome.install(app)
    # Every route with its full path, for the ``Allow`` of a 405 (``problems``).
    app.state.routes = tuple(
        route for router in (*(m.router for m in modules), *fhir_routers) for route in router.routes
    )
    _with_problem_schema(app)
    # The web pages (medloop.pages): same state, policy and commands, under /app.
    from medloop import pages
    from medloop.pages.oidc import OidcConfig

    pages.install(
        app,
        session_lifetime=timedelta(seconds=settings.session_lifetime_seconds),
        demo_sign_in=settings.demo_sign_in,
        oidc=OidcConfig.from_settings(settings),
    )
    return app


class MedloopApp(FastAPI):
    """FastAPI with the two hot routes' own dispatch (``api.hot.HotRoutes``) in front of its
    router, inside the exception handlers; ``app.state.hot_routes = False`` before the first
    request leaves every request to the generic path (the tests compare the two).

    FastAPI 0.165 asks OpenTelemetry's API on every request whether a tracer, meter or logger
    provider is configured (``NativeTelemetry.enabled``: three getters, each looking its
    variable up in ``os.environ`` through ``Mapping.__contains__``, 4-6 us of the event loop a
    request, issue #20), and serves the request without telemetry when none is. ``__call__``
    answers the same question from what those getters read (``_telemetry_unset``) and, when
    no provider can be configured, serves the request as FastAPI then does; otherwise FastAPI
    decides, so an operator who installs an OpenTelemetry SDK (at start-up, at any later
    moment, or by its environment variables) gets every span, metric and log record as
    before."""

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self._telemetry_unset = _telemetry_unset(getattr(self, "_telemetry", None))
        self._lean: tuple[Any, Any, _Edge | None] | None = None
        """(the middleware stack, the same stack without the two layers of FastAPI's that
        have nothing to do for a request served without telemetry and without a body limit
        of FastAPI's: ``_without_idle_layers``, and that stack's outer layers in one frame
        when they are the ones ``_Edge`` does: ``_edge``)."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "HEAD"
            and problems.head_served(scope["path"])
        ):
            await _head(self, scope, receive, send)
            return
        unset = self._telemetry_unset
        if (
            unset is not None
            and scope["type"] == "http"
            and "fastapi.telemetry" not in scope
            and unset()
        ):
            # FastAPI.__call__ for an HTTP request when NativeTelemetry.enabled() is false:
            # Starlette.__call__, through the lean stack when it applies.
            if self.root_path:
                scope["root_path"] = self.root_path
            lean = self._lean
            if (
                lean is not None
                and lean[0] is self.middleware_stack
                and MAX_BODY_SIZE_SCOPE_KEY not in scope
            ):
                scope["app"] = self
                if lean[2] is not None:
                    await lean[2](scope, receive, send)
                else:
                    await lean[1](scope, receive, send)
                return
            await Starlette.__call__(self, scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def build_middleware_stack(self) -> Any:
        """FastAPI's stack with ``HotRoutes`` in front of the router. FastAPI's innermost layer,
        ``AsyncExitStackMiddleware``, puts an exit stack in the scope for one reader only: its
        generic route handler (the files of a form). ``HotRoutes`` goes in front of that
        layer, which wraps what it hands on (the router, the FHIR routes): a hot route's
        request has no use for the exit stack and does not make one (issue #20)."""
        stack = super().build_middleware_stack()
        # Each included router says "no match" at once for a path none of its routes begins
        # like (api.route_index): the same route answers, without trying every pattern.
        route_index.index_routers(self.router)
        if not getattr(self.state, "hot_routes", True):
            return stack
        parent, layer = None, stack
        while getattr(layer, "app", None) is not self.router:
            parent, layer = layer, getattr(layer, "app", None)
            if layer is None:
                return stack
        if parent is not None and type(layer) is AsyncExitStackMiddleware:
            hot = HotRoutes(self, self.router, fallback=layer)
            if hot.fhir is not None:
                hot.fhir = AsyncExitStackMiddleware(hot.fhir, context_name=layer.context_name)
            parent.app = hot
        else:
            layer.app = HotRoutes(self, self.router)
        lean = _without_idle_layers(stack, getattr(self, "max_body_size", False))
        self._lean = None if lean is None else (stack, lean, _edge(lean))
        return stack


class RequestId:
    """Gives every request an id (the client's ``X-Request-ID`` when it is a sane token, else a
    new random UUID), kept in ``request.state.request_id`` for the audit log, bound to the log
    context and echoed in the response (with ``page_security_headers`` under ``/app/``); and
    observes the request when it is done: its latency
    in the route-template histogram (``/metrics``) and one access-log line (route template,
    method, status, milliseconds, request id: never the path itself, which can hold a query
    with a national id). Plain ASGI: no extra task per request.

    The UUIDs come from ``random`` rather than ``uuid4``: an id is a correlation handle, not a
    secret, and ``uuid4``'s ``os.urandom`` system call gives up the GIL in the event loop's
    thread, which then queues behind the route threads to get it back."""

    def __init__(self, app: Any, engine: Engine | None = None, access_log: bool = True) -> None:
        self.app = app
        self._access_log = access_log
        self._pool = getattr(engine, "pool", None) if engine is not None else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        logs.bind_request(request_id)
        status = 500
        page = scope["path"].startswith(PAGE_PREFIX)

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
                add_edge_headers(headers, page)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._observe(scope, status, time.perf_counter() - started)
            logs.unbind_request()

    def _observe(self, scope: dict, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = "HEAD" if HEAD in scope else scope["method"]
        metrics.request_finished(template, method, status, seconds)
        pool = self._pool
        if pool is not None and hasattr(pool, "checkedout"):
            metrics.pool_in_use(pool.checkedout(), pool.size())
        if self._access_log:
            logs.access(template, method, status, round(seconds * 1000, 2))


HEAD = "medloop.head"
"""In a request's scope: it came as ``HEAD`` and is served as ``GET`` (``_head``)."""


async def _head(app: Any, scope: dict, receive: Any, send: Any) -> None:
    """A ``HEAD`` request, answered as its ``GET`` would be without the content (RFC 9110
    9.3.2: every general-purpose server supports GET and HEAD): the same status and headers,
    ``Content-Length`` included, and the same audit of a read, since the headers (an
    ``ETag``, say) tell of what was read. An operation that a ``GET`` starts (a FHIR
    ``$export``) is not started by a ``HEAD``, which its route then refuses (405:
    ``problems.head_served``)."""

    async def without_content(message: dict) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            message = {**message, "body": b""}
        await send(message)

    await app({**scope, "method": "GET", HEAD: True}, receive, without_content)


def request_id_of(scope: dict) -> str:
    """The request's id: its first ``X-Request-ID`` when that is a sane token, else a new one."""
    given = ""
    for name, value in scope["headers"]:  # the first X-Request-ID, as given
        if name == b"x-request-id":
            given = value.decode("latin-1")
            break
    return given if _REQUEST_ID.match(given) else random_request_id()


def _without_idle_layers(stack: Any, max_body_size: Any) -> Any:
    """``stack`` (FastAPI 0.165's: ``ServerErrorMiddleware``, ``ExceptionTelemetryMiddleware``,
    ``AppBodyLimitMiddleware``, then the app's own middleware) without its second and third
    layers, for a request that neither has anything to do with (``MedloopApp.__call__``):
    served without telemetry (no ``fastapi.telemetry`` in its scope, which is all
    ``ExceptionTelemetryMiddleware`` reads when an exception passes it) and without a body
    limit of FastAPI's (the app sets none, and no ``starlette.max_body_size`` is in its scope:
    ``AppBodyLimitMiddleware`` then only calls what it wraps). The first layer is a copy of
    the stack's own, so every layer below is shared. ``None`` when the stack is not of that
    shape. Two coroutine frames less a request (issue #20)."""
    if max_body_size is not None or type(stack) is not ServerErrorMiddleware:
        return None
    telemetry = stack.app
    if type(telemetry) is not ExceptionTelemetryMiddleware:
        return None
    limit = telemetry.app
    if type(limit) is not AppBodyLimitMiddleware:
        return None
    lean = copy.copy(stack)
    lean.app = limit.app  # what AppBodyLimitMiddleware wraps when it has no limit: the app's own
    return lean


class _Edge:
    """The lean stack's four outer layers for one request in one frame: Starlette's
    ``ServerErrorMiddleware``, ``RequestId``, ``BodyGuard`` and Starlette's
    ``ExceptionMiddleware``, each of which otherwise awaits the next, and three of which wrap
    ``send`` for both of a response's messages (and ``ExceptionMiddleware`` makes a ``Request``
    and a wrapper coroutine per request). Here one wrapper does what the three did to a message
    (the response counted as started, its status kept, the request id's header and a page's
    security headers added), and each layer's work is done in its order by that layer's own
    code: ``request_id_of`` and ``RequestId._observe``; ``BodyGuard.admit``, ``.limited`` and
    ``limits.refuse``; ``ExceptionMiddleware``'s own handler tables (looked up on an exception
    as it does, its ``Request`` made then); ``ServerErrorMiddleware``'s own 500 handler,
    answering with the unwrapped ``send`` only when no response started, and the exception
    raised on to the server. What the four wrap (``ExceptionMiddleware.app``, ``HotRoutes``) is
    read at each request. ``MedloopApp.__call__`` sends a request here only through the lean
    stack (``_without_idle_layers``) and only when that stack is exactly these four around what
    they wrap (no ``CdsCors`` or ``FhirCors``, not in debug). Issue #20."""

    def __init__(
        self,
        errors: ServerErrorMiddleware,
        request_id: RequestId,
        guard: BodyGuard,
        exceptions: ExceptionMiddleware,
    ) -> None:
        self.errors = errors
        self.request_id = request_id
        self.guard = guard
        self.exceptions = exceptions
        self.handlers = (exceptions._exception_handlers, exceptions._status_handlers)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        started_at = time.perf_counter()
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        logs.bind_request(request_id)
        status = 500
        started = False
        header = (b"x-request-id", request_id.encode())
        page = scope["path"].startswith(PAGE_PREFIX)  # (``RequestId``'s page headers)

        async def sender(message: dict) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = message["headers"] = [*message.get("headers", []), header]
                add_edge_headers(headers, page)
            await send(message)

        try:
            try:
                if scope["method"] not in _NO_BODY:  # BodyGuard
                    guard = self.guard
                    refusal = guard.admit(scope)
                    if refusal is not None:
                        await refuse(scope, receive, sender, *refusal)
                        return
                    receive = guard.limited(receive)
                # ExceptionMiddleware
                handlers = scope["starlette.exception_handlers"] = self.handlers
                try:
                    await self.exceptions.app(scope, receive, sender)
                except Exception as exc:
                    handler = None
                    if isinstance(exc, HTTPException):
                        handler = handlers[1].get(exc.status_code)
                    if handler is None:
                        handler = _lookup_exception_handler(handlers[0], exc)
                    if handler is None:
                        raise exc
                    if started:
                        raise RuntimeError(
                            "Caught handled exception, but response already started."
                        ) from exc
                    conn = Request(scope, receive, sender)
                    if is_async_callable(handler):
                        response = await handler(conn, exc)
                    else:
                        response = await run_in_threadpool(handler, conn, exc)
                    if response is not None:
                        await response(scope, receive, sender)
                    # Reused exception instances accumulate tracebacks across requests.
                    exc.__traceback__ = None
            finally:  # RequestId
                self.request_id._observe(scope, status, time.perf_counter() - started_at)
                logs.unbind_request()
        except Exception as exc:  # ServerErrorMiddleware (not in debug)
            errors = self.errors
            request = Request(scope)
            if errors.handler is None:
                response = errors.error_response(request, exc)
            elif is_async_callable(errors.handler):
                response = await errors.handler(request, exc)
            else:
                response = await run_in_threadpool(errors.handler, request, exc)
            if not started:
                await response(scope, receive, send)
            raise exc


def _edge(lean: Any) -> _Edge | None:
    """The one-frame edge for ``lean`` (``_Edge``), or ``None`` when its layers are not
    exactly ``ServerErrorMiddleware`` (not in debug), ``RequestId``, ``BodyGuard`` and
    ``ExceptionMiddleware``, in that order."""
    if lean is None or type(lean) is not ServerErrorMiddleware or lean.debug:
        return None
    request_id = lean.app
    guard = getattr(request_id, "app", None)
    exceptions = getattr(guard, "app", None)
    if (
        type(request_id) is not RequestId
        or type(guard) is not BodyGuard
        or type(exceptions) is not ExceptionMiddleware
        # The attributes of Starlette's this reads (another Starlette: the layers one by one).
        or not all(
            hasattr(exceptions, name) for name in ("_exception_handlers", "_status_handlers")
        )
        or not all(hasattr(lean, name) for name in ("handler", "error_response"))
    ):
        return None
    return _Edge(lean, request_id, guard, exceptions)


def _telemetry_unset(config: Any) -> Callable[[], bool] | None:
    """A check that is true only when FastAPI's ``NativeTelemetry(config).enabled()`` is false
    because no provider is configured anywhere: ``config`` names none, and each of
    OpenTelemetry's global tracer, meter and logger providers is unset and its environment
    variable (which the getter would load it from) is not in the process environment
    (``settings.none_of_these_set``: read live, as the getters read it). When it is true, each
    getter answers its proxy provider, which ``enabled()`` counts as unconfigured. ``None``
    when OpenTelemetry's API is not the one this was written for (FastAPI then always
    decides)."""
    try:
        from opentelemetry import trace
        from opentelemetry._logs import _internal as logs_api
        from opentelemetry.metrics import _internal as metrics_api
    except ImportError:
        return None
    if not isinstance(config, dict) or any(
        config.get(name, False) is not None
        for name in ("tracer_provider", "meter_provider", "logger_provider")
    ):
        return None
    globals_ = ((trace, "_TRACER_PROVIDER"), (metrics_api, "_METER_PROVIDER"))
    globals_ += ((logs_api, "_LOGGER_PROVIDER"),)
    names = (
        getattr(trace, "OTEL_PYTHON_TRACER_PROVIDER", None),
        getattr(metrics_api, "OTEL_PYTHON_METER_PROVIDER", None),
        getattr(logs_api, "_OTEL_PYTHON_LOGGER_PROVIDER", None),
    )
    if not all(isinstance(name, str) for name in names) or not all(
        hasattr(module, name) for module, name in globals_
    ):
        return None
    none_set = settings_module.none_of_these_set(names)
    if none_set is None:
        return None

    def unset() -> bool:
        return (
            trace._TRACER_PROVIDER is None
            and metrics_api._METER_PROVIDER is None
            and logs_api._LOGGER_PROVIDER is None
            and none_set()
        )

    return unset


_V4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_V4_SET = (0x8000 << 48) | (4 << 76)


def random_request_id() -> str:
    """A new request id: ``str(uuid.UUID(int=random.getrandbits(128), version=4))``, the same
    bits set and cleared and the same text, written out directly: the ``UUID`` object's
    checks and attribute writes cost the event loop 1-2 us a request of the 2-3 us
    (issue #20)."""
    digits = "%032x" % ((random.getrandbits(128) & _V4_CLEAR) | _V4_SET)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def operation_id(route: APIRoute) -> str:
    """A route's OpenAPI operationId when it names none: its function's name in camelCase
    (``call_service`` → ``callService``), short and stable for generated clients."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def settings_access_log() -> bool:
    """``MEDLOOP_ACCESS_LOG=off`` drops the per-request log line (metrics stay)."""
    from medloop.settings import current

    return current().ops.access_log


def from_env() -> FastAPI:
    """The app configured from the environment, for running uvicorn by hand
    (``uvicorn --factory medloop.api.app:from_env``; ``medloop serve`` passes its settings to its
    workers itself: ``medloop.api.server.SettingsConfig``)."""
    from medloop.api.server import settle_heap

    app = create_app(ApiSettings.from_env())
    settle_heap()
    logs.lean_records()
    return app


def _with_problem_schema(app: FastAPI) -> None:
    """Publish the ``Problem`` schema the error responses refer to, with the 413 of every
    operation that takes a body and the 422 of every operation (an undeclared query
    parameter)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            too_large = responses(413)[413]
            invalid = responses(422)[422]
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    if not isinstance(operation, dict):
                        continue
                    if "requestBody" in operation:
                        operation.setdefault("responses", {}).setdefault("413", too_large)
                    # Every route refuses a query parameter it does not declare (routing.py).
                    operation.setdefault("responses", {}).setdefault("422", invalid)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
