"""Appends of one command sent to PostgreSQL in one round trip.

A command appends rows to several tables (the list change, its entry versions, the
prescription and its version, alerts, the idempotency record) and ends with its audit record.
None of those statements returns anything the command needs except the audit record's chain
position, so inside :func:`batched` they are queued and sent together, in order, in libpq's
pipeline mode (``postgres.execute_at_once``: one send, one wait), with the last statement of
the batch (the audit record's insert) the only one whose result is read: one round trip instead
of one per statement, and no per-statement SQLAlchemy execution overhead.

The order of statements is kept: any other statement that runs through SQLAlchemy on the same
connection while rows are queued first sends the queue (an engine event, :func:`install`), so a
later read or write always sees the queued rows. A failed statement in the queue raises
SQLAlchemy's ``IntegrityError`` (or ``DBAPIError``) like an ordinary execution would, and the
transaction rolls back as usual. Leaving :func:`batched` normally sends what is still queued;
leaving it with an exception drops it (the transaction is rolled back anyway).

On SQLite (in-process, no round trips) every call executes at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg.rows import namedtuple_row
from psycopg.types.json import Json
from sqlalchemy import JSON, ClauseElement, Connection, Engine, Table, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, NoResultFound

from medloop.store import attestation, postgres
from medloop.store.transaction import (
    _MEMO,
    PlainPostgresTransaction,
    WriteOnReadConnection,
    transaction_memo,
)

_PENDING = "batch.pending"
_COMMIT_WITH_ROW = "batch.commit_with_row"
_DIALECT = postgresql.psycopg.dialect()


@dataclass
class _Pending:
    statements: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)


class batched:  # noqa: N801  (used as the function it was: ``with batched(conn):``)
    """Queue this transaction's appends (PostgreSQL) until the block ends or a statement
    needs the queued rows.

    A class, not a ``contextlib.contextmanager`` generator: ``__enter__`` and ``__exit__``
    are its only Python calls (the generator's wrapper took some five, a prescribe's command
    one block). Leaving the block normally sends what is queued; leaving it with an exception
    drops it, and the exception goes on; inside a block already batching, the outer block
    sends."""

    __slots__ = ("_conn", "_memo")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._memo: dict | None = None

    def __enter__(self) -> None:
        conn = self._conn
        if conn.dialect.name != "postgresql":
            return
        memo = transaction_memo(conn)
        if memo.get(_PENDING) is not None:  # already batching: the outer block sends
            return
        memo[_PENDING] = _Pending()
        self._memo = memo

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> bool:
        memo = self._memo
        if memo is None:
            return False
        self._memo = None
        try:
            if exc_type is None:
                flush(self._conn)
        finally:
            memo.pop(_PENDING, None)
        return False


def insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (each with the same keys) into ``table``: queued inside
    :func:`batched` on PostgreSQL, executed at once otherwise."""
    if not rows:
        return
    if isinstance(conn, PlainPostgresTransaction):
        # ``_pending(conn)`` for a ``light.Light`` written out (4.5 inserts a prescribe).
        transaction = conn._transaction
        held = None if transaction is None else conn.__dict__.get(_MEMO)
        pending = held[1].get(_PENDING) if held is not None and held[0] is transaction else None
    else:
        pending = _pending(conn)
    if pending is None:
        # Every row of patient data carries its command's id and goes into its audit
        # record's digest (computed here from the values, no round trip).
        conn.execute(table.insert(), attestation.stamp(conn, table, rows))
        return
    # Queued: each JSON value is encoded once, for the digest and for the insert.
    # What depends only on the table and the rows' columns is kept per both (``_plan``): the
    # JSON columns, the statement, and the attested columns' encoding.
    columns = tuple(rows[0])
    plan = _PLANS.get((table.name, columns))
    if plan is None:
        plan = _plan(table, columns)
    json_columns, sql, fields = plan
    encoded: list[dict[str, bytes] | None] = []
    for row in rows:
        texts: dict[str, bytes] | None = {}
        try:
            for c in json_columns:
                texts[c] = orjson.dumps(row[c], option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            texts = None
        encoded.append(texts)
    if fields is not None and None not in encoded and (len(rows) == 1 or _same_keys(rows)):
        # An attested table's rows, every JSON value orjson's: stamped without copies of the
        # rows (``attestation.stamp_queued``), each row copied once, with its command's id
        # and the JSON texts as sent, into the row that is sent (the dict ``stamp`` and the
        # copy below made: same keys, same order).
        command = attestation.stamp_queued(conn, table.name, fields, rows, encoded)
        sent_rows = []
        for row, texts in zip(rows, encoded, strict=True):
            sent = {**row, attestation.COMMAND_COLUMN: command}
            for c, text in texts.items():
                sent[c] = Json(text, dumps=_as_is)
            sent_rows.append(sent)
        pending.statements.append((sql, sent_rows))
        return
    stamped = attestation.stamp(conn, table, rows, encoded)
    key = (table.name, tuple(stamped[0]))
    found = _SQL.get(key)
    sql = (found if found is not None else _insert_sql(table, key[1]))[0]
    sent_rows = []
    for row, texts in zip(stamped, encoded, strict=True):
        if texts is None:
            sent_rows.append(_adapted(row, json_columns))
        else:
            sent = dict(row)  # the JSON columns are the row's: replaced in place
            for c, text in texts.items():
                sent[c] = Json(text, dumps=_as_is)
            sent_rows.append(sent)
    pending.statements.append((sql, sent_rows))


def _same_keys(rows: Sequence[Mapping[str, Any]]) -> bool:
    """Whether every row has the first row's keys (a queued insert's rows do: its statement
    names the first row's)."""
    if len(rows) == 1:
        return True
    keys = rows[0].keys()
    return all(row.keys() == keys for row in rows)


def _plan(
    table: Table, columns: tuple[str, ...]
) -> tuple[frozenset[str], str, tuple[tuple[str, Any], ...] | None]:
    """For queued rows of ``table`` with keys ``columns``: the JSON columns, the statement (of
    the columns with ``command_id`` after them when the table is attested, as ``stamp`` adds
    it: the keys of the rows sent) and ``attestation.queued_fields`` (``None``: not attested)."""
    key = (table.name, columns)
    found = _PLANS.get(key)
    if found is None:
        fields = attestation.queued_fields(table.name, columns)
        sent = columns
        if fields is not None and attestation.COMMAND_COLUMN not in columns:
            sent = (*columns, attestation.COMMAND_COLUMN)
        found = (_json_columns(table, columns), _insert_sql(table, sent)[0], fields)
        _PLANS[key] = found
    return found


_PLANS: dict[
    tuple[str, tuple[str, ...]], tuple[frozenset[str], str, tuple[tuple[str, Any], ...] | None]
] = {}


def execute(
    conn: Connection,
    statement: ClauseElement,
    params: Mapping[str, Any],
    *,
    json_params: frozenset[str] = frozenset(),
    texts: Mapping[str, bytes] | None = None,
) -> None:
    """Execute ``statement`` (no result needed): queued inside :func:`batched` on
    PostgreSQL, executed at once otherwise. ``json_params`` names the parameters bound to
    JSON columns; ``texts``, for some of them, the text :func:`_dumps` writes of the value,
    which the caller has at hand (sent as it is where batch sends the statement; SQLAlchemy
    encodes the value where it executes it)."""
    pending = _pending(conn)
    if pending is None:
        conn.execute(statement, dict(params))
        return
    pending.statements.append(_bound(statement, params, json_params, texts))


def execute_returning_one(
    conn: Connection,
    statement: ClauseElement,
    params: Mapping[str, Any],
    *,
    json_params: frozenset[str] = frozenset(),
    texts: Mapping[str, bytes] | None = None,
) -> Any:
    """Execute ``statement`` and return its one row (:func:`first_row`, which must find
    one): the audit record's insert, with a command's queued appends in its round trip."""
    row = first_row(conn, statement, params, json_params=json_params, texts=texts)
    if row is None:
        raise NoResultFound("the statement returned no row")
    return row


def first_row(
    conn: Connection,
    statement: ClauseElement,
    params: Mapping[str, Any],
    *,
    json_params: frozenset[str] = frozenset(),
    texts: Mapping[str, bytes] | None = None,
) -> Any:
    """The first row ``statement`` returns, or ``None``. On PostgreSQL inside a transaction it
    goes to psycopg directly as a prepared statement, with whatever is queued before it in the
    same round trip, and so it does on a connection in autocommit (``db.reader``): the first
    statement of every audited read and command (the patient, the idempotency claim), the
    audit record and the catalogue version key, where SQLAlchemy's execution costs more than
    psycopg's. ``statement`` must be made once (a module constant): its SQL is compiled once.
    The row has the same values as SQLAlchemy's (tests/store/test_batch.py); the statement's columns
    are plain, JSON or integer types. ``json_params`` names the parameters bound to JSON
    columns, ``texts`` the encoded values at hand (:func:`execute`)."""
    if isinstance(conn, PlainPostgresTransaction):
        # ``light.Light``: ``connection`` and ``in_transaction()`` read without the calls.
        pooled = conn._fairy
        driver = pooled.dbapi_connection
        if driver is None:
            pooled = conn.connection  # raises as ``Connection`` would on a lost one
        in_transaction = conn._transaction is not None
    elif conn.dialect.name != "postgresql":
        return conn.execute(statement, dict(params)).first()
    else:
        # psycopg's (sync) connection is the DBAPI connection itself: ``dbapi_connection`` is
        # ``driver_connection`` without its two property hops and the dialect's call.
        pooled = conn.connection
        driver = pooled.dbapi_connection
        in_transaction = conn.in_transaction()
    autocommit = driver.autocommit
    if not (in_transaction or autocommit):
        # SQLAlchemy has to know of the transaction psycopg would begin.
        return conn.execute(statement, dict(params)).first()
    if autocommit and not getattr(statement, "is_select", False):
        raise WriteOnReadConnection(f"a read-only connection was asked to run {statement!r}")
    sql, bound = _bound(statement, params, json_params, texts)
    # The transaction's queue and whether the COMMIT goes with this row (``_pending``,
    # ``commit_with_next_row``), from one look at its memo.
    # (``existing_transaction_memo`` inline: a call saved, 3 a prescribe.)
    held = conn.__dict__.get(_MEMO) if in_transaction else None
    pending, commit = None, False
    if held is not None and held[0] is conn._transaction:
        memo = held[1]
        commit = memo.pop(_COMMIT_WITH_ROW, False)
        pending = memo.get(_PENDING)
    return _send(conn, pending, (sql, bound[0]), commit=commit, pooled=pooled)


def commit_with_next_row(conn: Connection) -> None:
    """Send ``COMMIT`` in the round trip of the next :func:`first_row` of this transaction
    (PostgreSQL; nothing on SQLite): the audit record that ends an audited read is its last
    statement, so its insert and the commit go together. The caller's ``commit()`` afterwards
    finds the transaction over and sends nothing; when no such row follows, the transaction
    ends as usual. Only for a transaction whose last statement that row is: anything the
    caller does after it on the connection runs outside the transaction."""
    if isinstance(conn, PlainPostgresTransaction):  # ``light.Light``: no method call
        if conn._transaction is not None:
            transaction_memo(conn)[_COMMIT_WITH_ROW] = True
    elif conn.dialect.name == "postgresql" and conn.in_transaction():
        transaction_memo(conn)[_COMMIT_WITH_ROW] = True


def flush(conn: Connection) -> None:
    """Send the queued statements now."""
    pending = _pending(conn)
    if pending is not None and pending.statements:
        _send(conn, pending, None)


def install(engine: Engine) -> None:
    """Make every statement SQLAlchemy executes on ``engine`` send the queue first.

    The hooks are the dialect's (``do_execute``, ``do_executemany``, ``do_execute_no_params``:
    run just before the DBAPI cursor's, inside SQLAlchemy's error handling, as a
    ``before_cursor_execute`` listener is), not the engine's: an engine with a listener of its
    own dispatches events at every connect, begin, commit, rollback and close, which cost a
    transaction more than its ``BEGIN``-less begin and its commit do (bench/RESULTS.md, issue
    #20, session 10). Each returns ``False``: SQLAlchemy then executes the statement itself."""
    event.listen(engine, "do_execute", _before_execute)
    event.listen(engine, "do_executemany", _before_execute)
    event.listen(engine, "do_execute_no_params", _before_execute_no_params)


def _before_execute(cursor, statement, parameters, context) -> bool:
    flush(context.root_connection)
    return False


def _before_execute_no_params(cursor, statement, context) -> bool:
    flush(context.root_connection)
    return False


def _pending(conn: Connection) -> _Pending | None:
    if isinstance(conn, PlainPostgresTransaction):
        # ``light.Light``: ``in_transaction()`` read without the call (6.5 a prescribe).
        transaction = conn._transaction
        if transaction is None:
            return None
    elif conn.dialect.name != "postgresql" or not conn.in_transaction():
        return None
    else:
        transaction = conn._transaction
    # ``existing_transaction_memo`` inline (a call saved; 6.5 a prescribe).
    held = conn.__dict__.get(_MEMO)
    if held is None or held[0] is not transaction:
        return None
    return held[1].get(_PENDING)


def _send(
    conn: Connection,
    pending: _Pending | None,
    last: tuple[str, dict[str, Any]] | None,
    *,
    commit: bool = False,
    pooled: Any = None,
) -> Any:
    # ``pooled``: ``conn.connection`` when the caller (``first_row``) has just read it.
    statements: list[tuple[str, list[dict[str, Any]]]] = []
    if pending is not None:
        statements, pending.statements = pending.statements, []
    if pooled is None:
        pooled = conn.connection
    driver = pooled.dbapi_connection  # psycopg's connection (``first_row``)
    sql = ""
    try:
        cursor = _cursor(pooled, driver)
        if not statements and last is not None and not commit:
            sql = last[0]  # one statement: no pipeline needed
            cursor.execute(sql, last[1], prepare=True)
            return _fetchone(cursor)
        if last is not None:
            statements.append((last[0], [last[1]]))
        sql = statements[-1][0]
        # One round trip written in one send (the COMMIT queued behind the row's statement,
        # ``commit_with_next_row``): a failed statement aborts those after it, and the COMMIT.
        postgres.execute_at_once(cursor, statements, commit=commit)
        return _fetchone(cursor) if last is not None else None
    except psycopg.Error as error:
        # As SQLAlchemy itself reports a failed statement (IntegrityError for a unique key),
        # and as it handles a lost connection: dropped, never returned to the pool.
        lost = driver.broken or conn.dialect.is_disconnect(error, driver, None)
        if lost:
            conn.invalidate(error)
        # A connection lost with the COMMIT sent may have committed: reported as a lost
        # COMMIT is (no statement), so that ``db.retry_read`` does not run the read again.
        statement = None if commit and lost else (sql or "(queued statements)")
        raise DBAPIError.instance(
            statement, None, error, psycopg.Error, connection_invalidated=lost
        ) from error


def _cursor(pooled: Any, driver: psycopg.Connection) -> psycopg.Cursor:
    """The cursor :func:`_send` uses on ``driver`` (rows as named tuples), made once per
    connection (kept in the pool record's info, made again for a new connection): building and
    closing a cursor, and its adapters, for every round trip cost more than the statement's own
    dumping (bench/RESULTS.md, #20, session 7). A ``KeptCursor``: its dumpers and loaders are
    made once too, not once per statement (session 10)."""
    info = pooled.info
    found = info.get(_CURSORS)
    if found is None or found[0] is not driver or found[1].closed:
        driver._check_connection_ok()  # as ``driver.cursor()`` checks
        found = info[_CURSORS] = (driver, postgres.KeptCursor(driver, row_factory=_named_row))
    return found[1]


_CURSORS = "batch.cursors"
_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK


def _named_row(cursor: psycopg.Cursor) -> Any:
    """psycopg's ``namedtuple_row`` (rows as named tuples, the class made once per column
    names), with the class looked up by the result's column names and the connection's
    encoding in a dict of this module's: psycopg's runs a generator and an ``lru_cache``
    call (and ``_encoding``'s property) for each result. A result without rows of columns
    (a command's) goes to psycopg's."""
    res = cursor.pgresult
    if res and res.status == _TUPLES_OK:
        key = (cursor._pgconn._encoding, *map(res.fname, range(res.nfields)))
        found = _ROW_MAKERS.get(key)
        if found is None:
            found = namedtuple_row(cursor)
            if len(_ROW_MAKERS) < 512:  # as psycopg's cache of row classes
                _ROW_MAKERS[key] = found
        return found
    return namedtuple_row(cursor)


_ROW_MAKERS: dict[tuple, Any] = {}


def _fetchone(cursor: psycopg.Cursor) -> Any:
    """``cursor.fetchone()`` of a statement's result just set (``_send``): the row read with
    the cursor's loaders and row maker as ``fetchone`` reads it, without its checks for a
    result still in psycopg's pipeline, a closed cursor or a result of no rows (then
    ``fetchone`` runs, and raises as it does)."""
    res = cursor.pgresult
    if res and res.status == _TUPLES_OK and not cursor._closed:
        pos = cursor._pos
        if pos < res.ntuples:
            row = cursor._tx.load_row(pos, cursor._make_row)
            cursor._pos = pos + 1
            return row
        return None
    return cursor.fetchone()


_SQL: dict[tuple[str, tuple[str, ...]], tuple[str, frozenset[str]]] = {}
_COMPILED: dict[int, tuple[ClauseElement, str, dict[str, Any]]] = {}


def _json_columns(table: Table, columns: tuple[str, ...]) -> frozenset[str]:
    key = (table.name, columns)
    found = _JSON_COLUMNS.get(key)
    if found is None:
        found = _JSON_COLUMNS[key] = frozenset(
            c for c in columns if isinstance(table.c[c].type, JSON)
        )
    return found


_JSON_COLUMNS: dict[tuple[str, tuple[str, ...]], frozenset[str]] = {}


def _encoded(row: Mapping[str, Any], json_columns: frozenset[str]) -> dict[str, bytes] | None:
    """The row's JSON values as ``_dumps`` writes them (``None`` when one is not orjson's to
    write: the row goes the ordinary way, each value encoded where it is used)."""
    try:
        return {c: orjson.dumps(row[c], option=orjson.OPT_NON_STR_KEYS) for c in json_columns}
    except TypeError:
        return None


def _as_sent(texts: Mapping[str, bytes]) -> dict[str, Json]:
    # The encoded text handed to psycopg's JSON dumper as it is.
    return {c: Json(text, dumps=_as_is) for c, text in texts.items()}


def _as_is(text: bytes) -> bytes:
    return text


def _insert_sql(table: Table, columns: tuple[str, ...]) -> tuple[str, frozenset[str]]:
    key = (table.name, columns)
    found = _SQL.get(key)
    if found is None:
        names = ", ".join(_DIALECT.identifier_preparer.quote(c) for c in columns)
        values = ", ".join(f"%({c})s" for c in columns)
        quoted = _DIALECT.identifier_preparer.format_table(table)
        json_columns = frozenset(c for c in columns if isinstance(table.c[c].type, JSON))
        found = _SQL[key] = (f"INSERT INTO {quoted} ({names}) VALUES ({values})", json_columns)
    return found


def _bound(
    statement: ClauseElement,
    params: Mapping[str, Any],
    json_params: frozenset[str],
    texts: Mapping[str, bytes] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """``statement``'s SQL and ``params`` adapted for psycopg, with the values of the
    parameters the statement carries itself (a literal ``+ 1``, a ``LIMIT``); the JSON
    parameters in ``texts`` sent as the text given there (what :func:`_dumps` writes)."""
    # (``_compiled``'s memo read inline, and ``{**own, **_adapted(params, json_params -
    # texts.keys()), **_as_sent(texts)}`` made without their Python calls: the same keys in
    # the same order, a text's value replacing its parameter's in place; 4 a prescribe.)
    found = _COMPILED.get(id(statement))
    if found is None or found[0] is not statement:
        sql, own = _compiled(statement)
    else:
        sql, own = found[1], found[2]
    if texts:
        left = json_params - texts.keys()
        bound = {**own, **_adapted(params, left)} if left else {**own, **params}
        for c, text in texts.items():
            bound[c] = Json(text, dumps=_as_is)
        return sql, [bound]
    if json_params:
        return sql, [{**own, **_adapted(params, json_params)}]
    return sql, [{**own, **params}]


def _compiled(statement: ClauseElement) -> tuple[str, dict[str, Any]]:
    found = _COMPILED.get(id(statement))
    if found is None or found[0] is not statement:
        compiled = statement.compile(dialect=_DIALECT)
        own = {
            compiled.bind_names[bind]: bind.effective_value
            for bind in compiled.binds.values()
            if not bind.required
        }
        found = _COMPILED[id(statement)] = (statement, str(compiled), own)
    return found[1], found[2]


def _adapted(row: Mapping[str, Any], json_columns: frozenset[str]) -> dict[str, Any]:
    if not json_columns:
        return dict(row)
    # None too, as SQLAlchemy's JSON type stores it (JSON null, not SQL NULL).
    return {k: (Json(v, dumps=_dumps) if k in json_columns else v) for k, v in row.items()}


def _dumps(value: Any) -> bytes | str:
    # Compact UTF-8 JSON as ``json.dumps(ensure_ascii=False, separators=(",", ":"))`` writes
    # it, at a fraction of the cost (non-string keys become strings there too); integers
    # beyond 64 bits, which orjson refuses, go to json.
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
