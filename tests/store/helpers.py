"""Builders for the store tests: audit events of two patients, appending them, what an
intruder with the database's superuser does (append-only triggers off, statements run), and a
scratch table for the batching tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    update,
)

from medloop.store.audit import AuditEvent, AuditRecord, append
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from medloop.store.patients import patient

SCRATCH = MetaData()
scratch_rows = Table(
    "batch_scratch",
    SCRATCH,
    Column("id", String(8), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("record", JSON, nullable=True),
)


def scratch_engine(url: str, *, migrated: bool = False) -> Engine:
    """An engine on ``url`` (a test's own database) holding ``scratch_rows``, and medloop's
    tables too if ``migrated``; the caller disposes of it."""
    engine = make_engine(url)
    if migrated:
        upgrade(engine)
    SCRATCH.create_all(engine)
    return engine


PATIENT = "01017012345"
OTHER_PATIENT = "02028054321"


def an_event(n: int = 0, **fields) -> AuditEvent:
    values = {
        "actor": "9144889",
        "actor_role": "doctor",
        "organisation": "974589095",
        "patient": PATIENT,
        "action": "list.read",
        "request_id": f"req-{n}",
        "detail": {"n": n},
    }
    return AuditEvent(**{**values, **fields})


def writer(engine: Engine) -> Engine:
    return engine.execution_options(write=True)


def append_all(engine: Engine, events: list[AuditEvent]) -> list[AuditRecord]:
    with writer(engine).begin() as conn:
        return [append(conn, event) for event in events]


def bypass_append_only(conn: Connection) -> None:
    """What an intruder with the database's superuser would do first."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("DROP TRIGGER audit_event_refuse_update")
        conn.exec_driver_sql("DROP TRIGGER audit_event_refuse_delete")
    else:
        conn.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER ALL")


def tamper(engine: Engine, *statements: str) -> None:
    with writer(engine).begin() as conn:
        bypass_append_only(conn)
        for statement in statements:
            conn.exec_driver_sql(statement)


@contextmanager
def intruder(engine: Engine, table: str) -> Iterator[Connection]:
    """What an intruder with the database's superuser does: a connection with no append-only
    triggers on ``table`` and no foreign-key checks."""
    if engine.dialect.name == "sqlite":
        # A plain connection: foreign keys are off unless switched on, as make_engine does.
        plain = create_engine(engine.url)
        try:
            with plain.begin() as conn:
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_refuse_update")
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_refuse_delete")
                yield conn
        finally:
            plain.dispose()
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")  # no triggers
            yield conn


def intruded(engine: Engine, table: Table, where: Any, **values: Any) -> None:
    """``values`` set on ``table``'s rows ``where`` by an ``intruder`` (past every validator and
    the append-only triggers), and every patient's revision bumped, so that no process answers
    from a state it cached before: a stored record as an older version or a hand edit could
    have left it."""
    with intruder(engine, table.name) as conn:
        conn.execute(update(table).where(where).values(**values))
        conn.execute(update(patient).values(revision=patient.c.revision + 1))
