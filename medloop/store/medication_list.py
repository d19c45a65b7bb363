"""Tables and repository of the medication list: patients, list changes, entry versions,
prescriptions and their versions, dispenses and annulments, alerts with their overrides,
alerts a patient's clinicians have handled, and reconciliation (``samstemming``) records.

Everything but ``patient`` is append-only: rows are inserted, never updated or deleted. The
domain records (``ListChange``, ``EntryVersion``, ``PrescriptionVersion``, ``Dispense``,
``Annulment``, ``Alert``) are stored whole as ``model_dump(mode="json")`` next to the columns
that index them.

Lost updates are impossible by construction: ``list_change`` has the primary key
``(patient_id, list_version)``, so two writers based on the same list version cannot both
commit; ``prescription_version`` does the same per prescription and ``dispense_annulment``
allows one annulment per dispense. ``lock_for_command`` additionally serialises the writers of
one patient (its ``UPDATE`` of the revision locks the row on PostgreSQL; SQLite's write
transaction already does), so a second writer normally sees the newer version and is refused by
the domain before it inserts.

``load_patient_state`` reads one patient's whole state in a fixed number of queries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    func,
    select,
    text,
    update,
)

from fest.queries import VERSION_KEY_IN_FORCE, version_key_of
from fest.schema import fest_version, metadata
from interactions import Alert, HandledAlert
from medloop.domain.dispense import Annulment, Dispense
from medloop.domain.medication_list import EntryVersion, ListChange, MedicationList
from medloop.domain.patient import Patient
from medloop.domain.personnel import Actor
from medloop.domain.prescription import Prescription, PrescriptionVersion
from medloop.domain.reconciliation import Reconciliation
from medloop.store import attestation, audit, batch
from medloop.store.db import existing_transaction_memo, transaction_memo
from medloop.store.records import StoredRecordUnreadable, parsed, why

_UUID = 36

patient = Table(
    "patient",
    metadata,
    attestation.command_column(),
    Column("id", String(_UUID), primary_key=True),
    Column("national_id", String(11), nullable=False, unique=True),
    Column("record", JSON, nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    # Bumped by every command on the patient (see ``lock_for_command``): a process that has
    # the patient's state for revision r - 1 cached can use it, since nothing else changed.
    Column("revision", Integer, nullable=False, server_default=text("0")),
)

list_change = Table(
    "list_change",
    metadata,
    attestation.command_column(),
    Column("patient_id", String(_UUID), ForeignKey("patient.id"), primary_key=True),
    Column("list_version", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("author", JSON, nullable=False),
    Column("reason", Text, nullable=True),
)

entry_version = Table(
    "entry_version",
    metadata,
    attestation.command_column(),
    Column("entry_id", String(_UUID), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("patient_id", String(_UUID), nullable=False),
    Column("list_version", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("record", JSON, nullable=False),  # the EntryVersion: snapshot, diff, who, when, why
    ForeignKeyConstraint(
        ["patient_id", "list_version"], ["list_change.patient_id", "list_change.list_version"]
    ),
    Index("ix_entry_version_patient", "patient_id", "list_version"),
)

prescription = Table(
    "prescription",
    metadata,
    attestation.command_column(),
    Column("id", String(_UUID), primary_key=True),
    Column("patient_id", String(_UUID), ForeignKey("patient.id"), nullable=False),
    Column("entry_id", String(_UUID), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Index("ix_prescription_patient", "patient_id"),
)

prescription_version = Table(
    "prescription_version",
    metadata,
    attestation.command_column(),
    Column("prescription_id", String(_UUID), ForeignKey("prescription.id"), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("to_status", String(1), nullable=False),
    Column("record", JSON, nullable=False),  # the PrescriptionVersion
)

dispense = Table(
    "dispense",
    metadata,
    attestation.command_column(),
    Column("id", String(_UUID), primary_key=True),
    Column("patient_id", String(_UUID), ForeignKey("patient.id"), nullable=False),
    Column("prescription_id", String(_UUID), ForeignKey("prescription.id"), nullable=False),
    Column("entry_id", String(_UUID), nullable=False),
    Column("dispensed_on", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the Dispense as recorded (never annulled here)
    Index("ix_dispense_patient", "patient_id", "dispensed_on"),
)

dispense_annulment = Table(
    "dispense_annulment",
    metadata,
    attestation.command_column(),
    Column("dispense_id", String(_UUID), ForeignKey("dispense.id"), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the Annulment
)

alert = Table(
    "alert",
    metadata,
    attestation.command_column(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("patient_id", String(_UUID), ForeignKey("patient.id"), nullable=False),
    Column("action", String(64), nullable=False),
    Column("list_version", Integer, nullable=False),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("key", String(500), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("requires_override", Boolean, nullable=False),
    Column("catalogue_version", Integer, nullable=False),
    Column("record", JSON, nullable=False),  # the Alert
    Column("override_by", JSON, nullable=True),  # the Actor who overrode it
    Column("override_reason", Text, nullable=True),
    Index("ix_alert_patient", "patient_id", "raised_at"),
)

reconciliation = Table(
    "reconciliation",
    metadata,
    attestation.command_column(),
    Column("id", String(_UUID), primary_key=True),
    Column("patient_id", String(_UUID), ForeignKey("patient.id"), nullable=False),
    Column("list_version", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the Reconciliation
    Index("ix_reconciliation_patient", "patient_id", "list_version"),
)

handled_alert = Table(
    "handled_alert",
    metadata,
    attestation.command_column(),
    Column("patient_id", String(_UUID), ForeignKey("patient.id"), primary_key=True),
    Column("key", String(500), primary_key=True),
    Column("handled_by", JSON, nullable=False),
    Column("handled_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
)


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredAlert:
    """An alert as stored for the patient (a row of ``alert``), in the order raised: the
    command that raised it, the list version, when, the ``Alert`` as JSON and the override
    that let the command through, if any."""

    key: str
    action: str
    list_version: int
    raised_at: datetime
    record: dict[str, Any]
    override_by: dict[str, Any] | None = None
    override_reason: str | None = None


@dataclass(frozen=True)
class PatientState:
    """Everything the loop knows about one patient, as domain values."""

    patient: Patient
    medication_list: MedicationList
    changes: tuple[ListChange, ...]
    prescriptions: dict[UUID, Prescription]
    prescription_history: dict[UUID, tuple[PrescriptionVersion, ...]]
    dispenses: tuple[Dispense, ...]
    handled: tuple[HandledAlert, ...]
    dispense_recorded_at: dict[UUID, datetime] = field(default_factory=dict, compare=False)
    """When each dispense was recorded: with ``dispensed_on`` and the id, the dispenses' order."""
    alerts: tuple[StoredAlert, ...] = ()
    """Every alert raised for the patient, oldest first (open alerts and overrides on record
    are read from here)."""

    def dispenses_of(self, prescription_id: UUID) -> tuple[Dispense, ...]:
        return tuple(d for d in self.dispenses if d.prescription_id == prescription_id)

    def prescriptions_of(self, entry_id: UUID) -> tuple[Prescription, ...]:
        entry = self.medication_list.entry(entry_id)
        return tuple(self.prescriptions[p] for p in entry.prescription_ids)

    def advanced(
        self,
        *,
        list_change: ListChange | None,
        prescription_versions: Sequence[PrescriptionVersion],
        dispenses: Sequence[Dispense],
        annulments: Sequence[tuple[UUID, Annulment]],
        handled: Sequence[HandledAlert],
        recorded_at: datetime,
        alerts: Sequence[StoredAlert] = (),
        patient: Patient | None = None,
    ) -> PatientState:
        """This state with one command's appends applied, exactly as ``load_patient_state``
        would read it back after they commit (the loop tests compare the two after every
        command)."""
        changes = self.changes
        medication_list = self.medication_list
        if list_change is not None:
            changes = (*changes, list_change)
            medication_list = medication_list.followed_by(list_change)
        history = dict(self.prescription_history)
        for version in prescription_versions:
            history[version.prescription_id] = (
                *history.get(version.prescription_id, ()), version
            )
        history = dict(sorted(history.items(), key=lambda item: str(item[0])))
        recorded = dict(self.dispense_recorded_at)
        annulled = dict(annulments)
        found = []
        for record in (*self.dispenses, *dispenses):
            recorded.setdefault(record.id, _utc(recorded_at))
            if record.id in annulled:
                record = record.model_copy(update={"annulment": annulled[record.id]})
            found.append(record)
        found.sort(key=lambda d: (d.dispensed_on, recorded[d.id], str(d.id)))
        known = {h.key for h in self.handled}
        merged = [*self.handled, *(h for h in handled if h.key not in known)]
        return PatientState(
            patient=self.patient if patient is None else patient,
            medication_list=medication_list,
            changes=changes,
            prescriptions={p: versions[-1].prescription for p, versions in history.items()},
            prescription_history=history,
            dispenses=tuple(found),
            handled=tuple(sorted(merged, key=lambda h: h.key)),
            dispense_recorded_at=recorded,
            alerts=(*self.alerts, *alerts),
        )


