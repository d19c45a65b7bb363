"""The CapabilityStatement states exactly what the routes serve (both directions), SMART
discovery, and ``medloop token --scope``."""

from __future__ import annotations

import jwt
from typer.testing import CliRunner

from medloop.cli import app
from medloop.fhir.capability import OPERATION_ROUTES, expected_routes
from medloop.fhir.search import INCLUDES, PARAMETERS
from tests.fhir.helpers import fhir_get, validated


def _fhir_routes(world) -> set[tuple[str, str]]:
    found = set()
    for route in world.client.app.state.routes:
        path = getattr(route, "path", "")
        if not path.startswith("/fhir/") or path == "/fhir/metadata":
            continue
        for method in route.methods:
            template = path
            for name in route.param_convertors:
                template = template.replace(
                    "{" + name + "}", "{vid}" if name == "version_id" else "{id}"
                )
            found.add((method, template))
    return found


def test_the_capability_statement_names_exactly_the_routes_served(world):
    response = fhir_get(world, "/fhir/metadata", token="unused")
    assert response.status_code == 200
    statement = validated(response.json())
    assert statement["fhirVersion"] == "4.0.1"
    stated = set()
    for resource in statement["rest"][0]["resource"]:
        for interaction in resource["interaction"]:
            stated.add((resource["type"], interaction["code"]))
        assert {p["name"] for p in resource["searchParam"]} >= set(PARAMETERS[resource["type"]])
        assert resource.get("searchInclude", []) == list(INCLUDES.get(resource["type"], ()))
    assert _fhir_routes(world) == expected_routes()
    assert len(stated) == len(expected_routes() - OPERATION_ROUTES)
    assert len(statement["rest"][0]["operation"]) == 2


def test_smart_configuration_advertises_v2_scopes(world):
    response = world.client.get("/.well-known/smart-configuration")
    assert response.status_code == 200
    body = response.json()
    assert "permission-v2" in body["capabilities"]
    assert "user/MedicationRequest.crs" in body["scopes_supported"]
    assert body["issuer"]


def test_medloop_token_signs_the_scopes_given():
    result = CliRunner().invoke(
        app,
        [
            "token",
            "--role",
            "gp",
            "--hpr",
            "431002737",
            "--org",
            "8095068",
            "--scope",
            "user/*.rs user/MedicationRequest.c",
        ],
    )
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), options={"verify_signature": False})
    assert claims["scope"] == "user/*.rs user/MedicationRequest.c"
