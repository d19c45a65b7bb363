"""The two hot write transactions (a command, ``loop.runner.run_command``; an audited read,
``store.access.audited``) on PostgreSQL without SQLAlchemy's ``Connection`` unless they need it.

Why (issue #20, bench/RESULTS.md, sessions 10 and 11): with ``engine.begin()`` SQLAlchemy's own
handling of one write transaction (the ``Connection`` and its joined event dispatcher, the
pool's checkout, begin, commit, close, the pool's reset and return: ~116 Python calls, ~158 000
instructions under callgrind) was ~4 % of a prescribe's instructions and ~17 % of a list read's,
while the statements themselves mostly go to psycopg directly already (``store.batch``:
``first_row``, the queued appends, the COMMIT in the audit record's round trip). The floor
(``bench/floor.py``) has none of it.

:func:`begin` gives such a transaction a :class:`Light` connection instead:

* The pooled connection is checked out from the pool as ``engine.raw_connection()`` does it,
  and returned as ``Connection.close`` returns it: the checkout probe medloop installs
  (``db._probe_idle_connection``), the pool's reset on return and its invalidation of a lost
  connection all apply as before. :func:`checkout` and :func:`checkin` do those steps on the
  ``QueuePool``'s own objects when a connection waits in its queue and nobody but the probe
  listens to its events (session 13: ~89 000 → ~48 000 instructions an empty transaction);
  anything else goes through SQLAlchemy's own code.
* Nothing is sent to begin: psycopg begins the transaction with its first statement (as with
  SQLAlchemy, whose ``begin`` on psycopg sends nothing either; ``store.postgres.Cursor`` writes
  the BEGIN with that statement). At the end psycopg's ``commit`` (which sends nothing when the
  COMMIT already went with the audit record: then it is not asked) or, after an error, its
  ``rollback``; then the pooled connection goes back to the pool (its reset, with its ``reset``
  event; the rollback skipped when psycopg's connection is in no transaction, as
  ``Connection.close`` skips it after ending its own). Failures there are reported and handled
  as SQLAlchemy's ``Connection`` reports and handles them (``DBAPIError`` with no statement; a
  lost connection invalidated, the pool's older connections recycled).
* What the transaction's code asks of its connection is served as a ``Connection`` serves it:
  ``dialect``, ``engine``, ``connection`` (the pooled connection), ``info``,
  ``in_transaction()``, ``get_transaction()`` (a token that lives as long as the transaction:
  ``store.transaction``'s memo is kept against it), ``get_execution_options()``,
  ``invalidate()``. Anything else (``execute`` of a query the state cache did not answer,
  ``scalar``, ``begin_nested`` …) goes to a real SQLAlchemy ``Connection`` built then, once, on
  the same pooled connection, begun (a no-op on psycopg: it sees the transaction psycopg has
  open) and sharing the transaction's memo (so ``batch``'s hook that sends the queued appends
  before any SQLAlchemy statement finds them); the transaction then ends through it, exactly as
  ``engine.begin()`` ends one.

Measured (bench/RESULTS.md, session 12, h12-sqla): an empty write transaction 158 000 → 84 000
instructions (what is left is the pool's own checkout, probe and return); a prescribe through
its route −1.3 %, a list read's audited transaction −7.3 %.

SQLite keeps ``engine.begin()`` (its transactions are in-process and cheap, and its
``BEGIN IMMEDIATE`` and writers' lock hang on SQLAlchemy's begin event), and so does an engine
that logs its SQL (``echo``) or whose connect, begin, commit or rollback events someone listens
to (:func:`_observed`: they are dispatched as before).
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from psycopg import pq
from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import QueuePool
from sqlalchemy.pool.base import _ConnectionFairy, _finalize_fairy, reset_commit
from sqlalchemy.util import safe_reraise

from medloop.store.db import _probe_idle_connection
from medloop.store.transaction import _MEMO, PlainPostgresTransaction, transaction_memo


def begin(engine: Engine) -> Any:
    """A context manager giving a connection in a new transaction on ``engine`` (committed when
    the block ends normally, rolled back when it raises), as ``engine.begin()`` does: a
    :class:`Light` one on PostgreSQL, ``engine.begin()``'s own otherwise."""
    if engine.dialect.name != "postgresql" or engine._should_log_info():
        return engine.begin()
    if (engine._has_events or Connection._has_events) and _observed(engine):
        return engine.begin()
    return Light(engine)


