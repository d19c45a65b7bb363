"""FHIR creates take a lean path past FastAPI's request handler when the request has the
ordinary shape (``medloop.fhir.router._LeanCreate``): the body, the headers, the caller and
the header dependencies given to the endpoint directly. It must answer every create exactly as
FastAPI's handler does, and hand everything out of the ordinary to that handler: the same
status, headers and bytes, and the same rows stored (the prescriptions, chartings, refusals
and their audit records). Two apps over two copies of one database get the same requests in
the same order, one with the lean path and one without (an app with dependency overrides takes
FastAPI's handler). Each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from fastapi.testclient import TestClient

from medloop.fhir import resources as fhir
from medloop.fhir import router as fhir_router
from medloop.fhir.writes import PLANNED_DOSE, PRESCRIPTION_ID
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.api.helpers import NEXT_MORNING, NURSE_TOKEN, admitted, make_world
from tests.fhir.helpers import (
    FHIR_JSON,
    administration,
    gp_token,
    medication_request,
    nurse_token,
    patient_token,
    pharmacist_token,
)
from tests.loop.helpers import ATORVASTATIN, KLARITROMYCIN
from tests.twins import lean_and_fastapi
from tests.twins import masked as _masked

VOLATILE = frozenset({"command_id", "occurred_at", "created_at", "prev_hash", "hash"})
"""Columns two runs of the same requests differ in: commands' random ids, wall-clock moments
and the audit chain's hashes over them."""


OVERRIDE = {
    "url": fhir.OVERRIDE_REASON,
    "valueString": "the lean test: intended",
}

Case = tuple[str, str, dict[str, str] | list[tuple[str, str]], bytes, bool]
"""(name, path, headers, body, whether the lean path serves it)."""


def _cases(world: Any, version: int, simvastatin: str, planned_dose: str) -> list[Case]:
    gp = {"Authorization": f"Bearer {gp_token()}"}
    nurse = {"Authorization": f"Bearer {nurse_token()}"}
    fhir_json = {"Content-Type": FHIR_JSON}
    requests = "/fhir/MedicationRequest"
    administrations = "/fhir/MedicationAdministration"

    def body(value: Any) -> bytes:
        return json.dumps(value).encode()

    def request(varenr: str, n: int, **fields: Any) -> bytes:
        ids = [
            {"system": fhir.ENTRY_ID, "value": f"00000000-0000-4000-8000-{n:012d}"},
            {"system": PRESCRIPTION_ID, "value": f"00000000-0000-4000-9000-{n:012d}"},
        ]
        return body(medication_request(world, varenr, identifier=ids, **fields))

    def at(n: int) -> dict[str, str]:
        return {"If-Match": f'"{version + n}"'}

    overridden = {"extension": [OVERRIDE]}
    dose = administration(
        world,
        simvastatin,
        extension=[{"url": PLANNED_DOSE, "valueString": planned_dose}],
        status="not-done",
        statusReason=[
            {
                "coding": [{"system": fhir.ADMINISTRATION_OUTCOME, "code": "refused"}],
                "text": "the patient refused",
            }
        ],
    )
    del dose["dosage"]
    return [
        # Served by the lean path: the ordinary shape, whatever the route then answers.
        (
            "prescribe, an alert to override",
            requests,
            {**gp, **fhir_json, **at(0), "Prefer": "return=OperationOutcome"},
            request(KLARITROMYCIN, 1),
            True,
        ),
        (
            "prescribe with the override, OperationOutcome",
            requests,
            {**gp, **fhir_json, **at(0), "Prefer": "return=OperationOutcome"},
            request(KLARITROMYCIN, 1, **overridden),
            True,
        ),
        (
            "prescribe, the resource back, a key",
            requests,
            {**gp, **fhir_json, **at(1), "Idempotency-Key": "lean-1"},
            body(medication_request(world, ATORVASTATIN, **overridden)),
            True,
        ),
        (
            "the same key again: the first answer",
            requests,
            {**gp, **fhir_json, **at(0), "Idempotency-Key": "lean-1"},
            body(medication_request(world, ATORVASTATIN, **overridden)),
            True,
        ),
        (
            "application/json with a charset, return=representation",
            requests,
            {
                **gp,
                "Content-Type": "Application/JSON; charset=utf-8",
                **at(2),
                "Prefer": "return=representation",
            },
            request(ATORVASTATIN, 2, **overridden),
            True,
        ),
        (
            "a stale If-Match",
            requests,
            {**gp, **fhir_json, **at(0)},
            request(ATORVASTATIN, 3),
            True,
        ),
        ("another resource type", requests, {**gp, **fhir_json, **at(3)}, b"{}", True),
        (
            "an ATC code (refused, audited)",
            requests,
            {**gp, **fhir_json, **at(3)},
            request(
                ATORVASTATIN,
                4,
                medicationCodeableConcept={"coding": [{"system": fhir.ATC, "code": "C10AA05"}]},
            ),
            True,
        ),
        (
            "a patient's token",
            requests,
            {"Authorization": f"Bearer {patient_token()}", **fhir_json, **at(3)},
            request(ATORVASTATIN, 5),
            True,
        ),
        (
            "a pharmacist's token",
            requests,
            {"Authorization": f"Bearer {pharmacist_token()}", **fhir_json, **at(3)},
            request(ATORVASTATIN, 6),
            True,
        ),
        (
            "a dose not given",
            administrations,
            {**nurse, **fhir_json, "Idempotency-Key": "lean-dose"},
            body(dose),
            True,
        ),
        (
            "a witness whose token is not one",
            administrations,
            {**nurse, **fhir_json, "X-Witness-Authorization": "Bearer not-a-token"},
            body(dose),
            True,
        ),
        (
            "no entry named",
            administrations,
            {**nurse, **fhir_json},
            body({k: v for k, v in dose.items() if k != "supportingInformation"}),
            True,
        ),
        # Handed to FastAPI's handler: out of the ordinary.
        ("no If-Match", requests, {**gp, **fhir_json}, request(ATORVASTATIN, 7), False),
        (
            "If-Match not a version",
            requests,
            {**gp, **fhir_json, "If-Match": "abc"},
            request(ATORVASTATIN, 7),
            False,
        ),
        (
            "If-Match twice",
            requests,
            [*gp.items(), *fhir_json.items(), ("If-Match", '"3"'), ("If-Match", '"3"')],
            request(ATORVASTATIN, 7),
            False,
        ),
        (
            "an Idempotency-Key too long",
            requests,
            {**gp, **fhir_json, **at(3), "Idempotency-Key": "k" * 201},
            request(ATORVASTATIN, 7),
            False,
        ),
        (
            "text/plain",
            requests,
            {**gp, "Content-Type": "text/plain", **at(3)},
            request(ATORVASTATIN, 7),
            False,
        ),
        ("no content type", requests, {**gp, **at(3)}, request(ATORVASTATIN, 7), False),
        ("an empty body", requests, {**gp, **fhir_json, **at(3)}, b"", False),
        ("not JSON", requests, {**gp, **fhir_json, **at(3)}, b'{"resourceType": ', False),
        ("NaN", requests, {**gp, **fhir_json, **at(3)}, b'{"resourceType": NaN}', False),
        ("a JSON array", requests, {**gp, **fhir_json, **at(3)}, b"[]", False),
        ("JSON null", requests, {**gp, **fhir_json, **at(3)}, b"null", False),
        (
            "the dose, no content type",
            administrations,
            {**nurse, "Idempotency-Key": "lean-dose-2"},
            body(dose),
            False,
        ),
        # Answered before any route (limits.BodyGuard): neither path.
        ("no token", requests, {**fhir_json, **at(3)}, request(ATORVASTATIN, 8), False),
        (
            "not a bearer token",
            requests,
            {"Authorization": "Basic abc", **fhir_json, **at(3)},
            request(ATORVASTATIN, 8),
            False,
        ),
        # And the ordinary shape works after all of that.
        (
            "prescribe again",
            requests,
            {**gp, **fhir_json, **at(3), "Idempotency-Key": "lean-2"},
            body(medication_request(world, ATORVASTATIN, **overridden)),
            True,
        ),
    ]


