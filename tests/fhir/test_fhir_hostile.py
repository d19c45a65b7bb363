"""Generated hostile input under /fhir: any query on any search, any JSON body on the creates,
gets a FHIR answer (a Bundle, a resource or an OperationOutcome), never a 500, and a refused
create stores nothing."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fhir.helpers import FHIR_JSON, gp_token

SEARCHES = (
    "MedicationStatement",
    "MedicationRequest",
    "MedicationDispense",
    "Patient",
    "Medication",
    "DetectedIssue",
    "AllergyIntolerance",
    "AuditEvent",
)
NAMES = st.sampled_from(
    [
        "patient",
        "status",
        "code",
        "effective",
        "_lastUpdated",
        "_count",
        "_offset",
        "_include",
        "_summary",
        "identifier",
        "date",
        "code:below",
        "status:not",
        "_id",
        "x",
        "_format",
    ]
)
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "ge2026-11-20",
            "2026",
            "Patient/",
            "|",
            "a|b|c",
            "-1",
            "0",
            "count",
            "MedicationStatement:medication",
            "\x00",
            "9" * 30,
        ]
    ),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
SETTINGS = settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


@SETTINGS
@given(resource=st.sampled_from(SEARCHES), query=st.lists(st.tuples(NAMES, VALUES), max_size=4))
def test_any_search_query_gets_a_fhir_answer_never_a_500(world, resource, query):
    response = world.client.get(
        f"/fhir/{resource}",
        params=[*query, ("patient", str(world.patient_id))] if query else None,
        headers={"Authorization": f"Bearer {gp_token()}"},
    )
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    assert response.json()["resourceType"] in ("Bundle", "OperationOutcome")


@SETTINGS
@given(
    resource=st.sampled_from(["MedicationRequest", "MedicationAdministration"]),
    extra=st.dictionaries(
        st.sampled_from(
            [
                "status",
                "intent",
                "subject",
                "medicationCodeableConcept",
                "dosageInstruction",
                "dispenseRequest",
                "extension",
                "contained",
                "identifier",
                "effectiveDateTime",
                "dosage",
                "supportingInformation",
            ]
        ),
        JSON,
        max_size=6,
    ),
)
def test_any_posted_body_gets_an_operation_outcome_never_a_500(world, resource, extra):
    body = {"resourceType": resource, **extra}
    response = world.client.post(
        f"/fhir/{resource}",
        content=json.dumps(body),
        headers={
            "Authorization": f"Bearer {gp_token()}",
            "Content-Type": FHIR_JSON,
            "If-Match": '"0"',
        },
    )
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    if response.status_code >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"
    assert world.version() == (1 if response.status_code == 201 else 0)
