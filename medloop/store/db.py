"""Database engines for SQLite (the embedded default) and PostgreSQL (psycopg 3).

SQLite runs in WAL mode with foreign keys on.  pysqlite's own transaction handling is
switched off and SQLAlchemy emits ``BEGIN`` itself, so a transaction really is one; a
connection with the execution option ``write=True`` begins ``IMMEDIATE`` and so takes the
write lock up front instead of failing half-way when another writer holds it.

Writers of one engine also queue on an in-process lock before ``BEGIN IMMEDIATE`` and leave it
once their ``COMMIT`` or ``ROLLBACK`` is done: SQLite's own busy handler waits by sleeping in
growing steps (up to 100 ms), which under many concurrent writers (every audited read is one)
turns a queue of short transactions into a long tail. Other processes still meet the busy
timeout.
"""

from __future__ import annotations

import functools
import select
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from medloop.store import batch, postgres, wal
from medloop.store.transaction import WriteOnReadConnection

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_PAGE_SIZE = 16_384
POSTGRES_POOL_SIZE = 20
POSTGRES_MAX_OVERFLOW = 20


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        writers = threading.Lock()
        engine = create_engine(
            url,
            connect_args={
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                "factory": _queued_writer_connection(writers),
            },
        )
        event.listen(engine, "connect", functools.partial(_sqlite_on_connect, engine))
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    # A server runs many requests at once (uvicorn's thread pool): keep as many connections
    # pooled, rather than open and close overflow connections per request. No pre-ping round
    # trip per checkout: ``_probe_idle_connection`` looks at the socket instead. A
    # transaction's BEGIN goes to the server with its first statement, in one write
    # (``postgres.Cursor``).
    engine = create_engine(
        url,
        pool_size=POSTGRES_POOL_SIZE,
        max_overflow=POSTGRES_MAX_OVERFLOW,
        connect_args={"cursor_factory": postgres.Cursor},
    )
    event.listen(engine.pool, "checkout", _probe_idle_connection)
    batch.install(engine)  # a command's queued appends go out before any other statement
    return engine


_POLLER = "medloop_idle_poller"


def _probe_idle_connection(dbapi_connection, _record, _proxy) -> None:
    """Refuse a pooled PostgreSQL connection that is already dead, without a round trip.

    A connection in the pool is idle: the server has nothing to say to it. When its backend
    is terminated (``pg_terminate_backend``, a server restart, an idle-session timeout) the
    server sends a FATAL error and closes the socket, so the socket turns readable. A
    non-blocking ``poll`` of it (a system call, no network traffic) tells a dead connection
    from a live one before a request uses it; ``DisconnectionError`` makes the pool drop it
    and connect afresh (SQLAlchemy's "pessimistic disconnect handling" without the
    ``SELECT 1`` of ``pool_pre_ping``, which would add a round trip to every request).
    A backend that dies after this check fails the request's first statement instead:
    ``is_disconnect`` errors then answer 503 (``medloop.api.problems``) and safe reads are
    retried once (``retry_read``).

    The ``poll`` object is made once per connection (kept in the pool record's info, which the
    pool clears when it connects afresh; made again for another connection).
    """
    if dbapi_connection.closed or getattr(dbapi_connection, "broken", False):
        raise exc.DisconnectionError("the pooled connection is closed")
    info = _record.info
    found = info.get(_POLLER)
    if found is None or found[0] is not dbapi_connection:
        try:
            fd = dbapi_connection.fileno()
        except Exception as error:  # psycopg: the connection has no socket any more
            raise exc.DisconnectionError(f"the pooled connection has no socket: {error}") from error
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        found = info[_POLLER] = (dbapi_connection, poller)
    if found[1].poll(0):
        # Readable while idle: the server closed it (or sent something nobody asked for,
        # a notice or a parameter change; a fresh connection costs less than finding out).
        raise exc.DisconnectionError("the server closed the pooled connection")


def is_disconnect(error: BaseException) -> bool:
    """Did ``error`` come from a database connection that is gone (and was dropped)?"""
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


def database_unavailable(error: BaseException) -> bool:
    """Is ``error`` the database being unreachable, busy or gone for a moment (try again
    later: HTTP 503) rather than a fault in the request or the code? A dropped or refused
    connection, a pool with no connection to spare; on PostgreSQL the SQLSTATE classes of a
    connection failure (08), a rolled-back transaction (40: serialization failure, deadlock),
    insufficient resources (53), a lock not available (55), an operator intervention (57: an
    administrator's shutdown or termination, a cancelled statement) or a system error (58);
    on SQLite a database file that is locked, busy, cannot be opened or read, or is full.
    Anything else (a missing table, a constraint) is not the database being unavailable."""
    if isinstance(error, (exc.TimeoutError, exc.DisconnectionError)) or is_disconnect(error):
        return True
    if not isinstance(error, (exc.OperationalError, exc.InterfaceError)):
        return False
    original = error.orig
    if isinstance(original, sqlite3.Error):
        message = str(original).lower()
        return any(m in message for m in _SQLITE_UNAVAILABLE)
    sqlstate = getattr(original, "sqlstate", None)
    return sqlstate is None or sqlstate[:2] in _POSTGRES_UNAVAILABLE


_SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o", "is full")
_POSTGRES_UNAVAILABLE = frozenset({"08", "40", "53", "55", "57", "58"})


def retry_read(read: Callable[[], T]) -> T:
    """``read()``, once more on a fresh connection when its connection died under it.

    Only for work that is safe to repeat (it changes nothing the caller would see twice, like
    an HTTP GET) and only when the connection broke at a statement: the transaction never
    reached its COMMIT, so the server rolled it back and nothing of it stayed (an audited
    read's audit record included: the retry appends the one record of the read). A
    connection lost at ``COMMIT`` (``statement`` is ``None``) is not retried: that COMMIT may
    have happened.
    """
    try:
        return read()
    except exc.DBAPIError as error:
        if not is_disconnect(error) or error.statement is None:
            raise
    return read()


def _queued_writer_connection(writers: threading.Lock) -> type[sqlite3.Connection]:
    class QueuedWriterConnection(sqlite3.Connection):
        """A pysqlite connection whose write transactions hold ``writers`` from before their
        ``BEGIN IMMEDIATE`` until their ``COMMIT`` or ``ROLLBACK`` has been done."""

        holds_write_lock = False

        def begin_write(self) -> None:
            writers.acquire()
            self.holds_write_lock = True
            try:
                self.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:  # locked: as SQLAlchemy reports it
                self._leave()
                raise exc.OperationalError("BEGIN IMMEDIATE", None, error) from error
            except BaseException:
                self._leave()
                raise

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self._leave()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self._leave()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self._leave()

        def _leave(self) -> None:
            if self.holds_write_lock:
                self.holds_write_lock = False
                writers.release()

    return QueuedWriterConnection


def _sqlite_on_connect(engine: Engine, dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # Only takes effect while the file is still empty; catalogue rows are large, and 16 KiB
    # pages cut the page splits of a full import.
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    pages = wal.autocheckpoint_pages(engine)
    if pages != wal.DEFAULT_PAGES:  # a WalCheckpointer runs: commits leave the log to it
        cursor.execute(f"PRAGMA wal_autocheckpoint={pages}")
    cursor.close()


def _sqlite_on_begin(conn) -> None:
    if conn.get_execution_options().get("write", False):
        conn.connection.dbapi_connection.begin_write()
    else:
        conn.exec_driver_sql("BEGIN")


class WriteTransactionRequired(RuntimeError):
    """A store write was attempted on a SQLite connection that did not begin IMMEDIATE."""


def require_write_transaction(conn: Connection, purpose: str) -> None:
    """On SQLite, insist that ``conn`` began ``IMMEDIATE`` (``write=True``).

    A deferred transaction that reads and then writes fails with "database is locked" as
    soon as another writer commits in between; better to say so the first time.
    """
    if conn.dialect.name == "sqlite" and not conn.get_execution_options().get("write", False):
        raise WriteTransactionRequired(
            f"{purpose} needs a write transaction on SQLite: "
            "use engine.execution_options(write=True).begin()"
        )


def writer(engine: Engine) -> Engine:
    """``engine.execution_options(write=True)``, made once per engine: every command and every
    audited read begins a write transaction, and deriving the option engine each time costs
    more than the transaction's own bookkeeping."""
    found = getattr(engine, "_medloop_writer", None)
    if found is None:
        found = engine.execution_options(write=True)
        engine._medloop_writer = found  # type: ignore[attr-defined]
    return found


def reader(engine: Engine) -> Engine:
    """The engine for connections that only read, made once per engine.

    On PostgreSQL its statements run in autocommit mode: no ``BEGIN``, and no ``ROLLBACK``
    when the connection closes. Under READ COMMITTED (the default) every statement takes its
    own snapshot inside a transaction too, so several reads see exactly what they would have
    seen in one; what autocommit saves is two round trips, and above all the ``ROLLBACK``,
    after which psycopg drops every prepared statement of the connection (``DEALLOCATE ALL``)
    and later statements are parsed and planned again. On SQLite it is ``engine`` itself: a
    deferred transaction there keeps one snapshot for all its reads, and costs nothing.
    """
    found = getattr(engine, "_medloop_reader", None)
    if found is None:
        if engine.dialect.name == "postgresql":
            found = engine.execution_options(isolation_level="AUTOCOMMIT")
            # In autocommit a write would stay: refuse one before it is sent.
            event.listen(found, "before_cursor_execute", _refuse_writes)
        else:
            found = engine
        engine._medloop_reader = found  # type: ignore[attr-defined]
    return found


def _refuse_writes(conn, cursor, statement, parameters, context, executemany) -> None:
    if not statement.lstrip()[:6].upper().startswith(("SELECT", "WITH", "SHOW")) or (
        context is not None and (context.isinsert or context.isupdate or context.isdelete)
    ):
        raise WriteOnReadConnection(
            f"a read-only connection (store.db.reader) was asked to run: {statement[:80]}"
        )