def _observed(engine: Engine) -> bool:
    """Does anyone listen to the events a ``Connection`` dispatches around a transaction
    (its connect, begin, commit, rollback)? Then the transaction takes ``engine.begin()``, so
    that they are dispatched as ever. medloop's engines have no such listeners
    (``store.batch`` hooks the dialect, ``db`` the pool); tests and tools may add some.
    (:func:`begin` asks only when the first test here is true.)"""
    if not (engine._has_events or Connection._has_events):
        return False
    dispatch = engine.dispatch
    return bool(
        Connection._has_events
        or dispatch.engine_connect
        or dispatch.begin
        or dispatch.commit
        or dispatch.rollback
    )


_IDLE = pq.TransactionStatus.IDLE


class _Open:
    """What ``Light.get_transaction()`` returns while the transaction is open."""

    __slots__ = ()


class Light(PlainPostgresTransaction):
    """One transaction on a pooled PostgreSQL connection (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = dialect = engine.dialect
        try:
            self._fairy = checkout(engine)
        except dialect.loaded_dbapi.Error as error:
            Connection._handle_dbapi_exception_noconnection(error, dialect, engine)
            raise
        self._transaction: _Open | None = _Open()
        self._full: Connection | None = None
        self._root: Any = None

    # -- what ``Connection`` offers, served here ------------------------------------------------

    @property
    def connection(self) -> Any:
        """The pooled connection (``Connection.connection``)."""
        fairy = self._fairy
        if fairy.dbapi_connection is None:
            if self._transaction is None:
                raise sa_exc.ResourceClosedError("This Connection is closed")
            raise sa_exc.PendingRollbackError(
                "Can't reconnect until invalid transaction is rolled back."
            )
        return fairy

    @property
    def info(self) -> dict:
        return self.connection.info

    def in_transaction(self) -> bool:
        return self._transaction is not None

    def get_transaction(self) -> Any:
        return self._transaction

    def get_execution_options(self) -> Any:
        return self.engine._execution_options

    def invalidate(self, exception: BaseException | None = None) -> None:
        if self._full is not None:
            self._full.invalidate(exception)
        elif self._fairy.dbapi_connection is not None:
            self._fairy.invalidate(exception)

    def __getattr__(self, name: str) -> Any:
        # Only for what is not served above: a real ``Connection`` on the same transaction.
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._sqlalchemy(), name)

    def _sqlalchemy(self) -> Connection:
        full = self._full
        if full is None:
            if self._transaction is None:
                raise sa_exc.ResourceClosedError("This Connection is closed")
            fairy = self.connection  # raises as ``Connection`` would on a lost one
            full = Connection(self.engine, connection=fairy)
            root = full.begin()  # ``do_begin`` sends nothing on psycopg
            root.__enter__()
            # One memo for the transaction, whichever of the two is asked.
            full.__dict__[_MEMO] = (root, transaction_memo(self))
            self._full, self._root = full, root
        return full

    # -- the transaction's end -------------------------------------------------------------------

    def __enter__(self) -> Light:
        return self

    def __exit__(self, type_: Any, value: Any, traceback: Any) -> None:
        full = self._full
        if full is not None:
            # Ended as ``engine.begin()`` ends it: the transaction, then the connection.
            try:
                self._root.__exit__(type_, value, traceback)
            finally:
                self._transaction = None
                full.__exit__(type_, value, traceback)
            return
        fairy = self._fairy
        try:
            if type_ is None:
                # (``connection``: PendingRollbackError for one lost and invalidated under a
                # block that went on, as ``Connection``'s commit raises.)
                # (``self.connection``'s check read inline: it raises only for a lost one.)
                driver = fairy.dbapi_connection
                if driver is None:
                    driver = self.connection.dbapi_connection
                if driver.pgconn.transaction_status != _IDLE:
                    # (IDLE: the COMMIT went with the audit record; psycopg's ``commit``
                    # would find nothing to do, as it finds here.)
                    try:
                        self._end(commit=True)
                    except BaseException:
                        if fairy.dbapi_connection is not None:
                            self._end(commit=False)
                        raise
            elif fairy.dbapi_connection is not None:
                self._end(commit=False)
        finally:
            self._transaction = None
            driver = fairy.dbapi_connection
            if driver is None:
                pass  # invalidated: the pool has it back already
            elif driver.pgconn.transaction_status == _IDLE:
                # Back to the pool as ``Connection.close`` returns one whose transaction it
                # ended itself: the pool's reset (its event included) knows there is nothing
                # to roll back, and does not ask psycopg again.
                checkin(fairy)
            else:
                fairy.close()  # the pool's reset rolls back

    def _end(self, *, commit: bool) -> None:
        """psycopg's ``commit`` or ``rollback``, as ``Connection._commit_impl`` /
        ``_rollback_impl`` run and report them (``_handle_dbapi_exception`` with no
        statement)."""
        fairy = self._fairy
        dialect = self.dialect
        try:
            if commit:
                dialect.do_commit(fairy)
            else:
                dialect.do_rollback(fairy)
        except BaseException as error:
            dbapi_error = isinstance(error, dialect.loaded_dbapi.Error)
            exiting = not isinstance(error, Exception)  # SQLAlchemy's is_exit_exception
            lost = (dbapi_error and dialect.is_disconnect(error, fairy, None)) or exiting
            try:
                if not dbapi_error:
                    raise
                raise sa_exc.DBAPIError.instance(
                    None,
                    None,
                    error,
                    dialect.loaded_dbapi.Error,
                    hide_parameters=self.engine.hide_parameters,
                    connection_invalidated=lost,
                    dialect=dialect,
                ) from error
            finally:
                if lost and fairy.dbapi_connection is not None:
                    if not exiting:
                        self.engine.pool._invalidate(fairy, error)
                    if fairy.dbapi_connection is not None:
                        fairy.invalidate(error)


# -- the pool's checkout and return, lean --------------------------------------------------------
#
# ``engine.raw_connection()`` and ``fairy._close_special(transaction_reset=True)`` cost an empty
# transaction ~74 000 instructions (bench/RESULTS.md, #20, sessions 12 and 13): the queue's get
# and put through its ``Condition`` methods, ``_ConnectionRecord.checkout``, the fairy's
# ``weakref.finalize`` (made and detached), the checkout event's dispatch, ``_finalize_fairy``
# and ``_reset``. For a ``QueuePool`` with a connection waiting in it, nobody listening to its
# checkout (but ``db._probe_idle_connection``), reset or checkin events, no pre-ping and no debug
# logging, :func:`checkout` and :func:`checkin` do the same steps on the pool's own objects
# directly; anything else (an empty queue: overflow, waiting, the timeout; a probe that refuses
# the connection; a transaction to roll back; a listener) goes through SQLAlchemy's own code,
# which the fairy made here is a full member of (tests/store/test_light_pool.py).

_DEBUG = logging.DEBUG


class _NoFinalizer:
    """The fairy's ``_finalizer`` when :func:`checkout` made it: the garbage collector's net is
    the record's weak reference to the fairy instead (:func:`_lost`), so there is nothing to
    detach."""

    __slots__ = ()

    def detach(self) -> None:
        return None


_NO_FINALIZER = _NoFinalizer()
_LOST = "_medloop_lost"


def checkout(engine: Engine) -> Any:
    """``engine.raw_connection()``: a pooled connection (a ``_ConnectionFairy``), taken from
    the pool's queue here when the pool allows (below) and one is waiting in it."""
    pool = engine.pool
    # The preconditions: SQLAlchemy's own pool, no pre-ping, no listener to its checkout but
    # the probe, no debug logging (``pool._should_log_debug()``).
    if type(pool) is not QueuePool or pool._pre_ping or pool._dialect.is_async:
        return pool.connect()
    checkout = pool.dispatch.checkout
    listeners = checkout.listeners
    if (
        checkout.parent_listeners
        or (listeners and (len(listeners) != 1 or listeners[0] is not _probe_idle_connection))
        or pool.logger.isEnabledFor(_DEBUG)
    ):
        return pool.connect()
    queue = pool._pool
    with queue.mutex:
        waiting = queue.queue
        if not waiting:
            record = None
        else:
            record = waiting.pop() if queue.use_lifo else waiting.popleft()
            if queue.not_full._waiters:
                queue.not_full.notify()
    if record is None:  # none waiting: the pool's overflow, wait and timeout
        return pool.connect()
    # ``_ConnectionRecord.checkout``: connected afresh when invalidated or to be recycled.
    try:
        dbapi_connection = record.get_connection()
    except BaseException as error:
        with safe_reraise():
            record._checkin_failed(error, _fairy_was_created=False)
        raise
    fairy = _ConnectionFairy.__new__(_ConnectionFairy)
    fairy._pool = pool
    fairy._counter = 1
    fairy.dbapi_connection = dbapi_connection
    fairy._connection_record = record
    fairy._echo = False
    fairy._finalizer = _NO_FINALIZER
    lost = record.__dict__.get(_LOST)
    if lost is None:
        lost = record.__dict__[_LOST] = _lost(record, pool)
    record.fairy_ref = weakref.ref(fairy, lost)
    record.fresh = False
    if listeners:
        try:
            _probe_idle_connection(dbapi_connection, record, fairy)
        except BaseException:
            # Refused (or failed): the pool's own checkout runs the probe again and handles
            # it as ever (a dead connection invalidated and replaced, or the record returned
            # and the error raised).
            fairy._counter = 0
            return _ConnectionFairy._checkout(pool, fairy=fairy)
    return fairy


