"""A transaction's memo (``medloop.store.transaction``): one dict for the whole of one
transaction, a new empty one for the next, on either database."""

from __future__ import annotations

import pytest

from medloop.store.db import make_engine, writer
from medloop.store.transaction import existing_transaction_memo, transaction_memo


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest):
    engine = make_engine(request.getfixturevalue(f"{request.param}_url"))
    yield engine
    engine.dispose()


def test_a_transaction_keeps_one_memo_from_its_first_use_to_its_end(engine):
    with writer(engine).begin() as conn:
        assert existing_transaction_memo(conn) is None
        memo = transaction_memo(conn)
        memo["seen"] = 1
        assert transaction_memo(conn) is memo
        assert existing_transaction_memo(conn) is memo


def test_the_next_transaction_on_the_same_connection_starts_with_no_memo(engine):
    with writer(engine).connect() as conn:
        with conn.begin():
            transaction_memo(conn)["seen"] = 1
        assert existing_transaction_memo(conn) is None  # no transaction
        with conn.begin():
            assert existing_transaction_memo(conn) is None
            assert transaction_memo(conn) == {}


def test_a_rolled_back_transactions_memo_is_gone_with_it(engine):
    with writer(engine).connect() as conn:
        conn.begin()
        transaction_memo(conn)["seen"] = 1
        conn.rollback()
        with conn.begin():
            assert existing_transaction_memo(conn) is None


def test_the_pooled_connection_checked_out_again_starts_with_no_memo(engine):
    with writer(engine).begin() as conn:
        transaction_memo(conn)["seen"] = 1
        first = conn.connection.dbapi_connection
    with writer(engine).begin() as conn:
        assert conn.connection.dbapi_connection is first  # the same pooled connection
        assert existing_transaction_memo(conn) is None


def test_the_memo_reads_the_transaction_that_get_transaction_returns(engine):
    # ``transaction_memo`` reads ``conn._transaction`` for ``conn.get_transaction()``: on
    # SQLAlchemy's ``Connection`` and on ``store.light.Light`` (a PostgreSQL command's).
    from medloop.store import light

    with writer(engine).connect() as conn:
        assert conn._transaction is conn.get_transaction() is None
        with conn.begin():
            assert conn._transaction is conn.get_transaction() is not None
        assert conn._transaction is conn.get_transaction() is None
    with light.begin(writer(engine)) as conn:
        assert conn._transaction is conn.get_transaction() is not None
        memo = transaction_memo(conn)
        assert existing_transaction_memo(conn) is memo
    assert conn._transaction is conn.get_transaction() is None
    assert existing_transaction_memo(conn) is None
