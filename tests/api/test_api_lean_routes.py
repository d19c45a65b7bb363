"""The JSON API's and the pages' routes take a lean path past FastAPI's request handler when
the request has the ordinary shape (``medloop.api.lean.LeanRoute``): every parameter and the
body validated by FastAPI's own functions first, then the dependencies called in FastAPI's
order, then the endpoint. It must answer every request exactly as FastAPI's handler does, and
hand everything out of the ordinary to that handler: the same status, headers and bytes, and
the same rows stored. Two apps over two copies of one database get the same requests in the
same order, one with the lean path and one without (an app with dependency overrides takes
FastAPI's handler). The twin test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import email.message
import json
import re
import uuid
from functools import partial
from typing import Annotated, Any

import opentelemetry.trace as otel_trace
import pytest
from fastapi import APIRouter, Cookie, Depends, FastAPI, Form, Header, Query, Request
from fastapi.testclient import TestClient
from sqlalchemy import text

from medloop.api.cds import FEST_VARENR
from medloop.api.lean import LeanRoute, is_json
from medloop.api.responses import JSONResponse
from medloop.api.routing import BlockingRoute
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.api.helpers import (
    GP_TOKEN,
    NOW,
    PATIENT_TOKEN,
    PHARMACIST_TOKEN,
    WARD_ADMIN_TOKEN,
    admitted,
    draft,
    hook,
    make_world,
    pharmacy_version,
    prescribe_body,
)
from tests.loop.helpers import KLARITROMYCIN
from tests.twins import lean_and_fastapi
from tests.twins import masked as _masked

VOLATILE = frozenset({"command_id", "occurred_at", "created_at", "prev_hash", "hash"})
"""Columns two runs of the same requests differ in: commands' random ids, wall-clock moments
and the audit chain's hashes over them."""

SIMVASTATIN = "090436"


Case = tuple[str, str, str, list[tuple[str, str]], bytes | None, bool]
"""(name, method, path, headers, body, whether the lean path serves it)."""


