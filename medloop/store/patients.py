"""The patient table and its reads: who the patient is, the revision every command bumps
under the patient's row lock, and the first statement of an audited access or a command, which
reads with the patient the catalogue version in force (and on PostgreSQL takes the lock of the
patient's audit chain) in one round trip.

``patient`` is the one table of the medication list that is updated: its ``record`` (weight,
renal function …) and its ``revision``. ``lock_for_command`` bumps the revision, which locks
the row to the end of the transaction, so the writers of one patient queue there (SQLite's
write transaction already serialises them), and a second writer normally sees the newer list
version and is refused by the domain before it inserts.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    cast,
    exists,
    select,
    text,
    update,
)

from fest.queries import VERSION_KEY_IN_FORCE, version_key_of
from fest.schema import fest_version, metadata
from medloop.domain._model import id_text
from medloop.domain.patient import Patient
from medloop.store import attestation, audit, batch
from medloop.store.administration import admission
from medloop.store.columns import UUID_LENGTH, parsed
from medloop.store.transaction import existing_transaction_memo, transaction_memo

patient = Table(
    "patient",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("national_id", String(11), nullable=False, unique=True),
    Column("record", JSON, nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    # Bumped by every command on the patient (see ``lock_for_command``): a process that has
    # the patient's state for revision r - 1 cached can use it, since nothing else changed.
    Column("revision", Integer, nullable=False, server_default=text("0")),
)

FIRST_REVISION = 0
"""A registered patient's revision before any command: at it the patient's state is the record
as registered and nothing else, since everything else of the state is written by commands,
which bump the revision (migration 0021 bumped the patients that had data from before
migration 0007 added the revision)."""


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
    if found is not None and conn.in_transaction():
        audit.note_patient(conn, found, patient_id)
    return None if found is None else str(found)


def read_patient(conn: Connection, patient_id: UUID) -> Patient | None:
    """The patient, or ``None`` when there is no such patient."""
    return _patient(conn, patient_id)


@dataclass(frozen=True)
class Locked:
    """What ``lock_for_command`` read: the patient's stored record (``record``: JSON, validated
    by the caller only when it needs it), its new revision, the id and file hash of the
    catalogue version in force (``None`` before the first import), and whether the patient was
    ever admitted to a ward (only then can a change of the list change an administration plan).

    ``stored_record`` is the record as read: its JSON text when ``record_is_text`` (as
    ``lock_for_command`` reads it), decoded only when ``record`` is asked for — a command whose
    patient's state is cached never asks — else the value itself."""

    stored_record: Any
    revision: int
    catalogue: tuple[int, str] | None
    ever_admitted: bool = False
    record_is_text: bool = False

    @functools.cached_property
    def record(self) -> Any:
        """The stored record as JSON values (``json.loads`` of its text, as the database
        driver's JSON loader would have read it)."""
        return _decoded(self.stored_record) if self.record_is_text else self.stored_record

    def patient(self, patient_id: UUID) -> Patient:
        """The stored record as the ``Patient`` it holds; ``StoredRecordUnreadable`` naming the
        row when it no longer loads."""
        return _patient_of(self.record, patient_id)


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
    found = batch.first_row(conn, bump, {"patient_id": id_text(patient_id)})
    if found is None:
        return None
    # The transaction's memo taken once for the three notes (``audit.note_chain_locked`` and
    # ``note_patient`` each took it again: Python calls a command).
    memo = transaction_memo(conn)
    audit.note_locked_patient(memo, found.national_id, patient_id, chain_locked=postgres)
    catalogue = None if found.catalogue_id is None else (found.catalogue_id, found.sha256)
    memo[_CATALOGUE_IN_FORCE] = catalogue
    # ``Locked(…)`` without the frozen dataclass's ``__init__`` (a Python frame and an
    # ``object.__setattr__`` a field): every field in the class's order (issue #20;
    # tests/loop/test_runner_made.py compares it with the constructor's).
    locked = _new(Locked)
    locked.__dict__.update(
        stored_record=found.record,
        revision=found.revision,
        catalogue=catalogue,
        ever_admitted=bool(found.ever_admitted),
        record_is_text=True,
    )
    return locked


