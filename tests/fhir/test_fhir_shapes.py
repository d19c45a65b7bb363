"""The plain shapes of a posted MedicationRequest (``medloop.fhir.shapes``), checked without
``fhir.resources``' model tree: held against ``fhir.resources`` on mutations of every element
of the bodies clients send (whatever the plain check accepts, ``fhir.resources`` accepts, with
the same dosage), and over HTTP (a resource outside the plain shapes is validated in full, its
faults told as before)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from medloop.fhir import resources as fhir
from medloop.fhir import shapes
from medloop.fhir.shapes import plain_request
from medloop.fhir.writes import PRESCRIPTION_ID
from tests.fhir.helpers import gp_token, medication_request, outcome_of, validated

MEDICATION_REQUEST = get_fhir_model_class("MedicationRequest")
PATIENT = f"Patient/{uuid.uuid4()}"

BENCH = {
    # As bench/fhir.py posts it.
    "resourceType": "MedicationRequest",
    "status": "active",
    "intent": "order",
    "medicationCodeableConcept": {"coding": [{"system": fhir.NO_VARENR, "code": "090436"}]},
    "subject": {"reference": PATIENT},
    "dosageInstruction": [
        {
            "text": "1 tablett om morgenen",
            "timing": {
                "repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "when": ["MORN"]}
            },
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablett"}}],
        }
    ],
    "dispenseRequest": {"quantity": {"value": 1, "unit": "pakning"}},
    "extension": [{"url": fhir.OVERRIDE_REASON, "valueString": "bench: duplicates are intended"}],
}
RICH = {
    # Every element of the plain shapes.
    "resourceType": "MedicationRequest",
    "id": "rx-1.a",
    "identifier": [
        {"system": fhir.ENTRY_ID, "value": str(uuid.uuid4())},
        {"system": PRESCRIPTION_ID, "value": str(uuid.uuid4())},
    ],
    "status": "active",
    "intent": "original-order",
    "medicationCodeableConcept": {
        "coding": [
            {"system": fhir.NO_VARENR, "code": "090436", "display": "Simvastatin 20 mg"},
            {"system": fhir.ATC, "code": "C10AA01"},
        ],
        "text": "Simvastatin",
    },
    "subject": {"reference": PATIENT, "display": "Kari Nordmann"},
    "requester": {"reference": "Practitioner/9144889", "display": "Lege Legesen"},
    "authoredOn": "2026-12-05T10:15:00.25+01:00",
    "priority": "routine",
    "reasonCode": [{"text": "hyperkolesterolemi"}],
    "dosageInstruction": [
        {
            "text": "2 tabletter ved behov, høyst 6 i døgnet",
            "asNeededBoolean": True,
            "timing": {"repeat": {"frequency": 1, "period": 4, "periodUnit": "h"}},
            "maxDosePerPeriod": {
                "numerator": {"value": 6, "unit": "tablett"},
                "denominator": {"value": 1, "unit": "d"},
            },
            "doseAndRate": [{"doseQuantity": {"value": 2.5, "unit": "mg", "code": "mg"}}],
        }
    ],
    "dispenseRequest": {
        "numberOfRepeatsAllowed": 2,
        "quantity": {"value": 2, "unit": "pakninger", "system": "http://x.example", "code": "pk"},
        "validityPeriod": {"start": "2026-12-01", "end": "2027-12-01"},
    },
    "substitution": {"allowedBoolean": False},
    "extension": [
        {
            "url": fhir.OVERRIDE_REASON,
            "valueString": "short course, statin paused",
            "extension": [{"url": "alert", "valueString": "interaction:a:b"}],
        },
        {"url": fhir.OVERRIDE_REASON, "valueString": "every other alert"},
    ],
}
REFERENCED = {
    **{k: v for k, v in BENCH.items() if k != "medicationCodeableConcept"},
    "medicationReference": {"reference": "Medication/2026-11-01.ID_5D6E7F"},
}
BODIES = {"bench": BENCH, "rich": RICH, "referenced": REFERENCED}

HOSTILE: tuple[Any, ...] = (
    None,
    "",
    " ",
    "\t",
    "\u00a0",
    "a  b",
    " a",
    "a\n",
    "é",
    "2026-02-30",
    "2026-12-01T10:00:00Z",
    "2026-12-01T24:00:00Z",
    "2026-12-01T10:00:00",
    "2026-12-01T10:00:00+14:30",
    "2026-12-01T10:00:60Z",
    "2026-02-29T10:00:00Z",
    "0000-01-01",
    "1.5",
    0,
    -1,
    1.5,
    1e300,
    1e-7,
    -0.0,
    2**40,
    True,
    False,
    [],
    [None],
    [{}],
    {},
    {"unknownElement": "x"},
)


def _dosages(models: Any) -> list[dict[str, Any]]:
    return [d.model_dump() for d in models or []]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every element's path in ``value`` (keys and list indexes)."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if path == () and key == "resourceType":
            continue
        yield (*path, key)
        if isinstance(item, dict | list):
            yield from _paths(item, (*path, key))


def _changed(body: dict[str, Any], path: tuple[Any, ...], change: Any) -> dict[str, Any]:
    """A copy of ``body`` with ``change(parent, key)`` applied at ``path``."""
    copied = copy.deepcopy(body)
    parent: Any = copied
    for key in path[:-1]:
        parent = parent[key]
    change(parent, path[-1])
    return copied


def _removed(parent: Any, key: Any) -> None:
    parent.pop(key)


def _set_to(value: Any) -> Any:
    def change(parent: Any, key: Any) -> None:
        parent[key] = value

    return change


def _unknown_sibling(parent: Any, key: Any) -> None:
    parent["unknownElement"] = "x"


def _primitive_extension(parent: Any, key: Any) -> None:
    parent[f"_{key}"] = {"id": "x"}


def _listed_or_unlisted(parent: Any, key: Any) -> None:
    """A single element as an array, an array as its first item."""
    parent[key] = parent[key][0] if isinstance(parent[key], list) else [parent[key]]


def _mutations(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for path in list(_paths(body)):
        changes = [_removed, _listed_or_unlisted, *(_set_to(value) for value in HOSTILE)]
        if isinstance(path[-1], str):
            changes += [_unknown_sibling, _primitive_extension]
        for change in changes:
            yield _changed(body, path, change)


@pytest.mark.parametrize("name", sorted(BODIES))
def test_the_bodies_clients_send_take_the_plain_path_with_the_same_dosage(name):
    body = BODIES[name]
    plain = plain_request(copy.deepcopy(body))
    assert plain is not None
    full = MEDICATION_REQUEST.model_validate(copy.deepcopy(body))
    assert _dosages(plain) == _dosages(full.dosageInstruction)


@pytest.mark.parametrize("name", sorted(BODIES))
def test_what_the_plain_check_accepts_fhir_resources_accepts_with_the_same_dosage(name):
    accepted = refused = 0
    wrongly_accepted = []
    for mutated in _mutations(BODIES[name]):
        plain = plain_request(copy.deepcopy(mutated))
        try:
            full = MEDICATION_REQUEST.model_validate(copy.deepcopy(mutated))
        except ValidationError:
            refused += 1
            if plain is not None:
                wrongly_accepted.append(mutated)
            continue
        if plain is not None:
            accepted += 1
            assert _dosages(plain) == _dosages(full.dosageInstruction), mutated
    assert wrongly_accepted == []
    # Not vacuous: fhir.resources refused some mutations, the plain check accepted others.
    assert refused > 20 and accepted > 5, (refused, accepted)


def _prescribe(world, body: dict[str, Any]):
    return world.client.post(
        "/fhir/MedicationRequest",
        json=body,
        headers={
            "Authorization": f"Bearer {gp_token()}",
            "Content-Type": "application/fhir+json",
            "If-Match": '"0"',
        },
    )


def test_a_request_with_elements_beyond_the_plain_shapes_is_validated_in_full_and_accepted(world):
    body = {
        **medication_request(world),
        "authoredOn": "2026-12-05",
        "note": [{"text": "take with water"}],
        "courseOfTherapyType": {"text": "continuous"},
        "meta": {"profile": ["http://hl7.no/fhir/StructureDefinition/no-basis-MedicationRequest"]},
    }
    assert plain_request(copy.deepcopy(body)) is None
    response = _prescribe(world, body)
    assert response.status_code == 201, response.text
    assert validated(response.json())["status"] == "active"
    assert world.version() == 1


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (
            lambda b: b["dosageInstruction"][0]["timing"]["repeat"].update(frequency="daily"),
            "MedicationRequest.dosageInstruction.timing.repeat.frequency",
        ),
        (lambda b: b["subject"].update(reference=""), "MedicationRequest.subject.reference"),
        (lambda b: b.update(status="on  hold"), "MedicationRequest.status"),
        (
            lambda b: b["dispenseRequest"].update(validityPeriod={"end": "2027-02-30"}),
            "MedicationRequest.dispenseRequest.validityPeriod.end",
        ),
    ],
)
def test_invalid_fhir_in_a_plain_element_is_told_by_the_full_validation(world, change, where):
    body = medication_request(world)
    change(body)
    assert plain_request(copy.deepcopy(body)) is None
    outcome = outcome_of(_prescribe(world, body), 400)
    assert outcome["issue"][0]["code"] == "structure"
    assert where in [e for i in outcome["issue"][1:] for e in i.get("expression", [])], outcome
    assert world.version() == 0


def _frequency(value: Any) -> dict[str, Any]:
    body = copy.deepcopy(BENCH)
    body["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = value
    return body


FREQUENCIES = (1, 1.0, True, "1", 2, 0, -1, 1.5, None, [1])
"""Values of one element that JSON tells apart and Python's ``==`` partly does not."""


