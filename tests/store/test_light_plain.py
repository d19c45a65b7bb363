"""``batch`` reads a ``light.Light``'s ``_transaction`` and ``_fairy`` instead of calling its
``in_transaction()`` and ``connection`` (``transaction.PlainPostgresTransaction``): those reads
must stay what the method and the property answer, in a transaction, after it, and with the
connection lost; and ``batch`` must answer as it does for SQLAlchemy's ``Connection``."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from medloop.store import batch, light
from medloop.store.db import writer
from medloop.store.transaction import PlainPostgresTransaction
from tests.store.helpers import scratch_engine, scratch_rows

pytestmark = pytest.mark.postgres

_ONE = select(scratch_rows.c.n).where(scratch_rows.c.id == "a")


@pytest.fixture
def pg(postgres_url):
    engine = scratch_engine(postgres_url)
    yield engine
    engine.dispose()


def _plain_reads_match(conn) -> None:
    assert (conn._transaction is not None) is conn.in_transaction()
    fairy = conn._fairy
    if fairy.dbapi_connection is not None:
        assert conn.connection is fairy


def test_light_is_marked_plain_and_its_reads_match_the_method_and_property(pg):
    assert issubclass(light.Light, PlainPostgresTransaction)
    assert "_transaction" in light.Light.__init__.__code__.co_names
    with light.begin(writer(pg)) as conn:
        assert isinstance(conn, PlainPostgresTransaction)
        _plain_reads_match(conn)
        assert batch._pending(conn) is None  # no batch open
        with batch.batched(conn):
            _plain_reads_match(conn)
            pending = batch._pending(conn)
            assert pending is not None
            batch.insert(conn, scratch_rows, [{"id": "a", "n": 1, "record": {"x": 1}}])
            assert len(pending.statements) == 1
            assert batch.first_row(conn, _ONE, {}).n == 1  # sends the queue first
            assert pending.statements == []
    conn._transaction = None  # as ``__exit__`` leaves a transaction over
    assert conn.in_transaction() is False
    assert batch._pending(conn) is None


def test_batch_answers_a_light_connection_as_sqlalchemys(pg):
    found = []
    for begin in (light.begin, lambda engine: engine.begin()):
        with begin(writer(pg)) as conn:
            with batch.batched(conn):
                batch.insert(conn, scratch_rows, [{"id": "a", "n": 7, "record": [1]}])
                found.append(tuple(batch.first_row(conn, _ONE, {})))
                batch.commit_with_next_row(conn)
                found.append(tuple(batch.first_row(conn, _ONE, {})))
        with pg.begin() as plain:
            plain.execute(scratch_rows.delete())
    assert found == [(7,), (7,), (7,), (7,)]


def test_a_lost_light_connection_raises_as_the_property_does(pg):
    with pytest.raises(sa_exc.PendingRollbackError):
        with light.begin(writer(pg)) as conn:
            conn.invalidate()
            assert conn._fairy.dbapi_connection is None
            with pytest.raises(sa_exc.PendingRollbackError) as by_property:
                conn.connection  # noqa: B018
            with pytest.raises(sa_exc.PendingRollbackError) as by_batch:
                batch.first_row(conn, _ONE, {})
            assert str(by_batch.value) == str(by_property.value)
