"""What a FHIR client may ask for and send: JSON (R4) by ``Accept`` or ``_format``, on every
route under ``/fhir``. A request for another representation (XML, Turtle, HTML) or another FHIR
version is a 406 with an OperationOutcome naming what was asked, never JSON the client did not
ask for; whatever admits FHIR JSON is answered as before. A resource posted in anything but
FHIR JSON (R4) is a 415 naming its Content-Type, nothing stored. Each test runs on SQLite and
PostgreSQL (the ``world`` fixture). The bulk export's files, NDJSON only:
``test_fhir_export.py``."""

from __future__ import annotations

import json

import pytest

from medloop.fhir.negotiation import JSON, NDJSON, _admits
from tests.fhir.helpers import (
    FHIR_JSON,
    fhir_get,
    gp_token,
    medication_request,
    outcome_of,
    prescribed,
    validated,
)

ADMITTING = [
    "application/fhir+json",
    "application/json",
    "application/json+fhir",
    "*/*",
    "application/*",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",  # a browser's
    "application/fhir+xml;q=0.9, application/fhir+json;q=0.5",
    "application/fhir+json; fhirVersion=4.0",
    'application/fhir+json;fhirVersion="4.0", application/fhir+json;fhirVersion=5.0',
    "",
]
REFUSED = [
    ("application/fhir+xml", "FHIR JSON"),
    ("application/xml, text/turtle", "FHIR JSON"),
    ("text/html", "FHIR JSON"),
    ("application/fhir+json;q=0", "FHIR JSON"),  # "anything but JSON"
    ("application/fhir+json;q=lots", "FHIR JSON"),
    ("application/fhir+json; fhirVersion=5.0", "fhirVersion=5.0"),
    ("application/fhir+json; fhirVersion=3.0", "fhirVersion=3.0"),
]


def _paths(world) -> list[str]:
    """A read, a vread, a history, a search and the CapabilityStatement."""
    entry_id = prescribed(world)["entry_id"]
    return [
        f"/fhir/Patient/{world.patient_id}",
        f"/fhir/MedicationStatement/{entry_id}/_history/1",
        f"/fhir/MedicationStatement/{entry_id}/_history",
        f"/fhir/MedicationStatement?patient=Patient/{world.patient_id}",
        "/fhir/metadata",
    ]


def test_an_accept_that_admits_fhir_json_is_answered_in_it(world):
    paths = _paths(world)
    for accept in ADMITTING:
        for path in paths:
            answer = fhir_get(world, path, Accept=accept)
            assert answer.status_code == 200, (accept, path, answer.text)
            assert answer.headers["content-type"].startswith(FHIR_JSON)
    validated(answer.json())


def test_an_accept_that_admits_no_fhir_json_is_a_406_naming_it(world):
    paths = _paths(world)
    for accept, named in REFUSED:
        for path in paths:
            outcome = outcome_of(fhir_get(world, path, Accept=accept), 406)
            (issue,) = outcome["issue"]
            assert issue["code"] == "not-supported"
            assert accept in issue["diagnostics"] and named in issue["diagnostics"], issue


def test_format_asks_for_json_or_is_a_406(world):
    for path in _paths(world):
        joined = "&" if "?" in path else "?"
        for fmt in ("json", "application/fhir%2Bjson", "application/fhir+json", "application/json"):
            answer = fhir_get(world, f"{path}{joined}_format={fmt}")
            assert answer.status_code == 200, (path, fmt, answer.text)
        for fmt in ("xml", "application/fhir+xml", "ttl", "html"):
            outcome = outcome_of(fhir_get(world, f"{path}{joined}_format={fmt}"), 406)
            assert outcome["issue"][0]["expression"] == ["_format"]
            assert f"_format={fmt}" in outcome["issue"][0]["diagnostics"]
        # a _format for XML is refused whatever the Accept admits
        outcome_of(fhir_get(world, f"{path}{joined}_format=xml", Accept="*/*"), 406)


@pytest.mark.parametrize("accept", ["application/fhir+ndjson", "application/*", "*/*", ""])
def test_an_export_file_is_ndjson_and_admits_what_admits_ndjson(accept):
    assert _admits(accept, NDJSON) == ""
    assert "NDJSON" in _admits("application/fhir+json", NDJSON)
    assert "FHIR JSON" in _admits("application/fhir+ndjson", JSON)


@pytest.mark.parametrize(
    "content_type, named",
    [
        ("application/fhir+xml", "application/fhir+xml"),
        ("text/plain", "text/plain"),
        ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),
        ("application/fhir+json; fhirVersion=5.0", "fhirVersion=5.0"),
        (None, "no Content-Type"),
    ],
)
def test_a_resource_not_sent_as_fhir_json_is_a_415_naming_its_type(world, content_type, named):
    before = world.version()
    headers = {"Authorization": f"Bearer {gp_token()}", "If-Match": f'"{before}"'}
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = json.dumps(medication_request(world))  # a good resource, said to be something else
    answer = world.client.post("/fhir/MedicationRequest", content=body, headers=headers)
    (issue,) = outcome_of(answer, 415)["issue"]
    assert issue["code"] == "not-supported" and named in issue["diagnostics"], issue
    assert world.version() == before  # nothing stored


@pytest.mark.parametrize(
    "content_type",
    ["application/fhir+json; charset=utf-8; fhirVersion=4.0", "application/json"],
)
def test_a_resource_sent_as_fhir_json_r4_is_created(world, content_type):
    before = world.version()
    answer = world.client.post(
        "/fhir/MedicationRequest",
        content=json.dumps(medication_request(world)),
        headers={
            "Authorization": f"Bearer {gp_token()}",
            "If-Match": f'"{before}"',
            "Content-Type": content_type,
        },
    )
    assert answer.status_code == 201, answer.text
    assert world.version() == before + 1


def test_pretty_indents_the_json_of_reads_searches_and_creates_alike(world):
    """``_pretty=true`` (FHIR's parameter of every interaction): the same resource, indented,
    with the length it has; ``false`` answers compactly; a search takes it as it takes
    ``_format``; anything but ``true`` or ``false`` is a 400 naming it."""
    body = prescribed(world)
    path = f"/fhir/MedicationStatement/{body['entry_id']}"
    compact = fhir_get(world, path)
    pretty = fhir_get(world, f"{path}?_pretty=true")
    assert pretty.status_code == 200 and pretty.json() == compact.json()
    assert pretty.text.startswith('{\n  "resourceType"') and "\n" not in compact.text
    assert int(pretty.headers["Content-Length"]) == len(pretty.content)
    assert pretty.headers["ETag"] == compact.headers["ETag"]
    assert fhir_get(world, f"{path}?_pretty=false").content == compact.content
    search = f"/fhir/MedicationStatement?patient=Patient/{world.patient_id}"
    bundle = fhir_get(world, f"{search}&_pretty=true")
    assert bundle.status_code == 200, bundle.text
    assert bundle.text.startswith("{\n") and validated(bundle.json())["total"] == 1
    assert bundle.json()["entry"] == fhir_get(world, search).json()["entry"]
    created = world.client.post(
        "/fhir/MedicationRequest?_pretty=true",
        json=medication_request(world),
        headers={
            "Authorization": f"Bearer {gp_token()}",
            "Content-Type": FHIR_JSON,
            "If-Match": f'"{world.version()}"',
        },
    )
    assert created.status_code == 201, created.text
    assert created.text.startswith("{\n") and validated(created.json())["status"] == "active"
    outcome = outcome_of(fhir_get(world, f"{path}?_pretty=yes"), 400)
    assert outcome["issue"][0]["expression"] == ["_pretty"]