def _cases(world: Any, prescription_id: str, ward_id: str) -> list[Case]:
    patient = world.patient_id
    gp = [("Authorization", f"Bearer {GP_TOKEN}")]
    pharmacist = [("Authorization", f"Bearer {PHARMACIST_TOKEN}")]
    own = [("Authorization", f"Bearer {PATIENT_TOKEN}")]
    ward_admin = [("Authorization", f"Bearer {WARD_ADMIN_TOKEN}")]
    json_type = [("Content-Type", "application/json")]
    check = f"/patients/{patient}/list/check"
    proposed = json.dumps({"proposed": [{"drug": {"varenr": SIMVASTATIN}}]}).encode()
    dispensable = f"/pharmacy/patients/{patient}/prescriptions"
    dispenses = f"/pharmacy/patients/{patient}/dispenses"
    tag = pharmacy_version(world)

    def dispense(n: int) -> bytes:
        return json.dumps(
            {
                "dispense_id": f"00000000-0000-4000-8000-{n:012d}",
                "prescription_id": prescription_id,
                "varenr": SIMVASTATIN,
                "dispensed_on": "2026-11-20",
                "quantity": {"packages": 1},
                "batch": "B123",
                "expiry": "2028-10-01",
            }
        ).encode()

    cds = "/cds-services/medloop-order-sign"
    signed = hook(
        "order-sign",
        str(patient),
        draft("d1", FEST_VARENR, KLARITROMYCIN, str(patient)),
    )
    return [
        # The ordinary shape: the lean path.
        ("check", "POST", check, gp + json_type, proposed, True),
        (
            "check, JSON with a charset in capitals",
            "POST",
            check,
            gp + [("Content-Type", "Application/JSON; charset=utf-8")],
            proposed,
            True,
        ),
        (
            "check, a +json type",
            "POST",
            check,
            gp + [("Content-Type", "application/vnd.medloop+json")],
            proposed,
            True,
        ),
        (
            "check, a patient not registered",
            "POST",
            check.replace(str(patient), str(uuid.UUID(int=7))),
            gp + json_type,
            proposed,
            True,
        ),
        ("check, a pharmacist", "POST", check, pharmacist + json_type, proposed, True),
        ("check, no token", "POST", check, json_type, proposed, False),
        ("pharmacy read", "GET", dispensable, pharmacist, None, True),
        (
            "pharmacy read, current copy",
            "GET",
            dispensable,
            pharmacist + [("If-None-Match", tag)],
            None,
            True,
        ),
        ("pharmacy read, a GP", "GET", dispensable, gp, None, True),
        ("pharmacy read, no token", "GET", dispensable, [], None, True),
        (
            "pharmacy read, a bad token",
            "GET",
            dispensable,
            [("Authorization", "Bearer x.y.z")],
            None,
            True,
        ),
        (
            "dispense",
            "POST",
            dispenses,
            pharmacist + json_type + [("If-Match", tag), ("Idempotency-Key", "lean-1")],
            dispense(1),
            True,
        ),
        (
            "dispense, the retry",
            "POST",
            dispenses,
            pharmacist + json_type + [("If-Match", tag), ("Idempotency-Key", "lean-1")],
            dispense(1),
            True,
        ),
        (
            "dispense, a stale If-Match",
            "POST",
            dispenses,
            pharmacist + json_type + [("If-Match", '"1"')],
            dispense(2),
            True,
        ),
        ("dispense, no If-Match", "POST", dispenses, pharmacist + json_type, dispense(3), True),
        (
            "dispense, If-Match not a version",
            "POST",
            dispenses,
            pharmacist + json_type + [("If-Match", "abc")],
            dispense(3),
            True,
        ),
        (
            "dispense, If-Match twice",
            "POST",
            dispenses,
            pharmacist + json_type + [("If-Match", '"999"'), ("If-Match", tag)],
            dispense(3),
            True,
        ),
        ("catalogue search", "GET", "/catalogue/packages?name=tab&limit=2", gp, None, True),
        (
            "catalogue search, a name twice",
            "GET",
            "/catalogue/packages?name=xx&name=tab&limit=2",
            gp,
            None,
            True,
        ),
        ("catalogue search, by ATC", "GET", "/catalogue/packages?atc=C10AA01", gp, None, True),
        ("the patient's own list", "GET", "/me/list", own, None, True),
        (
            "a ward report over a period",
            "GET",
            f"/reports/wards/{ward_id}?from=2026-11-01&to=2026-11-20",
            ward_admin,
            None,
            True,
        ),
        ("a ward report, a GP", "GET", f"/reports/wards/{ward_id}", gp, None, True),
        ("a CDS hook", "POST", cds, gp + json_type, json.dumps(signed).encode(), True),
        ("a page, not signed in", "GET", "/app/nurse", [], None, True),
        # Handed to FastAPI's handler: out of the ordinary.
        (
            "check, text/plain",
            "POST",
            check,
            gp + [("Content-Type", "text/plain")],
            proposed,
            False,
        ),
        ("check, no content type", "POST", check, gp, proposed, False),
        ("check, an empty body", "POST", check, gp + json_type, b"", False),
        ("check, not JSON", "POST", check, gp + json_type, b'{"proposed": ', False),
        ("check, NaN", "POST", check, gp + json_type, b'{"proposed": NaN}', False),
        ("check, nothing proposed", "POST", check, gp + json_type, b"{}", False),
        ("check, a JSON array", "POST", check, gp + json_type, b"[]", False),
        (
            "check, a patient id not a UUID",
            "POST",
            check.replace(str(patient), "abc"),
            gp + json_type,
            proposed,
            False,
        ),
        (
            "check, an unknown query parameter",
            "POST",
            check + "?dry=1",
            gp + json_type,
            proposed,
            False,
        ),
        (
            "pharmacy read, a patient id not a UUID",
            "GET",
            "/pharmacy/patients/abc/prescriptions",
            pharmacist,
            None,
            False,
        ),
        (
            "pharmacy read, If-None-Match too long",
            "GET",
            dispensable,
            pharmacist + [("If-None-Match", "x" * 1001)],
            None,
            False,
        ),
        (
            "dispense, an Idempotency-Key too long",
            "POST",
            dispenses,
            pharmacist + json_type + [("If-Match", tag), ("Idempotency-Key", "k" * 201)],
            dispense(4),
            False,
        ),
        (
            "dispense, a quantity of none",
            "POST",
            dispenses,
            pharmacist + json_type + [("If-Match", tag)],
            dispense(4).replace(b'"packages": 1', b'"packages": 0'),
            False,
        ),
        (
            "catalogue search, limit 0",
            "GET",
            "/catalogue/packages?name=tab&limit=0",
            gp,
            None,
            False,
        ),
        (
            "catalogue search, a cursor not base64url",
            "GET",
            "/catalogue/packages?name=tab&cursor=%2F%2F",
            gp,
            None,
            False,
        ),
        (
            "catalogue search, a name too short",
            "GET",
            "/catalogue/packages?name=t",
            gp,
            None,
            False,
        ),
        (
            "a ward report, a day not a day",
            "GET",
            f"/reports/wards/{ward_id}?from=2026-13-01",
            ward_admin,
            None,
            False,
        ),
        # And the ordinary shape works after all of that.
        (
            "dispense again",
            "POST",
            dispenses,
            pharmacist + json_type + [("If-Match", tag), ("Idempotency-Key", "lean-5")],
            dispense(5),
            True,
        ),
    ]


