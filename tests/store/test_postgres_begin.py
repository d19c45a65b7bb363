"""On PostgreSQL a transaction's BEGIN goes in its first statement's round trip
(``medloop.store.postgres``), and the transaction is the one psycopg would have begun: same
isolation, same locks, same failure, same prepared statements."""

from __future__ import annotations

import importlib.metadata
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
import pytest
from psycopg.pq import PipelineStatus, TransactionStatus
from psycopg.types.json import Json
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from medloop.store import batch, postgres
from medloop.store.db import make_engine, reader
from tests.pg_protocol import round_trips

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_engine(postgres_url):
    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE scratch (id int PRIMARY KEY, note text)"))
        conn.execute(text("INSERT INTO scratch VALUES (1, 'one')"))
    engine.dispose()  # the tests start with a pool of one fresh connection
    try:
        yield engine
    finally:
        engine.dispose()


def _driver(conn) -> psycopg.Connection:
    return conn.connection.driver_connection


def _prepared_count(engine, sql_start: str) -> int:
    with reader(engine).connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE :s"),
            {"s": sql_start + "%"},
        ).scalar_one()


def test_psycopg_is_the_version_whose_internals_the_cursor_drives():
    # medloop.store.postgres runs psycopg's cursor below its public API: a new psycopg must be
    # checked against it (these tests) before the pin in pyproject.toml moves.
    assert importlib.metadata.version("psycopg") == "3.3.9"


def test_the_engines_connections_use_the_cursor_that_begins_with_the_first_statement(pg_engine):
    with pg_engine.connect() as conn:
        assert isinstance(_driver(conn).cursor(), postgres.Cursor)


def test_a_transactions_begin_goes_in_its_first_statements_round_trip(pg_engine):
    with round_trips(pg_engine) as trips, pg_engine.begin() as conn:
        found = conn.execute(text("SELECT note FROM scratch WHERE id = :id"), {"id": 1})
        assert found.scalar_one() == "one"
        assert _driver(conn).info.transaction_status == TransactionStatus.INTRANS
        conn.execute(text("UPDATE scratch SET note = :n WHERE id = :id"), {"n": "uno", "id": 1})
    assert trips == [["BEGIN", "SELECT"], ["UPDATE"], ["COMMIT"]]
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT note FROM scratch")).scalar_one() == "uno"


def test_the_connection_leaves_pipeline_mode_after_the_first_round_trip(pg_engine):
    with pg_engine.begin() as conn:
        conn.execute(text("SELECT note FROM scratch WHERE id = :id"), {"id": 1})
        assert _driver(conn).pgconn.pipeline_status == PipelineStatus.OFF


def test_a_failing_first_statement_aborts_the_transaction_and_stores_nothing(pg_engine):
    with pytest.raises(DBAPIError) as raised, pg_engine.begin() as conn:
        driver = _driver(conn)
        conn.execute(text("INSERT INTO scratch VALUES (:id, :n)"), {"id": 1, "n": "again"})
    assert isinstance(raised.value.orig, psycopg.errors.UniqueViolation)
    # The caller's rollback ended the aborted transaction; the connection is clean.
    assert driver.info.transaction_status == TransactionStatus.IDLE
    assert driver.pgconn.pipeline_status == PipelineStatus.OFF
    with pg_engine.begin() as conn:
        assert _driver(conn) is driver  # the same pooled connection, usable
        conn.execute(text("INSERT INTO scratch VALUES (:id, :n)"), {"id": 2, "n": "two"})
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM scratch")).scalar_one() == 2


def test_after_a_failing_first_statement_the_transaction_refuses_more_until_rolled_back(
    pg_engine,
):
    with pg_engine.connect() as conn:
        with pytest.raises(DBAPIError):
            conn.execute(text("SELECT 1 / :zero"), {"zero": 0})
        # BEGIN did run: the server holds the transaction open and aborted, as it did when
        # BEGIN had its own round trip.
        assert _driver(conn).info.transaction_status == TransactionStatus.INERROR
        with pytest.raises(DBAPIError) as raised:
            conn.execute(text("SELECT :one"), {"one": 1})
        assert isinstance(raised.value.orig, psycopg.errors.InFailedSqlTransaction)
        conn.rollback()
        assert conn.execute(text("SELECT CAST(:one AS int)"), {"one": 1}).scalar_one() == 1


def test_the_first_statement_runs_under_the_transactions_isolation_level(postgres_url):
    engine = make_engine(postgres_url).execution_options(isolation_level="REPEATABLE READ")
    try:
        with round_trips(engine) as trips, engine.begin() as conn:
            level = conn.execute(
                text("SELECT current_setting(:name)"), {"name": "transaction_isolation"}
            ).scalar_one()
        assert level == "repeatable read"
        assert trips == [["BEGIN", "SELECT"], ["COMMIT"]]
    finally:
        engine.dispose()


