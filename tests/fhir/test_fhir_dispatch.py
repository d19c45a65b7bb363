"""The FHIR dispatch tries a request for one of the routes' fixed paths against only the routes
whose pattern matches that path (``medloop.fhir.router._FhirDispatch``): every method on every
such path must reach the same route, or the same 405 with the same ``Allow``, as the walk over
every route (an app without the FHIR-only dispatch: FastAPI's whole router)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from starlette.routing import Match

from medloop.api.app import create_app
from medloop.api.config import ApiSettings
from medloop.fhir import router as fhir_router
from tests.api.helpers import GP_TOKEN

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def _walk(routes, method: str, path: str):
    """The route the walk over ``routes`` picks (the first full match, else the first partial)
    and how it matched."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route, match
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial, None if partial is None else Match.PARTIAL


def test_each_fixed_path_is_tried_against_the_routes_that_can_match_it_and_picks_the_same(world):
    dispatch = world.client.app.state.fhir_router
    assert isinstance(dispatch, fhir_router._FhirDispatch)
    fixed = {route.path for route in dispatch.routes if not route.param_convertors}
    assert set(dispatch._by_path) == fixed
    assert "/fhir/MedicationStatement" in fixed and "/fhir/MedicationRequest" in fixed
    for path, few in dispatch._by_path.items():
        for method in METHODS:
            assert _walk(few.routes, method, path) == _walk(dispatch.routes, method, path)
    # The index holds the few: a search's path is tried against one route, not fifteen.
    assert len(dispatch._by_path["/fhir/MedicationStatement"].routes) == 1
    assert len(dispatch._by_path["/fhir/MedicationRequest"].routes) == 2


def test_every_method_on_every_fixed_path_answers_as_the_whole_router_does(world):
    plain = create_app(ApiSettings.from_env("sqlite://"), engine=world.engine, clock=world.clock)
    plain.state.hot_routes = False  # FastAPI's whole router, no FHIR-only dispatch
    headers = {"Authorization": f"Bearer {GP_TOKEN}", "Accept": "application/fhir+json"}
    paths = [*world.client.app.state.fhir_router._by_path, "/fhir/MedicationStatement/"]
    statuses = set()
    with TestClient(plain) as plain_client:
        for n, path in enumerate(paths):
            for method in METHODS:
                sent = {**headers, "X-Request-ID": f"dispatch-{n}-{method}"}
                ours = world.client.request(method, path, headers=sent, follow_redirects=False)
                theirs = plain_client.request(method, path, headers=sent, follow_redirects=False)
                assert ours.status_code == theirs.status_code, (method, path)
                assert ours.headers.get("allow") == theirs.headers.get("allow"), (method, path)
                assert ours.content == theirs.content, (method, path)
                statuses.add(ours.status_code)
    assert {200, 400, 405} <= statuses