def test_a_dosage_is_remembered_by_its_exact_content_and_answers_as_a_fresh_check(monkeypatch):
    # The same content twice: the second answer is the first (the memo), not a new validation.
    first = plain_request(copy.deepcopy(BENCH))
    assert first is not None and plain_request(copy.deepcopy(BENCH)) is first
    # Every variant, asked twice with the memo warm, answers as an empty memo does.
    warm = [[plain_request(_frequency(v)) for _ in range(2)] for v in FREQUENCIES]
    monkeypatch.setattr(shapes, "DOSAGES", shapes.Memo(1024))
    fresh = [plain_request(_frequency(v)) for v in FREQUENCIES]
    for value, answers, expected in zip(FREQUENCIES, warm, fresh, strict=True):
        for answer in answers:
            assert (answer is None) == (expected is None), value
            assert _dosages(answer) == _dosages(expected), value
    # Not vacuous: some variants are refused (and the full validation decides them).
    assert any(a is None for a in fresh) and any(a is not None for a in fresh)


def test_a_refused_dosage_is_not_remembered():
    refused = _frequency("daily")
    assert plain_request(copy.deepcopy(refused)) is None
    assert shapes.content_key(refused["dosageInstruction"]) not in shapes.DOSAGES._found


def test_a_dosage_mapped_before_is_mapped_again_for_its_own_day():
    """The mapping is remembered by the dosage's content and the day: a dosage bounded by a
    duration ends on a different day when prescribed on another day."""
    from datetime import date

    from medloop.api.fhir_dosage import dosage_of
    from medloop.fhir import writes

    body = copy.deepcopy(BENCH)
    body["dosageInstruction"][0]["timing"]["repeat"]["boundsDuration"] = {
        "value": 5,
        "unit": "d",
        "system": "http://unitsofmeasure.org",
        "code": "d",
    }
    instructions = plain_request(copy.deepcopy(body))
    assert instructions is not None
    stops = []
    for today in (date(2026, 12, 5), date(2026, 12, 6), date(2026, 12, 5)):
        use, mapped = writes._dosage(copy.deepcopy(body), instructions, today)
        expected = dosage_of(instructions, today)
        assert mapped is not None and mapped.stop == expected.stop == today.replace(
            day=today.day + 4
        )
        assert mapped.dosage.model_dump() == expected.dosage.model_dump()
        stops.append(mapped.stop)
    assert stops == [date(2026, 12, 9), date(2026, 12, 10), date(2026, 12, 9)]


def test_a_large_dosage_is_checked_but_not_remembered():
    """What a client sends does not grow the memo beyond small inputs: a dosage whose content
    is larger than the memo's bound is validated each time and not kept."""
    body = copy.deepcopy(BENCH)
    body["dosageInstruction"][0]["text"] = "1 tablett om morgenen. " * 300
    key = shapes.content_key(body["dosageInstruction"])
    assert len(key) > shapes.DOSAGES.largest
    first = plain_request(copy.deepcopy(body))
    again = plain_request(copy.deepcopy(body))
    assert first is not None and again is not None and again is not first
    assert _dosages(again) == _dosages(first)
    assert key not in shapes.DOSAGES._found
