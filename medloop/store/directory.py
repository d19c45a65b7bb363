"""Where a health professional (by HPR number) or an organisation (by id) is named in the
stored records: medloop keeps no registry of either, so the FHIR ``Practitioner`` and
``Organization`` a record refers to are found in the records that name them.

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

from medloop.domain.personnel import HealthPersonnel, Organisation
from medloop.store.administration import administration
from medloop.store.list_changes import list_change
from medloop.store.prescriptions import dispense, prescription, prescription_version

Kind = Literal["practitioner", "organisation"]
Source = Literal["list", "prescription", "dispense", "administration"]


@dataclass(frozen=True)
class Naming:
    """One record of ``patient_id`` (of ``source``) naming the professional or organisation,
    as recorded there."""

    patient_id: UUID
    source: Source
    found: HealthPersonnel | Organisation


_FIELDS: dict[Kind, tuple[str, ...]] = {
    "practitioner": ("hpr_number", "name", "role"),
    "organisation": ("id", "name", "kind"),
}


def _queries(kind: Kind, key: str) -> Iterator[tuple[Source, Any]]:
    """Per source, a query of (patient id, the recorded fields of ``_FIELDS``) where ``key``
    is named; the fields are selected as text, so that ``DISTINCT`` works on both databases
    (PostgreSQL's ``json`` has no equality)."""
    inner = "personnel" if kind == "practitioner" else "organisation"
    direct = "pharmacist" if kind == "practitioner" else "pharmacy"
    places: list[tuple[Source, Any, Any, tuple[str, ...]]] = [
        ("list", list_change, list_change.c.author, (inner,)),
        ("prescription", prescription_version, prescription_version.c.record, ("author", inner)),
        ("dispense", dispense, dispense.c.record, (direct,)),
        ("administration", administration, administration.c.record, ("performer", inner)),
        ("administration", administration, administration.c.record, ("witness", inner)),
    ]
    for source, table, column, path in places:
        fields = [column[(*path, name)].as_string() for name in _FIELDS[kind]]
        patient = (prescription if table is prescription_version else table).c.patient_id
        query = select(patient, *fields).where(fields[0] == key)
        if table is prescription_version:
            query = query.join_from(
                prescription_version,
                prescription,
                prescription.c.id == prescription_version.c.prescription_id,
            )
        yield source, query


def namings(conn: Connection, kind: Kind, key: str, *, limit: int) -> list[Naming]:
    """Up to ``limit`` records (each of a different patient and source) naming the
    professional with HPR number ``key`` (``kind`` ``practitioner``) or the organisation
    with id ``key`` (``organisation``), newest kinds of record last."""
    model: type[HealthPersonnel] | type[Organisation]
    model = HealthPersonnel if kind == "practitioner" else Organisation
    found: list[Naming] = []
    seen: set[tuple[str, str]] = set()
    for source, query in _queries(kind, key):
        for patient_id, *values in conn.execute(query.distinct().limit(limit)):
            if (patient_id, source) in seen:
                continue
            seen.add((patient_id, source))
            recorded = model.model_validate(dict(zip(_FIELDS[kind], values, strict=True)))
            found.append(Naming(UUID(patient_id), source, recorded))
            if len(found) >= limit:
                return found
    return found
