"""Prescriptions and what follows them: ``prescription`` (issued, one per prescription),
``prescription_version`` (each change of status, the ``PrescriptionVersion`` as JSON),
``dispense`` and ``dispense_annulment``, and the list's reconciliations (``samstemming``).

Append-only. ``prescription_version`` has the primary key ``(prescription_id, version)``, so two
writers of the same prescription version cannot both commit; ``dispense_annulment`` allows one
annulment per dispense.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    select,
)

from fest.schema import metadata
from medloop.domain import versioning
from medloop.domain._model import id_text
from medloop.domain.dispense import Annulment, Dispense
from medloop.domain.prescription import PrescriptionVersion
from medloop.domain.reconciliation import Reconciliation
from medloop.store import attestation, batch
from medloop.store.columns import UUID_LENGTH, parsed, shard_key, utc

prescription = Table(
    "prescription",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("entry_id", String(UUID_LENGTH), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Index("ix_prescription_patient", "patient_id"),
)

prescription_version = Table(
    "prescription_version",
    metadata,
    attestation.command_column(),
    Column("prescription_id", String(UUID_LENGTH), ForeignKey("prescription.id"), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("to_status", String(1), nullable=False),
    Column("record", JSON, nullable=False),  # the PrescriptionVersion
    *shard_key("prescription_version"),
)

dispense = Table(
    "dispense",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("prescription_id", String(UUID_LENGTH), ForeignKey("prescription.id"), nullable=False),
    Column("entry_id", String(UUID_LENGTH), nullable=False),
    Column("dispensed_on", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the Dispense as recorded (never annulled here)
    Index("ix_dispense_patient", "patient_id", "dispensed_on"),
)

dispense_annulment = Table(
    "dispense_annulment",
    metadata,
    attestation.command_column(),
    Column("dispense_id", String(UUID_LENGTH), ForeignKey("dispense.id"), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the Annulment
    *shard_key("dispense_annulment"),
)


reconciliation = Table(
    "reconciliation",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("list_version", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the Reconciliation
    Index("ix_reconciliation_patient", "patient_id", "list_version"),
)


def prescription_history(
    conn: Connection, patient_id: UUID
) -> dict[UUID, tuple[PrescriptionVersion, ...]]:
    """Every version of each of the patient's prescriptions, oldest first."""
    pid = str(patient_id)
    history: dict[UUID, list[PrescriptionVersion]] = defaultdict(list)
    for found in conn.execute(
        select(
            prescription_version.c.prescription_id,
            prescription_version.c.version,
            prescription_version.c.record,
        )
        .where(prescription_version.c.patient_id == pid)
        .order_by(prescription_version.c.prescription_id, prescription_version.c.version)
    ):
        version = parsed(
            PrescriptionVersion,
            found.record,
            prescription_version,
            {"prescription_id": found.prescription_id, "version": found.version},
        )
        history[version.prescription_id].append(version)
    return {key: tuple(value) for key, value in history.items()}


def dispenses(
    conn: Connection, patient_id: UUID
) -> tuple[tuple[Dispense, ...], dict[UUID, datetime]]:
    """The patient's dispenses with their annulments, in order, and when each was recorded."""
    pid = str(patient_id)
    rows = conn.execute(
        select(
            dispense.c.id,
            dispense.c.record,
            dispense.c.recorded_at,
            dispense_annulment.c.record.label("annulment"),
        )
        .outerjoin(
            dispense_annulment,
            (dispense_annulment.c.dispense_id == dispense.c.id)
            & (dispense_annulment.c.patient_id == dispense.c.patient_id),
        )
        .where(dispense.c.patient_id == pid)
        .order_by(dispense.c.dispensed_on, dispense.c.recorded_at, dispense.c.id)
    ).all()
    found, recorded_at = [], {}
    for row in rows:
        record = parsed(Dispense, row.record, dispense, {"id": row.id})
        if row.annulment is not None:
            annulment = parsed(
                Annulment, row.annulment, dispense_annulment, {"dispense_id": row.id}
            )
            record = record.model_copy(update={"annulment": annulment})
        found.append(record)
        recorded_at[record.id] = utc(row.recorded_at)
    return tuple(found), recorded_at