@pytest.fixture
def lean_served(monkeypatch) -> list[str]:
    """The endpoints the lean path answered, in order (``LeanRoute.answer`` counted)."""
    served: list[str] = []
    answer = LeanRoute.answer

    async def counted(self, solved):
        served.append(self.endpoint.__qualname__)
        return await answer(self, solved)

    monkeypatch.setattr(LeanRoute, "answer", counted)
    return served


def _answer(client: TestClient, n: int, *, case: Case) -> tuple:
    name, method, path, headers, body, _ = case
    sent = [*headers, ("X-Request-ID", f"lean-{n}")]
    response = client.request(method, path, content=body, headers=sent, follow_redirects=False)
    kept = sorted((k, v) for k, v in response.headers.items() if k.lower() != "date")
    return name, response.status_code, kept, _CARD_ID.sub(b'"uuid":"-"', response.content)


_CARD_ID = re.compile(rb'"uuid":"[0-9a-f-]{36}"')
"""A CDS card's id, new at every answer (a card is recorded under it)."""


def test_a_lean_route_answers_and_stores_exactly_what_fastapis_handler_does(db_url, lean_served):
    engine = make_engine(db_url)
    upgrade(engine)
    world = make_world(engine)
    ward_id, _, _ = admitted(world)
    body = prescribe_body(SIMVASTATIN)
    body["terms"]["quantity"]["packages"] = 3
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201
    prescription_id = body["terms"]["prescription_id"]
    cases = _cases(world, prescription_id, ward_id)
    world.client.close()
    engine.dispose()
    seen = lean_and_fastapi(
        db_url,
        "lean_route_twin",
        NOW,
        [partial(_answer, case=case) for case in cases],
        lean_served,
        VOLATILE,
        _card_mask,
    )
    answers, took, rows = seen.answers, seen.took, seen.rows
    for ours, theirs in zip(answers["lean"], answers["fastapi"], strict=True):
        assert ours == theirs
    for found in rows.values():
        found["audit_event"] = _cards_digest_masked(found["audit_event"])
    assert rows["lean"] == rows["fastapi"]
    assert dict(zip([c[0] for c in cases], took["lean"], strict=True)) == {
        c[0]: c[5] for c in cases
    }
    assert not any(took["fastapi"])
    statuses = {status for _, status, _, _ in answers["lean"]}
    assert {200, 201, 304, 400, 401, 403, 404, 412, 422, 428} <= statuses
    assert [a[1] for a in answers["lean"] if a[0].startswith("dispense")].count(201) >= 3
    assert rows["lean"]["audit_event"]


def _card_mask(engine: Any) -> Any:
    """``tests.twins.masked``, and every CDS card's id (random, new at every answer) put as
    ``<card>``, wherever it appears."""
    with engine.connect() as conn:
        cards = [row[0] for row in conn.execute(text("SELECT id FROM cds_card"))]

    def mask(value: Any) -> Any:
        value = _masked(value)
        if isinstance(value, str):
            for card in cards:
                value = value.replace(card, "<card>")
            return value
        if isinstance(value, dict):
            return {key: mask(item) for key, item in value.items()}
        if isinstance(value, list):
            return [mask(item) for item in value]
        return value

    return mask


_DIGEST = re.compile(r'"digest": "[0-9a-f]{64}"')


def _cards_digest_masked(events: list[tuple]) -> list[tuple]:
    """The audit records, a CDS answer's digest of the cards it stored (over their random
    ids) put as ``<cards>``; every other record's digest is compared. The details are text
    on SQLite and a JSON value on PostgreSQL."""

    def digest_masked(value: Any) -> Any:
        if isinstance(value, str):
            return _DIGEST.sub('"digest": "<cards>"', value)
        if isinstance(value, dict) and isinstance(value.get("appended"), dict):
            return {**value, "appended": {**value["appended"], "digest": "<cards>"}}
        return value

    def masked(event: tuple) -> tuple:
        if not any(isinstance(v, str) and v.startswith("cds.") for v in event):
            return event
        return tuple(digest_masked(v) for v in event)

    return sorted((masked(event) for event in events), key=repr)