def _lost(record: Any, pool: Any) -> Any:
    """The callback of a record's weak reference to a fairy :func:`checkout` made: when that
    fairy is collected while still checked out, the pool's garbage-collection cleanup (what the
    fairy's ``weakref.finalize`` does for one the pool made: reset, then return the record)."""

    def lost(reference: Any) -> None:
        if record.fairy_ref is reference:
            _finalize_fairy(None, record, pool, False, is_gc_cleanup=True)

    return lost


def checkin(fairy: Any) -> None:
    """``fairy._close_special(transaction_reset=True)``: back to its pool, whose reset knows
    there is nothing to roll back; put back into the pool's queue here when nobody listens to
    the pool's reset or checkin and the pool would do nothing else."""
    pool = fairy._pool
    record = fairy._connection_record
    dispatch = pool.dispatch
    reset, returned = dispatch.reset, dispatch.checkin
    if (
        fairy._counter != 1
        or record is None
        or record.fairy_ref is None
        or record.finalize_callback
        or fairy._echo
        or type(pool) is not QueuePool
        or pool._reset_on_return is reset_commit
        or reset.listeners
        or reset.parent_listeners
        or returned.listeners
        or returned.parent_listeners
    ):
        fairy._close_special(transaction_reset=True)
        return
    # ``_finalize_fairy`` with the transaction reset and no reset listener: the record's
    # ``checkin``, then the fairy let go of.
    fairy._counter = 0
    finalizer = fairy._finalizer
    if finalizer is not _NO_FINALIZER:
        finalizer.detach()  # a fairy the pool made (its queue was empty at the checkout)
    fairy.dbapi_connection = None
    fairy._connection_record = None
    record.fairy_ref = None
    queue = pool._pool
    with queue.mutex:
        waiting = queue.queue
        full = 0 < queue.maxsize <= len(waiting)
        if not full:
            waiting.append(record)
            if queue.not_empty._waiters:
                queue.not_empty.notify()
    if full:  # an overflow connection: closed
        pool._do_return_conn(record)
