"""The event loop's side of a request (issue #20): FastAPI's OpenTelemetry check answered
from what OpenTelemetry's getters read, and FastAPI's exit stack kept for the requests that
use it."""

from __future__ import annotations

import logging
import uuid

import opentelemetry.trace as otel_trace
import pytest
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.testclient import TestClient
from opentelemetry._logs import _internal as otel_logs
from opentelemetry.metrics import _internal as otel_metrics
from pydantic import ValidationError

from medloop.api import hot
from medloop.api.app import _telemetry_unset, create_app
from medloop.api.config import ApiSettings
from tests.api.helpers import GP_TOKEN, AccessLines


@pytest.fixture
def app(engine):
    return create_app(ApiSettings.from_env("sqlite://"), engine=engine)


class _Seen:
    """FastAPI's ``NativeTelemetry`` of an app, noting each request it was asked about and
    each it served."""

    def __init__(self, native) -> None:
        self.native = native
        self.asked = 0
        self.served = 0

    def enabled(self) -> bool:
        self.asked += 1
        return self.native.enabled()

    async def __call__(self, **arguments) -> None:
        self.served += 1
        await self.native(**arguments)


@pytest.mark.parametrize(
    "configured",
    [
        (otel_trace, "_TRACER_PROVIDER", otel_trace.NoOpTracerProvider),
        (otel_metrics, "_METER_PROVIDER", otel_metrics.NoOpMeterProvider),
        (otel_logs, "_LOGGER_PROVIDER", otel_logs.NoOpLoggerProvider),
    ],
)
def test_telemetry_is_left_out_only_while_no_provider_is_configured(app, configured, monkeypatch):
    """No provider anywhere: the request is served without asking OpenTelemetry (the check
    reads its globals). A provider set at any moment (here after the app started), or its
    environment variable, and FastAPI decides again: its telemetry serves the request."""
    seen = app._native_telemetry = _Seen(app._native_telemetry)
    with TestClient(app) as client:
        assert client.get("/health/live").status_code == 200
        assert (seen.asked, seen.served) == (0, 0)
        module, name, provider = configured  # an SDK's kind: not the deferred proxy
        monkeypatch.setattr(module, name, provider())
        assert app._telemetry_unset() is False
        assert client.get("/health/live").status_code == 200
        assert (seen.asked, seen.served) == (1, 1)
        monkeypatch.setattr(module, name, None)
        assert client.get("/health/live").status_code == 200
        assert (seen.asked, seen.served) == (1, 1)


@pytest.mark.parametrize(
    "variable",
    ["OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER", "OTEL_PYTHON_LOGGER_PROVIDER"],
)
def test_a_provider_named_in_the_environment_leaves_the_decision_to_fastapi(app, variable):
    import os

    assert app._telemetry_unset() is True
    os.environ[variable] = "sdk"
    try:
        assert app._telemetry_unset() is False
    finally:
        del os.environ[variable]
    assert app._telemetry_unset() is True


def test_a_provider_given_to_fastapi_itself_is_never_left_out():
    assert _telemetry_unset({"tracer_provider": None, "meter_provider": None,
                             "logger_provider": None}) is not None  # fmt: skip
    for name in ("tracer_provider", "meter_provider", "logger_provider"):
        config = {"tracer_provider": None, "meter_provider": None, "logger_provider": None}
        config[name] = object()
        assert _telemetry_unset(config) is None
    assert _telemetry_unset({}) is None
    assert _telemetry_unset(None) is None