def _unused() -> None:
    """A dependency no route has: overriding it changes nothing but the handler taken."""


def test_every_json_api_and_page_route_has_a_lean_handler(world):
    """Every route of ``BlockingRoute`` is of a shape the lean path covers, so none of the
    JSON API's or the pages' routes pays FastAPI's dependency machinery on an ordinary
    request; a route added in a shape it does not cover shows here."""
    found = []
    for route in _blocking_routes(world.client.app.router):
        found.append((route.path, LeanRoute.of(route) is not None))
    assert len(found) > 100
    assert [path for path, lean in found if not lean] == []


def _blocking_routes(router: Any) -> list[BlockingRoute]:
    found = []
    for route in router.routes:
        if isinstance(route, BlockingRoute):
            found.append(route)
        for inner in ("router", "included_router", "original_router"):
            nested = getattr(route, inner, None)
            if nested is not None and hasattr(nested, "routes"):
                found.extend(_blocking_routes(nested))
                break
    return found


# -- FastAPI's order and cache, on a small app of its own ---------------------------------


_CALLS: list[str] = []
"""What the small app's dependencies and endpoint were called with, in order."""


async def _shared(request: Request, tag: Annotated[str | None, Header()] = None) -> str:
    _CALLS.append(f"shared:{tag}")
    return f"shared({tag})"


async def _first(value: Annotated[str, Depends(_shared)], n: int = 1) -> str:
    _CALLS.append(f"first:{n}")
    return f"first({value},{n})"


async def _second(value: Annotated[str, Depends(_shared)]) -> str:
    _CALLS.append("second")
    return f"second({value})"


async def _guard(refuse: Annotated[str | None, Query()] = None) -> None:
    _CALLS.append("guard")
    if refuse:
        raise PermissionError(refuse)


def _thing(
    thing: uuid.UUID,
    a: Annotated[str, Depends(_first)],
    b: Annotated[str, Depends(_second)],
    body: dict[str, int],
) -> JSONResponse:
    _CALLS.append("endpoint")
    return JSONResponse({"thing": str(thing), "a": a, "b": b, "body": body})


async def _refused(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"refused": str(error)}, status_code=403)


def _recording_app() -> FastAPI:
    """Dependencies of every shape the lean path covers, each logging its call in
    ``_CALLS``: one shared by two others (FastAPI calls it once per request), one the
    router's, one that refuses."""
    router = APIRouter(route_class=BlockingRoute, dependencies=[Depends(_guard)])
    router.add_api_route("/things/{thing}", _thing, methods=["POST"])
    app = FastAPI()
    app.state.route_limiter = None
    app.add_exception_handler(PermissionError, _refused)
    app.include_router(router)
    return app


@pytest.mark.parametrize(
    ("path", "headers", "body"),
    [
        (f"/things/{uuid.UUID(int=1)}?n=3", {"tag": "t"}, b'{"x": 1}'),
        (f"/things/{uuid.UUID(int=1)}", {}, b'{"x": 1}'),
        (f"/things/{uuid.UUID(int=1)}?refuse=no", {"tag": "t"}, b'{"x": 1}'),
        (f"/things/{uuid.UUID(int=1)}?n=x", {}, b'{"x": 1}'),
        (f"/things/{uuid.UUID(int=1)}?n=x&refuse=no", {}, b'{"x": 1}'),
        ("/things/abc", {}, b'{"x": 1}'),
        (f"/things/{uuid.UUID(int=1)}", {}, b'{"x": "y"}'),
    ],
)
def test_dependencies_are_called_in_fastapis_order_once_each(path, headers, body):
    """The same calls in the same order, the same answer, on both paths: the router's
    dependency first, a dependency two others share called once; a refusal raised by a
    dependency answered alike; any invalid parameter (even with a refusing dependency, which
    FastAPI then still calls) handed to FastAPI's handler."""
    logs: dict[str, list[str]] = {}
    answers = {}
    for which in ("lean", "fastapi"):
        app = _recording_app()
        if which == "fastapi":
            app.dependency_overrides[_unused] = _unused
        _CALLS.clear()
        with TestClient(app) as client:
            response = client.post(
                path, content=body, headers={**headers, "Content-Type": "application/json"}
            )
        answers[which] = (response.status_code, response.content)
        logs[which] = list(_CALLS)
    assert answers["lean"] == answers["fastapi"]
    assert logs["lean"] == logs["fastapi"]
    if answers["lean"][0] == 200:
        assert logs["lean"].count("endpoint") == 1
        assert sum(entry.startswith("shared:") for entry in logs["lean"]) == 1
        assert logs["lean"][0] == "guard"