def find_patient_id(conn: Connection, national_id: str) -> UUID | None:
    found = conn.execute(
        select(patient.c.id).where(patient.c.national_id == national_id)
    ).scalar_one_or_none()
    return None if found is None else UUID(found)


def national_id_of(conn: Connection, patient_id: UUID) -> str | None:
    """The patient's national id, for the audit log; ``None`` for an unknown patient."""
    found = conn.execute(
        select(patient.c.national_id).where(patient.c.id == str(patient_id))
    ).scalar_one_or_none()
    return None if found is None else str(found)


def read_patient(conn: Connection, patient_id: UUID) -> Patient | None:
    """The patient, or ``None`` when there is no such patient."""
    return _patient(conn, patient_id)


@dataclass(frozen=True)
class Locked:
    """What ``lock_for_command`` read: the patient's stored record (JSON, validated by the
    caller only when it needs it), its new revision, and the id and file hash of the catalogue
    version in force (``None`` before the first import)."""

    record: dict[str, Any]
    revision: int
    catalogue: tuple[int, str] | None


def lock_for_command(conn: Connection, patient_id: UUID) -> Locked | None:
    """The patient as ``Locked`` (one round trip for what every command needs first): bumps
    ``revision``, which locks the row to the end of the transaction
    (writers of one patient queue here; SQLite's write transaction already serialises them).
    On PostgreSQL the same statement takes the lock of the patient's audit chain, which the
    command's audit record needs at its end (row lock first, then chain lock, as everywhere).
    ``None`` when there is no such patient. Whatever changes the patient's record must bump
    the revision too, as every command does, so a state cached for revision r - 1 carries
    the current patient."""
    postgres = conn.dialect.name == "postgresql"
    bump = _BUMP_REVISION_LOCKING_CHAIN if postgres else _BUMP_REVISION
    found = batch.first_row(conn, bump, {"patient_id": str(patient_id)})
    if found is None:
        return None
    if postgres:
        audit.note_chain_locked(conn, found.national_id)
    catalogue = None if found.catalogue_id is None else (found.catalogue_id, found.sha256)
    transaction_memo(conn)[_CATALOGUE_IN_FORCE] = catalogue
    return Locked(found.record, found.revision, catalogue)


