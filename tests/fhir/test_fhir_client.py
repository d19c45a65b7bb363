"""A FHIR client library (``fhirpy``) drives the main flows against a real server (uvicorn on a
port of 9400-9499), as an EHR or app would: search a patient's statements with the Medication
included and paging, prescribe with an override, chart an administration, read an entry's
history."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import uvicorn
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

from medloop.fhir import resources as fhir
from medloop.fhir.writes import PLANNED_DOSE, SCAN
from tests.api.helpers import NURSE_TOKEN
from tests.api.test_api_nursing import NEXT_MORNING, SIMVASTATIN_GENERIC_EAN, admitted
from tests.fhir.helpers import gp_token, nurse_token, prescribed, validated
from tests.fhir.test_fhir_write import _administration, medication_request
from tests.loop.helpers import ATORVASTATIN, KLARITROMYCIN

PORTS = range(9400, 9500)


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 9400-9499")


@pytest.fixture
def server(world) -> Iterator[str]:
    """The world's app served over HTTP; yields the FHIR base URL."""
    port = _free_port()
    config = uvicorn.Config(
        world.client.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/fhir"
    running.should_exit = True
    thread.join(timeout=10)


def _client(base: str, token: str, **headers: str) -> SyncFHIRClient:
    return SyncFHIRClient(base, authorization=f"Bearer {token}", extra_headers=headers or None)


def test_a_client_searches_statements_with_included_medications_page_by_page(world, server):
    made = {prescribed(world)["entry_id"], prescribed(world, ATORVASTATIN)["entry_id"]}
    made.add(prescribed(world)["entry_id"])
    client = _client(server, gp_token())
    search = (
        client.resources("MedicationStatement")
        .search(patient=f"Patient/{world.patient_id}")
        .include("MedicationStatement", "medication")
        .limit(2)
    )
    first = validated(search.fetch_raw())
    assert first["total"] == 3 and any(link["relation"] == "next" for link in first["link"])
    on_first = [e["resource"] for e in first["entry"]]
    statements = [r for r in on_first if r["resourceType"] == "MedicationStatement"]
    medications = [r for r in on_first if r["resourceType"] == "Medication"]
    assert len(statements) == 2
    referenced = {s["medicationReference"]["reference"] for s in statements}
    assert {f"Medication/{m['id']}" for m in medications} == referenced
    # fetch_all follows the next links (and keeps the matches of the searched type).
    assert {s["id"] for s in search.fetch_all()} == made


def test_a_client_prescribes_with_an_override(world, server):
    prescribed(world)
    client = _client(server, gp_token(), **{"If-Match": f'"{world.version()}"'})
    entry = str(uuid.uuid4())
    body = medication_request(
        world, KLARITROMYCIN, identifier=[{"system": fhir.ENTRY_ID, "value": entry}]
    )
    with pytest.raises(OperationOutcome) as refused:
        client.resource("MedicationRequest", **body).save()
    outcome = refused.value.resource
    keys = [i["identifier"][0]["value"] for i in outcome["contained"]]
    assert keys
    body["extension"] = [
        {
            "url": fhir.OVERRIDE_REASON,
            "valueString": "short course, statin paused",
            "extension": [{"url": "alert", "valueString": key}],
        }
        for key in keys
    ]
    created = client.resource("MedicationRequest", **body)
    created.save()
    assert created["status"] == "active" and created["id"]
    read = client.reference("MedicationRequest", created["id"]).to_resource()
    assert read["medicationReference"]["display"].lower().startswith("klaritromycin")


def test_a_client_charts_an_administration_and_reads_an_entrys_history(world, server):
    ward_id, simvastatin, _ = admitted(world)
    world.clock.at = NEXT_MORNING
    chart = world.get(f"/nursing/wards/{ward_id}/chart?day=2026-11-21", token=NURSE_TOKEN).json()
    (dose,) = [d for d in chart["patients"][0]["doses"] if d["entry_id"] == simvastatin]
    nurse = _client(server, nurse_token())
    charted = nurse.resource(
        "MedicationAdministration",
        **_administration(
            world,
            simvastatin,
            extension=[
                {"url": PLANNED_DOSE, "valueString": dose["planned_dose_id"]},
                {"url": SCAN, "valueString": SIMVASTATIN_GENERIC_EAN},
            ],
        ),
    )
    charted.save()
    assert charted["status"] == "completed"
    found = (
        nurse.resources("MedicationAdministration")
        .search(patient=f"Patient/{world.patient_id}")
        .fetch()
    )
    assert [a["id"] for a in found] == [charted["id"]]
    gp = _client(server, gp_token())
    history = gp.execute(f"MedicationStatement/{simvastatin}/_history", method="get")
    assert history["type"] == "history"
    assert history["entry"][-1]["resource"]["meta"]["versionId"] == "1"
