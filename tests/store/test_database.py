"""Database set-up: SQLite runs in WAL mode with foreign keys enforced; migrations are
idempotent."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, event, select, text
from sqlalchemy.exc import IntegrityError

from medloop.store.db import make_engine, reader, writer
from medloop.store.migrate import upgrade


def test_sqlite_uses_wal_and_enforces_foreign_keys(sqlite_url):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO fest_entry (id, kind, domain_id, entry_id, valid_from) "
                "VALUES (1, 'Byttegruppe', 'ID_X', 'ID_E', 999)"
            )
        )


def test_upgrading_twice_changes_nothing(engine):
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() is not None


def _statements_seen(engine):
    seen: list[str] = []

    def executed(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", executed)
    return seen


@pytest.mark.postgres
def test_a_read_on_postgresql_keeps_the_connections_prepared_statements(postgres_url):
    """A read through ``reader`` runs in autocommit mode, so closing it sends no ROLLBACK,
    after which psycopg would drop every prepared statement (DEALLOCATE ALL)."""
    engine = make_engine(postgres_url)
    try:
        upgrade(engine)
        query = text("SELECT count(*) FROM patient WHERE revision >= :r")
        for _ in range(8):  # past psycopg's prepare threshold (5)
            with writer(engine).begin() as conn:
                conn.execute(query, {"r": 0}).scalar_one()
        with reader(engine).connect() as conn:
            assert not conn.connection.driver_connection.info.transaction_status, "no BEGIN"
            conn.execute(query, {"r": 0}).scalar_one()
            prepared_during = conn.execute(
                text("SELECT count(*) FROM pg_prepared_statements")
            ).scalar_one()
        with writer(engine).begin() as conn:
            prepared_after = conn.execute(
                text("SELECT count(*) FROM pg_prepared_statements")
            ).scalar_one()
        assert prepared_during >= 1
        assert prepared_after == prepared_during
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_connection_from_the_pool_is_transactional_again_after_a_read(postgres_url):
    """Autocommit ends with the read: the next writer on the same pooled connection still
    rolls back what it did not commit."""
    engine = make_engine(postgres_url)
    try:
        upgrade(engine)
        with reader(engine).connect() as conn:
            conn.execute(text("SELECT 1"))
        with writer(engine).connect() as conn:
            assert not conn.connection.driver_connection.autocommit
            conn.execute(text("CREATE TABLE scratch (n integer)"))
            conn.rollback()
        with reader(engine).connect() as conn:
            assert conn.execute(text("SELECT to_regclass('scratch')")).scalar() is None
    finally:
        engine.dispose()


def test_a_read_on_sqlite_is_one_transaction_with_one_snapshot(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        assert reader(engine) is engine
        seen = _statements_seen(engine)
        with reader(engine).connect() as conn:
            conn.execute(text("SELECT 1"))
            conn.execute(text("SELECT 2"))
        assert seen.count("BEGIN") == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_read_connection_on_postgresql_refuses_to_write_and_stores_nothing(postgres_url):
    """In autocommit a write on a read connection would stay, so it is refused before it is
    sent, whether SQLAlchemy or psycopg directly would send it; writers are not affected."""
    from medloop.store import batch  # noqa: PLC0415
    from medloop.store.db import WriteOnReadConnection  # noqa: PLC0415

    engine = make_engine(postgres_url)
    try:
        upgrade(engine)
        with writer(engine).begin() as conn:
            conn.execute(text("CREATE TABLE scratch (n integer)"))
        patient = Table("scratch", MetaData(), Column("n", Integer))
        refused = [
            text("INSERT INTO scratch VALUES (1)"),
            patient.insert().values(n=2),
            patient.update().values(n=3),
            patient.delete(),
        ]
        for statement in refused:
            with reader(engine).connect() as conn, pytest.raises(WriteOnReadConnection):
                conn.execute(statement)
        with reader(engine).connect() as conn, pytest.raises(WriteOnReadConnection):
            batch.first_row(conn, patient.insert().values(n=4).returning(patient.c.n), {})
        with reader(engine).connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM scratch")).scalar_one() == 0
        with writer(engine).begin() as conn:
            conn.execute(patient.insert().values(n=5))
        with reader(engine).connect() as conn:
            assert conn.execute(select(patient.c.n)).scalars().all() == [5]
    finally:
        engine.dispose()