@dataclass(frozen=True)
class Accessed:
    """What ``read_for_access`` read: the patient's id and national id (its audit chain), its
    stored record and revision, and the catalogue version in force (id, file hash)."""

    patient_id: UUID
    national_id: str
    record: dict[str, Any]
    revision: int
    catalogue: tuple[int, str] | None


def read_for_access(conn: Connection, patient_id: UUID) -> Accessed | None:
    """The patient about to be read or worked on in an audited transaction, in one round trip:
    the national id for the audit record and, on PostgreSQL, the lock of its audit chain, held
    to the end of the transaction. ``read_patient_revision`` reuses the record and revision
    read here for the rest of the transaction, ``catalogue_key_in_force`` the catalogue
    version in force read with them. ``None`` for an unknown patient."""
    postgres = conn.dialect.name == "postgresql"
    found = batch.first_row(
        conn, _ACCESS_LOCKING_CHAIN if postgres else _ACCESS, {"patient_id": str(patient_id)}
    )
    return None if found is None else _accessed(conn, found)


def read_own_for_access(conn: Connection, national_id: str) -> Accessed | None:
    """``read_for_access`` for the patient with ``national_id`` (a patient reading their own
    record): ``None`` when no list is kept for that person."""
    postgres = conn.dialect.name == "postgresql"
    found = batch.first_row(
        conn, _OWN_ACCESS_LOCKING_CHAIN if postgres else _OWN_ACCESS, {"national_id": national_id}
    )
    return None if found is None else _accessed(conn, found)