def _answer(client: TestClient, n: int, *, case: Case) -> tuple:
    name, path, headers, body, _ = case
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    items.append(("X-Request-ID", f"lean-{n}"))
    response = client.post(path, content=body, headers=items)
    kept = sorted((k, v) for k, v in response.headers.items() if k.lower() != "date")
    return name, response.status_code, kept, response.content


def test_a_lean_create_answers_and_stores_exactly_what_fastapis_handler_does(db_url, monkeypatch):
    engine = make_engine(db_url)
    upgrade(engine)
    world = make_world(engine)
    ward_id, simvastatin, _ = admitted(world)
    world.clock.at = NEXT_MORNING
    chart = world.get(f"/nursing/wards/{ward_id}/chart?day=2026-11-21", token=NURSE_TOKEN).json()
    (planned,) = [d for d in chart["patients"][0]["doses"] if d["entry_id"] == simvastatin]
    version = world.version()
    world.client.close()
    engine.dispose()
    served = []
    lean_call = fhir_router._LeanCreate.__call__

    async def counted(self, values):
        served.append(values[self.request].url.path)
        return await lean_call(self, values)

    monkeypatch.setattr(fhir_router._LeanCreate, "__call__", counted)
    cases = _cases(world, version, simvastatin, planned["planned_dose_id"])
    seen = lean_and_fastapi(
        db_url,
        "lean_create_twin",
        NEXT_MORNING,
        [partial(_answer, case=case) for case in cases],
        served,
        VOLATILE,
        lambda engine: _masked,
    )
    answers, took, rows = seen.answers, seen.took, seen.rows
    for ours, theirs in zip(answers["lean"], answers["fastapi"], strict=True):
        assert ours == theirs
    assert rows["lean"] == rows["fastapi"]
    assert took["lean"] == [case[4] for case in cases]
    assert not any(took["fastapi"])
    statuses = {status for _, status, _, _ in answers["lean"]}
    assert {201, 400, 401, 403, 409, 412, 422, 428} <= statuses
    created = [a for a in answers["lean"] if a[1] == 201]
    assert len(created) >= 5  # prescriptions, the replay and the charted dose
    assert rows["lean"]["audit_event"]


def test_a_lean_create_is_built_for_both_create_routes_and_no_read(world):
    """The two FHIR creates qualify; no other FHIR route does (reads have ``_LeanRead``)."""
    routes = world.client.app.state.fhir_router.routes
    creates = {route.path for route in routes if fhir_router._LeanCreate.of(route) is not None}
    assert creates == {"/fhir/MedicationRequest", "/fhir/MedicationAdministration"}
