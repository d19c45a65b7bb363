"""The medication list's history: one ``list_change`` per list version and one
``entry_version`` per entry it changed (the ``EntryVersion``, stored whole as JSON).

Append-only. ``list_change`` has the primary key ``(patient_id, list_version)``, so two writers
based on the same list version cannot both commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    exists,
    func,
    select,
)

from fest.schema import metadata
from medloop.domain import versioning
from medloop.domain._model import id_text
from medloop.domain.entry import ListEntry
from medloop.domain.medication_list import EntryVersion, ListChange
from medloop.domain.personnel import Actor
from medloop.store import attestation, batch
from medloop.store.columns import UUID_LENGTH, iso, parsed

list_change = Table(
    "list_change",
    metadata,
    attestation.command_column(),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), primary_key=True),
    Column("list_version", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("author", JSON, nullable=False),
    Column("reason", Text, nullable=True),
)

entry_version = Table(
    "entry_version",
    metadata,
    attestation.command_column(),
    Column("entry_id", String(UUID_LENGTH), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("patient_id", String(UUID_LENGTH), nullable=False),
    Column("list_version", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("record", JSON, nullable=False),  # the EntryVersion: snapshot, diff, who, when, why
    ForeignKeyConstraint(
        ["patient_id", "list_version"], ["list_change.patient_id", "list_change.list_version"]
    ),
    Index("ix_entry_version_patient", "patient_id", "list_version"),
)


def list_version(conn: Connection, patient_id: UUID) -> int:
    found = conn.execute(
        select(func.max(list_change.c.list_version)).where(
            list_change.c.patient_id == str(patient_id)
        )
    ).scalar_one_or_none()
    return int(found or 0)


def changes_since(conn: Connection, patient_id: UUID, based_on: int) -> list[dict[str, Any]]:
    """A summary of the list changes after ``based_on``: version, when, who, why, and which
    entries changed how."""
    rows = conn.execute(
        select(list_change, entry_version.c.entry_id, entry_version.c.kind)
        .join(
            entry_version,
            (entry_version.c.patient_id == list_change.c.patient_id)
            & (entry_version.c.list_version == list_change.c.list_version),
        )
        .where(list_change.c.patient_id == str(patient_id))
        .where(list_change.c.list_version > based_on)
        .order_by(list_change.c.list_version)
    ).all()
    summary: dict[int, dict[str, Any]] = {}
    for row in rows:
        item = summary.setdefault(
            row.list_version,
            {
                "list_version": row.list_version,
                "at": iso(row.at),
                "author": row.author["personnel"]["name"],
                "reason": row.reason,
                "entries": [],
            },
        )
        item["entries"].append({"entry_id": row.entry_id, "kind": row.kind})
    return list(summary.values())


def list_changes(conn: Connection, patient_id: UUID) -> tuple[ListChange, ...]:
    """The patient's list changes with their entry versions, oldest first."""
    pid = str(patient_id)
    versions: dict[int, list[EntryVersion]] = defaultdict(list)
    for found in conn.execute(
        select(entry_version.c.entry_id, entry_version.c.version, entry_version.c.record)
        .where(entry_version.c.patient_id == pid)
        .order_by(entry_version.c.list_version, entry_version.c.entry_id, entry_version.c.version)
    ):
        version = parsed(
            EntryVersion,
            found.record,
            entry_version,
            {"entry_id": found.entry_id, "version": found.version},
        )
        versions[version.list_version].append(version)
    rows = conn.execute(
        select(list_change)
        .where(list_change.c.patient_id == pid)
        .order_by(list_change.c.list_version)
    ).all()
    return tuple(
        ListChange(
            patient_id=patient_id,
            list_version=row.list_version,
            # The entry versions carry the change's own aware timestamp (SQLite drops the zone).
            at=versions[row.list_version][0].at,
            author=parsed(
                Actor,
                row.author,
                list_change,
                {"patient_id": pid, "list_version": row.list_version},
            ),
            reason=row.reason,
            entry_versions=tuple(versions[row.list_version]),
        )
        for row in rows
    )


def append_list_change(conn: Connection, change: ListChange) -> None:
    """One row for the change and one per entry version; a second writer with the same list
    version fails on the primary key."""
    pid = id_text(change.patient_id)
    batch.insert(
        conn,
        list_change,
        [
            {
                "patient_id": pid,
                "list_version": change.list_version,
                "at": change.at,
                "author": versioning.dumped(change.author),
                "reason": change.reason,
            }
        ],
    )
    # (A loop, not a comprehension: a comprehension is a Python call of its own.)
    rows = []
    for v in change.entry_versions:
        rows.append(
            {
                "entry_id": id_text(v.entry_id),
                "version": v.version,
                "patient_id": pid,
                "list_version": v.list_version,
                "kind": v.kind.value,
                "record": versioning.record(v, "diff", "entry"),
            }
        )
    batch.insert(conn, entry_version, rows)


def patient_of_entry(conn: Connection, entry_id: UUID) -> UUID | None:
    """The patient whose list holds entry ``entry_id`` (``None``: no such entry)."""
    found = conn.execute(
        select(entry_version.c.patient_id).where(entry_version.c.entry_id == str(entry_id)).limit(1)
    ).scalar_one_or_none()
    return None if found is None else UUID(found)


def current_entries_for_use(
    conn: Connection,
    patient_ids: Sequence[UUID],
    use: str | None,
    *,
    entry_ids: Sequence[UUID] | None = None,
) -> dict[UUID, list[ListEntry]]:
    """Per patient of ``patient_ids``: the current version of each entry of their list whose
    current version is for ``use`` (``interactions.dosage.Use``; ``None``: any), whatever its
    status, in the list's order (``MedicationList.replay``: by the list version that added the
    entry, then the entry id) — what the patient's replayed list holds of them, read in one
    query per 500 patients without replaying their lists (a ward's as-needed entries). With
    ``entry_ids`` only those entries (the medicines of a ward's PRN doses)."""
    later = entry_version.alias("later_version")
    first = entry_version.alias("first_version")
    added_in = (
        select(func.min(first.c.list_version))
        .where(first.c.patient_id == entry_version.c.patient_id)
        .where(first.c.entry_id == entry_version.c.entry_id)
        .scalar_subquery()
    )
    narrower = []
    if use is not None:
        narrower.append(entry_version.c.record[("entry", "use")].as_string() == use)
    if entry_ids is not None:
        narrower.append(entry_version.c.entry_id.in_(sorted({str(e) for e in entry_ids})))
    found: dict[UUID, list[ListEntry]] = defaultdict(list)
    ids = [str(p) for p in patient_ids]
    for start in range(0, len(ids), 500):
        query = (
            select(
                entry_version.c.patient_id,
                entry_version.c.entry_id,
                entry_version.c.version,
                entry_version.c.record["entry"].label("entry"),
            )
            .where(entry_version.c.patient_id.in_(ids[start : start + 500]))
            .where(*narrower)
            .where(
                ~exists()
                .where(later.c.patient_id == entry_version.c.patient_id)
                .where(later.c.entry_id == entry_version.c.entry_id)
                .where(later.c.version > entry_version.c.version)
            )
            .order_by(entry_version.c.patient_id, added_in, entry_version.c.entry_id)
        )
        for row in conn.execute(query):
            found[UUID(row.patient_id)].append(
                parsed(
                    ListEntry,
                    row.entry,
                    entry_version,
                    {"entry_id": row.entry_id, "version": row.version},
                )
            )
    return found