def test_a_first_statement_for_update_holds_its_lock_for_the_transaction(pg_engine):
    with pg_engine.begin() as holder:
        holder.execute(text("SELECT note FROM scratch WHERE id = :id FOR UPDATE"), {"id": 1})
        with pg_engine.connect() as other:
            with pytest.raises(DBAPIError) as raised:
                other.execute(
                    text("SELECT note FROM scratch WHERE id = :id FOR UPDATE NOWAIT"), {"id": 1}
                )
            assert isinstance(raised.value.orig, psycopg.errors.LockNotAvailable)


def test_a_prepared_first_statement_is_parsed_once_per_connection(pg_engine):
    sql = "SELECT note FROM scratch WHERE id = %(id)s"
    with round_trips(pg_engine) as trips:
        for _ in range(3):
            with pg_engine.begin() as conn:
                cursor = _driver(conn).cursor()
                assert cursor.execute(sql, {"id": 1}, prepare=True).fetchone() == ("one",)
    assert trips == [["BEGIN", "SELECT"], ["COMMIT"]] * 3
    # One server-side statement, reused: psycopg's cache knows it (no Parse after the first).
    assert _prepared_count(pg_engine, "SELECT note FROM scratch WHERE id = $1") == 1


def test_a_first_statement_that_fails_to_prepare_is_not_cached(pg_engine):
    sql = "SELECT note FROM later WHERE id = %(id)s"
    with pg_engine.connect() as conn:
        driver = _driver(conn)
        with pytest.raises(psycopg.errors.UndefinedTable):
            driver.cursor().execute(sql, {"id": 1}, prepare=True)
        assert driver.info.transaction_status == TransactionStatus.INERROR
        driver.rollback()
        driver.autocommit = True
        driver.execute("CREATE TABLE later (id int, note text)")
        driver.execute("INSERT INTO later VALUES (1, 'later')")
        driver.autocommit = False
        # Were the failed statement's name cached, this would fail ("does not exist").
        assert driver.cursor().execute(sql, {"id": 1}, prepare=True).fetchone() == ("later",)
        driver.commit()


def test_a_statement_without_parameters_begins_as_psycopg_does_and_may_hold_several(pg_engine):
    with round_trips(pg_engine) as trips, pg_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE scratch SET note = 'x'; UPDATE scratch SET note = 'y'")
    assert trips == [["BEGIN"], ["UPDATE"], ["COMMIT"]]
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT note FROM scratch")).scalar_one() == "y"


def test_in_autocommit_no_begin_is_sent(pg_engine):
    with round_trips(pg_engine) as trips, reader(pg_engine).connect() as conn:
        assert conn.execute(text("SELECT note FROM scratch WHERE id = :id"), {"id": 1}).one()
    assert trips == [["SELECT"]]


def test_a_statement_psycopg_cannot_convert_sends_nothing(pg_engine):
    with pg_engine.connect() as conn:
        driver = _driver(conn)
        with pytest.raises(psycopg.ProgrammingError):
            driver.cursor().execute("SELECT %(a)s, %(b)s", {"a": 1})  # b is missing
        # Refused before anything went out: not even the BEGIN.
        assert driver.info.transaction_status == TransactionStatus.IDLE
        assert driver.pgconn.pipeline_status == PipelineStatus.OFF


def test_statements_at_once_go_with_begin_and_commit_in_one_round_trip(pg_engine):
    with round_trips(pg_engine) as trips, pg_engine.connect() as conn:
        cursor = _driver(conn).cursor()
        postgres.execute_at_once(
            cursor,
            [
                ("INSERT INTO scratch VALUES (%(id)s, %(n)s)", [{"id": 2, "n": "b"}]),
                ("INSERT INTO scratch VALUES (%(id)s, %(n)s)", [{"id": 3, "n": "c"}]),
                ("SELECT count(*) FROM scratch WHERE id > %(id)s", [{"id": 0}]),
            ],
            commit=True,
        )
        assert cursor.fetchone() == (3,)  # the last statement's result is the cursor's
        assert _driver(conn).info.transaction_status == TransactionStatus.IDLE
    assert trips == [["BEGIN", "INSERT", "INSERT", "SELECT", "COMMIT"]]
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM scratch")).scalar_one() == 3


def test_the_rows_of_a_statement_at_once_prepare_it_once(pg_engine):
    sql = "INSERT INTO scratch VALUES (%(id)s, %(n)s)"
    with pg_engine.begin() as conn:
        rows = [{"id": i, "n": str(i)} for i in range(2, 6)]
        postgres.execute_at_once(_driver(conn).cursor(), [(sql, rows)])
    assert _prepared_count(pg_engine, "INSERT INTO scratch VALUES ($1, $2)") == 1
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM scratch")).scalar_one() == 5


def test_a_failing_statement_at_once_stops_the_rest_and_the_commit(pg_engine):
    insert = "INSERT INTO scratch VALUES (%(id)s, %(n)s)"
    with pg_engine.connect() as conn:
        driver = _driver(conn)
        with pytest.raises(psycopg.errors.UniqueViolation):
            postgres.execute_at_once(
                driver.cursor(),
                [(insert, [{"id": 2, "n": "b"}]), (insert, [{"id": 1, "n": "dup"}, {"id": 3}])],
                commit=True,
            )
        assert driver.info.transaction_status == TransactionStatus.INERROR
        assert driver.pgconn.pipeline_status == PipelineStatus.OFF
        driver.rollback()
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM scratch")).scalars().all() == [1]


