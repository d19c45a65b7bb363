"""A Python client generated from ``/openapi.json`` by a maintained generator
(``openapi-python-client``, pinned in the test extras) drives the GP, pharmacy and nurse flows:
what an integrator with a client generator gets. The generation fails the test when the
generator has to drop anything (a schema it cannot place, a response it cannot parse), and
every success response of every operation must come out typed (parsed into a model)."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from medloop.api.app import create_app
from medloop.api.config import ApiSettings
from medloop.store.db import make_engine
from tests.api.helpers import (
    GP_TOKEN,
    MORNING,
    NATIONAL_ID,
    NEXT_MORNING,
    NURSE_TOKEN,
    PHARMACIST_TOKEN,
    WARD_ADMIN_TOKEN,
    auth,
    dispense_body,
    prescribe_body,
)
from tests.loop.helpers import KLARITROMYCIN, SIMVASTATIN_NORDKYST

PACKAGE = "medloop_api_client"
CONFIG = f"""\
package_name_override: {PACKAGE}
project_name_override: medloop-api-client
# The generator formats its output with ruff by default; the test imports it as generated.
post_hooks: []
# The e-prescription messages are XML documents, the medication review's PDF a binary
# download and the report charts (GET /reports/…/charts/<table>.svg) SVG documents; the
# generator handles them as the bytes they are (its documented override for content types it
# does not model).
content_type_overrides:
  application/xml: application/octet-stream
  application/pdf: application/octet-stream
  image/svg+xml: application/octet-stream
