"""What ties every stored row of patient data to the audit record of the command that wrote it.

Every table listed in :data:`ATTESTED` has a ``command_id`` column. The first row a transaction
appends to one of them (through :func:`stamp`, which every insert of those tables calls) opens a
*command*: a random id (32 lower-case hex digits) that is written into ``command_id`` of every
row it appends, and a list of the rows' digests. The next audit record the transaction appends
(:func:`medloop.store.audit.append`) closes it: its ``detail`` gets

    "appended": {"command": <id>, "rows": <number of rows>, "digest": <rows digest>}

so that the audit record, and with it the patient's hash chain, commits to exactly those rows;
the next row after that opens a new command. Nothing is read back: the digest is computed from
the values the command hands to the insert, as the database stores them.

A row's digest is the SHA-256 of its canonical encoding: the UTF-8 JSON array
``[table name, {column: value}]`` with no whitespace, the columns in name order, over every
column that is not NULL but ``command_id`` and the ones the database fills in itself
(:data:`ATTESTED`: ``alert.id``, a serial, and ``patient.revision``, which every command
bumps); leaving NULLs out keeps the digests of older rows when a nullable column is added.
Values as stored: strings, integers, booleans; dates ``YYYY-MM-DD``; date-times as ISO 8601 in
UTC with microseconds on PostgreSQL (``timestamptz``), and on SQLite the naive wall-clock time
that SQLAlchemy stores there; JSON columns as their value with its keys in stored order (the
columns are ``json``, which keeps the text as written, not ``jsonb``; the command's dicts are
written in their own order), so a value is not re-sorted on the write path. The rows digest is
the SHA-256 of the concatenated row digests (hex) in ascending order, so that it does not
depend on the order a verifier reads rows in.

``medloop audit verify`` (:func:`medloop.store.audit.verify`) reads every attested table in
``command_id`` order, recomputes each command's rows digest and compares it with the audit
record that claims the command: a changed, deleted or added row, a row whose ``command_id`` no
audit record claims, and a row without ``command_id`` are all reported. A problem names the
claiming audit record (chain, sequence number) and the command's first row: the digest shows
that the command's rows changed, not which of them.

Rows go to the next audit record of their transaction, whatever patient it is about: a job that
writes for several patients in one transaction has them claimed by the first record appended
after them. A savepoint rolled back while its transaction goes on to commit would leave its
rows' digests in the claim (verify would report the command); no caller does that (a refusal
inside ``run_once``'s savepoint propagates and rolls the transaction back).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    cast,
    func,
    select,
)

from fest.schema import metadata
from medloop.store.transaction import _MEMO, existing_transaction_memo, transaction_memo

#: The column that names the command a row was appended by.
COMMAND_COLUMN = "command_id"

#: ``patient_id`` of a child table (migration 0020): a copy of its parent row's, added so that
#: statements route by patient (docs/scaling.md); the parent's row, attested, commits to it. Left
#: out so that the rows written before 0020, backfilled then, keep their digests.
_SHARD_KEY_COPY = frozenset({"patient_id"})

#: Every table of patient (and ward) data, with the columns the canonical encoding leaves out
#: because the database, not the command, decides them. The idempotency keys (a replay cache)
#: and the FEST catalogue (imported, versioned, hashed per file) are not covered.
ATTESTED: Mapping[str, frozenset[str]] = {
    # The record (name, birth date, weight, renal function, allergies …) changes when a
    # command records a new fact, so it is not part of the row's digest: each command that
    # writes it claims the record's own digest instead (``claim_record``), and verify checks the
    # stored record against the latest claim.
    "patient": frozenset({"revision", "record"}),
    "list_change": frozenset(),
    "entry_version": frozenset(),
    "prescription": frozenset(),
    "prescription_version": _SHARD_KEY_COPY,
    "dispense": frozenset(),
    "dispense_annulment": _SHARD_KEY_COPY,
    "alert": frozenset({"id"}),
    "handled_alert": frozenset(),
    "reconciliation": frozenset(),
    "multidose_responsibility": frozenset(),
    "multidose_period": frozenset(),
    "multidose_urgent_pack": _SHARD_KEY_COPY,
    "multidose_plan_taken": _SHARD_KEY_COPY,
    "multidose_deadline_flag": _SHARD_KEY_COPY,
    "multidose_reconciliation": frozenset(),
    "multidose_task": frozenset(),
    "multidose_task_resolution": _SHARD_KEY_COPY,
    "multidose_proposal": frozenset(),
    "multidose_proposal_decision": _SHARD_KEY_COPY,
    "ward": frozenset(),
    "ward_config": frozenset(),
    "admission": frozenset(),
    "discharge": _SHARD_KEY_COPY,
    "wristband": _SHARD_KEY_COPY,
    "schedule": frozenset(),
    "planned_dose": frozenset(),
    # What the ward report counts (late, scanned, scan_skipped, reason) is copied out of the
    # record, which the digest covers (migration 0017 added the columns to rows already claimed).
    "administration": frozenset({"late", "scanned", "scan_skipped", "reason"}),
    "administration_error": _SHARD_KEY_COPY,
    "cds_card": frozenset(),
    "cds_feedback": _SHARD_KEY_COPY,
    "received_message": frozenset(),
    "list_proposal_decision": frozenset(),
    "outbox_message": frozenset(),
    "outbox_sent": frozenset(),
    "medication_review": frozenset(),
}


def command_column() -> Column:
    """The ``command_id`` column every attested table has (nullable: rows from before migration
    0011 have none, and :func:`medloop.store.audit.verify` reports them)."""
    return Column(COMMAND_COLUMN, String(32), nullable=True)


#: The key of an audit record's ``detail`` that holds its command's claim.
DETAIL_KEY = "appended"

_OPEN = "attestation.open"


@dataclass
class _Open:
    command: str
    digests: list[str] = field(default_factory=list)
    records: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Encoder:
    """How to encode one table's rows: the covered columns and a converter per column."""

    table: str
    columns: tuple[tuple[str, Any, Any, bool], ...]


