"""The hot transactions' light connection (``medloop.store.light``): on PostgreSQL a
transaction without SQLAlchemy's ``Connection`` unless its code asks for one, committed,
rolled back, reported and returned to the pool as ``engine.begin()``'s; on SQLite, and
wherever someone listens to a transaction's events, ``engine.begin()`` itself."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, event, func, select, text
from sqlalchemy import exc as sa_exc

from medloop.store import batch, light
from medloop.store.db import writer
from medloop.store.transaction import existing_transaction_memo, transaction_memo
from tests.store.helpers import scratch_engine, scratch_rows

_ONE = select(scratch_rows.c.n).where(scratch_rows.c.id == "a")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest):
    engine = scratch_engine(request.getfixturevalue(f"{request.param}_url"))
    yield engine
    engine.dispose()


@pytest.fixture
def pg(postgres_url):
    engine = scratch_engine(postgres_url)
    yield engine
    engine.dispose()


def ids(engine) -> list[str]:
    with engine.connect() as conn:
        return conn.execute(select(scratch_rows.c.id).order_by(scratch_rows.c.id)).scalars().all()


def test_a_transaction_commits_when_its_block_ends_and_rolls_back_when_it_raises(engine):
    with light.begin(writer(engine)) as conn:
        with batch.batched(conn):
            batch.insert(conn, scratch_rows, [{"id": "a", "n": 1, "record": {"x": 1}}])
        assert batch.first_row(conn, _ONE, {}).n == 1
    with pytest.raises(ZeroDivisionError):
        with light.begin(writer(engine)) as conn:
            batch.insert(conn, scratch_rows, [{"id": "b", "n": 2, "record": None}])
            batch.flush(conn)
            1 / 0  # noqa: B018
    assert ids(engine) == ["a"]
    assert engine.pool.checkedout() == 0


def test_sqlite_keeps_engine_begin(sqlite_url):
    engine = scratch_engine(sqlite_url)
    try:
        with light.begin(writer(engine)) as conn:
            assert isinstance(conn, Connection)
            assert conn.get_execution_options()["write"]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_on_postgres_no_sqlalchemy_connection_is_made_for_psycopgs_own_statements(pg):
    with light.begin(writer(pg)) as conn:
        assert isinstance(conn, light.Light)
        assert conn.dialect is pg.dialect and conn.engine is writer(pg)
        assert conn.get_execution_options()["write"]
        assert conn.in_transaction() and conn.get_transaction() is not None
        assert conn.info is conn.connection.info
        with batch.batched(conn):
            batch.insert(conn, scratch_rows, [{"id": "a", "n": 1, "record": None}])
        assert batch.first_row(conn, _ONE, {}).n == 1
        assert conn._full is None  # everything went to psycopg
    assert not conn.in_transaction() and conn.get_transaction() is None
    assert ids(pg) == ["a"]
    assert pg.pool.checkedout() == 0


@pytest.mark.postgres
def test_a_query_through_sqlalchemy_runs_in_the_same_transaction_and_sees_the_queue(pg):
    with light.begin(writer(pg)) as conn:
        memo = transaction_memo(conn)
        memo["seen"] = 1
        with batch.batched(conn):
            batch.insert(conn, scratch_rows, [{"id": "a", "n": 1, "record": {"å": "ø"}}])
            # SQLAlchemy's statement sends the queue first (batch's dialect hook), on the
            # connection psycopg has its transaction open on.
            assert conn.execute(select(scratch_rows.c.record)).scalar_one() == {"å": "ø"}
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            assert pid == conn.connection.dbapi_connection.info.backend_pid
            assert conn._full.in_transaction()
            assert existing_transaction_memo(conn._full) is memo
            assert transaction_memo(conn) is memo
            batch.insert(conn, scratch_rows, [{"id": "b", "n": 2, "record": None}])
        assert conn.execute(select(func.count()).select_from(scratch_rows)).scalar_one() == 2
    assert ids(pg) == ["a", "b"]
    assert pg.pool.checkedout() == 0
    with pytest.raises(RuntimeError):
        with light.begin(writer(pg)) as conn:
            conn.execute(scratch_rows.insert(), {"id": "c", "n": 3, "record": None})
            raise RuntimeError
    assert ids(pg) == ["a", "b"]
    with pytest.raises(sa_exc.ResourceClosedError):
        conn.execute(select(1))
    assert pg.pool.checkedout() == 0


@pytest.mark.postgres
def test_the_commit_in_the_audit_rows_round_trip_ends_the_transaction(pg):
    with light.begin(writer(pg)) as conn:
        batch.insert(conn, scratch_rows, [{"id": "a", "n": 1, "record": None}])
        batch.commit_with_next_row(conn)
        assert batch.first_row(conn, _ONE, {}).n == 1
        driver = conn.connection.dbapi_connection
        assert driver.info.transaction_status.name == "IDLE"  # committed already
    assert ids(pg) == ["a"]


@pytest.mark.postgres
def test_a_duplicate_is_sqlalchemys_integrity_error_and_nothing_stays(pg):
    with pytest.raises(sa_exc.IntegrityError):
        with light.begin(writer(pg)) as conn:
            with batch.batched(conn):
                batch.insert(
                    conn,
                    scratch_rows,
                    [{"id": "a", "n": 1, "record": None}, {"id": "a", "n": 2, "record": None}],
                )
    assert ids(pg) == []
    assert pg.pool.checkedout() == 0
    with light.begin(writer(pg)) as conn:  # the pooled connection is usable again
        assert batch.first_row(conn, _ONE, {}) is None


@pytest.mark.postgres
def test_the_pools_checkout_probe_and_reset_apply(pg):
    checkouts, resets = [], []
    event.listen(pg.pool, "checkout", lambda *a: checkouts.append(1))
    event.listen(pg.pool, "reset", lambda *a: resets.append(1))
    with light.begin(writer(pg)) as conn:
        assert batch.first_row(conn, _ONE, {}) is None
    assert checkouts == [1] and resets == [1]


@pytest.mark.postgres
def test_listeners_of_a_transactions_events_get_engine_begin(pg):
    began = []

    def note(conn):
        began.append(conn)

    event.listen(pg, "begin", note)
    try:
        with light.begin(writer(pg)) as conn:
            assert isinstance(conn, Connection)
        assert len(began) == 1
    finally:
        event.remove(pg, "begin", note)
    with light.begin(writer(pg)) as conn:
        assert isinstance(conn, light.Light)


@pytest.mark.postgres
def test_a_connection_lost_at_commit_is_reported_as_sqlalchemy_reports_it(pg):
    admin = scratch_engine(pg.url.render_as_string(hide_password=False))
    try:
        with pytest.raises(sa_exc.DBAPIError) as raised:
            with light.begin(writer(pg)) as conn:
                batch.insert(conn, scratch_rows, [{"id": "a", "n": 1, "record": None}])
                batch.flush(conn)
                pid = conn.connection.dbapi_connection.info.backend_pid
                with admin.connect() as other:
                    other.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid})
        assert raised.value.connection_invalidated
        assert raised.value.statement is None  # the COMMIT: it may have happened
        assert pg.pool.checkedout() == 0
    finally:
        admin.dispose()
    assert ids(pg) == []
    with light.begin(writer(pg)) as conn:  # a fresh connection
        assert conn.connection.dbapi_connection.info.backend_pid != pid


@pytest.mark.postgres
def test_a_commit_refused_by_the_server_is_sqlalchemys_error_and_the_connection_is_reused(pg):
    with pg.begin() as conn:
        conn.execute(
            text("CREATE TABLE deferred_once (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED)")
        )
    with pytest.raises(sa_exc.IntegrityError) as raised:
        with light.begin(writer(pg)) as conn:
            driver = conn.connection.dbapi_connection
            driver.execute("INSERT INTO deferred_once VALUES (1), (1)")  # checked at COMMIT
    assert raised.value.statement is None and not raised.value.connection_invalidated
    assert pg.pool.checkedout() == 0
    with light.begin(writer(pg)) as conn:
        assert conn.connection.dbapi_connection is driver  # back in the pool, not dropped
        assert batch.first_row(conn, _ONE, {}) is None
    with pg.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM deferred_once")).scalar_one() == 0


@pytest.mark.postgres
def test_a_block_that_goes_on_after_its_connection_was_lost_fails_as_sqlalchemys(pg):
    with pytest.raises(sa_exc.PendingRollbackError):
        with light.begin(writer(pg)) as conn:
            conn.invalidate()
            with pytest.raises(sa_exc.PendingRollbackError):
                batch.first_row(conn, _ONE, {})
    assert pg.pool.checkedout() == 0
    with pytest.raises(sa_exc.PendingRollbackError):
        with writer(pg).begin() as conn:
            conn.invalidate()
    assert pg.pool.checkedout() == 0
