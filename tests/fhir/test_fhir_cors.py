"""CORS for SMART on FHIR browser apps (``MEDLOOP_FHIR_CORS_ORIGINS``): the configured origins
may call ``/fhir`` and read the SMART configuration, preflight included, and read the headers a
FHIR client needs; no other origin, and no other route (the JSON API, the pages), gets a CORS
header; no credentials. The CapabilityStatement says whether CORS is on. Each test runs on
SQLite and PostgreSQL (the ``world`` fixture)."""

from __future__ import annotations

import dataclasses
import json
import logging

from fastapi.testclient import TestClient

from medloop.api.app import create_app
from medloop.api.config import ApiSettings
from tests.api.helpers import AccessLines
from tests.fhir.helpers import FHIR_JSON, gp_token, medication_request, validated

APP = "https://smart-app.example.org"
OTHER = "https://elsewhere.example"


def _served(world, *origins: str) -> TestClient:
    settings = dataclasses.replace(ApiSettings.from_env("sqlite://"), fhir_cors_origins=origins)
    return TestClient(create_app(settings, engine=world.engine, clock=world.clock))


def _bearer(**headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {gp_token()}", **headers}


def test_a_smart_apps_origin_may_preflight_and_write_through_fhir(world):
    client = _served(world, APP)
    preflight = client.options(
        "/fhir/MedicationRequest",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,if-match,prefer,"
            "idempotency-key",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == APP
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "if-match", "prefer", "idempotency-key"} <= {
        h.strip() for h in allowed.split(",")
    }
    assert "access-control-allow-credentials" not in preflight.headers

    created = client.post(
        "/fhir/MedicationRequest",
        content=json.dumps(medication_request(world)),
        headers=_bearer(
            Origin=APP, **{"Content-Type": FHIR_JSON, "If-Match": f'"{world.version()}"'}
        ),
    )
    assert created.status_code == 201, created.text
    assert created.headers["access-control-allow-origin"] == APP
    exposed = {h.strip() for h in created.headers["access-control-expose-headers"].split(",")}
    # what the app reads of the answer: where the new resource is, its version, the list's
    assert {"Location", "ETag", "X-List-Version", "X-Request-ID"} <= exposed
    assert created.headers["x-list-version"]


def test_a_read_answers_the_apps_origin_only_and_says_it_varies_by_origin(world):
    client = _served(world, APP, "http://localhost:3000")
    path = f"/fhir/Patient/{world.patient_id}"
    read = client.get(path, headers=_bearer(Origin=APP))
    assert read.status_code == 200 and read.headers["access-control-allow-origin"] == APP
    assert "Origin" in read.headers["vary"]
    validated(read.json())
    local = client.get(path, headers=_bearer(Origin="http://localhost:3000"))
    assert local.headers["access-control-allow-origin"] == "http://localhost:3000"
    elsewhere = client.get(path, headers=_bearer(Origin=OTHER))
    assert elsewhere.status_code == 200  # served (a browser then hides it from the page)
    assert "access-control-allow-origin" not in elsewhere.headers
    refused = client.options(
        path, headers={"Origin": OTHER, "Access-Control-Request-Method": "GET"}
    )
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    # a refusal reaches the app too: it can tell the user why
    unauthorised = client.get(path, headers={"Origin": APP})
    assert unauthorised.status_code == 401
    assert unauthorised.headers["access-control-allow-origin"] == APP


def test_a_preflight_is_logged_and_answered_with_its_request_id_and_no_store(world):
    """A preflight is answered by the CORS layer itself, never by a route: it still carries the
    caller's request id (to find it in the access log), may not be kept by a cache and may not
    be sniffed, like every answer outside the pages; a refused one too."""
    client = _served(world, APP)
    lines = AccessLines()
    access = logging.getLogger("medloop.access")
    access.addHandler(lines)
    try:
        answers = {
            origin: client.options(
                "/fhir/MedicationRequest",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "POST",
                    "X-Request-ID": f"preflight-{n}",
                },
            )
            for n, origin in enumerate((APP, OTHER))
        }
    finally:
        access.removeHandler(lines)
    assert answers[APP].status_code == 200 and answers[OTHER].status_code == 400
    for n, origin in enumerate((APP, OTHER)):
        headers = answers[origin].headers
        assert headers["x-request-id"] == f"preflight-{n}", origin
        assert headers["cache-control"] == "no-store", origin
        assert headers["x-content-type-options"] == "nosniff", origin
    assert [(line["method"], line["status"], line["request_id"]) for line in lines.lines] == [
        ("OPTIONS", 200, "preflight-0"),
        ("OPTIONS", 400, "preflight-1"),
    ]


def test_the_smart_configuration_is_readable_and_no_other_route_is(world):
    client = _served(world, APP)
    smart = client.get("/.well-known/smart-configuration", headers={"Origin": APP})
    assert smart.status_code == 200 and smart.headers["access-control-allow-origin"] == APP
    for path in (f"/patients/{world.patient_id}/list", "/app/sign-in", "/cds-services"):
        answer = client.get(path, headers=_bearer(Origin=APP))
        assert "access-control-allow-origin" not in answer.headers, path
    preflight = client.options(
        f"/patients/{world.patient_id}/list",
        headers={"Origin": APP, "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_the_capability_statement_says_whether_browser_apps_may_call(world):
    with_cors = _served(world, APP).get("/fhir/metadata", headers={"Origin": APP})
    assert validated(with_cors.json())["rest"][0]["security"]["cors"] is True
    without = _served(world).get("/fhir/metadata", headers={"Origin": APP})
    assert validated(without.json())["rest"][0]["security"]["cors"] is False
    assert "access-control-allow-origin" not in without.headers