def _accessed(conn: Connection, found: Any) -> Accessed:
    if conn.dialect.name == "postgresql":
        audit.note_chain_locked(conn, found.national_id)
    catalogue = None if found.catalogue_id is None else (found.catalogue_id, found.sha256)
    accessed = Accessed(
        UUID(found.id), str(found.national_id), found.record, found.revision, catalogue
    )
    memo = transaction_memo(conn)
    memo[(_ACCESSED, accessed.patient_id)] = accessed
    memo[_CATALOGUE_IN_FORCE] = catalogue
    return accessed


def catalogue_key_in_force(conn: Connection) -> tuple[int, str] | None:
    """Id and file hash of the catalogue version in force: as this transaction's first
    statement read it (``read_for_access``, ``lock_for_command``), else queried now."""
    memo = existing_transaction_memo(conn)
    if memo is not None and _CATALOGUE_IN_FORCE in memo:
        return memo[_CATALOGUE_IN_FORCE]
    return version_key_of(batch.first_row(conn, VERSION_KEY_IN_FORCE, {}))


def accessed_in_transaction(conn: Connection, patient_id: UUID) -> bool:
    """Whether this transaction began as an audited access to the patient
    (``read_for_access``)."""
    memo = existing_transaction_memo(conn)
    return memo is not None and (_ACCESSED, patient_id) in memo


