"""FHIR reads and searches take a lean path past FastAPI's dependency solving
(``medloop.fhir.router._LeanRead``): the caller, the path's strings and the request go straight
to the endpoint. It must answer every request exactly as FastAPI's handler does: the same
status, headers and bytes, and the same rows stored (the audit records of reads and refused
reads). Two apps over two copies of one database get the same requests in the same order, one
app with the lean path and one without (an app with dependency overrides takes FastAPI's
handler). Each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import partial

from fastapi.testclient import TestClient

from medloop.api import deps
from medloop.api.auth import Unauthenticated
from medloop.fhir import resources as fhir
from medloop.fhir import router as fhir_router
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.api.helpers import NATIONAL_ID, make_world
from tests.fhir.helpers import (
    dispensed,
    gp_token,
    patient_token,
    pharmacist_token,
    prescribed,
)
from tests.loop.helpers import ATORVASTATIN, NOW
from tests.twins import lean_and_fastapi

VOLATILE = frozenset({"occurred_at", "prev_hash", "hash", "command_id", "created_at"})
"""Columns two runs of the same requests differ in: wall-clock moments, the audit chain's
hashes over them and commands' random ids (the setup's, the same in both copies anyway)."""


def _cases(patient: str, entry: str, prescription: str) -> list[tuple[str, dict[str, str]]]:
    gp = {"Authorization": f"Bearer {gp_token()}"}
    own = {"Authorization": f"Bearer {patient_token()}"}
    other = {"Authorization": f"Bearer {patient_token(national_id='15035010030')}"}
    pharmacist = {"Authorization": f"Bearer {pharmacist_token()}"}
    statements = f"/fhir/MedicationStatement?patient=Patient/{patient}"
    included = f"{statements}&_include=MedicationStatement:medication"
    requests = f"/fhir/MedicationRequest?patient=Patient/{patient}"
    return [
        (included, gp),
        (included, gp),  # the Bundle kept for the patient's state
        (f"{statements}&_count=1", gp),
        (f"{statements}&_count=1&_offset=1", gp),
        (f"{statements}&_summary=count", gp),
        (f"{statements}&status=active&code=C10AA01", gp),
        (f"{statements}&bogus=1", gp),
        (f"{statements}&bogus=1", {**gp, "Prefer": "handling=lenient"}),
        (f"{statements}&effective=not-a-date", gp),
        ("/fhir/MedicationStatement", gp),
        ("/fhir/MedicationStatement", own),
        ("/fhir/MedicationStatement?patient=Patient/not-a-uuid", gp),
        (included, {}),
        (included, {"Authorization": "Bearer not-a-token"}),
        (included, {"Authorization": "Basic abc"}),
        (included, other),
        (included, pharmacist),
        (f"/fhir/MedicationStatement/{entry}", gp),
        (f"/fhir/MedicationStatement/{entry}", {**gp, "If-None-Match": 'W/"1"'}),  # 304
        (f"/fhir/MedicationStatement/{entry}", {**gp, "If-None-Match": "x" * 1001}),  # 400
        (f"/fhir/MedicationStatement/{entry}/_history/1", gp),
        (f"/fhir/MedicationStatement/{entry}/_history/1", {**gp, "If-None-Match": "*"}),
        (f"/fhir/MedicationStatement/{entry}/_history/99", gp),
        (f"/fhir/MedicationStatement/{entry}/_history", gp),
        ("/fhir/MedicationStatement/not-a-uuid", gp),
        (f"{requests}&_include=MedicationRequest:medication", gp),
        (f"/fhir/MedicationRequest/{prescription}", gp),
        (f"/fhir/MedicationRequest/{prescription}/_history", pharmacist),
        (f"/fhir/MedicationDispense?patient=Patient/{patient}", pharmacist),
        (f"/fhir/Patient?identifier={fhir.FNR}|{NATIONAL_ID}", gp),
        (f"/fhir/Patient/{patient}", gp),
        (f"/fhir/Patient/{patient}", other),
        ("/fhir/Medication?code=C10AA01", gp),
        (f"/fhir/AllergyIntolerance?patient=Patient/{patient}", gp),
        (f"/fhir/DetectedIssue?patient=Patient/{patient}", gp),
        (f"/fhir/AuditEvent?patient=Patient/{patient}", own),
        ("/fhir/$export-status/not-an-export", gp),
        ("/fhir/metadata", gp),  # no caller: FastAPI's handler on both sides
    ]


def _answer(client: TestClient, n: int, *, path: str, headers: dict[str, str]) -> tuple:
    response = client.get(path, headers={**headers, "X-Request-ID": f"lean-{n}"})
    kept = sorted((k, v) for k, v in response.headers.items() if k.lower() != "date")
    length = [v for k, v in kept if k.lower() == "content-length"]
    # (a 304 has no body and says no length)
    assert length == ([] if response.status_code == 304 else [str(len(response.content))])
    # An AuditEvent's ``recorded`` is the wall-clock moment of its record (VOLATILE).
    body = _RECORDED.sub(b'"recorded":"<moment>"', response.content)
    return path, response.status_code, kept, body


_RECORDED = re.compile(rb'"recorded":"[^"]*"')


def test_a_lean_read_answers_and_stores_exactly_what_fastapis_handler_does(db_url, monkeypatch):
    engine = make_engine(db_url)
    upgrade(engine)
    world = make_world(engine)
    entry = prescribed(world, ATORVASTATIN)["entry_id"]
    prescription = dispensed(world)
    patient = str(world.patient_id)
    world.client.close()
    engine.dispose()
    served = []
    lean_call = fhir_router._LeanRead.__call__

    async def counted(self, request):
        served.append(request.url.path)
        return await lean_call(self, request)

    monkeypatch.setattr(fhir_router._LeanRead, "__call__", counted)
    cases = _cases(patient, entry, prescription)
    seen = lean_and_fastapi(
        db_url,
        "lean_twin",
        NOW + timedelta(days=1),
        [partial(_answer, path=path, headers=headers) for path, headers in cases],
        served,
        VOLATILE,
        lambda engine: lambda value: value,
    )
    answers, took, rows = seen.answers, seen.took, seen.rows
    for ours, theirs in zip(answers["lean"], answers["fastapi"], strict=True):
        assert ours == theirs
    assert rows["lean"] == rows["fastapi"]
    # Every request but the metadata's (no caller) took the lean path; with overrides none did.
    assert took["lean"] == ["/fhir/metadata" not in path for path, _ in cases]
    assert not any(took["fastapi"])
    statuses = {status for _, status, _, _ in answers["lean"]}
    assert {200, 304, 400, 401, 403, 404} <= statuses
    reads = [r for r in rows["lean"]["audit_event"] if "fhir-MedicationStatement" in repr(r)]
    assert reads  # the searches were audited (and alike, above)


def test_a_dependency_override_of_the_caller_is_honoured_on_fhir_reads(world):
    def refused():
        raise Unauthenticated("overridden caller")

    world.client.app.dependency_overrides[deps.caller] = refused
    try:
        response = world.client.get(
            f"/fhir/MedicationStatement?patient=Patient/{world.patient_id}",
            headers={"Authorization": f"Bearer {gp_token()}"},
        )
    finally:
        world.client.app.dependency_overrides.clear()
    assert response.status_code == 401
    assert "overridden caller" in response.text
