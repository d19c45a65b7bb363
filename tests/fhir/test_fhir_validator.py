"""The independent validator itself: it runs (skipped only outside CI when Node.js or its
packages are missing) and it is not a no-op: it refuses what R4 refuses."""

from __future__ import annotations

import pytest

from tests.fhir import validator


def test_the_independent_validator_runs_and_refuses_what_r4_refuses():
    found = validator.validator()  # raises under CI when it cannot run
    if found is None:
        pytest.skip(validator.missing() or "")
    assert found.issues({"resourceType": "Patient", "id": "a", "birthDate": "1946-01-21"}) == []
    bad_date = found.issues({"resourceType": "Patient", "id": "a", "birthDate": "yesterday"})
    assert [i["expression"] for i in bad_date] == [["Patient.birthDate"]]
    no_subject = found.issues(
        {
            "resourceType": "MedicationStatement",
            "id": "x",
            "status": "active",
            "medicationCodeableConcept": {"text": "x"},
        }
    )
    assert ["MedicationStatement.subject"] in [i["expression"] for i in no_subject]
    unknown_element = found.issues({"resourceType": "Patient", "id": "a", "colour": "blue"})
    assert unknown_element