def _in_force(column: Column) -> Any:
    return (
        select(column)
        .order_by(fest_version.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


_ACCESSED = "medication_list.accessed"
_CATALOGUE_IN_FORCE = "medication_list.catalogue_in_force"
_ACCESS_COLUMNS = select(
    patient.c.id,
    patient.c.national_id,
    patient.c.record,
    patient.c.revision,
    _in_force(fest_version.c.id).label("catalogue_id"),
    _in_force(fest_version.c.sha256).label("sha256"),
)
_ACCESS = _ACCESS_COLUMNS.where(patient.c.id == bindparam("patient_id"))
_OWN_ACCESS = _ACCESS_COLUMNS.where(patient.c.national_id == bindparam("national_id"))
_ACCESS_LOCKING_CHAIN, _OWN_ACCESS_LOCKING_CHAIN = (
    query.add_columns(audit.lock_chain_sql(patient.c.national_id).label("chain_locked"))
    for query in (_ACCESS, _OWN_ACCESS)
)

_BUMP_REVISION = (
    update(patient)
    .where(patient.c.id == bindparam("patient_id"))
    .values(revision=patient.c.revision + 1)
    .returning(
        patient.c.record,
        patient.c.revision,
        patient.c.national_id,
        _in_force(fest_version.c.id).label("catalogue_id"),
        _in_force(fest_version.c.sha256).label("sha256"),
    )
)
# Row lock first, then the chain's lock (the RETURNING list is evaluated on the updated row).
_BUMP_REVISION_LOCKING_CHAIN = _BUMP_REVISION.returning(
    audit.lock_chain_sql(patient.c.national_id).label("chain_locked")
)


def read_patient_revision(conn: Connection, patient_id: UUID) -> tuple[Patient, int] | None:
    """The patient and its revision, without locking (as ``read_for_access`` read them, when
    it did earlier in this transaction)."""
    memo = existing_transaction_memo(conn)
    accessed = None if memo is None else memo.get((_ACCESSED, patient_id))
    if accessed is not None:
        return _patient_of(accessed.record, patient_id), accessed.revision
    found = conn.execute(
        select(patient.c.record, patient.c.revision).where(patient.c.id == str(patient_id))
    ).first()
    return None if found is None else (_patient_of(found.record, patient_id), found.revision)


def _patient(conn: Connection, patient_id: UUID) -> Patient | None:
    query = select(patient.c.record).where(patient.c.id == str(patient_id))
    record = conn.execute(query).scalar_one_or_none()
    return None if record is None else _patient_of(record, patient_id)


def _patient_of(record: Any, patient_id: UUID) -> Patient:
    return parsed(Patient, record, patient, {"id": patient_id})


def load_patient_state(conn: Connection, found: Patient) -> PatientState:
    """The current state of ``found``'s list, prescriptions, dispenses, alerts and handled
    alerts, in seven queries whatever the history's length."""
    pid = str(found.id)
    changes = _list_changes(conn, found.id)
    history = _prescription_history(conn, pid)
    prescriptions = {p: versions[-1].prescription for p, versions in history.items()}
    dispenses, recorded_at = _dispenses(conn, pid)
    return PatientState(
        patient=found,
        medication_list=MedicationList.replay(found.id, changes),
        changes=changes,
        prescriptions=prescriptions,
        prescription_history=history,
        dispenses=dispenses,
        handled=_handled(conn, pid),
        dispense_recorded_at=recorded_at,
        alerts=tuple(
            StoredAlert(
                key=row.key, action=row.action, list_version=row.list_version,
                raised_at=_utc(row.raised_at), record=row.record, override_by=row.override_by,
                override_reason=row.override_reason,
            )
            for row in alerts_for(conn, found.id)
        ),
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
                "at": _iso(row.at),
                "author": row.author["personnel"]["name"],
                "reason": row.reason,
                "entries": [],
            },
        )
        item["entries"].append({"entry_id": row.entry_id, "kind": row.kind})
    return list(summary.values())


def alerts_for(conn: Connection, patient_id: UUID) -> list[Any]:
    """Every stored alert of the patient, oldest first."""
    return list(
        conn.execute(
            select(alert).where(alert.c.patient_id == str(patient_id)).order_by(alert.c.id)
        ).all()
    )


def _list_changes(conn: Connection, patient_id: UUID) -> tuple[ListChange, ...]:
    pid = str(patient_id)
    versions: dict[int, list[EntryVersion]] = defaultdict(list)
    for found in conn.execute(
        select(entry_version.c.entry_id, entry_version.c.version, entry_version.c.record)
        .where(entry_version.c.patient_id == pid)
        .order_by(entry_version.c.list_version, entry_version.c.entry_id)
    ):
        version = parsed(
            EntryVersion, found.record, entry_version,
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
                Actor, row.author, list_change,
                {"patient_id": pid, "list_version": row.list_version},
            ),
            reason=row.reason,
            entry_versions=tuple(versions[row.list_version]),
        )
        for row in rows
    )


def _prescription_history(
    conn: Connection, pid: str
) -> dict[UUID, tuple[PrescriptionVersion, ...]]:
    history: dict[UUID, list[PrescriptionVersion]] = defaultdict(list)
    for found in conn.execute(
        select(
            prescription_version.c.prescription_id, prescription_version.c.version,
            prescription_version.c.record,
        )
        .join(prescription, prescription.c.id == prescription_version.c.prescription_id)
        .where(prescription.c.patient_id == pid)
        .order_by(prescription_version.c.prescription_id, prescription_version.c.version)
    ):
        version = parsed(
            PrescriptionVersion, found.record, prescription_version,
            {"prescription_id": found.prescription_id, "version": found.version},
        )
        history[version.prescription_id].append(version)
    return {key: tuple(value) for key, value in history.items()}