def test_the_exit_stack_wraps_what_the_hot_routes_hand_on_and_only_that(app):
    """FastAPI's exit stack (its generic route handler closes a form's files with it) is in
    the scope of every request the router or the FHIR routes serve; a hot route's request,
    which never reaches FastAPI's handler, does not make one."""
    with TestClient(app) as client:
        client.get("/docs")  # builds the middleware stack
        parent = app.middleware_stack
        while not isinstance(parent.app, hot.HotRoutes):
            parent = parent.app
        layer = parent.app
        assert type(layer.app) is AsyncExitStackMiddleware and layer.app.app is app.router
        assert layer.router is app.router
        assert type(layer.fhir) is AsyncExitStackMiddleware
        stacks: list[tuple[str, bool]] = []

        def spy(inner):
            async def seeing(scope, receive, send):
                stacks.append((scope["path"], "fastapi_middleware_astack" in scope))
                await inner(scope, receive, send)

            return seeing

        layer.app.app = spy(layer.app.app)
        layer.fhir.app = spy(layer.fhir.app)
        headers = {"Authorization": f"Bearer {GP_TOKEN}"}
        assert client.get("/docs").status_code == 200
        assert client.get("/fhir/metadata", headers=headers).status_code == 200
        reached = client.get(f"/patients/{'0' * 8}-0000-4000-8000-{'0' * 12}/list", headers=headers)
        assert reached.status_code == 404
    assert stacks == [("/docs", True), ("/fhir/metadata", True)]


def test_fastapi_s_idle_layers_are_left_out_only_when_they_have_nothing_to_do(app, monkeypatch):
    """Without telemetry and without a body limit in the scope, a request skips FastAPI's
    ``ExceptionTelemetryMiddleware`` and ``AppBodyLimitMiddleware`` (every layer below is the
    stack's own); with a provider configured, or a body limit set by an app around this one,
    it goes through the whole stack. An exception still reaches the server-error layer."""
    import asyncio

    from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

    with TestClient(app, raise_server_exceptions=False) as client:
        client.get("/docs")  # builds the middleware stack
        stack = app.middleware_stack
        assert app._lean is not None and app._lean[0] is stack
        lean = app._lean[1]
        assert type(lean) is type(stack) and lean.app is stack.app.app.app
        passed: list[str] = []
        telemetry_layer = stack.app

        async def counted(scope, receive, send):
            passed.append(scope["path"])
            await telemetry_layer(scope, receive, send)

        stack.app = counted
        assert client.get("/health/live").status_code == 200
        assert passed == []
        monkeypatch.setattr(otel_trace, "_TRACER_PROVIDER", otel_trace.NoOpTracerProvider())
        assert client.get("/health/live").status_code == 200
        assert passed == ["/health/live"]
        monkeypatch.setattr(otel_trace, "_TRACER_PROVIDER", None)

        sent: list[dict] = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": "/health/live", "raw_path": b"/health/live",
            "root_path": "", "query_string": b"", "headers": [], "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80), MAX_BODY_SIZE_SCOPE_KEY: 10**6,
        }  # fmt: skip
        asyncio.run(app(scope, receive, send))
        assert passed == ["/health/live", "/health/live"]
        assert sent[0]["status"] == 200

        def broken(*args, **kwargs):
            raise RuntimeError("a route that fails")

        layer = lean
        while not isinstance(layer.app, hot.HotRoutes):
            layer = layer.app
        monkeypatch.setattr(layer.app, "app", broken)
        failed = client.get("/health/live")
        assert failed.status_code == 500 and passed == ["/health/live", "/health/live"]