def stamp(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    encoded: Sequence[Mapping[str, bytes] | None] | None = None,
) -> list[dict[str, Any]]:
    """``rows`` for ``table`` with this transaction's open command in ``command_id`` (one is
    opened if none is), their digests added to the command. ``rows`` of a table that is not
    attested come back unchanged.

    ``encoded`` (one per row, or ``None`` for a row): the row's JSON column values as the
    insert sends them, ``orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)`` (what
    ``store.batch`` writes), so that the digest embeds that text instead of encoding the
    value a second time: the canonical encoding of a row is the same bytes either way."""
    # (``_encoders`` read inline when it has it: a Python call saved, 4.5 stamps a prescribe.)
    dialect = conn.dialect.name
    encoders = _ENCODERS.get(dialect)
    if encoders is None:
        encoders = _encoders(dialect)
    encoder = encoders.get(table.name)
    if encoder is None:
        return [dict(row) for row in rows]
    command = _open_command(conn)
    stamped = []
    digests = command.digests
    columns = encoder.columns
    for n, row in enumerate(rows):
        texts = None if encoded is None else encoded[n]
        if texts is None:
            digests.append(_row_digest(encoder, row))
        else:
            # ``_row_digest(encoder, row, texts=texts)`` written out, with ``_datetime_utc``'s
            # memory read inline (a row's digest and its moment's text were two Python calls
            # a row, 4.5 rows a prescribe; tests/store/test_attestation_stamp.py).
            values = {}
            for name, write, _read, _as_text in columns:
                value = row.get(name)
                if value is not None:
                    if name in texts:
                        values[name] = orjson.Fragment(texts[name])
                        continue
                    if write is _text:
                        if value.__class__ is not str:
                            value = str(value)
                    elif write is _datetime_utc:
                        last = _LAST_DATETIME
                        value = last[1] if last[0] is value else _datetime_utc(value)
                    elif write is not None and not (write is _integer and value.__class__ is int):
                        value = write(value)
                    if value is not None:  # JSON null is left out as SQL NULL is
                        values[name] = value
            try:
                written = orjson.dumps([encoder.table, values], option=orjson.OPT_NON_STR_KEYS)
            except TypeError:  # another column's value is not orjson's: the ordinary way
                digests.append(_row_digest(encoder, row))
            else:
                digests.append(hashlib.sha256(written).hexdigest())
        stamped.append({**row, COMMAND_COLUMN: command.command})
    return stamped


