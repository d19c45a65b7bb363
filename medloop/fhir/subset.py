"""The parts of a resource a client asks for: ``_summary`` (``true``, ``text``, ``data``,
``false``; ``count`` on a search) and ``_elements``, on a search's matches and on a read, a
vread or a history alike (FHIR R4, "Summary" and "Elements" of search, which http.html applies
to every interaction that returns resources).

A resource cut keeps its ``id`` and ``meta``, and the elements FHIR R4 requires of its type
(``MANDATORY``), so it is still valid; it is tagged ``SUBSETTED`` so that no client writes it
back as the whole. Which elements are summary elements is FHIR's own ``isSummary`` flag, as
``fhir.resources`` carries it on its models (``summary_elements``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from medloop.fhir.outcome import FhirError

SUMMARIES = ("true", "text", "data", "false")
"""The ``_summary`` values that choose the parts of a resource (a search also takes
``count``)."""


@dataclass(frozen=True)
class Subset:
    """What a client asked to be returned of each resource: a ``_summary`` mode (``None``:
    the whole) or the ``_elements`` named (empty: the whole)."""

    summary: str | None = None
    elements: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return self.summary is not None or bool(self.elements)


WHOLE = Subset()


def subset_of(
    params: Mapping[str, Sequence[str]],
    resource_type: str,
    search: bool = False,
    strict: bool = True,
) -> tuple[Subset, bool, tuple[str, ...]]:
    """The ``Subset`` the parameters ask for of ``resource_type``, whether only a search's
    count is asked for (``_summary=count``), and the ``_elements`` names ignored. A
    ``_summary`` this server does not know, ``count`` outside a search, both parameters at once
    (which would contradict each other), and an ``_elements`` name that is not spelled as one
    is a 400 naming it; so is a name that is no element of the type, unless handling is
    lenient (``strict`` false: it is then ignored, and returned)."""
    given = params.get("_summary") or []
    summary = given[-1] if given else None
    allowed = (*SUMMARIES, "count") if search else SUMMARIES
    if summary is not None and summary not in allowed:
        raise FhirError(
            400,
            "not-supported",
            f"_summary={summary[:100]}: one of {', '.join(allowed)}",
            expression=["_summary"],
        )
    names = _elements(params.get("_elements") or [])
    if names and summary not in (None, "false", "count"):
        raise FhirError(
            400,
            "invalid",
            f"_summary={summary} and _elements cannot be combined: ask for one of them",
            expression=["_summary", "_elements"],
        )
    known = element_names(resource_type)
    unknown = tuple(sorted(name for name in names if name not in known))
    if unknown and strict:
        raise FhirError(
            400,
            "invalid",
            f"_elements: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} no element "
            f"of {resource_type}",
            expression=["_elements"],
        )
    elements = frozenset(typed for name in names if name in known for typed in known[name])
    if summary == "count":
        return WHOLE, True, unknown
    return Subset(None if summary == "false" else summary, elements), False, unknown


@cache
def element_names(resource_type: str) -> dict[str, frozenset[str]]:
    """The top-level element names of ``resource_type`` a client may give ``_elements``, each
    with the JSON names it keeps: its own, or a choice's (``medication``) every typed name
    (``medicationReference``, ``medicationCodeableConcept``)."""
    found: dict[str, set[str]] = {}
    for name, extra in _elements_of(resource_type):
        found.setdefault(name, set()).add(name)
        choice = extra.get("one_of_many")
        if isinstance(choice, str):
            found.setdefault(choice, set()).add(name)
    return {name: frozenset(typed) for name, typed in found.items()}


_ELEMENT = re.compile(r"[a-z][A-Za-z0-9]{0,63}")
"""An element's name as FHIR spells one (``dosage``, ``medicationCodeableConcept``)."""


