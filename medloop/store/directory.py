"""Where a health professional (by HPR number), an organisation (by id) or a health
professional acting for an organisation is named in the stored records: medloop keeps no
registry of either, so the FHIR ``Practitioner``, ``Organization`` and ``PractitionerRole`` a
record refers to are found in the records that name them.

Read-only; the JSON columns are searched with SQLAlchemy's JSON path index (``json_extract``
on SQLite, ``#>>`` on PostgreSQL), the same on both. The answer names patients so that the
caller can be authorised (and audited) against one of them before anything is shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import Connection, select

from medloop.domain.personnel import Actor, HealthPersonnel, Organisation
from medloop.store.administration import administration
from medloop.store.list_changes import list_change
from medloop.store.prescriptions import dispense, prescription, prescription_version

Kind = Literal["practitioner", "organisation", "role"]
Source = Literal["list", "prescription", "dispense", "administration"]


@dataclass(frozen=True)
class Naming:
    """One record of ``patient_id`` (of ``source``) naming the professional, organisation or
    professional acting for an organisation (``Actor``), as recorded there."""

    patient_id: UUID
    source: Source
    found: HealthPersonnel | Organisation | Actor


_FIELDS: dict[Kind, tuple[str, ...]] = {
    "practitioner": ("hpr_number", "name", "role"),
    "organisation": ("id", "name", "kind"),
}


_ROLE_FIELDS = (*_FIELDS["practitioner"], *_FIELDS["organisation"])


def _queries(kind: Kind, key: str, organisation: str | None) -> Iterator[tuple[Source, Any]]:
    """Per source, a query of (patient id, the recorded fields of ``_FIELDS`` or, for a role,
    ``_ROLE_FIELDS``) where ``key`` is named (a role: the HPR number ``key`` acting for
    ``organisation``, or for any organisation when it is ``None``); the fields are selected as
    text, so that ``DISTINCT`` works on both databases (PostgreSQL's ``json`` has no
    equality)."""
    # (source, table, JSON column, path to the professional, path to the organisation)
    places: list[tuple[Source, Any, Any, tuple[str, ...], tuple[str, ...]]] = [
        ("list", list_change, list_change.c.author, ("personnel",), ("organisation",)),
        (
            "prescription",
            prescription_version,
            prescription_version.c.record,
            ("author", "personnel"),
            ("author", "organisation"),
        ),
        ("dispense", dispense, dispense.c.record, ("pharmacist",), ("pharmacy",)),
        (
            "administration",
            administration,
            administration.c.record,
            ("performer", "personnel"),
            ("performer", "organisation"),
        ),
        (
            "administration",
            administration,
            administration.c.record,
            ("witness", "personnel"),
            ("witness", "organisation"),
        ),
    ]
    for source, table, column, person, org in places:
        person_fields = [column[(*person, name)].as_string() for name in _FIELDS["practitioner"]]
        org_fields = [column[(*org, name)].as_string() for name in _FIELDS["organisation"]]
        if kind == "practitioner":
            fields, where = person_fields, [person_fields[0] == key]
        elif kind == "organisation":
            fields, where = org_fields, [org_fields[0] == key]
        else:
            fields, where = [*person_fields, *org_fields], [person_fields[0] == key]
            if organisation is not None:
                where.append(org_fields[0] == organisation)
        patient = (prescription if table is prescription_version else table).c.patient_id
        query = select(patient, *fields).where(*where)
        if table is prescription_version:
            query = query.join_from(
                prescription_version,
                prescription,
                prescription.c.id == prescription_version.c.prescription_id,
            )
        yield source, query


def _found(kind: Kind, values: list[Any]) -> HealthPersonnel | Organisation | Actor:
    if kind == "practitioner":
        return HealthPersonnel.model_validate(dict(zip(_FIELDS[kind], values, strict=True)))
    if kind == "organisation":
        return Organisation.model_validate(dict(zip(_FIELDS[kind], values, strict=True)))
    person = len(_FIELDS["practitioner"])
    return Actor(
        personnel=_found("practitioner", values[:person]),
        organisation=_found("organisation", values[person:]),
    )


def namings(
    conn: Connection, kind: Kind, key: str, *, limit: int, organisation: str | None = None
) -> list[Naming]:
    """Up to ``limit`` records (each of a different patient, source and, for a role,
    organisation) naming the professional with HPR number ``key`` (``kind``
    ``practitioner``), the organisation with id ``key`` (``organisation``) or the
    professional ``key`` acting for an organisation (``role``: for ``organisation`` only,
    when given), newest kinds of record last."""
    found: list[Naming] = []
    seen: set[tuple[str, str, str | None]] = set()
    for source, query in _queries(kind, key, organisation):
        for patient_id, *values in conn.execute(query.distinct().limit(limit)):
            # A professional records can name as acting for several organisations.
            org = values[len(_FIELDS["practitioner"])] if kind == "role" else None
            if (patient_id, source, org) in seen:
                continue
            seen.add((patient_id, source, org))
            found.append(Naming(UUID(patient_id), source, _found(kind, values)))
            if len(found) >= limit:
                return found
    return found
