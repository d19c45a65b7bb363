"""SMART on FHIR scopes (App Launch 2.0; the v1 forms ``.read``/``.write``/``.*`` too): what
a token's ``scope`` claim grants through ``/fhir``.

Access is the intersection of the scopes and the role × organisation policy
(``medloop.api.policy``): a scope never widens the policy, the policy is checked after it.

- ``<context>/<Type|*>.<cruds>``: ``c`` create, ``r`` read (and vread, history), ``u`` update,
  ``d`` delete, ``s`` search; v1 ``read`` = ``rs``, ``write`` = ``cud``, ``*`` = ``cruds``.
- ``patient/…`` reaches only the patient in context: a patient's own record (the policy's
  ``self`` scope), or for a health personnel token the patient its ``patient`` claim names
  (the SMART launch context); a ``patient/`` scope of a token without one reaches no patient
  record (catalogue reads, which name no patient, it does grant).
- ``user/…`` and ``system/…`` reach whatever the policy lets the caller's role reach.
- Granular scopes (``?category=…``) are not supported and grant nothing; ``openid``,
  ``fhirUser``, ``launch``, ``launch/patient``, ``offline_access`` grant no resource.

A token without a ``scope`` claim reaches nothing under ``/fhir`` (403 with an
OperationOutcome): JSON-API tokens keep working on the JSON API only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from uuid import UUID

from medloop.api.deps import Caller
from medloop.api.policy import refuse_scope

_SCOPE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>[A-Z][A-Za-z]+|\*)"
    r"\.(?P<permissions>read|write|\*|c?r?u?d?s?)$"
)
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
INTERACTIONS = {"read": "r", "search": "s", "create": "c", "update": "u", "delete": "d"}

SUPPORTED = (
    "openid",
    "fhirUser",
    "launch",
    "launch/patient",
    "offline_access",
    "patient/*.rs",
    "user/*.rs",
    "system/*.rs",
    "patient/MedicationStatement.rs",
    "patient/MedicationRequest.rs",
    "patient/MedicationDispense.rs",
    "patient/MedicationAdministration.rs",
    "patient/AllergyIntolerance.rs",
    "patient/DetectedIssue.rs",
    "patient/AuditEvent.rs",
    "patient/Patient.rs",
    "patient/Medication.rs",
    "user/MedicationRequest.crs",
    "user/MedicationAdministration.crs",
    "user/MedicationStatement.rs",
    "user/MedicationDispense.rs",
    "user/AllergyIntolerance.rs",
    "user/DetectedIssue.rs",
    "user/Patient.rs",
    "user/Medication.rs",
    "system/*.r",
)
"""What ``/.well-known/smart-configuration`` advertises."""


@dataclass(frozen=True)
class Grant:
    context: str
    resource: str
    permissions: frozenset[str]


def grants(scopes: tuple[str, ...] | None) -> tuple[Grant, ...]:
    """The resource grants of a token's scopes (others left out)."""
    return _grants(tuple(scopes)) if scopes else ()


@lru_cache(maxsize=1024)
def _grants(scopes: tuple[str, ...]) -> tuple[Grant, ...]:
    """``grants``, parsed once per distinct scope claim (a token's is read on every request)."""
    found = []
    for scope in scopes:
        match = _SCOPE.match(scope)
        if match is None:
            continue
        permissions = _V1.get(match["permissions"], match["permissions"])
        if not permissions:
            continue
        found.append(Grant(match["context"], match["type"], frozenset(permissions)))
    return tuple(found)


def allows(
    scopes: tuple[str, ...] | None,
    resource: str,
    interaction: str,
    patient_id: UUID | None,
    *,
    own_patient: bool,
    patient_context: str | None,
) -> str | None:
    """``None`` when the scopes grant ``interaction`` on ``resource`` for ``patient_id``, else
    why not. ``own_patient``: the caller is a patient (their own record is checked by the
    policy)."""
    if scopes is None:
        return "the token carries no SMART scopes"
    wanted = INTERACTIONS[interaction]
    for grant in grants(scopes):
        if grant.resource not in ("*", resource) or wanted not in grant.permissions:
            continue
        if grant.context != "patient" or patient_id is None or own_patient:
            return None
        if patient_context is not None and patient_context == str(patient_id):
            return None
    return f"no scope grants {resource}.{wanted}" + (
        " for this patient" if patient_id is not None else ""
    )


def require(caller: Caller, resource: str, interaction: str, patient_id: UUID | None) -> None:
    """Refuse (403, audited when a patient is named) what the token's scopes do not grant."""
    principal = caller.principal
    why = allows(
        principal.scopes,
        resource,
        interaction,
        patient_id,
        own_patient=principal.is_patient,
        patient_context=principal.patient_context,
    )
    if why is not None:
        refuse_scope(
            caller.engine,
            principal,
            f"fhir.{resource}.{interaction}",
            patient_id,
            why,
            caller.request_id,
        )


def require_system(caller: Caller, types: tuple[str, ...]) -> None:
    """A bulk export needs a ``system/`` scope that reads every type asked for (a backend
    service's grant, SMART Backend Services); refused otherwise (403)."""
    found = grants(caller.principal.scopes)
    missing = [
        kind
        for kind in types
        if not any(
            g.context == "system" and g.resource in ("*", kind) and "r" in g.permissions
            for g in found
        )
    ]
    if missing:
        refuse_scope(
            caller.engine,
            caller.principal,
            "fhir.export",
            None,
            f"no system/ scope reads {', '.join(missing)}",
            caller.request_id,
        )