_new = object.__new__


_PATIENT_WITH_REVISION = select(patient.c.record, patient.c.revision).where(
    patient.c.id == bindparam("patient_id")
)
_LOCK_PATIENT_WITH_REVISION = _PATIENT_WITH_REVISION.with_for_update()


def lock_patient_revision(conn: Connection, patient_id: UUID) -> tuple[dict[str, Any], int] | None:
    """The patient's stored record and its revision, with the row locked to the end of the
    transaction on PostgreSQL (SQLite's write transaction already serialises writers), without
    bumping the revision: work beside the list (``loop.runner.run_work``) keeps the cached states
    valid. ``None`` when there is no such patient."""
    query = (
        _LOCK_PATIENT_WITH_REVISION if conn.dialect.name == "postgresql" else _PATIENT_WITH_REVISION
    )
    found = conn.execute(query, {"patient_id": str(patient_id)}).first()
    return None if found is None else (found.record, found.revision)


@dataclass(frozen=True)
class Accessed:
    """What ``read_for_access`` read: the patient's id and national id (its audit chain), its
    stored record and revision, and the catalogue version in force (id, file hash)."""

    patient_id: UUID
    national_id: str
    stored_record: str
    """The record's JSON text as stored, decoded only when ``record`` is asked for: an audited
    read whose patient's state is cached never asks."""
    revision: int
    catalogue: tuple[int, str] | None

    @functools.cached_property
    def record(self) -> Any:
        """The stored record as JSON values (``json.loads`` of its text, as the database
        driver's JSON loader would have read it)."""
        return _decoded(self.stored_record)


def read_for_access(conn: Connection, patient_id: UUID) -> Accessed | None:
    """The patient about to be read or worked on in an audited transaction, in one round trip:
    the national id for the audit record and, on PostgreSQL, the lock of its audit chain, held
    to the end of the transaction. ``read_patient_revision`` reuses the record and revision
    read here for the rest of the transaction, ``catalogue_key_in_force`` the catalogue
    version in force read with them. ``None`` for an unknown patient."""
    postgres = conn.dialect.name == "postgresql"
    found = batch.first_row(
        conn, _ACCESS_LOCKING_CHAIN if postgres else _ACCESS, {"patient_id": id_text(patient_id)}
    )
    return None if found is None else _accessed(conn, found, patient_id)


def read_own_for_access(conn: Connection, national_id: str) -> Accessed | None:
    """``read_for_access`` for the patient with ``national_id`` (a patient reading their own
    record): ``None`` when no list is kept for that person."""
    postgres = conn.dialect.name == "postgresql"
    found = batch.first_row(
        conn, _OWN_ACCESS_LOCKING_CHAIN if postgres else _OWN_ACCESS, {"national_id": national_id}
    )
    return None if found is None else _accessed(conn, found)


def _accessed(conn: Connection, found: Any, patient_id: UUID | None = None) -> Accessed:
    """What ``found`` (the access's row) tells, with ``patient_id`` the ``UUID`` it was found
    by (the row's own id, kept as the caller's object, whose text is then written out once:
    ``id_text``); otherwise the id is read from the row."""
    if conn.dialect.name == "postgresql":
        audit.note_chain_locked(conn, found.national_id)
    catalogue = None if found.catalogue_id is None else (found.catalogue_id, found.sha256)
    accessed = Accessed(
        patient_id if type(patient_id) is UUID else UUID(found.id),
        str(found.national_id),
        found.record,
        found.revision,
        catalogue,
    )
    audit.note_patient(conn, accessed.national_id, accessed.patient_id)
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
    return select(column).order_by(fest_version.c.id.desc()).limit(1).scalar_subquery()