"""


def _spec() -> dict[str, Any]:
    app = create_app(ApiSettings.from_env("sqlite://"), engine=make_engine("sqlite://"))
    return app.openapi()


@pytest.fixture(scope="module")
def generation(tmp_path_factory) -> tuple[ModuleType, dict[str, Any], str]:
    """The client package generated from the app's OpenAPI document, imported, with what the
    generator said."""
    root = tmp_path_factory.mktemp("client")
    spec = _spec()
    (root / "openapi.json").write_text(json.dumps(spec))
    (root / "config.yaml").write_text(CONFIG)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(root / "openapi.json"),
            "--output-path",
            str(root / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(root / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE), spec, output
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture
def generated(generation) -> tuple[ModuleType, dict[str, Any]]:
    return generation[0], generation[1]


def test_the_generator_places_every_schema_and_response_without_a_warning(generation):
    # Anything the generator could not place (a duplicate schema name, an unresolvable
    # reference, an unparseable response) is a warning, and then something is missing.
    output = generation[2]
    assert "Warning" not in output and "Unable to" not in output, output


def _module_name(operation_id: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation_id).lower()


def _tag_package(tag: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", tag.lower()).strip("_")


def test_every_operation_is_generated_with_every_success_response_typed(generated):
    package, spec = generated
    untyped = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            module = importlib.import_module(
                f"{PACKAGE}.api.{_tag_package(operation['tags'][0])}."
                f"{_module_name(operation['operationId'])}"
            )
            source = Path(module.__file__).read_text()
            for status, response in operation["responses"].items():
                if not status.startswith("2") or "application/json" not in response.get(
                    "content", {}
                ):
                    continue
                # The generated parser's branch for the status builds a model (from_dict);
                # an untyped response is handed over as raw JSON, a dropped one is missing.
                _, found, branch = source.partition(f"if response.status_code == {status}:")
                if not found or "from_dict" not in branch.split("return", 1)[0]:
                    untyped.append(f"{method.upper()} {path} {status}")
    assert untyped == []
    generated_models = set(dir(importlib.import_module(f"{PACKAGE}.models")))
    # Objects and enums become classes; other schemas (a union such as JsonValue) are inlined.
    dropped = [
        name
        for name, schema in spec["components"]["schemas"].items()
        if ("properties" in schema or "enum" in schema)
        and re.sub(r"[^A-Za-z0-9]", "", name) not in {re.sub("_", "", m) for m in generated_models}
        and name.replace("_", "") not in generated_models
    ]
    assert dropped == []


def test_operation_ids_are_short_unique_and_camel_case():
    spec = _spec()
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][A-Za-z]{2,40}", i) for i in ids), ids
    by_route = {
        (method, path): op["operationId"]
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }
    assert by_route[("post", "/patients/{patient_id}/prescriptions")] == "prescribe"
    assert by_route[("get", "/patients/{patient_id}/list")] == "readList"


def test_every_write_that_can_answer_428_documents_if_match_and_its_answer_headers():
    spec = _spec()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            responses = operation["responses"]
            assert ("428" in responses) == ("If-Match" in headers), (method, path)
            for status, response in responses.items():
                documented = set(response.get("headers", {}))
                if status == "201":
                    assert "Location" in documented, (method, path)
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if status.startswith("2") and schema == {
                    "$ref": "#/components/schemas/CommandResponse"
                }:
                    assert {"ETag", "Idempotent-Replayed"} <= documented, (method, path)


def _client(package: ModuleType, app: Any, token: str) -> Any:
    client = package.AuthenticatedClient(
        base_url="http://testserver", token=str(token), raise_on_unexpected_status=True
    )
    client.set_httpx_client(TestClient(app, headers=auth(token)))
    return client


def _call(package: ModuleType, tag: str, operation: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation}").sync_detailed


def test_the_gp_pharmacy_and_nurse_flows_through_the_generated_client(generated, world):
    package, _ = generated
    models = importlib.import_module(f"{PACKAGE}.models")
    app = world.client.app
    gp = _client(package, app, GP_TOKEN)
    prescriber = lambda name: _call(package, "prescriber", name)  # noqa: E731

    # The GP finds the patient and reads the list: its ETag is the version to write on.
    found = prescriber("find_patient")(client=gp, national_id=NATIONAL_ID)
    assert found.status_code == 200 and isinstance(found.parsed, models.PatientRef)
    patient_id = found.parsed.patient_id
    listed = prescriber("read_list")(patient_id, client=gp)
    assert isinstance(listed.parsed, models.ListView)
    etag = listed.headers["ETag"]
    assert listed.parsed.list_version == int(etag.strip('"'))
    unchanged = prescriber("read_list")(patient_id, client=gp, if_none_match=etag)
    assert unchanged.status_code == 304 and unchanged.content == b""

    # Prescribe on that version; the answer names where the prescription can be read.
    body = prescribe_body(SIMVASTATIN_NORDKYST, dosage=MORNING)
    written = prescriber("prescribe")(
        patient_id,
        client=gp,
        body=models.PrescribeRequest.from_dict(body),
        if_match=etag,
        idempotency_key="generated-1",
    )
    assert written.status_code == 201 and isinstance(written.parsed, models.CommandResponse)
    prescription_id = uuid.UUID(body["terms"]["prescription_id"])
    assert written.headers["Location"] == (
        f"/patients/{patient_id}/prescriptions/{prescription_id}"
    )
    read_back = prescriber("read_prescription")(patient_id, prescription_id, client=gp)
    assert isinstance(read_back.parsed, models.PrescriptionSummary)
    assert read_back.parsed.status == models.PrescriptionStatus.E

    # An interacting drug needs an override: 409 with the alert keys, then the same call
    # with a reason for each.
    clarithromycin = prescribe_body(KLARITROMYCIN)
    refused = prescriber("prescribe")(
        patient_id,
        client=gp,
        body=models.PrescribeRequest.from_dict(clarithromycin),
        if_match=written.headers["ETag"],
    )
    assert refused.status_code == 409 and isinstance(refused.parsed, models.Problem)
    assert refused.parsed.code == "override-required"
    assert refused.parsed.title == "Alerts need an override with a reason"
    keys = refused.parsed.additional_properties["alert_keys"]
    overridden = prescriber("prescribe")(
        patient_id,
        client=gp,
        body=models.PrescribeRequest.from_dict(
            {**clarithromycin, "overrides": dict.fromkeys(keys, "short course, statin paused")}
        ),
        if_match=written.headers["ETag"],
    )
    assert overridden.status_code == 201, overridden.content
    assert overridden.parsed.overridden == sorted(keys)

    # Paging through the prescriptions one at a time by the Link header.
    first = prescriber("list_prescriptions")(patient_id, client=gp, limit=1)
    assert len(first.parsed) == 1
    cursor = re.search(r"cursor=([A-Za-z0-9_-]+)", first.headers["Link"]).group(1)
    second = prescriber("list_prescriptions")(patient_id, client=gp, limit=1, cursor=cursor)
    assert len(second.parsed) == 1 and "Link" not in second.headers
    assert {first.parsed[0].id, second.parsed[0].id} == {
        prescription_id,
        uuid.UUID(clarithromycin["terms"]["prescription_id"]),
    }

    # The pharmacy dispenses against the prescription on the list version it read.
    pharmacist = _client(package, app, PHARMACIST_TOKEN)
    pharmacy = lambda name: _call(package, "pharmacy", name)  # noqa: E731
    dispensable = pharmacy("read_dispensable")(patient_id, client=pharmacist)
    assert isinstance(dispensable.parsed, models.DispensableView)
    assert {p.id for p in dispensable.parsed.prescriptions} >= {prescription_id}
    dispensed_body = dispense_body(str(prescription_id), SIMVASTATIN_NORDKYST)
    dispensed = pharmacy("dispense")(
        patient_id,
        client=pharmacist,
        body=models.DispenseRequest.from_dict(dispensed_body),
        if_match=dispensable.headers["ETag"],
    )
    assert dispensed.status_code == 201, dispensed.content
    assert isinstance(dispensed.parsed, models.CommandResponse)
    dispense_id = uuid.UUID(dispensed_body["dispense_id"])
    assert dispensed.headers["Location"] == (
        f"/pharmacy/patients/{patient_id}/dispenses/{dispense_id}"
    )
    dispense_read = pharmacy("read_dispense")(patient_id, dispense_id, client=pharmacist)
    assert isinstance(dispense_read.parsed, models.Dispense)
    assert dispense_read.parsed.id == dispense_id

    # The nursing home: a ward, an admission, the ward chart, a dose charted.
    admin = _client(package, app, WARD_ADMIN_TOKEN)
    nurse = _client(package, app, NURSE_TOKEN)
    nursing = lambda name: _call(package, "nursing_home", name)  # noqa: E731
    ward_id = uuid.uuid4()
    ward = nursing("create_ward")(
        client=admin, body=models.WardOrder.from_dict({"ward_id": str(ward_id), "name": "Avd 1"})
    )
    assert isinstance(ward.parsed, models.WardCreated)
    assert ward.headers["Location"] == f"/nursing/wards/{ward_id}"
    ward_read = nursing("read_ward")(ward_id, client=admin)
    assert isinstance(ward_read.parsed, models.WardRecord) and ward_read.parsed.name == "Avd 1"
    admitted = nursing("admit")(
        patient_id,
        client=admin,
        body=models.AdmitBody.from_dict(
            {
                "admission_id": str(uuid.uuid4()),
                "ward_id": str(ward_id),
                "admitted_at": "2026-11-20T09:00:00Z",
                "reason": "Korttidsopphold",
                "decision_reference": "Vedtak 2026/0815",
            }
        ),
    )
    assert admitted.status_code == 201, admitted.content
    world.clock.at = NEXT_MORNING
    chart = nursing("read_ward_chart")(ward_id, client=nurse, day=NEXT_MORNING.date())
    assert isinstance(chart.parsed, models.WardChart)
    (patient,) = chart.parsed.patients
    assert patient.patient_id == patient_id
    entry_id = body["entry_id"]
    (dose,) = [d for d in patient.doses if str(d.entry_id) == entry_id]
    assert dose.status == models.DoseStatus.DUE
    charted = nursing("chart_dose")(
        patient_id,
        client=nurse,
        body=models.ChartBody.from_dict(
            {
                "administration_id": str(uuid.uuid4()),
                "entry_id": entry_id,
                "planned_dose_id": str(dose.planned_dose_id),
                "outcome": "refused",
                "reason": "the patient declined",
            }
        ),
    )
    assert charted.status_code == 201, charted.content
    history = nursing("list_administrations")(patient_id, client=nurse)
    assert [type(r) for r in history.parsed] == [models.AdministrationRecord]
    assert str(history.parsed[0].administration.entry_id) == entry_id