def test_the_hot_routes_validate_with_each_field_s_own_validator_as_fastapi_does(app):
    """The hot routes call each field's pydantic validator directly: every value gets what
    FastAPI's ``ModelField.validate`` gives it (the same value, or an error, which sends the
    request to the generic path)."""
    from tests.api.helpers import prescribe_body

    with TestClient(app) as client:
        client.get("/docs")
    layer = app.middleware_stack
    while not isinstance(layer, hot.HotRoutes):
        layer = layer.app
    prescribe, read_list = layer.prescribe, layer.read_list
    assert len(prescribe.checks) == 4 and len(read_list.checks) == 2
    ids = [str(uuid.uuid4()), "not-a-uuid", "", "0" * 32, str(uuid.uuid4()).upper(), 7]
    tags = ['"3"', 'W/"3"', "3", '"x"', "*", "", None, '"3", "4"', 7]
    body = prescribe_body("090436")
    bodies = [
        body, {}, {**body, "use": "sometimes"}, {**body, "drug": {}}, {**body, "start": "x"},
        {**body, "extra": 1}, [body], None, "text", {**body, "terms": None},
    ]  # fmt: skip
    cases = [
        (prescribe, prescribe.patient_id, ids),
        (prescribe, prescribe.if_match, tags),
        (prescribe, prescribe.key, [*ids, None, "k" * 300]),
        (prescribe, prescribe.body, bodies),
        (read_list, read_list.patient_id, ids),
        (read_list, read_list.seen, tags),
    ]
    outcomes = set()
    for plan, field, values in cases:
        # and each field's one callable the routes call (``_Plan.validating``)
        validating = plan.validating(field)
        assert validating.__name__ == "validated"  # the field's own validator, directly
        for value in values:
            found, errors = field.validate(value, {}, loc=("hot",))
            if errors:
                with pytest.raises(hot._Fallback):
                    plan.valid(field, value)
                with pytest.raises((ValidationError, hot._Fallback)):
                    validating(value)
            else:
                assert plan.valid(field, value) == found
                assert validating(value) == found
                assert type(validating(value)) is type(found)
            outcomes.add(bool(errors))
    named = [
        (prescribe.patient_id_of, prescribe.patient_id),
        (prescribe.if_match_of, prescribe.if_match),
        (prescribe.key_of, prescribe.key),
        (prescribe.body_of, prescribe.body),
        (read_list.patient_id_of, read_list.patient_id),
        (read_list.seen_of, read_list.seen),
    ]
    for validating, field in named:
        assert validating.__name__ == "validated"
        assert validating.__closure__[0].cell_contents == (
            field._type_adapter.validator.validate_python
        )
    assert outcomes == {True, False}


class _NotHere:
    """A layer no request may reach."""

    async def __call__(self, scope, receive, send) -> None:
        raise AssertionError(f"{scope['path']} went through the layers one by one")


