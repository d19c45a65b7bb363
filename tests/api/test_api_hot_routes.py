"""The hot routes' own dispatch (``medloop.api.hot``) answers exactly as the generic FastAPI
path does: the same requests, sent to an app with it and an app without it over two copies of
one database, get the same status, headers and body bytes, and leave the same rows behind
(audit records included) — ordinary requests, which it serves, and malformed ones, which it
hands to the generic path."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import orjson
from fastapi.testclient import TestClient

from medloop.api import hot
from medloop.api.app import create_app
from medloop.api.config import ApiSettings
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.api.helpers import (
    GP_TOKEN,
    NURSE_TOKEN,
    PHARMACIST_TOKEN,
    AccessLines,
    prescribe_body,
)
from tests.loop.helpers import (
    ATORVASTATIN,
    KLARITROMYCIN,
    NOW,
    SIMVASTATIN_28,
    demo_world,
)
from tests.twins import Ticking, table_rows, twin_database
from tests.twins import masked as _masked


def _hot_layer(app) -> tuple[object, hot.HotRoutes]:
    """The hot routes' layer and the middleware in front of it."""
    parent = app.middleware_stack
    while not isinstance(parent.app, hot.HotRoutes):
        parent = parent.app
    return parent, parent.app


class _Counting:
    """The generic router behind ``HotRoutes``, counting the requests handed to it."""

    def __init__(self, app) -> None:
        self.app = app
        self.calls = 0

    async def __call__(self, scope, receive, send) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


VOLATILE = frozenset({"command_id", "occurred_at", "created_at", "prev_hash", "hash"})
"""Columns that differ between any two runs of the same requests: a command's random id, the
wall-clock moments of the audit log and the idempotency keys, and the audit chain's hashes
over them."""


def _expired() -> str:
    from datetime import UTC, datetime

    from medloop.api.auth import issue_token

    return issue_token("gp", "9999999", "123456785", now=datetime.now(UTC) - timedelta(hours=3))


class _Streamed:
    def __init__(self, data: bytes) -> None:
        self.data = data