def _decoded(text: str) -> Any:
    return json.loads(text)


# The statements that begin an audited access or a command read the record as its text
# (``json``'s text as written: a cast without a conversion), which is decoded only when the
# patient's state is not cached (issue #20: a JSON decode a request otherwise spent for nothing).
_RECORD_TEXT = cast(patient.c.record, Text).label("record")

_ACCESSED = "patients.accessed"
_CATALOGUE_IN_FORCE = "patients.catalogue_in_force"
_ACCESS_COLUMNS = select(
    patient.c.id,
    patient.c.national_id,
    _RECORD_TEXT,
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
        _RECORD_TEXT,
        patient.c.revision,
        patient.c.national_id,
        _in_force(fest_version.c.id).label("catalogue_id"),
        _in_force(fest_version.c.sha256).label("sha256"),
        # Compared with the bound parameter, not with ``patient.id``: SQLite evaluates a
        # RETURNING subquery correlated with the updated row wrongly (it sees no row).
        exists().where(admission.c.patient_id == bindparam("patient_id")).label("ever_admitted"),
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


def read_revision(conn: Connection, patient_id: UUID) -> int | None:
    """The patient's revision (as ``read_for_access`` read it, when it did earlier in this
    transaction: no round trip), without parsing its record; ``None`` for an unknown
    patient."""
    memo = existing_transaction_memo(conn)
    accessed = None if memo is None else memo.get((_ACCESSED, patient_id))
    if accessed is not None:
        return accessed.revision
    query = select(patient.c.revision).where(patient.c.id == str(patient_id))
    return conn.execute(query).scalar_one_or_none()


def national_ids_of(conn: Connection, patient_ids: Sequence[UUID]) -> dict[UUID, str]:
    """The national id of each of ``patient_ids`` that exists, in one query per 500; in a
    transaction each is noted for its audit records, as ``national_id_of`` notes one."""
    found: dict[UUID, str] = {}
    ids = [str(p) for p in patient_ids]
    for start in range(0, len(ids), 500):
        for row in conn.execute(
            select(patient.c.id, patient.c.national_id).where(
                patient.c.id.in_(ids[start : start + 500])
            )
        ):
            found[UUID(row.id)] = str(row.national_id)
    if conn.in_transaction():
        for patient_id, national_id in found.items():
            audit.note_patient(conn, national_id, patient_id)
    return found


def read_patients(conn: Connection, patient_ids: Sequence[UUID]) -> dict[UUID, Patient]:
    """The patients of ``patient_ids`` that exist, by id, in one query per 500."""
    found: dict[UUID, Patient] = {}
    ids = [str(p) for p in patient_ids]
    for start in range(0, len(ids), 500):
        for row in conn.execute(
            select(patient.c.id, patient.c.record).where(patient.c.id.in_(ids[start : start + 500]))
        ):
            found[UUID(row.id)] = _patient_of(row.record, UUID(row.id))
    return found


def _patient(conn: Connection, patient_id: UUID) -> Patient | None:
    query = select(patient.c.record).where(patient.c.id == str(patient_id))
    record = conn.execute(query).scalar_one_or_none()
    return None if record is None else _patient_of(record, patient_id)


def _patient_of(record: Any, patient_id: UUID) -> Patient:
    return parsed(Patient, record, patient, {"id": patient_id})


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
        conn,
        _UPDATE_RECORD,
        {"patient_id": str(changed.id), "record": record},
        json_params=frozenset({"record"}),
    )
    attestation.claim_record(conn, str(changed.id), record)


def add_patient(conn: Connection, new: Patient, at: datetime) -> None:
    record = new.model_dump(mode="json")
    attestation.insert(
        conn,
        patient,
        id=str(new.id),
        national_id=str(new.national_id),
        record=record,
        registered_at=at,
    )
    audit.note_patient(conn, str(new.national_id), new.id)
    attestation.claim_record(conn, str(new.id), record)