def _open_command(conn: Connection) -> _Open:
    """The command ``conn``'s transaction has open, opened here (a new random id) when it has
    none. The transaction's memo is read from the connection when the memo is this
    transaction's (``transaction_memo``'s own check, inline: one call a stamp instead of two)."""
    held = conn.__dict__.get(_MEMO)
    if held is not None and held[0] is conn._transaction:
        memo = held[1]
    else:
        memo = transaction_memo(conn)
    command = memo.get(_OPEN)
    if command is None:
        command = memo[_OPEN] = _Open(uuid.uuid4().hex)
    return command


def queued_fields(table_name: str, columns: tuple[str, ...]) -> tuple[tuple[str, Any], ...] | None:
    """For :func:`stamp_queued`: the PostgreSQL encoding's columns of ``table_name`` that are
    among ``columns`` (the keys of the rows to stamp), in the encoding's order, each with how
    its value is written (``None``: a JSON column); ``None`` when the table is not attested.
    A column the rows do not have is one ``stamp`` finds no value of and leaves out."""
    encoder = _encoders("postgresql").get(table_name)
    if encoder is None:
        return None
    return tuple(
        (name, write) for name, write, _read, _as_text in encoder.columns if name in columns
    )


def stamp_queued(
    conn: Connection,
    table_name: str,
    fields: tuple[tuple[str, Any], ...],
    rows: Sequence[Mapping[str, Any]],
    encoded: Sequence[Mapping[str, bytes]],
) -> str:
    """``stamp(conn, table, rows, encoded)`` on PostgreSQL for rows whose keys are exactly the
    columns ``fields`` was made for (:func:`queued_fields`), each with every JSON value in
    its ``encoded`` texts (``store.batch``'s queued insert): the same digests added to the
    command, and the command's id returned instead of copies of the rows with it, which the
    caller writes into the rows it sends (tests/store/test_attestation_stamp.py). Each value
    is read by its key (the rows have them all) and a JSON column is known by its ``None``
    writer, not looked for in the texts."""
    command = _open_command(conn)
    digests = command.digests
    for row, texts in zip(rows, encoded, strict=True):
        values = {}
        for name, write in fields:
            value = row[name]
            if value is not None:
                if write is None:  # a JSON column: its text as sent
                    values[name] = orjson.Fragment(texts[name])
                    continue
                if write is _text:
                    if value.__class__ is not str:
                        value = str(value)
                elif write is _datetime_utc:
                    last = _LAST_DATETIME
                    value = last[1] if last[0] is value else _datetime_utc(value)
                elif not (write is _integer and value.__class__ is int):
                    value = write(value)
                if value is not None:  # JSON null is left out as SQL NULL is
                    values[name] = value
        try:
            written = orjson.dumps([table_name, values], option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # another column's value is not orjson's: the ordinary way
            digests.append(_row_digest(_ENCODERS["postgresql"][table_name], row))
        else:
            digests.append(hashlib.sha256(written).hexdigest())
    return command.command


def claim_record(conn: Connection, patient_id: str, record: Mapping[str, Any]) -> None:
    """This transaction's open command wrote ``record`` as the patient's record: its audit
    record claims the record's digest (``records`` in the claim)."""
    memo = transaction_memo(conn)
    command = memo.get(_OPEN)
    if command is None:
        command = memo[_OPEN] = _Open(uuid.uuid4().hex)
    command.records[patient_id] = record_digest(record)


def record_digest(record: Any) -> str:
    """SHA-256 (hex) of a patient record as canonical JSON (sorted keys, no whitespace)."""
    return hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()


def stored_records(conn: Connection) -> Iterator[tuple[str, str]]:
    """Every patient's id and the digest of its stored record."""
    table = metadata.tables["patient"]
    result = conn.execution_options(stream_results=True).execute(
        select(table.c.id, table.c.record).order_by(table.c.id)
    )
    for patient_id, record in result:
        yield (
            str(patient_id),
            record_digest(json.loads(record) if isinstance(record, str) else record),
        )


def insert(conn: Connection, table: Table, /, **row: Any) -> None:
    """Insert one row (``row``: its column values) into ``table`` now, stamped."""
    conn.execute(table.insert(), stamp(conn, table, [row])[0])


def close(conn: Connection) -> dict[str, Any] | None:
    """The claim of this transaction's open command (``None`` when it appended nothing since
    the last audit record), which closes it: the audit record about to be appended carries it."""
    memo = existing_transaction_memo(conn)
    if memo is None:
        return None
    return close_in(memo)


def close_in(memo: dict) -> dict[str, Any] | None:
    """``close`` on the transaction's ``memo`` (``transaction_memo(conn)``) at hand."""
    command = memo.pop(_OPEN, None)
    if command is None:
        return None
    claim: dict[str, Any] = {
        "command": command.command,
        "rows": len(command.digests),
        "digest": rows_digest(command.digests),
    }
    if command.records:
        claim["records"] = dict(command.records)
    return claim


def rows_digest(row_digests: Iterable[str]) -> str:
    """SHA-256 (hex) of the sorted, concatenated row digests."""
    return hashlib.sha256("".join(sorted(row_digests)).encode()).hexdigest()


# -- verifying ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredCommand:
    """The rows stored under one ``command_id``: how many, their digest, and where the first
    of them is (table and primary key), to name it in a report."""

    command: str
    rows: int
    digest: str
    first: str


@dataclass(frozen=True)
class UnstampedRow:
    """A row with no ``command_id``."""

    table: str
    key: str


def stored_commands(conn: Connection, chunk: int = 2_000) -> Iterator[StoredCommand]:
    """Every command id found in the attested tables, in ascending order, with the digest of
    its rows as stored now. Reads each table once, in ``command_id`` order, streamed."""
    streams = [_table_stream(conn, name, chunk) for name in ATTESTED]
    merged = heapq.merge(*streams, key=lambda item: item[0])
    for command, items in itertools.groupby(merged, key=lambda item: item[0]):
        digests, first = [], None
        for _, digest, where in items:
            digests.append(digest)
            first = first or where
        yield StoredCommand(command, len(digests), rows_digest(digests), first or "")


def unstamped_rows(conn: Connection, limit: int) -> tuple[int, list[UnstampedRow]]:
    """How many rows of the attested tables have no ``command_id``, and the first ``limit``."""
    total, found = 0, []
    for name in ATTESTED:
        table = metadata.tables[name]
        key = list(table.primary_key.columns)
        where = table.c[COMMAND_COLUMN].is_(None)
        count = conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
        total += count
        if count and len(found) < limit:
            for row in conn.execute(select(*key).where(where).limit(limit - len(found))):
                found.append(UnstampedRow(name, _key_text(row)))
    return total, found


def _table_stream(conn: Connection, name: str, chunk: int) -> Iterator[tuple[str, str, str]]:
    table = metadata.tables[name]
    encoder = _encoders(conn.dialect.name)[name]
    key_columns = [c.name for c in table.primary_key.columns]
    command = table.c[COMMAND_COLUMN]
    # Byte order on both databases, as Python compares the ids when merging the tables.
    order = command.collate("C") if conn.dialect.name == "postgresql" else command
    as_text = {name for name, _w, _r, text in encoder.columns if text}
    columns = [cast(c, Text).label(c.name) if c.name in as_text else c for c in table.columns]
    query = select(*columns).where(command.is_not(None)).order_by(order)
    result = conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
    for row in result.mappings():
        where = f"{name} {_key_text([row[c] for c in key_columns])}"
        yield row[COMMAND_COLUMN], _row_digest(encoder, row, stored=True), where


def _key_text(values: Iterable[Any]) -> str:
    return "/".join(str(v) for v in values)


# -- the canonical encoding --------------------------------------------------------------------

_ENCODERS: dict[str, dict[str, _Encoder]] = {}


def _encoders(dialect: str) -> dict[str, _Encoder]:
    found = _ENCODERS.get(dialect)
    if found is None:
        from medloop.store import tables  # noqa: F401, PLC0415 - defines every attested table

        found = {}
        for name, left_out in ATTESTED.items():
            table = metadata.tables[name]
            columns = tuple(
                (c.name, *_converters(c.type, dialect))
                for c in sorted(table.columns, key=lambda c: c.name)
                if c.name != COMMAND_COLUMN and c.name not in left_out
            )
            found[name] = _Encoder(name, columns)
        _ENCODERS[dialect] = found
    return found


def _converters(column_type: Any, dialect: str) -> tuple[Any, Any, bool]:
    """How a column's value is encoded as the command holds it and as read back, and whether
    it is read as its stored text (so that whatever a tampered row holds reaches the
    comparison instead of failing to load)."""
    sqlite = dialect == "sqlite"
    if isinstance(column_type, JSON):
        return None, _json_text, True
    if isinstance(column_type, DateTime):
        return (_datetime_sqlite, _text, True) if sqlite else (_datetime_utc, _datetime_utc, False)
    if isinstance(column_type, Date):
        return (_date, _text, True) if sqlite else (_date, _date, False)
    if isinstance(column_type, Boolean):
        return _boolean, _boolean, False
    if isinstance(column_type, Integer):
        return _integer, _integer, False
    return _text, _text, False


def _row_digest(
    encoder: _Encoder,
    row: Mapping[str, Any],
    *,
    stored: bool = False,
    texts: Mapping[str, bytes] | None = None,
) -> str:
    values = {}
    for name, write, read, _as_text in encoder.columns:
        value = row.get(name)
        if value is not None:
            if texts is not None and name in texts:
                # A JSON value's own encoding (``stamp``), embedded as it is.
                values[name] = orjson.Fragment(texts[name])
                continue
            convert = read if stored else write
            # ``_text`` of a string and ``_integer`` of an int leave it as it is: not called
            # for those (most of a row's columns).
            if convert is _text:
                if value.__class__ is not str:
                    value = str(value)
            elif convert is not None and not (convert is _integer and value.__class__ is int):
                value = convert(value)
            if value is not None:  # JSON null is left out as SQL NULL is
                values[name] = value
    if texts is not None:
        try:
            encoded = orjson.dumps([encoder.table, values], option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # another column's value is not orjson's: the ordinary way
            return _row_digest(encoder, row, stored=stored)
        return hashlib.sha256(encoded).hexdigest()
    return hashlib.sha256(_canonical([encoder.table, values])).hexdigest()


def _canonical(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _json_text(value: Any) -> Any:
    # Text that is not JSON (SQLite does not check) encodes as a marked string: a mismatch.
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return {"not JSON": str(value)}


def _datetime_utc(value: Any) -> Any:
    global _LAST_DATETIME
    last = _LAST_DATETIME
    if last[0] is value:  # a command's rows carry its one moment again and again
        return last[1]
    if not isinstance(value, datetime):
        return str(value)
    text = _utc_text(value)
    _LAST_DATETIME = (value, text)
    return text


def _utc_text(value: datetime) -> str:
    if value.tzinfo is None:  # as PostgreSQL reads a naive value into timestamptz
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


_LAST_DATETIME: tuple[Any, str] = (object(), "")
"""The last date-time ``_datetime_utc`` wrote out, and its text (a date-time is immutable, and
kept here it cannot be another object with its id)."""


def _datetime_sqlite(value: Any) -> Any:
    if not isinstance(value, datetime):
        return str(value)
    # SQLAlchemy's SQLite storage format: the wall-clock time, the offset dropped.
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _date(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value.isoformat() if isinstance(value, date) else str(value)


def _boolean(value: Any) -> Any:
    return bool(value) if isinstance(value, (bool, int)) else str(value)


def _integer(value: Any) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _text(value: Any) -> Any:
    return value if value.__class__ is str else str(value)