def _elements(values: Sequence[str]) -> frozenset[str]:
    """The element names of every ``_elements`` given (comma-separated); a name that is not
    spelled as an element name is 400."""
    names = {name.strip() for value in values for name in value.split(",") if name.strip()}
    for name in sorted(names):
        if not _ELEMENT.fullmatch(name):
            raise FhirError(
                400,
                "invalid",
                f"_elements: {name[:100]!r} is not the name of an element",
                expression=["_elements"],
            )
    return frozenset(names)


MANDATORY: dict[str, tuple[str, ...]] = {
    "MedicationStatement": ("status", "medication[x]", "subject"),
    "MedicationRequest": ("status", "intent", "medication[x]", "subject"),
    "MedicationDispense": ("status", "medication[x]"),
    "MedicationAdministration": ("status", "medication[x]", "subject", "effective[x]"),
    "AllergyIntolerance": ("patient",),
    "DetectedIssue": ("status",),
    "AuditEvent": ("type", "recorded", "agent", "source"),
}
"""The top-level elements FHIR R4 requires (min 1) of each type served (a choice as
``name[x]``; the other types served require none): kept whatever a client asks for, so a cut
resource stays valid. ``tests/fhir/test_fhir_subset.py`` checks this against R4's own
StructureDefinitions."""


def _required(resource_type: str, name: str) -> bool:
    for kept in MANDATORY.get(resource_type, ()):
        if not kept.endswith("[x]"):
            if name == kept:
                return True
        elif name.startswith(kept[:-3]) and name[len(kept) - 3 : len(kept) - 2].isupper():
            return True  # medicationReference for medication[x]
    return False


def _elements_of(resource_type: str) -> list[tuple[str, dict[str, Any]]]:
    """Each top-level element of ``resource_type`` (its JSON name) with what
    ``fhir.resources``' model says of it (``summary_element_property``, ``one_of_many``)."""
    from fhir.resources.R4B import get_fhir_model_class

    found = []
    for field in get_fhir_model_class(resource_type).model_fields.values():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("element_property"):
            found.append((str(field.alias), extra))
    return found


@cache
def summary_elements(resource_type: str) -> frozenset[str]:
    """The top-level elements of ``resource_type`` that FHIR marks as summary elements (each
    choice by its typed names: ``medicationReference``, ``medicationCodeableConcept``)."""
    return frozenset(
        name for name, extra in _elements_of(resource_type) if extra.get("summary_element_property")
    )


SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
"""The tag of a resource cut by ``_summary`` or ``_elements`` (FHIR R4 search, "Summary"):
not to be used to overwrite the whole one."""


def _kept(resource_type: str, subset: Subset, name: str) -> bool:
    if name in ("resourceType", "id", "meta") or _required(resource_type, name):
        return True
    if subset.elements:
        return name in subset.elements
    if subset.summary == "true":
        return name in summary_elements(resource_type)
    if subset.summary == "text":
        return name == "text"
    return name != "text"  # data: all but the narrative


def cut(resource: dict[str, Any], subset: Subset) -> dict[str, Any]:
    """``resource`` with only what ``subset`` asks for (and its id, ``meta`` and what its type
    requires), tagged ``SUBSETTED``; ``resource`` itself when the subset is the whole."""
    if not subset:
        return resource
    kind = resource["resourceType"]
    found = {name: value for name, value in resource.items() if _kept(kind, subset, name)}
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    found["meta"] = meta
    return found


def cut_body(body: dict[str, Any], subset: Subset) -> dict[str, Any]:
    """A read's or a history's answer cut: the resource, or each resource a Bundle carries
    (an OperationOutcome in it stays whole)."""
    if body.get("resourceType") != "Bundle":
        return cut(body, subset)
    entries = []
    for entry in body.get("entry", []):
        resource = entry.get("resource")
        if isinstance(resource, dict) and resource.get("resourceType") != "OperationOutcome":
            entry = {**entry, "resource": cut(resource, subset)}
        entries.append(entry)
    return {**body, "entry": entries} if "entry" in body else body
