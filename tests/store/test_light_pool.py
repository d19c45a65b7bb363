"""The light transaction's own checkout from and return to the pool (``store.light.checkout``,
``store.light.checkin``): the same pool state, probe, reset, invalidation, overflow, timeout and
dispose as SQLAlchemy's ``engine.raw_connection()`` / ``_close_special``, and SQLAlchemy's own
code wherever its preconditions do not hold. The private parts of SQLAlchemy 2.1.9 it relies on
are named in ``test_the_pool_internals_the_lean_path_relies_on_exist``."""

from __future__ import annotations

import gc
import inspect
import logging
import select
import threading
import time
import weakref

import pytest
import sqlalchemy
from sqlalchemy import create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import QueuePool
from sqlalchemy.pool import base as pool_base
from sqlalchemy.util import queue as sqla_queue

from medloop.store import batch, db, light, postgres
from medloop.store.db import _probe_idle_connection, writer
from tests.store.helpers import scratch_engine

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(postgres_url):
    engine = scratch_engine(postgres_url)
    yield engine
    engine.dispose()


def small_engine(url, **pool):
    """A PostgreSQL engine as ``db.make_engine`` makes one (the probe on checkout), with a
    small pool."""
    engine = create_engine(url, connect_args={"cursor_factory": postgres.Cursor}, **pool)
    event.listen(engine.pool, "checkout", _probe_idle_connection)
    return engine


def lean(fairy) -> bool:
    return fairy._finalizer is light._NO_FINALIZER


def state(pool) -> tuple[int, int, int]:
    return pool.checkedin(), pool.checkedout(), pool.overflow()


def pid_of(conn) -> int:
    return conn.connection.dbapi_connection.info.backend_pid


def terminate(url, pid: int) -> None:
    admin = create_engine(url)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid})
    finally:
        admin.dispose()


def test_the_pool_internals_the_lean_path_relies_on_exist(pg):
    assert sqlalchemy.__version__ == "2.1.9"  # pinned (pyproject.toml)
    pool = pg.pool
    assert type(pool) is QueuePool and isinstance(pool._pool, sqla_queue.Queue)
    queue = pool._pool
    assert isinstance(queue.mutex, type(threading.RLock()))
    assert queue.not_empty._waiters is not None and queue.not_full._waiters is not None
    assert isinstance(queue.queue, __import__("collections").deque)
    assert queue.use_lifo is False and queue.maxsize == 20
    assert pool._pre_ping is False and pool._dialect.is_async is False
    assert pool._reset_on_return is pool_base.reset_rollback
    # Our probe is the checkout event's one listener, as registered.
    assert list(pool.dispatch.checkout.listeners) == [_probe_idle_connection]
    assert not pool.dispatch.checkout.parent_listeners
    for name in ("reset", "checkin"):
        listeners = getattr(pool.dispatch, name)
        assert not listeners.listeners and not listeners.parent_listeners
    assert set(pool_base._ConnectionFairy.__slots__) >= {
        "dbapi_connection",
        "_connection_record",
        "_finalizer",
        "_echo",
        "_pool",
        "_counter",
    }
    assert set(pool_base._ConnectionRecord.__slots__) >= {
        "fairy_ref",
        "finalize_callback",
        "fresh",
        "__dict__",
        "__weakref__",
    }
    parameters = inspect.signature(pool_base._finalize_fairy).parameters
    assert list(parameters)[:4] == ["dbapi_connection", "connection_record", "pool", "echo"]
    assert "is_gc_cleanup" in parameters
    assert "fairy" in inspect.signature(pool_base._ConnectionFairy._checkout).parameters
    assert (
        "_fairy_was_created"
        in inspect.signature(pool_base._ConnectionRecord._checkin_failed).parameters
    )
    for name in ("get_connection", "checkin", "invalidate"):
        assert callable(getattr(pool_base._ConnectionRecord, name))
    assert callable(pool._do_return_conn) and callable(pool._invalidate)
    # What ``checkout`` skips when debug logging is off is the pool's ``_should_log_debug``.
    assert "isEnabledFor(logging.DEBUG)" in inspect.getsource(pool._should_log_debug)