def _cases(patient: str) -> list[tuple[str, str, str, dict[str, str], bytes | None, bool]]:
    """(name, method, path, headers, body, served by the hot path)."""
    prescriptions = f"/patients/{patient}/prescriptions"
    listed = f"/patients/{patient}/list"
    gp = {"Authorization": f"Bearer {GP_TOKEN}"}
    json_type = {"Content-Type": "application/json"}
    first = prescribe_body(SIMVASTATIN_28)

    def body(value) -> bytes:
        return orjson.dumps(value)

    cases = [
        ("read empty", "GET", listed, gp, None, True),
        ("read, current copy", "GET", listed, {**gp, "If-None-Match": '"0"'}, None, True),
        ("read, stale copy", "GET", listed, {**gp, "If-None-Match": '"7", W/"8"'}, None, True),
        (
            "read, If-None-Match too long",
            "GET",
            listed,
            {**gp, "If-None-Match": "1" * 1001},
            None,
            False,
        ),
        ("read, no token", "GET", listed, {}, None, False),
        ("read, not bearer", "GET", listed, {"Authorization": "Basic eDp5"}, None, False),
        ("read, garbage token", "GET", listed, {"Authorization": "Bearer x.y.z"}, None, False),
        (
            "read, pharmacist",
            "GET",
            listed,
            {"Authorization": f"Bearer {PHARMACIST_TOKEN}"},
            None,
            True,
        ),
        ("read, nurse", "GET", listed, {"Authorization": f"Bearer {NURSE_TOKEN}"}, None, True),
        ("read, query", "GET", listed + "?offset=1", gp, None, False),
        ("read, unknown patient", "GET", f"/patients/{uuid.uuid4()}/list", gp, None, True),
        ("read, upper-case id", "GET", f"/patients/{patient.upper()}/list", gp, None, True),
        ("read, not an id", "GET", "/patients/not-an-id/list", gp, None, False),
        (
            "read, repeated If-None-Match",
            "GET",
            listed,
            [*gp.items(), ("If-None-Match", '"0"'), ("If-None-Match", '"1"')],
            None,
            False,
        ),
        (
            "prescribe",
            "POST",
            prescriptions,
            {**gp, **json_type, "If-Match": '"0"', "Idempotency-Key": "k-1"},
            body(first),
            True,
        ),
        (
            "prescribe, replayed",
            "POST",
            prescriptions,
            {**gp, **json_type, "If-Match": '"0"', "Idempotency-Key": "k-1"},
            body(first),
            True,
        ),
        (
            "prescribe, key reused",
            "POST",
            prescriptions,
            {**gp, **json_type, "If-Match": '"1"', "Idempotency-Key": "k-1"},
            body(prescribe_body(ATORVASTATIN)),
            True,
        ),
        (
            "prescribe, stale",
            "POST",
            prescriptions,
            {**gp, **json_type, "If-Match": '"0"'},
            body(prescribe_body(ATORVASTATIN)),
            True,
        ),
        (
            "prescribe, needs override",
            "POST",
            prescriptions,
            {**gp, **json_type, "If-Match": 'W/"1"'},
            body(prescribe_body(KLARITROMYCIN)),
            True,
        ),
        (
            "prescribe, no If-Match",
            "POST",
            prescriptions,
            {**gp, **json_type},
            body(prescribe_body(ATORVASTATIN)),
            False,
        ),
        (
            "prescribe, bad If-Match",
            "POST",
            prescriptions,
            {**gp, **json_type, "If-Match": "one"},
            body(prescribe_body(ATORVASTATIN)),
            False,
        ),
        (
            "prescribe, key too long",
            "POST",
            prescriptions,
            {**gp, **json_type, "If-Match": '"1"', "Idempotency-Key": "k" * 201},
            body(prescribe_body(ATORVASTATIN)),
            False,
        ),
        (
            "prescribe, malformed JSON",
            "POST",
            prescriptions,
            {**gp, **json_type, "If-Match": '"1"'},
            b'{"entry_id": ',
            False,
        ),
        (
            "prescribe, NaN",
            "POST",
            prescriptions,
            {**gp, **json_type, "If-Match": '"1"'},
            b'{"x": NaN}',
            False,
        ),
        (
            "prescribe, empty body",
            "POST",
            prescriptions,
            {**gp, **json_type, "If-Match": '"1"'},
            b"",
            False,
        ),
        (
            "prescribe, a list",
            "POST",
            prescriptions,
            {**gp, **json_type, "If-Match": '"1"'},
            b"[]",
            False,
        ),
        (
            "prescribe, invalid field",
            "POST",
            prescriptions,
            {**gp, **json_type, "If-Match": '"1"'},
            body({**prescribe_body(ATORVASTATIN), "use": "sometimes"}),
            False,
        ),
        (
            "prescribe, text/plain",
            "POST",
            prescriptions,
            {**gp, "Content-Type": "text/plain", "If-Match": '"1"'},
            body(prescribe_body(ATORVASTATIN)),
            False,
        ),
        (
            "prescribe, no content type",
            "POST",
            prescriptions,
            {**gp, "If-Match": '"1"'},
            body(prescribe_body(ATORVASTATIN)),
            False,
        ),
        (
            "prescribe, +json",
            "POST",
            prescriptions,
            {**gp, "Content-Type": "application/merge-patch+json", "If-Match": '"1"'},
            body(prescribe_body(ATORVASTATIN)),
            False,
        ),
        (
            "prescribe, no token",
            "POST",
            prescriptions,
            {**json_type, "If-Match": '"1"'},
            body(prescribe_body(ATORVASTATIN)),
            False,
        ),
        (
            "prescribe, expired token",
            "POST",
            prescriptions,
            {"Authorization": f"Bearer {_expired()}", **json_type, "If-Match": '"1"'},
            body(prescribe_body(ATORVASTATIN)),
            False,
        ),
        (
            "prescribe, pharmacist",
            "POST",
            prescriptions,
            {"Authorization": f"Bearer {PHARMACIST_TOKEN}", **json_type, "If-Match": '"1"'},
            body(prescribe_body(ATORVASTATIN)),
            True,
        ),
        (
            "prescribe, unknown patient",
            "POST",
            f"/patients/{uuid.uuid4()}/prescriptions",
            {**gp, **json_type, "If-Match": '"0"'},
            body(prescribe_body(ATORVASTATIN)),
            True,
        ),
        (
            "prescribe, not an id",
            "POST",
            "/patients/abc/prescriptions",
            {**gp, **json_type, "If-Match": '"1"'},
            body(prescribe_body(ATORVASTATIN)),
            False,
        ),
        (
            "prescribe, query",
            "POST",
            prescriptions + "?dry=1",
            {**gp, **json_type, "If-Match": '"1"'},
            body(prescribe_body(ATORVASTATIN)),
            False,
        ),
        (
            "prescribe, repeated If-Match",
            "POST",
            prescriptions,
            [*gp.items(), *json_type.items(), ("If-Match", '"1"'), ("If-Match", '"1"')],
            body(prescribe_body(ATORVASTATIN)),
            False,
        ),
        (
            "prescribe, streamed",
            "POST",
            prescriptions,
            {**gp, **json_type, "If-Match": '"1"'},
            _Streamed(body(prescribe_body(ATORVASTATIN))),
            False,
        ),
        (
            "prescribe, charset",
            "POST",
            prescriptions,
            {**gp, "Content-Type": "Application/JSON; charset=utf-8", "If-Match": '"1"'},
            body(prescribe_body(ATORVASTATIN)),
            True,
        ),
        ("read after", "GET", listed, gp, None, True),
        ("read, old copy", "GET", listed, {**gp, "If-None-Match": '"1"'}, None, True),
        ("read, any copy", "GET", listed, {**gp, "If-None-Match": "*"}, None, True),
        ("HEAD", "HEAD", listed, gp, None, True),  # served as its GET (app._head)
        ("list, POST", "POST", listed, {**gp, **json_type}, b"{}", False),
    ]
    return cases


