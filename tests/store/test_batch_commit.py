"""``batch.commit_with_next_row``: the statement that ends a transaction (an audited read's
audit record) goes to PostgreSQL with the COMMIT in one round trip; a failing statement
commits nothing; without such a statement, or in the next transaction, nothing changes. On
SQLite the transaction commits as usual."""

from __future__ import annotations

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from medloop.store import batch
from medloop.store.db import writer
from tests.pg_protocol import round_trips
from tests.store.helpers import scratch_engine, scratch_rows

_INSERT = (
    scratch_rows.insert()
    .values(id=bindparam("id"), n=bindparam("n"))
    .returning(scratch_rows.c.id, scratch_rows.c.n)
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest):
    engine = scratch_engine(request.getfixturevalue(f"{request.param}_url"))
    yield engine
    engine.dispose()


def _stored(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {row.id: row.n for row in conn.execute(select(scratch_rows))}


def test_the_last_row_commits_with_its_transaction(engine):
    with writer(engine).begin() as conn:
        conn.execute(scratch_rows.insert(), {"id": "before", "n": 0})
        batch.commit_with_next_row(conn)
        row = batch.first_row(conn, _INSERT, {"id": "a", "n": 1})
        assert (row.id, row.n) == ("a", 1)
        if engine.dialect.name == "postgresql":
            # Committed on that trip: the block's own commit has nothing left to send.
            status = conn.connection.driver_connection.info.transaction_status
            assert status == TransactionStatus.IDLE
    assert _stored(engine) == {"before": 0, "a": 1}


def test_a_failing_last_row_commits_nothing(engine):
    with writer(engine).begin() as conn:
        batch.first_row(conn, _INSERT, {"id": "a", "n": 1})
    with pytest.raises(IntegrityError), writer(engine).begin() as conn:
        batch.first_row(conn, _INSERT, {"id": "b", "n": 2})
        batch.commit_with_next_row(conn)
        batch.first_row(conn, _INSERT, {"id": "a", "n": 3})  # the key is taken
    assert _stored(engine) == {"a": 1}
    # The connection went back to the pool usable.
    with writer(engine).begin() as conn:
        batch.first_row(conn, _INSERT, {"id": "c", "n": 4})
    assert _stored(engine) == {"a": 1, "c": 4}


def test_without_a_row_and_in_the_next_transaction_nothing_changes(engine):
    with writer(engine).begin() as conn:
        conn.execute(scratch_rows.insert(), {"id": "a", "n": 1})
        batch.commit_with_next_row(conn)
    assert _stored(engine) == {"a": 1}
    # The request belonged to that transaction: this one's row is not committed early.
    with pytest.raises(RuntimeError), writer(engine).begin() as conn:
        batch.first_row(conn, _INSERT, {"id": "b", "n": 2})
        raise RuntimeError("rolled back")
    assert _stored(engine) == {"a": 1}


@pytest.mark.postgres
def test_on_postgres_the_row_and_the_commit_are_one_round_trip(postgres_url):
    engine = scratch_engine(postgres_url)
    try:
        with round_trips(engine) as trips, writer(engine).begin() as conn:
            batch.commit_with_next_row(conn)
            batch.first_row(conn, _INSERT, {"id": "a", "n": 1})
        assert trips == [["BEGIN", "INSERT", "COMMIT"]]  # BEGIN with them: one round trip
        assert _stored(engine) == {"a": 1}
    finally:
        engine.dispose()