def test_the_lean_path_gives_the_pools_state_the_full_path_gives(pg, postgres_url):
    full = scratch_engine(postgres_url)
    try:
        for engine in (pg, full):  # warm: one connection in each pool
            with writer(engine).begin():
                pass
        steps = []
        for engine, take, give in (
            (pg, light.checkout, light.checkin),
            (full, lambda e: e.raw_connection(), lambda f: f._close_special(True)),
        ):
            taken = [take(engine) for _ in range(3)]
            seen = [state(engine.pool)]
            give(taken.pop())
            seen.append(state(engine.pool))
            for fairy in taken:
                give(fairy)
            seen.append(state(engine.pool))
            steps.append(seen)
            assert all(fairy.dbapi_connection is None for fairy in taken)
        assert steps[0] == steps[1] == [(0, 3, -17), (1, 2, -17), (3, 0, -17)]
        with light.begin(writer(pg)) as conn:
            assert lean(conn._fairy)  # medloop's engine takes the lean path
            assert conn._fairy._connection_record.fairy_ref() is conn._fairy
            assert state(pg.pool) == (2, 1, -17)
            assert batch.first_row(conn, sqlalchemy.select(1), {})[0] == 1
        assert state(pg.pool) == (3, 0, -17)
    finally:
        full.dispose()


def test_the_probe_replaces_a_dead_idle_connection_terminated_between_requests(postgres_url):
    engine = small_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        with light.begin(engine) as conn:
            first = pid_of(conn)
        terminate(postgres_url, first)
        deadline = time.monotonic() + 5
        fairy_record = engine.pool._pool.queue[0]
        poller = select.poll()
        poller.register(fairy_record.dbapi_connection.fileno(), select.POLLIN)
        while not poller.poll(50) and time.monotonic() < deadline:
            pass
        with light.begin(engine) as conn:
            assert pid_of(conn) != first  # replaced before use, no error
            assert lean(conn._fairy)
            assert batch.first_row(conn, sqlalchemy.select(1), {})[0] == 1
        assert state(engine.pool) == (1, 0, 0)
    finally:
        engine.dispose()


def test_a_probe_that_fails_otherwise_returns_the_connection_and_raises(postgres_url):
    engine = small_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        with light.begin(engine):
            pass
        driver = engine.pool._pool.queue[0].dbapi_connection
        driver.close()  # the probe refuses it: replaced
        with light.begin(engine) as conn:
            assert conn.connection.dbapi_connection is not driver
        assert state(engine.pool) == (1, 0, 0)
    finally:
        engine.dispose()


def test_an_exhausted_pool_waits_times_out_and_is_woken_by_a_lean_return(postgres_url):
    engine = small_engine(postgres_url, pool_size=1, max_overflow=0, pool_timeout=0.3)
    try:
        with light.begin(engine):
            pass
        with light.begin(engine) as held:
            assert lean(held._fairy)
            with pytest.raises(sa_exc.TimeoutError):
                light.begin(engine)
        assert state(engine.pool) == (1, 0, 0)
        engine.pool._timeout = 10
        got = []
        holder = light.begin(engine)
        waiter = threading.Thread(target=lambda: got.append(light.begin(engine)))
        waiter.start()
        time.sleep(0.3)
        assert not got  # waiting on the pool's queue
        holder.__exit__(None, None, None)  # the lean return wakes it
        waiter.join(5)
        assert got and got[0]._fairy.dbapi_connection is not None
        got[0].__exit__(None, None, None)
        assert state(engine.pool) == (1, 0, 0)
    finally:
        engine.dispose()


def test_an_overflow_connection_is_closed_on_return(postgres_url):
    engine = small_engine(postgres_url, pool_size=1, max_overflow=1)
    try:
        with light.begin(engine):
            pass
        first, second = light.begin(engine), light.begin(engine)
        assert state(engine.pool) == (0, 2, 1)
        overflow_driver = second._fairy.dbapi_connection
        first.__exit__(None, None, None)
        second.__exit__(None, None, None)  # the queue is full: closed, overflow down
        assert state(engine.pool) == (1, 0, 0)
        assert overflow_driver.closed
    finally:
        engine.dispose()


def test_dispose_while_checked_out_returns_it_to_the_old_pool(pg):
    with light.begin(writer(pg)):
        pass
    old = pg.pool
    with light.begin(writer(pg)) as conn:
        assert lean(conn._fairy)
        pg.dispose()
        assert pg.pool is not old and state(pg.pool) == (0, 0, -20)
        assert batch.first_row(conn, sqlalchemy.select(1), {})[0] == 1
    assert state(pg.pool) == (0, 0, -20)  # as ``_close_special`` returns one: to its own pool
    assert old.checkedin() == 1
    with light.begin(writer(pg)) as conn:
        assert batch.first_row(conn, sqlalchemy.select(1), {})[0] == 1
    assert state(pg.pool) == (1, 0, -19)