def append_prescription_versions(
    conn: Connection, patient_id: UUID, versions: Iterable[PrescriptionVersion]
) -> None:
    """The new prescriptions (each one's first version) in one insert, then every version in
    another (one statement per table, not per row: an M25.1 issues twenty at once)."""
    pid = id_text(patient_id)
    # (Loops, not comprehensions: a comprehension is a Python call of its own; each version's
    # id written once for both rows.)
    new, rows = [], []
    for version in versions:
        prescription_id = id_text(version.prescription_id)
        if version.version == 1:
            new.append(
                {
                    "id": prescription_id,
                    "patient_id": pid,
                    "entry_id": id_text(version.prescription.entry_id),
                    "issued_at": version.at,
                }
            )
        rows.append(
            {
                "prescription_id": prescription_id,
                "version": version.version,
                "at": version.at,
                "kind": version.kind.value,
                "to_status": version.to_status.value,
                "record": versioning.record(version, "diff", "prescription"),
                "patient_id": pid,
            }
        )
    batch.insert(conn, prescription, new)
    batch.insert(conn, prescription_version, rows)


def append_dispense(conn: Connection, patient_id: UUID, record: Dispense, at: datetime) -> None:
    batch.insert(
        conn,
        dispense,
        [
            {
                "id": str(record.id),
                "patient_id": str(patient_id),
                "prescription_id": str(record.prescription_id),
                "entry_id": str(record.entry_id),
                "dispensed_on": record.dispensed_on,
                "recorded_at": utc(at),
                "record": record.model_dump(mode="json"),
            }
        ],
    )


def append_reconciliation(conn: Connection, record: Reconciliation) -> None:
    attestation.insert(
        conn,
        reconciliation,
        id=str(record.id),
        patient_id=str(record.patient_id),
        list_version=record.list_version,
        at=record.at,
        record=record.model_dump(mode="json"),
    )


def reconciliations_of(conn: Connection, patient_id: UUID) -> list[Reconciliation]:
    """The patient's reconciliations, oldest first."""
    return [
        parsed(Reconciliation, found.record, reconciliation, {"id": found.id})
        for found in conn.execute(
            select(reconciliation.c.id, reconciliation.c.record)
            .where(reconciliation.c.patient_id == str(patient_id))
            .order_by(reconciliation.c.list_version, reconciliation.c.at)
        )
    ]


def reconciliation_of(
    conn: Connection, patient_id: UUID, reconciliation_id: UUID
) -> Reconciliation | None:
    """One of the patient's reconciliations (``None``: the patient has none with that id)."""
    found = conn.execute(
        select(reconciliation.c.id, reconciliation.c.record).where(
            reconciliation.c.patient_id == str(patient_id),
            reconciliation.c.id == str(reconciliation_id),
        )
    ).first()
    if found is None:
        return None
    return parsed(Reconciliation, found.record, reconciliation, {"id": found.id})


def append_annulment(
    conn: Connection, patient_id: UUID, dispense_id: UUID, annulment: Annulment
) -> None:
    batch.insert(
        conn,
        dispense_annulment,
        [
            {
                "dispense_id": str(dispense_id),
                "at": annulment.at,
                "record": annulment.model_dump(mode="json"),
                "patient_id": str(patient_id),
            }
        ],
    )


def patient_of_prescription(conn: Connection, prescription_id: UUID) -> UUID | None:
    """The patient a prescription belongs to, whoever that is (``None``: no such id)."""
    return patients_of_prescriptions(conn, [prescription_id]).get(prescription_id)


def patients_of_prescriptions(
    conn: Connection, prescription_ids: Iterable[UUID]
) -> dict[UUID, UUID]:
    """The patient of each of ``prescription_ids`` that exists, in one query."""
    wanted = sorted({str(p) for p in prescription_ids})
    if not wanted:
        return {}
    return {
        UUID(row.id): UUID(row.patient_id)
        for row in conn.execute(
            select(prescription.c.id, prescription.c.patient_id).where(
                prescription.c.id.in_(wanted)
            )
        )
    }


def patient_of_dispense(conn: Connection, dispense_id: UUID) -> UUID | None:
    """The patient of dispense ``dispense_id`` (``None``: no such dispense)."""
    found = conn.execute(
        select(dispense.c.patient_id).where(dispense.c.id == str(dispense_id))
    ).scalar_one_or_none()
    return None if found is None else UUID(found)