def test_the_outer_layers_in_one_frame_answer_as_the_layers_one_by_one(engine, monkeypatch):
    """``app._Edge`` (server errors, request id, body guard, exception handlers in one frame)
    gives every request what the four layers give it one by one: the same status, headers,
    body and access line, on the ordinary path and on every error path — a refusal before the
    body (401, 413), a body too large while it streams (413 from the exception handlers), a
    route raising an error that has a handler, and one raising a bug (500 from the server-error
    layer, without the request id's header, as before)."""
    from starlette.exceptions import HTTPException

    from medloop.api.app import _Edge
    from tests.loop.helpers import demo_world

    monkeypatch.setenv("MEDLOOP_MAX_BODY_BYTES", "2048")
    patient = demo_world(engine)
    apps = {
        which: create_app(ApiSettings.from_env("sqlite://"), engine=engine)
        for which in ("edge", "layers")
    }
    lines = AccessLines()
    access = logging.getLogger("medloop.access")
    access.addHandler(lines)
    clients = {
        which: TestClient(found, raise_server_exceptions=False) for which, found in apps.items()
    }
    try:
        for which, client in clients.items():
            client.get("/docs")  # builds the middleware stack
            stack, lean, edge = apps[which]._lean
            assert type(edge) is _Edge
            apps[which]._lean = (
                (stack, _NotHere(), edge) if which == "edge" else (stack, lean, None)
            )
        gp = {"Authorization": f"Bearer {GP_TOKEN}"}
        json_type = {"Content-Type": "application/json"}
        prescriptions = f"/patients/{patient}/prescriptions"
        write = {**gp, **json_type, "If-Match": '"0"', "Idempotency-Key": str(uuid.uuid4())}
        body = b'{"entry_id": "x"}'

        def chunks():
            yield b"{" + b" " * 3000 + b"}"

        def raising(error):
            async def endpoint(**arguments):
                raise error

            return endpoint

        cases = [
            ("GET", "/health/live", {}, None, None),
            ("GET", f"/patients/{patient}/list", gp, None, None),
            ("GET", f"/patients/{patient}/list", {}, None, None),
            ("POST", prescriptions, {**json_type}, body, None),
            ("POST", prescriptions, {**gp, **json_type}, b"{" + b" " * 3000 + b"}", None),
            ("POST", prescriptions, {**gp, **json_type}, chunks, None),
            ("POST", prescriptions, write, b"{}", None),
            ("GET", f"/patients/{patient}/list", gp, None, HTTPException(404, "not here")),
            ("GET", f"/patients/{patient}/list", gp, None, RuntimeError("a bug")),
            ("GET", "/app/static/gp.js", {}, None, None),  # a page's: its security headers
            ("GET", "/app/static/medloop.css", {}, None, None),
            ("GET", "/app/no-such-page", {}, None, None),
        ]
        answers: dict[str, list] = {"edge": [], "layers": []}
        for n, (method, path, headers, content, error) in enumerate(cases):
            for which, client in clients.items():
                layer = apps[which].middleware_stack
                while not isinstance(layer, hot.HotRoutes):
                    layer = layer.app
                plan = layer.read_list
                original = plan.endpoint
                if error is not None:
                    plan.endpoint = raising(error)
                lines.lines.clear()
                try:
                    response = client.request(
                        method,
                        path,
                        headers={**headers, "X-Request-ID": f"edge-{n}"},
                        content=content() if callable(content) else content,
                    )
                finally:
                    plan.endpoint = original
                answers[which].append(
                    (
                        response.status_code,
                        sorted(response.headers.items()),
                        response.content,
                        lines.lines[:],
                    )
                )
    finally:
        access.removeHandler(lines)
    assert answers["edge"] == answers["layers"]
    statuses = [answer[0] for answer in answers["edge"]]
    assert statuses == [200, 200, 401, 401, 413, 413, 422, 404, 500, 200, 200, 404]
    assert all(len(answer[3]) == 1 for answer in answers["edge"])
    # Every answer carries its request id, the unexpected failure's 500 too (its handler adds
    # the header itself: Starlette's server-error layer answers outside RequestId).
    assert all(
        answer[1].count(("x-request-id", f"edge-{n}")) == 1
        for n, answer in enumerate(answers["edge"])
    )
    # No cache may keep an answer outside the pages (it can name a patient), the unexpected
    # failure's included; the pages' static files stay cacheable.
    assert all(
        answer[1].count(("cache-control", "no-store")) == 1 for answer in answers["edge"][:9]
    )
    files, page = [dict(a[1]) for a in answers["edge"][9:11]], dict(answers["edge"][11][1])
    assert not any("cache-control" in f for f in files)
    assert all(f["x-content-type-options"] == "nosniff" for f in (*files, page))
    assert page["x-frame-options"] == "DENY" and "content-security-policy" in page
    assert not any("content-security-policy" in f for f in files)
    # nor a page's policy outside the pages; only that no browser sniffs a type
    assert not any("content-security-policy" in dict(a[1]) for a in answers["edge"][:9])
    assert all(
        answer[1].count(("x-content-type-options", "nosniff")) == 1 for answer in answers["edge"]
    )


def test_the_one_frame_edge_is_left_out_when_the_layers_are_not_the_four_it_does(app):
    """``_edge`` gives ``None`` (the layers one by one serve) for a stack in debug, or with
    another layer among the four (``CdsCors`` when CDS origins are configured)."""
    import copy

    from medloop.api.app import _edge

    with TestClient(app) as client:
        client.get("/docs")
    lean = app._lean[1]
    assert _edge(lean) is not None
    debug = copy.copy(lean)
    debug.debug = True
    assert _edge(debug) is None
    other = copy.copy(lean)
    other.app = _NotHere()
    assert _edge(other) is None
    assert _edge(None) is None


def test_a_field_without_its_own_validator_is_validated_by_fastapi_s_call(app):
    """``_Plan.validating`` for a field ``check_directly`` found no validator for: ``valid``,
    FastAPI's ``ModelField.validate``, with ``_Fallback`` for a value it refuses."""

    class Field:
        def validate(self, value, values, loc):
            return (value * 2, []) if value != "bad" else (None, ["refused"])

    with TestClient(app) as client:
        client.get("/docs")
    layer = app.middleware_stack
    while not isinstance(layer, hot.HotRoutes):
        layer = layer.app
    field = Field()
    layer.prescribe.check_directly(field)
    validating = layer.prescribe.validating(field)
    assert validating("ab") == "abab"
    with pytest.raises(hot._Fallback):
        validating("bad")