def test_pool_invalidation_recycles_older_connections_at_the_lean_checkout(pg):
    with light.begin(writer(pg)) as conn:
        first = pid_of(conn)
    time.sleep(0.02)
    fairy = pg.raw_connection()
    pg.pool._invalidate(fairy)  # (what db and replicas do on a lost connection)
    assert fairy.dbapi_connection is None
    time.sleep(0.02)
    with light.begin(writer(pg)) as conn:
        assert lean(conn._fairy)
        assert pid_of(conn) != first
    assert pg.pool.checkedout() == 0


def test_an_invalidated_lean_connection_goes_back_as_the_pools_own(pg):
    fairy = light.checkout(writer(pg))
    assert lean(fairy)
    record = fairy._connection_record
    pg.pool._invalidate(fairy, RuntimeError("lost"))
    assert fairy.dbapi_connection is None and record.dbapi_connection is None
    assert record.fairy_ref is None and pg.pool.checkedout() == 0


def test_an_unfinished_transaction_is_rolled_back_on_return(pg):
    fairy = light.checkout(writer(pg))
    assert lean(fairy)
    fairy.dbapi_connection.execute(
        "INSERT INTO batch_scratch (id, n) VALUES ('z', 1)"
    )  # psycopg's transaction open
    fairy.close()  # the pool's reset rolls it back
    assert pg.pool.checkedout() == 0
    with pg.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM batch_scratch")).scalar_one() == 0


def test_a_lean_connection_dropped_without_return_is_reset_and_returned_by_the_gc(pg):
    fairy = light.checkout(writer(pg))
    assert lean(fairy)
    fairy.dbapi_connection.execute("INSERT INTO batch_scratch (id, n) VALUES ('z', 1)")
    record = weakref.ref(fairy._connection_record)
    del fairy
    gc.collect()
    assert pg.pool.checkedout() == 0 and record().fairy_ref is None
    with light.begin(writer(pg)) as conn:
        assert conn.connection.dbapi_connection.info.transaction_status.name == "IDLE"
    with pg.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM batch_scratch")).scalar_one() == 0


def test_other_listeners_or_debug_logging_take_the_pools_own_path(pg):
    with light.begin(writer(pg)) as conn:
        assert lean(conn._fairy)
    checkouts = []
    event.listen(pg.pool, "checkout", lambda *a: checkouts.append(1))
    with light.begin(writer(pg)) as conn:
        assert not lean(conn._fairy)
    assert checkouts == [1]


@pytest.mark.parametrize("name", ["reset", "checkin"])
def test_a_reset_or_checkin_listener_gets_the_return_from_the_pool(pg, name):
    heard = []
    with light.begin(writer(pg)) as conn:
        event.listen(pg.pool, name, lambda *a: heard.append(a))
        assert lean(conn._fairy)  # checked out lean, returned through the pool
    assert len(heard) == 1 and pg.pool.checkedout() == 0
    if name == "reset":
        assert heard[0][2].transaction_was_reset


def test_debug_logging_of_the_pool_takes_the_pools_own_path(pg, caplog):
    with caplog.at_level(logging.DEBUG, logger="sqlalchemy.pool"):
        with light.begin(writer(pg)) as conn:
            assert not lean(conn._fairy)
    assert any("checked out from pool" in r.getMessage() for r in caplog.records)


def test_the_probe_keeps_one_poll_object_per_connection_and_makes_a_new_one_for_a_new(pg):
    with light.begin(writer(pg)) as conn:
        record = conn._fairy._connection_record
        driver = conn.connection.dbapi_connection
        kept = record.info[db._POLLER]
        assert kept[0] is driver
    with pytest.raises(sa_exc.PendingRollbackError):  # as ``Connection`` ends one
        with light.begin(writer(pg)) as conn:
            assert conn._fairy._connection_record is record
            assert record.info[db._POLLER] is kept  # the same poll object, not made again
            conn.invalidate()  # the record connects afresh at its next checkout, info cleared
    with light.begin(writer(pg)) as conn:
        assert conn._fairy._connection_record is record
        assert record.info[db._POLLER][0] is conn.connection.dbapi_connection is not driver


def test_a_connection_the_pool_made_is_returned_lean_with_its_finalizer_detached(postgres_url):
    engine = small_engine(postgres_url, pool_size=2, max_overflow=0)
    try:
        with light.begin(engine) as conn:  # the queue is empty: the pool's own checkout
            fairy = conn._fairy
            assert not lean(fairy) and fairy._finalizer.alive
        assert not fairy._finalizer.alive and fairy.dbapi_connection is None
        assert state(engine.pool) == (1, 0, -1)
        with light.begin(engine) as conn:
            assert lean(conn._fairy)
        assert state(engine.pool) == (1, 0, -1)
    finally:
        engine.dispose()
