"""Database set-up: SQLite runs in WAL mode with foreign keys enforced; migrations are idempotent."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from medloop.store.db import make_engine
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