def _dispenses(conn: Connection, pid: str) -> tuple[tuple[Dispense, ...], dict[UUID, datetime]]:
    rows = conn.execute(
        select(
            dispense.c.id,
            dispense.c.record,
            dispense.c.recorded_at,
            dispense_annulment.c.record.label("annulment"),
        )
        .outerjoin(dispense_annulment, dispense_annulment.c.dispense_id == dispense.c.id)
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
        recorded_at[record.id] = _utc(row.recorded_at)
    return tuple(found), recorded_at


def _handled(conn: Connection, pid: str) -> tuple[HandledAlert, ...]:
    rows = conn.execute(
        select(handled_alert).where(handled_alert.c.patient_id == pid).order_by(handled_alert.c.key)
    ).all()
    return tuple(_handled_alert(row, pid) for row in rows)


def _handled_alert(row: Any, pid: str) -> HandledAlert:
    try:
        return HandledAlert(
            key=row.key,
            handled_by=row.handled_by["personnel"]["hpr_number"],
            handled_at=_utc(row.handled_at),
            reason=row.reason,
        )
    except (ValueError, TypeError, KeyError) as error:
        raise StoredRecordUnreadable(
            handled_alert.name, {"patient_id": pid, "key": row.key}, why(error)
        ) from None


# -- appending ---------------------------------------------------------------------------------


_UPDATE_RECORD = (
    update(patient)
    .where(patient.c.id == bindparam("patient_id"))
    .values(record=bindparam("record"))
)


def update_patient_record(conn: Connection, changed: Patient) -> None:
    """Store ``changed`` as the patient's record (weight, renal function …); only inside a
    command, whose ``lock_for_command`` has bumped the revision in the same transaction."""
    record = changed.model_dump(mode="json")
    batch.execute(
        conn, _UPDATE_RECORD, {"patient_id": str(changed.id), "record": record},
        json_params=frozenset({"record"}),
    )
    attestation.claim_record(conn, str(changed.id), record)


def add_patient(conn: Connection, new: Patient, at: datetime) -> None:
    record = new.model_dump(mode="json")
    attestation.insert(
        conn, patient,
        id=str(new.id),
        national_id=str(new.national_id),
        record=record,
        registered_at=at,
    )
    attestation.claim_record(conn, str(new.id), record)


def append_list_change(conn: Connection, change: ListChange) -> None:
    """One row for the change and one per entry version; a second writer with the same list
    version fails on the primary key."""
    pid = str(change.patient_id)
    batch.insert(
        conn,
        list_change,
        [{
            "patient_id": pid,
            "list_version": change.list_version,
            "at": change.at,
            "author": change.author.model_dump(mode="json"),
            "reason": change.reason,
        }],
    )
    batch.insert(
        conn,
        entry_version,
        [
            {
                "entry_id": str(v.entry_id),
                "version": v.version,
                "patient_id": pid,
                "list_version": v.list_version,
                "kind": v.kind.value,
                "record": v.model_dump(mode="json"),
            }
            for v in change.entry_versions
        ],
    )


def append_prescription_versions(
    conn: Connection, patient_id: UUID, versions: Iterable[PrescriptionVersion]
) -> None:
    for version in versions:
        if version.version == 1:
            batch.insert(
                conn,
                prescription,
                [{
                    "id": str(version.prescription_id),
                    "patient_id": str(patient_id),
                    "entry_id": str(version.prescription.entry_id),
                    "issued_at": version.at,
                }],
            )
        batch.insert(
            conn,
            prescription_version,
            [{
                "prescription_id": str(version.prescription_id),
                "version": version.version,
                "at": version.at,
                "kind": version.kind.value,
                "to_status": version.to_status.value,
                "record": version.model_dump(mode="json"),
            }],
        )


def append_dispense(conn: Connection, patient_id: UUID, record: Dispense, at: datetime) -> None:
    batch.insert(
        conn,
        dispense,
        [{
            "id": str(record.id),
            "patient_id": str(patient_id),
            "prescription_id": str(record.prescription_id),
            "entry_id": str(record.entry_id),
            "dispensed_on": record.dispensed_on,
            "recorded_at": _utc(at),
            "record": record.model_dump(mode="json"),
        }],
    )


def append_reconciliation(conn: Connection, record: Reconciliation) -> None:
    attestation.insert(
        conn, reconciliation,
        id=str(record.id),
        patient_id=str(record.patient_id),
        list_version=record.list_version,
        at=record.at,
        record=record.model_dump(mode="json"),
    )


def reconciliations(conn: Connection, patient_id: UUID) -> list[Reconciliation]:
    """The patient's reconciliations, oldest first."""
    return [
        parsed(Reconciliation, found.record, reconciliation, {"id": found.id})
        for found in conn.execute(
            select(reconciliation.c.id, reconciliation.c.record)
            .where(reconciliation.c.patient_id == str(patient_id))
            .order_by(reconciliation.c.list_version, reconciliation.c.at)
        )
    ]


def append_annulment(conn: Connection, dispense_id: UUID, annulment: Annulment) -> None:
    batch.insert(
        conn,
        dispense_annulment,
        [{
            "dispense_id": str(dispense_id),
            "at": annulment.at,
            "record": annulment.model_dump(mode="json"),
        }],
    )


@dataclass(frozen=True)
class RaisedAlert:
    """An alert as raised by one command, with the override that let the command through."""

    alert: Alert
    override_by: Actor | None = None
    override_reason: str | None = None


def append_alerts(
    conn: Connection,
    patient_id: UUID,
    action: str,
    version: int,
    at: datetime,
    raised: Sequence[RaisedAlert],
) -> tuple[StoredAlert, ...]:
    """Store the alerts one command raised; returns them as the patient's state keeps them."""
    if not raised:
        return ()
    rows = [
        {
            "patient_id": str(patient_id),
            "action": action,
            "list_version": version,
            "raised_at": at,
            "key": r.alert.key,
            "kind": r.alert.kind.value,
            "severity": r.alert.severity.value,
            "requires_override": r.alert.requires_override,
            "catalogue_version": r.alert.source.catalogue_version,
            "record": r.alert.model_dump(mode="json"),
            "override_by": (
                None if r.override_by is None else r.override_by.model_dump(mode="json")
            ),
            "override_reason": r.override_reason,
        }
        for r in raised
    ]
    batch.insert(conn, alert, rows)
    return tuple(
        StoredAlert(
            key=row["key"], action=action, list_version=version, raised_at=_utc(at),
            record=row["record"], override_by=row["override_by"],
            override_reason=row["override_reason"],
        )
        for row in rows
    )


def add_handled_alerts(
    conn: Connection,
    patient_id: UUID,
    by: Actor,
    at: datetime,
    reasons: dict[str, str],
    known: set[str],
) -> dict[str, str]:
    """Record alerts as handled for the patient; a key already handled (``known``, from the
    patient's state read under its lock) keeps its first record. Returns the keys newly
    recorded, with their reasons."""
    pid = str(patient_id)
    new = {key: reason for key, reason in reasons.items() if key not in known}
    if new:
        batch.insert(
            conn,
            handled_alert,
            [
                {
                    "patient_id": pid,
                    "key": key,
                    "handled_by": by.model_dump(mode="json"),
                    "handled_at": _utc(at),
                    "reason": reason,
                }
                for key, reason in new.items()
            ],
        )
    return new


def _utc(moment: datetime) -> datetime:
    # SQLite hands back the naive UTC wall-clock time that was stored.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | date) -> str:
    return moment.isoformat()