def test_the_small_app_takes_the_lean_path(lean_served):
    """The test above compares two paths, not one path with itself."""
    with TestClient(_recording_app()) as client:
        ok = client.post(f"/things/{uuid.UUID(int=1)}?n=2", json={"x": 1})
        refused = client.post("/things/abc", json={"x": 1})
    assert ok.status_code == 200 and refused.status_code == 422
    assert len(lean_served) == 1


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "APPLICATION/JSON",
        "application/json; charset=utf-8",
        " application/json ;x=y",
        "application/fhir+json",
        "application/vnd.a.b+json; q=1",
        "application/+json",
        "application/json/x",
        "application/x+json/y",
        "application / json",
        "text/json",
        "text/plain",
        "json",
        "application/jsonx",
        "application/x-json",
        "",
        ";application/json",
        "multipart/form-data; boundary=+json",
    ],
)
def test_json_bodies_are_recognised_as_fastapi_recognises_them(content_type):
    """``is_json`` against FastAPI's own test (``email.message``'s main and sub type):
    the lean path reads a body as JSON exactly when FastAPI's handler would."""
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    fastapi_reads_json = message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
    assert is_json(content_type) == fastapi_reads_json


def _sync_dependency() -> int:
    return 1


async def _yielding():
    yield 1


async def _plain() -> int:
    return 1


def _with_sync(value: Annotated[int, Depends(_sync_dependency)]) -> JSONResponse:
    return JSONResponse(value)


def _with_yield(value: Annotated[int, Depends(_yielding)]) -> JSONResponse:
    return JSONResponse(value)


def _with_uncached(value: Annotated[int, Depends(_plain, use_cache=False)]) -> JSONResponse:
    return JSONResponse(value)


def _with_model(value: Annotated[int, Depends(_plain)]) -> dict:
    return {"value": value}


def _with_cookie(value: Annotated[str | None, Cookie()] = None) -> JSONResponse:
    return JSONResponse(value)


def _with_form(value: Annotated[str, Form()]) -> JSONResponse:
    return JSONResponse(value)


def _fine(value: Annotated[int, Depends(_plain)]) -> JSONResponse:
    return JSONResponse(value)


def test_a_route_of_a_shape_not_covered_keeps_fastapis_handler():
    """A sync dependency (FastAPI runs it in a thread), one with ``yield``, one not cached, an
    endpoint that answers a model instead of a ``Response``, a cookie parameter, a form body:
    no lean handler. The last route, of a covered shape, has one."""
    router = APIRouter(route_class=BlockingRoute)
    endpoints = [_with_sync, _with_yield, _with_uncached, _with_model, _with_cookie, _fine]
    for endpoint in endpoints:
        router.add_api_route(f"/{endpoint.__name__}", endpoint, methods=["GET"])
    router.add_api_route("/_with_form", _with_form, methods=["POST"])
    built = {route.path: LeanRoute.of(route) is not None for route in router.routes}
    assert built == {
        "/_with_sync": False,
        "/_with_yield": False,
        "/_with_uncached": False,
        "/_with_model": False,
        "/_with_cookie": False,
        "/_fine": True,
        "/_with_form": False,
    }


class _Provider(otel_trace.TracerProvider):
    """A tracer provider as an SDK configures one (not OpenTelemetry's no-op or its proxy):
    FastAPI's telemetry then serves every request. Its tracer records nothing."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> otel_trace.Tracer:
        return otel_trace.NoOpTracer()


def test_a_request_fastapis_telemetry_serves_takes_fastapis_handler(
    world, monkeypatch, lean_served
):
    """With an OpenTelemetry provider configured FastAPI's handler records the request's
    values and its spans: the lean path stands aside, and takes over again once none is."""
    path = "/catalogue/packages?name=tab&limit=2"
    assert world.get(path).status_code == 200
    assert len(lean_served) == 1
    monkeypatch.setattr(otel_trace, "_TRACER_PROVIDER", _Provider())
    assert world.get(path).status_code == 200
    assert len(lean_served) == 1
    monkeypatch.setattr(otel_trace, "_TRACER_PROVIDER", None)
    assert world.get(path).status_code == 200
    assert len(lean_served) == 2
