"""psycopg cursors that send a transaction's ``BEGIN`` in its first statement's round trip,
in one write; and :func:`execute_at_once`, several statements (and the ``COMMIT``) in one round
trip written in one send, for ``store.batch``.

psycopg (not in autocommit) begins a transaction when the first statement of one is executed:
it sends ``BEGIN`` alone and waits for its answer, then sends the statement. These cursors
send both at once: in libpq's pipeline mode they queue ``BEGIN``, the statement (with its
``Parse`` when psycopg is about to prepare it) and one ``Sync``, which libpq writes to the
socket in one ``send``; then they read the answers, with one wait for the socket as a lone
statement has. psycopg's own pipeline (``Connection.pipeline``) would send each queued message
with a wait and a send of its own, which costs the serving process more CPU than the round
trip it saves (bench/RESULTS.md, issue #20, "Session 8 — h8-begin").

Nothing else changes. The server runs the same ``BEGIN`` (psycopg's own text: its isolation
level, read-only and deferrable settings) and then the statement, in one explicit transaction:
a statement that fails leaves it aborted, as before, and the caller's ``ROLLBACK`` ends it.
psycopg learns the transaction from libpq's transaction status, as it always does, so its
``commit`` and ``rollback`` work unchanged; the statement goes through psycopg's prepared-
statement cache exactly as ``Cursor.execute`` would (prepared when psycopg would prepare it,
the cache updated by its results, a statement that failed to prepare not cached). A statement
psycopg would send with the simple query protocol (no parameters, text results, not prepared:
it may hold several statements) still goes psycopg's way, after ``BEGIN`` alone; so does any
statement in autocommit, inside a transaction already begun or inside psycopg's pipeline.

:func:`execute_at_once` does for several statements what ``with conn.pipeline():`` around
their ``execute`` calls does (the same messages: each statement prepared through psycopg's cache,
the ``COMMIT`` behind them, one Sync), with ``BEGIN`` in front when the transaction has not
begun yet, in one send and one wait where psycopg's pipeline spends one of each per message.

This module imports nothing of medloop: ``bench/floor.py``'s server loads it from its file so
that the floor sends its ``BEGIN`` exactly as medloop does. It drives psycopg below its public
API (its cursor's query conversion and prepared-statement cache): psycopg is pinned in
pyproject.toml, and ``tests/store/test_postgres_begin.py`` checks the behaviour on that
version.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import psycopg
from psycopg import adapt, pq
from psycopg import errors as e
from psycopg._preparing import Prepare
from psycopg._queries import PostgresQuery
from psycopg.generators import fetch_many, send

_IDLE = pq.TransactionStatus.IDLE
_BAD = pq.ConnStatus.BAD
_PIPELINE_OFF = pq.PipelineStatus.OFF
_TEXT = pq.Format.TEXT
_BINARY = pq.Format.BINARY
_COMMAND_OK = pq.ExecStatus.COMMAND_OK
_FATAL_ERROR = pq.ExecStatus.FATAL_ERROR


class _BeginWithFirstStatement:
    """``BaseCursor._execute_gen`` (what ``execute`` runs), with a transaction's ``BEGIN``
    written together with its first statement."""

    __slots__ = ()

    def _execute_gen(self, query, params=None, *, prepare=None, binary=None):
        conn = self._conn
        pgconn = self._pgconn
        if (
            conn._autocommit
            or conn._pipeline is not None
            or pgconn.transaction_status != _IDLE
            or pgconn.pipeline_status != _PIPELINE_OFF
        ):
            return (yield from super()._execute_gen(query, params, prepare=prepare, binary=binary))

        # As ``BaseCursor._start_query`` readies the cursor (without the connection's BEGIN).
        if self.closed:
            raise e.InterfaceError("the cursor is closed")
        self._reset()
        _ready_transformer(self, query)
        conn._check_connection_ok()

        pgq = self._convert_query(query, params)
        prep, name = self._get_prepared(pgq, prepare)
        fmt = self.format if binary is None else (_BINARY if binary else _TEXT)
        if prep is Prepare.NO and not pgq.params and fmt != _BINARY:
            # psycopg sends this one as a simple query (which may hold several statements,
            # and which libpq refuses in pipeline mode): BEGIN alone first, as psycopg does.
            yield from conn._start_query()
            yield from self._maybe_prepare_gen(pgq, prepare=prepare, binary=binary)
            self._last_query = query
            yield from conn._prepared.maintain_gen(conn)
            return

        self._query = pgq
        yield from _round_trip_gen(self, [(query, pgq, prep, name, fmt)], begin=True)
        self._last_query = query
        yield from conn._prepared.maintain_gen(conn)


def execute_at_once(cursor: psycopg.Cursor, statements, *, commit: bool = False) -> None:
    """Execute ``statements`` (``(query, [params, ...])`` each, every row prepared, as
    ``Cursor.executemany`` prepares them) on ``cursor`` in one round trip written in one send:
    after ``BEGIN`` when the connection is in no transaction yet (and not in autocommit), and
    followed by ``COMMIT`` when ``commit``. The last statement's result is the cursor's. What
    ``with conn.pipeline()`` around ``execute`` calls sends, with one wait and one send for
    the whole instead of one per message. The first statement that fails raises its error
    (those after it are not run); the transaction is then aborted, as it would be."""
    conn = cursor._conn
    with conn.lock:
        conn.wait(_at_once_gen(cursor, statements, commit))


async def execute_at_once_async(
    cursor: psycopg.AsyncCursor, statements, *, commit: bool = False
) -> None:
    """``execute_at_once`` on an async cursor."""
    conn = cursor._conn
    async with conn.lock:
        await conn.wait(_at_once_gen(cursor, statements, commit))


def _at_once_gen(cursor, statements, commit: bool):
    conn = cursor._conn
    pgconn = cursor._pgconn
    if conn._pipeline is not None or pgconn.pipeline_status != _PIPELINE_OFF:
        raise e.ProgrammingError("execute_at_once cannot run inside a pipeline")
    if cursor.closed:
        raise e.InterfaceError("the cursor is closed")
    conn._check_connection_ok()
    cursor._reset()
    begin = not conn._autocommit and pgconn.transaction_status == _IDLE
    yield from _round_trip_gen(cursor, _rows(cursor, statements), begin=begin, commit=commit)
    yield from conn._prepared.maintain_gen(conn)


def _rows(cursor, statements):
    """Each row of ``statements`` as ``_round_trip_gen`` queues it, dumped when the row
    before it has been queued (as ``Cursor.executemany`` dumps them: one query object per
    statement, and the prepared-statement cache asked once the row before is in it)."""
    prepared = cursor._conn._prepared
    for query, rows in statements:
        _ready_transformer(cursor, query)
        pgq = None
        for params in rows:
            if pgq is None:
                pgq = cursor._convert_query(query, params)
            else:
                pgq.dump(params)
            prep, name = prepared.get(pgq, True)
            yield query, pgq, prep, name, cursor.format
        cursor._last_query = query


def _ready_transformer(cursor, query) -> None:
    """As psycopg readies ``cursor`` for ``query``: a new Transformer (its adaptation context,
    with the dumpers and loaders it makes for the types it meets) unless ``query`` is the one
    the cursor ran last, or the cursor keeps its Transformer (``KeptCursor``) and its last
    statement was sent (one whose parameters failed to convert leaves a new one)."""
    last = cursor._last_query
    if last and last is query:
        return
    cursor._last_query = None  # set again once the statement is sent
    if not (last and cursor._keeps_transformer):
        cursor._tx = adapt.Transformer(cursor)


def _round_trip_gen(cursor, queued, *, begin: bool, commit: bool = False):
    """Send ``BEGIN`` (if ``begin``), the ``queued`` statements ``(query, pgq, prep, name,
    format)``, ``COMMIT`` (if ``commit``) and one Sync in libpq's pipeline mode, which writes
    them in one send; read every answer; keep psycopg's prepared-statement cache as its own
    pipeline keeps it; set the last statement's result on ``cursor`` or raise the first
    error."""
    conn = cursor._conn
    pgconn = cursor._pgconn
    prepared = conn._prepared
    sent = []  # (pgq, prep, name, cache key) per statement sent
    answers = []  # (parsed, results) per statement sent
    began = committed = None
    unsent: Exception | None = None  # a row psycopg could not convert
    pgconn.enter_pipeline_mode()
    try:
        try:
            if begin:
                pgconn.send_query_params(conn._get_tx_start_command(), None, result_format=_TEXT)
            for _query, pgq, prep, name, fmt in queued:
                if prep is Prepare.SHOULD:
                    pgconn.send_prepare(name, pgq.query, param_types=pgq.types)
                if prep is Prepare.NO:
                    pgconn.send_query_params(
                        pgq.query,
                        pgq.params,
                        param_formats=pgq.formats,
                        param_types=pgq.types,
                        result_format=fmt,
                    )
                else:
                    pgconn.send_query_prepared(
                        name, pgq.params, param_formats=pgq.formats, result_format=fmt
                    )
                # Cached when queued, as psycopg's pipeline does: the same statement queued
                # again in this trip is bound to this one, not prepared twice.
                sent.append((pgq, prep, name, prepared.maybe_add_to_cache(pgq, prep, name)))
            if commit:
                pgconn.send_query_params(b"COMMIT", None, result_format=_TEXT)
        except Exception as error:  # a row ``_rows`` could not convert or dump
            if pgconn.status == _BAD:
                raise
            # What was queued before it goes with the Sync and is read back (as psycopg's
            # pipeline does on leaving its block with an error); in a transaction it stays
            # uncommitted, and the caller rolls it back.
            unsent = error
        pgconn.pipeline_sync()  # queues the Sync and writes everything queued
        yield from send(pgconn)  # what the socket did not take at once, if anything
        if begin:
            began = yield from fetch_many(pgconn)
        for _pgq, prep, _name, _key in sent:
            parsed = (yield from fetch_many(pgconn)) if prep is Prepare.SHOULD else None
            answers.append((parsed, (yield from fetch_many(pgconn))))
        if commit and unsent is None:
            committed = yield from fetch_many(pgconn)
        yield from fetch_many(pgconn)  # the Sync's answer: the transaction's status
    finally:
        _leave_pipeline_mode(pgconn)

    for (pgq, prep, name, key), (parsed, results) in zip(sent, answers, strict=True):
        if parsed is not None and not _ok(parsed):
            # Not prepared, so not cached (psycopg's own execute raises before it caches).
            if prepared._names.get(prepared.key(pgq)) == name:
                del prepared._names[prepared.key(pgq)]
        elif key is not None:
            prepared.validate(key, prep, name, results)
    if began is not None:
        _check_command(pgconn, began, "BEGIN")
    for parsed, results in answers:
        if parsed is not None:
            _check_command(pgconn, parsed, "PREPARE")
        if results and results[0].status == _FATAL_ERROR:
            cursor._check_results(results)
    if unsent is not None:
        raise unsent
    if committed is not None:
        _check_command(pgconn, committed, "COMMIT")
    if answers:
        cursor._check_results(answers[-1][1])
        cursor._set_results(answers[-1][1])


def _ok(results: list) -> bool:
    return bool(results) and results[0].status == _COMMAND_OK


def _leave_pipeline_mode(pgconn: Any) -> None:
    if pgconn.status == _BAD:
        return
    try:
        pgconn.exit_pipeline_mode()
    except e.OperationalError:
        # Answers left unread (the wait was interrupted): what the connection is in the
        # middle of is unknown, so it is closed (the server rolls its transaction back) and
        # reported broken, never reused.
        pgconn.finish()


def _check_command(pgconn: Any, results: list, command: str) -> None:
    if results and results[0].status == _COMMAND_OK:
        return
    if results and results[0].status == _FATAL_ERROR:
        raise e.error_from_result(results[0], encoding=pgconn._encoding)
    status = pq.ExecStatus(results[0].status).name if results else "no result"
    raise e.InterfaceError(f"unexpected result {status} from {command}")


class Cursor(_BeginWithFirstStatement, psycopg.Cursor):
    """psycopg's cursor, with ``BEGIN`` written with a transaction's first statement."""

    __slots__ = ()
    _keeps_transformer = False


class KeptCursor(Cursor):
    """``Cursor`` for one that is kept with its connection and runs the same few statements
    over and over (``store.batch``'s): it keeps its Transformer from one statement to the next
    once a statement has run with it, where psycopg makes a new one (and with it each dumper
    and loader again) for every statement that is not the one before. A Transformer keeps one
    dumper per Python type and format and one loader per type oid and format, whatever the
    statement (psycopg's ``executemany`` shares one across its rows the same way), so the
    values sent and the rows read are the same. A statement whose parameters psycopg could not
    convert leaves the next one a new Transformer. What a loader reads from the connection when
    it is made (the session's ``TimeZone`` for ``timestamptz``) it then keeps for the
    connection's life: only for connections whose session settings nobody changes (medloop
    sends no ``SET``)."""

    __slots__ = ("_kept_queries",)
    _keeps_transformer = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # query text -> [the PostgresQuery converted for it, the ``_results`` list of the
        # execution that last used it] (``_convert_query``)
        self._kept_queries: dict[str, list] = {}

    def _convert_query(self, query, params=None):
        """``BaseCursor._convert_query``, keeping one ``PostgresQuery`` per statement text: a
        statement run again with the same Transformer only has its new parameters dumped, as
        psycopg's ``executemany`` dumps each row after the first. Its parameters go to the
        same dumpers and its text is the same ``_query2pg`` conversion (psycopg caches that
        too, but encodes and hashes the text each time). A new one is converted (psycopg's
        way) for a new Transformer, for a text or parameters that are not a ``str`` and a
        ``dict``, and for a statement already used in the same execution (``_results`` is
        a new list at each ``_reset``): one round trip's statements keep their own."""
        tx = self._tx
        if type(query) is str and type(params) is dict:
            kept = self._kept_queries.get(query)
            if kept is not None:
                pgq = kept[0]
                if pgq._tx is tx and kept[1] is not self._results:
                    # ``_KeptQuery.dump``'s work inline for a query of two placeholders or
                    # more (a call saved a statement); ``dump`` for anything else, and for a
                    # missing parameter (psycopg's error).
                    values = pgq._values
                    try:
                        found = values(params) if values is not None else None
                    except KeyError:
                        found = None
                    if found is None:
                        pgq.dump(params)
                    else:
                        pgq.params = tx.dump_sequence(found, pgq._want_formats)
                        types = tx.types or ()
                        # The types the last time kept when they are the same: the prepared-
                        # statement cache's key, (query, types), then finds its entry's types
                        # by identity, not by comparing each oid (three look-ups a statement).
                        if types != pgq.types:
                            pgq.types = types
                        pgq.formats = tx.formats
                    kept[1] = self._results
                    return pgq
            pgq = _KeptQuery(tx)
            pgq.convert(query, params)
            if len(self._kept_queries) < _KEPT_QUERIES or kept is not None:
                self._kept_queries[query] = [pgq, self._results]
            return pgq
        pgq = self._query_cls(tx)
        pgq.convert(query, params)
        return pgq

    def _start_query(self, query=None):
        """``BaseCursor._start_query`` (psycopg's ``execute`` of a statement inside a
        transaction), with the Transformer readied by ``_ready_transformer``."""
        if self.closed:
            raise e.InterfaceError("the cursor is closed")
        self._reset()
        _ready_transformer(self, query)
        yield from self._conn._start_query()


_KEPT_QUERIES = 256  # statement texts a kept cursor keeps a converted query for


class _KeptQuery(PostgresQuery):
    """``PostgresQuery`` whose ``dump`` of a ``dict`` for named placeholders takes the values
    in the placeholders' order without ``validate_and_reorder_params``' checks of the kinds
    of placeholders and parameters (named ones and a mapping: they hold); anything else, and
    a missing parameter (psycopg's ``ProgrammingError``), goes psycopg's way. The values of
    two placeholders or more are taken by an ``operator.itemgetter`` of their names made at
    conversion (one C call, where a ``list`` of a ``map`` of the dict's ``__getitem__`` calls
    it once a name); ``Transformer.dump_sequence`` reads the tuple it gives as it reads a
    list."""

    __slots__ = ("_values",)

    def convert(self, query, vars):
        self._values = None  # the first dump (in ``convert``) takes the values by ``map``
        PostgresQuery.convert(self, query, vars)
        order = self._order
        if order and len(order) > 1:
            self._values = itemgetter(*order)

    def dump(self, vars):
        order = self._order
        if order and type(vars) is dict:
            values = self._values
            try:
                params = values(vars) if values is not None else list(map(vars.__getitem__, order))
            except KeyError:
                return PostgresQuery.dump(self, vars)
            tx = self._tx
            self.params = tx.dump_sequence(params, self._want_formats)
            self.types = tx.types or ()
            self.formats = tx.formats
            return None
        return PostgresQuery.dump(self, vars)


class AsyncCursor(_BeginWithFirstStatement, psycopg.AsyncCursor):
    """psycopg's async cursor, with ``BEGIN`` written with a transaction's first statement."""

    __slots__ = ()
    _keeps_transformer = False