def test_a_row_psycopg_cannot_convert_at_once_leaves_the_transaction_to_roll_back(pg_engine):
    insert = "INSERT INTO scratch VALUES (%(id)s, %(n)s)"
    with pg_engine.connect() as conn:
        driver = _driver(conn)
        with pytest.raises(psycopg.ProgrammingError):
            postgres.execute_at_once(
                driver.cursor(), [(insert, [{"id": 2, "n": "b"}, {"id": 3}])], commit=True
            )
        # The COMMIT was never sent: the row before the bad one is in the open transaction.
        assert driver.info.transaction_status == TransactionStatus.INTRANS
        assert driver.pgconn.pipeline_status == PipelineStatus.OFF
        driver.rollback()
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM scratch")).scalars().all() == [1]


VALUES = (
    ("small integer", 7),
    ("integer", 2**40),
    ("integer beyond 64 bits", 2**70),
    ("negative integer", -3),
    ("float", 0.1),
    ("text", "å ø"),
    ("null", None),
    ("boolean", True),
    ("json", Json({"a": [1, None, "x"]})),
    ("moment", datetime(2026, 12, 6, 6, 30, 1, 5, tzinfo=UTC)),
    ("day", date(2026, 12, 6)),
    ("decimal", Decimal("1.50")),
)


def _sent_and_read(cursor) -> list:
    """Each value of ``VALUES`` sent in a statement of its own and in one statement of them all
    (a new query each time): the row read back, the types (oids) and formats it was sent with,
    and the types of the columns read."""
    found = []
    params = {f"v{i}": value for i, (_label, value) in enumerate(VALUES)}
    every = ", ".join(f"%(v{i})s" for i in range(len(VALUES)))
    for query, values in [
        *((f"SELECT %(v)s AS v -- {label}", {"v": value}) for label, value in VALUES),
        (f"SELECT {every}", params),
    ]:
        cursor.execute(query, values)
        sent = cursor._query
        columns = [(c.name, c.type_code) for c in cursor.description]
        found.append((cursor.fetchone(), sent.types, list(sent.formats), columns))
    return found


def test_a_kept_cursor_sends_and_reads_what_psycopgs_cursor_does(pg_engine):
    with pg_engine.connect() as conn:
        driver = _driver(conn)
        plain = _sent_and_read(psycopg.Cursor(driver))
        driver.rollback()
        kept = _sent_and_read(postgres.KeptCursor(driver))
        driver.rollback()
    assert kept == plain
    assert plain[10][0] == (date(2026, 12, 6),)  # read back as themselves
    assert len({types for _row, types, _formats, _columns in plain}) > 5  # of several types


def test_a_kept_cursor_keeps_its_transformer_from_one_statement_to_the_next(pg_engine):
    with pg_engine.begin() as conn:
        cursor = postgres.KeptCursor(_driver(conn))
        cursor.execute("SELECT note FROM scratch WHERE id = %(id)s", {"id": 1})  # with BEGIN
        kept = cursor._tx
        cursor.execute("SELECT id FROM scratch WHERE note = %(n)s", {"n": "one"})
        postgres.execute_at_once(cursor, [("SELECT %(a)s::int + 1", [{"a": 1}])])
        assert cursor.fetchone() == (2,)
        assert cursor._tx is kept
        # psycopg's own cursor makes a new one for each statement that is not the last one.
        plain = postgres.Cursor(_driver(conn))
        plain.execute("SELECT 1 WHERE %(a)s", {"a": True})
        first = plain._tx
        plain.execute("SELECT 2 WHERE %(a)s", {"a": True})
        assert plain._tx is not first


def test_a_kept_cursor_starts_a_new_transformer_after_parameters_it_could_not_convert(pg_engine):
    with pg_engine.begin() as conn:
        cursor = postgres.KeptCursor(_driver(conn))
        cursor.execute("SELECT note FROM scratch WHERE id = %(id)s", {"id": 1})
        kept = cursor._tx
        with pytest.raises(psycopg.ProgrammingError):
            cursor.execute("SELECT %(a)s, %(b)s", {"a": 1})  # b is missing
        cursor.execute("SELECT note FROM scratch WHERE id = %(id)s", {"id": 1})
        assert cursor.fetchone() == ("one",)
        assert cursor._tx is not kept


def test_the_store_sends_its_own_statements_through_a_kept_cursor(pg_engine):
    with pg_engine.begin() as conn:
        assert isinstance(batch._cursor(conn, _driver(conn)), postgres.KeptCursor)


def test_the_pooled_dbapi_connection_is_psycopgs_own(pg_engine):
    """``store.batch`` takes the pooled DBAPI connection as psycopg's connection (issue #20: one
    lookup instead of ``driver_connection``'s three): true of the sync psycopg dialect."""
    with pg_engine.connect() as conn:
        pooled = conn.connection
        assert pooled.dbapi_connection is pooled.driver_connection
        assert isinstance(pooled.dbapi_connection, psycopg.Connection)
