"""The CapabilityStatement at ``/fhir/metadata``: built from the tables the routes use
(``INTERACTIONS`` here, ``search.PARAMETERS`` and ``search.INCLUDES``), and held against the
mounted routes by ``tests/fhir/test_fhir_capability.py`` in both directions."""

from __future__ import annotations

from typing import Any

from medloop.fhir.resources import FHIR_JSON, FHIR_VERSION
from medloop.fhir.search import COMMON, INCLUDES, PARAMETERS

INTERACTIONS: dict[str, tuple[str, ...]] = {
    "Patient": ("read", "search-type"),
    "Practitioner": ("read", "search-type"),
    "Organization": ("read", "search-type"),
    "PractitionerRole": ("read", "search-type"),
    "Medication": ("read", "search-type"),
    "MedicationStatement": ("read", "vread", "history-instance", "search-type"),
    "MedicationRequest": ("read", "vread", "history-instance", "search-type"),
    "MedicationDispense": ("read", "search-type"),
    "MedicationAdministration": ("read", "search-type"),
    "AllergyIntolerance": ("read", "search-type"),
    "DetectedIssue": ("read", "search-type"),
    "AuditEvent": ("search-type",),
}
"""Every resource type served and its interactions (``create`` is added by the write routes
that exist: ``WRITES``)."""

WRITES: dict[str, tuple[str, ...]] = {
    "MedicationRequest": ("create",),
    "MedicationAdministration": ("create",),
}
"""Resource types that take ``create`` (POST, ``medloop.fhir.writes``)."""

OPERATIONS: list[dict[str, str]] = [
    {
        "name": "export",
        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
    },
    {
        "name": "export",
        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
    },
]
"""The Bulk Data operations (``medloop.fhir.bulk``)."""
OPERATION_ROUTES = {
    ("GET", "/fhir/$export"),
    ("GET", "/fhir/Group/{id}/$export"),
    ("GET", "/fhir/$export-status/{id}"),
    ("DELETE", "/fhir/$export-status/{id}"),
    ("GET", "/fhir/$export-file/{id}/{id}"),
}
"""The routes of the operations: kick-off, status polling and deleting, the files."""

_PATHS = {
    "read": "/fhir/{type}/{id}",
    "vread": "/fhir/{type}/{id}/_history/{vid}",
    "history-instance": "/fhir/{type}/{id}/_history",
    "search-type": "/fhir/{type}",
    "create": "/fhir/{type}",
}
_METHODS = {
    "read": "GET",
    "vread": "GET",
    "history-instance": "GET",
    "search-type": "GET",
    "create": "POST",
}


def expected_routes() -> set[tuple[str, str]]:
    """(method, path template) of every interaction the statement names."""
    found = set()
    for resource, interactions in INTERACTIONS.items():
        for interaction in (*interactions, *WRITES.get(resource, ())):
            found.add((_METHODS[interaction], _PATHS[interaction].replace("{type}", resource)))
    return found | OPERATION_ROUTES


def capability_statement(base: str, *, cors: bool = False) -> dict[str, Any]:
    """The CapabilityStatement of the server at ``base``; ``cors``: whether browser apps of
    configured origins may call it (``MEDLOOP_FHIR_CORS_ORIGINS``)."""
    resources = []
    for resource, interactions in INTERACTIONS.items():
        entry: dict[str, Any] = {
            "type": resource,
            "interaction": [{"code": i} for i in (*interactions, *WRITES.get(resource, ()))],
            "versioning": "versioned" if "vread" in interactions else "no-version",
            "readHistory": "vread" in interactions,
            # a versioned read or vread with If-None-Match naming its version: 304
            "conditionalRead": "not-match" if "vread" in interactions else "not-supported",
            "searchParam": [
                {"name": name, "type": kind}
                for name, kind in {**PARAMETERS[resource], **_RESULT}.items()
            ],
        }
        if resource in INCLUDES:
            entry["searchInclude"] = list(INCLUDES[resource])
        resources.append(entry)
    rest: dict[str, Any] = {
        "mode": "server",
        "security": {
            "cors": cors,
            "service": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                            "code": "SMART-on-FHIR",
                        }
                    ]
                }
            ],
            "description": "Bearer JWTs with SMART v2 scopes; see /.well-known/smart-configuration",
        },
        "resource": resources,
    }
    if OPERATIONS:
        rest["operation"] = list(OPERATIONS)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-05",
        "publisher": "medloop",
        "kind": "instance",
        "implementation": {"description": "medloop FHIR R4 API", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": [FHIR_JSON, "json"],
        "rest": [rest],
    }


_RESULT = {
    name: kind for name, kind in COMMON.items() if name in ("_count", "_summary", "_elements")
}
