"""The included routers told their first path segments (``medloop.api.route_index``): every
route of the app, and paths no route has, are matched to the same route as without the index;
a served app's routers are indexed; redirects, 404s and 405s answer as before."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Match

from medloop.api import route_index
from medloop.api.app import create_app
from medloop.api.config import ApiSettings
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.api.helpers import PHARMACIST_TOKEN


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> tuple[FastAPI, FastAPI]:
    """Two apps over one migrated SQLite file: one as FastAPI includes its routers, one
    indexed (no request is made to either here, so neither builds its stack)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('index') / 'medloop.db'}"
    engine = make_engine(url)
    upgrade(engine)
    plain = create_app(ApiSettings.from_env(url), engine=engine)
    indexed = create_app(ApiSettings.from_env(url), engine=engine)
    assert route_index.index_routers(indexed.router) == sum(
        type(r) is route_index._IncludedRouter for r in plain.router.routes
    )
    return plain, indexed


def _described(route: Any) -> tuple[Any, ...] | None:
    """A route as two apps built alike can compare it (their route objects differ)."""
    if route is None:
        return None
    endpoint = getattr(route, "endpoint", None)
    return (
        type(route).__name__,
        getattr(route, "path", None),
        getattr(route, "name", None),
        tuple(sorted(getattr(route, "methods", None) or ())),
        getattr(endpoint, "__qualname__", None),
    )


def _selected(app: FastAPI, method: str, path: str) -> tuple[Any, Match]:
    route, match = route_index.chosen(app.router, method, path)
    return _described(route), match


def _every_route(app: FastAPI) -> list[tuple[str, str]]:
    found = []
    for route in app.router.routes:
        contexts = (
            route.effective_route_contexts()
            if hasattr(route, "effective_route_contexts")
            else [route]
        )
        for context in contexts:
            path = getattr(context, "path_format", None) or context.path
            sample = re.sub(r"\{[^}]+\}", "x1", path) or "/"
            for method in sorted(getattr(context, "methods", None) or {"GET"}):
                found.append((method, sample))
    return found


def test_every_route_and_every_unknown_path_is_matched_as_without_the_index(apps):
    plain, indexed = apps
    requests = _every_route(plain)
    assert len(requests) > 150  # the app's routes, pages and FHIR included
    unknown = [
        ("GET", "/"),
        ("GET", "/nowhere"),
        ("GET", "/patients"),
        ("DELETE", "/health/live"),
        ("PUT", "/me/list"),
        ("GET", "/fhir/Observation"),
        ("GET", "/app/static/none.css"),
        ("POST", "/pharmacy/patients/x1/nothing"),
    ]
    for method, path in [*requests, *unknown]:
        assert _selected(indexed, method, path) == _selected(plain, method, path), (method, path)
    # The unknown ones really are not all full matches (the comparison above is not vacuous).
    assert {_selected(plain, m, p)[1] for m, p in unknown} >= {Match.NONE, Match.PARTIAL}


def test_a_served_app_has_its_included_routers_indexed(world):
    assert world.client.get("/health/live").status_code == 200
    kinds = {type(r).__name__ for r in world.client.app.router.routes}
    assert "IndexedInclude" in kinds and "_IncludedRouter" not in kinds


def test_a_router_whose_route_begins_with_a_parameter_tries_every_pattern():
    """No first segment to go by: the router stays as FastAPI included it."""
    app = FastAPI()
    router = APIRouter()

    @router.get("/{anything}/x")
    def anything(anything: str) -> dict:
        return {"got": anything}

    app.include_router(router)
    assert route_index.index_routers(app.router) == 0
    assert TestClient(app).get("/abc/x").json() == {"got": "abc"}


def test_redirects_404s_and_405s_answer_as_before(world):
    client = world.client
    slash = client.get("/health/live/", follow_redirects=False)
    assert slash.status_code == 307 and slash.headers["location"].endswith("/health/live")
    assert client.get("/nowhere").status_code == 404
    refused = client.delete("/health/live", headers={"Authorization": f"Bearer {PHARMACIST_TOKEN}"})
    assert refused.status_code == 405 and "GET" in refused.headers["Allow"]