def _answer(
    client: TestClient, reached: _Counting, handed: _Counting, lines: AccessLines, case, n: int
):
    """The answer to ``case`` (status, headers, body, access log line), and whether the hot
    path served it (the request reached it and it did not hand it to the router)."""
    name, method, path, headers, body, _ = case
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    items.append(("X-Request-ID", f"hot-{n}"))
    if isinstance(body, _Streamed):
        body = iter([body.data])  # sent in chunks, without a Content-Length
    before = reached.calls, handed.calls
    lines.lines.clear()
    response = client.request(method, path, content=body, headers=items)
    return (
        (response.status_code, sorted(response.headers.items()), response.content, lines.lines[:]),
        (reached.calls, handed.calls) == (before[0] + 1, before[1]),
    )


def test_the_hot_routes_answer_every_request_as_the_generic_path_does(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    patient = str(demo_world(engine))
    engine.dispose()
    with twin_database(db_url) as twin_url:
        engines = {"hot": make_engine(db_url), "generic": make_engine(twin_url)}
        try:
            apps = {
                which: create_app(
                    ApiSettings.from_env("sqlite://"), engine=found, clock=Ticking(NOW)
                )
                for which, found in engines.items()
            }
            apps["generic"].state.hot_routes = False
            answers: dict[str, list] = {"hot": [], "generic": []}
            served: list[bool] = []
            with TestClient(apps["hot"]) as hot_client, TestClient(apps["generic"]) as plain:
                hot_client.get("/docs")  # builds the middleware stack
                plain.get("/docs")
                parent, layer = _hot_layer(apps["hot"])
                assert layer.prescribe is not None and layer.read_list is not None
                reached = parent.app = _Counting(layer)
                handed = layer.app = _Counting(layer.app)
                unused = _Counting(None)
                lines = AccessLines()
                access = logging.getLogger("medloop.access")
                access.addHandler(lines)
                try:
                    for n, case in enumerate(_cases(patient)):
                        generic, _ = _answer(plain, unused, unused, lines, case, n)
                        ours, lean = _answer(hot_client, reached, handed, lines, case, n)
                        answers["generic"].append((case[0], *generic))
                        answers["hot"].append((case[0], *ours))
                        served.append(lean)
                finally:
                    access.removeHandler(lines)
            rows = {which: table_rows(found, VOLATILE, _masked) for which, found in engines.items()}
        finally:
            for found in engines.values():
                found.dispose()
    assert answers["hot"] == answers["generic"]
    # Each case took the path it was meant to: the ordinary ones never reached the router.
    assert served == [case[5] for case in _cases(patient)]
    statuses = [status for _, status, _, _, _ in answers["hot"]]
    assert all(len(line) == 1 for *_, line in answers["hot"])
    assert 201 in statuses and 304 in statuses and 412 in statuses and 409 in statuses
    assert 422 in statuses and 401 in statuses and 403 in statuses and 428 in statuses
    assert rows["hot"] == rows["generic"]
    assert rows["hot"]["audit_event"], "the requests were audited"


def test_without_the_routes_it_was_written_for_the_hot_path_stands_aside():
    from fastapi import FastAPI

    app = FastAPI()
    app.state.routes = ()
    layer = hot.HotRoutes(app, app.router)
    assert layer.prescribe is None and layer.read_list is None


def test_the_hot_routes_leave_the_openapi_document_as_it_was(world):
    """The document is made from the routes, which the hot path only reads: the same bytes
    before the app serves (before its middleware is built), after it has served both hot
    routes, and from an app without the hot path."""
    import json

    app = world.client.app
    before = json.dumps(app.openapi())
    assert world.get(f"/patients/{world.patient_id}/list").status_code == 200
    body = prescribe_body(SIMVASTATIN_28)
    path = f"/patients/{world.patient_id}/prescriptions"
    assert world.post(path, body, **{"If-Match": '"0"'}).status_code == 201
    assert _hot_layer(app)[1].prescribe is not None
    app.openapi_schema = None
    after = json.dumps(app.openapi())
    plain = create_app(ApiSettings.from_env("sqlite://"), engine=world.engine)
    plain.state.hot_routes = False
    assert before == after == json.dumps(plain.openapi())


def _paths(routes) -> list[str]:
    """Every path the routes answer: an included router's routes (FastAPI 0.165 keeps included
    routers whole) with their full paths, a mount's prefix, a route's path."""
    found = []
    for route in routes:
        if hasattr(route, "effective_route_contexts"):
            found.extend(context.path for context in route.effective_route_contexts())
        else:
            found.append(route.path)
    return found


def test_only_the_fhir_routers_have_paths_under_fhir(world):
    """Requests under /fhir/ are matched against the FHIR routes alone: no other route of the
    app (JSON API, CDS Hooks, pages, mounts) may have a path there, or it would no longer be
    reached."""
    app = world.client.app
    fhir_paths = set(_paths(app.state.fhir_router.routes))
    assert "/fhir/MedicationRequest" in fhir_paths and "/fhir/$export" in fhir_paths
    every = _paths(app.routes)
    assert fhir_paths <= set(every)
    assert [p for p in every if p.startswith("/fhir/") and p not in fhir_paths] == []


def test_fhir_requests_answer_as_the_generic_path_does(world):
    """The same FHIR requests (read-only ones, on one database) get the same status, headers
    and bytes from the FHIR-only dispatch as from FastAPI's whole router, and go through it."""
    fast = world.client.app
    plain = create_app(ApiSettings.from_env("sqlite://"), engine=world.engine, clock=world.clock)
    plain.state.hot_routes = False
    headers = {"Authorization": f"Bearer {GP_TOKEN}", "Accept": "application/fhir+json"}
    requests = [
        ("GET", "/fhir/metadata"),
        ("GET", "/fhir/NoSuchType"),
        ("GET", "/fhir/metadata/"),
        ("PUT", "/fhir/MedicationRequest/x"),
        ("DELETE", "/fhir/MedicationStatement"),
        ("GET", f"/fhir/MedicationStatement?patient=Patient/{world.patient_id}&bogus=1"),
        ("GET", "/fhir/Medication/not-an-id"),
    ]
    with TestClient(fast) as hot_client, TestClient(plain) as plain_client:
        hot_client.get("/docs")  # builds the middleware stack
        _, layer = _hot_layer(fast)
        reached = layer.fhir = _Counting(layer.fhir)
        statuses = set()
        for n, (method, path) in enumerate(requests):
            sent = {**headers, "X-Request-ID": f"fhir-dispatch-{n}"}
            ours = hot_client.request(method, path, headers=sent, follow_redirects=False)
            theirs = plain_client.request(method, path, headers=sent, follow_redirects=False)
            assert ours.status_code == theirs.status_code, path
            assert ours.content == theirs.content, path
            assert ours.headers.get("allow") == theirs.headers.get("allow"), path
            assert ours.headers.get("content-type") == theirs.headers.get("content-type"), path
            statuses.add(ours.status_code)
    assert reached.calls == len(requests)
    assert {200, 404, 405} <= statuses


def test_the_list_reads_endpoint_gets_the_callers_request_over_the_selected_scope(world):
    """The hot list read makes one ``Request`` (for the caller) and hands that one to the
    endpoint once the scope holds what the router would write (route, endpoint, path
    parameters, router): the endpoint sees the same scope, receive and send."""
    assert world.get(f"/patients/{world.patient_id}/list").status_code == 200  # built
    _, layer = _hot_layer(world.client.app)
    plan = layer.read_list
    seen: list = []
    endpoint = plan.endpoint

    async def spying(**arguments):
        seen.append(arguments[plan.request_name])
        return await endpoint(**arguments)

    plan.endpoint = spying
    try:
        assert world.get(f"/patients/{world.patient_id}/list").status_code == 200
    finally:
        plan.endpoint = endpoint
    (request,) = seen
    assert request.scope["route"] is plan.route
    assert request.scope["endpoint"] is plan.route.endpoint
    assert request.scope["path_params"] == {"patient_id": str(world.patient_id)}
    assert request.scope["router"] is layer.router
    assert request.receive is not None and request._send is not None
