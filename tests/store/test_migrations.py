"""The migrations create exactly the tables the code defines, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from medloop.store.tables import metadata


def test_migrations_match_the_table_definitions(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def _migration(name: str):
    import importlib.util

    from medloop.store.migrate import MIGRATIONS

    spec = importlib.util.spec_from_file_location(name, MIGRATIONS / "versions" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _old_single_chain(engine, patients: list[str | None]) -> None:
    """Records as revision 0007 wrote them: one chain, numbered 1..n across patients."""
    from datetime import UTC, datetime

    old = _migration("0008_audit_chains")
    prev = old.GENESIS_HASH
    with engine.begin() as conn:
        for seq, patient in enumerate(patients, start=1):
            row = {
                "seq": seq,
                "occurred_at": datetime(2026, 11, 1, 8, seq, tzinfo=UTC),
                "actor": "9144889",
                "actor_role": "doctor",
                "organisation": "974589095",
                "patient": patient,
                "action": "list.read",
                "outcome": "ok",
                "request_id": None,
                "reason": None,
                "detail": {"n": seq},
                "prev_hash": prev,
            }
            row["hash"] = old._hash(row, old.OLD_FIELDS)
            conn.execute(old.OLD_TABLE.insert().values(**row))
            prev = row["hash"]


def test_the_single_audit_chain_is_rechained_per_patient_by_migration_0008(db_url):
    from medloop.store import audit
    from medloop.store.db import make_engine
    from medloop.store.migrate import upgrade

    engine = make_engine(db_url)
    upgrade(engine, "0007")
    _old_single_chain(engine, ["01017012345", None, "02028054321", "01017012345"])

    upgrade(engine)

    with engine.connect() as conn:
        result = audit.verify(conn)
        page = audit.events_for_patient(conn, "01017012345")
    assert (result.ok, result.events, result.chains) == (True, 4, 3)
    assert [(e.seq, e.detail["n"]) for e in page.events] == [(2, 4), (1, 1)]
    engine.dispose()


def test_migration_0008_refuses_a_broken_audit_log(db_url):
    import pytest
    from sqlalchemy import text

    from medloop.store.db import make_engine
    from medloop.store.migrate import upgrade

    engine = make_engine(db_url)
    upgrade(engine, "0007")
    _old_single_chain(engine, ["01017012345", "01017012345"])
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER audit_event_refuse_delete")
        else:
            conn.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER ALL")
        conn.execute(text("DELETE FROM audit_event WHERE seq = 1"))

    with pytest.raises(RuntimeError, match="the audit log is broken at event 2"):
        upgrade(engine)
    engine.dispose()


def _outbox_triggers(conn) -> set[str]:
    from sqlalchemy import text

    if conn.dialect.name == "postgresql":
        query = "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'outbox%'"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'outbox%'"
    return set(conn.execute(text(query)).scalars())


def test_migration_0019_the_outbox_goes_down_to_0017_and_up_again_append_only(db_url):
    from alembic import command
    from sqlalchemy import inspect

    from medloop.store.db import make_engine
    from medloop.store.migrate import alembic_config, upgrade

    tables = {"outbox_message", "outbox_sent"}
    engine = make_engine(db_url)
    upgrade(engine)
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0017")  # the revision before 0019
    with engine.connect() as conn:
        assert not tables & set(inspect(conn).get_table_names())
        assert _outbox_triggers(conn) == set()

    upgrade(engine)

    with engine.connect() as conn:
        assert tables <= set(inspect(conn).get_table_names())
        expected = (
            {"outbox_message_append_only", "outbox_sent_append_only"}
            if engine.dialect.name == "postgresql"
            else {f"{t}_refuse_{op}" for t in tables for op in ("update", "delete")}
        )
        assert _outbox_triggers(conn) == expected
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    engine.dispose()


def test_migration_0021_bumps_the_patients_with_data_from_before_the_revision(db_url):
    """A patient whose list was written before 0007 added ``revision`` kept revision 0 with
    its data; after 0021 only a patient with nothing but its record is at the first revision,
    and a command on the bumped patient (in a process that has cached nothing) sees its list."""
    from alembic import command
    from sqlalchemy import text

    from medloop.domain.patient import NationalId, Patient
    from medloop.loop.patients import register_patient
    from medloop.loop.prescribe import prescribe
    from medloop.store.db import make_engine
    from medloop.store.migrate import alembic_config, upgrade
    from medloop.store.patients import FIRST_REVISION
    from medloop.store.state_cache import cache_for
    from tests.loop.helpers import SIMVASTATIN_28, SIMVASTATIN_98, call, demo_world
    from tests.loop.helpers import prescription_order as order

    engine = make_engine(db_url)
    upgrade(engine)
    with_list = demo_world(engine)
    prescribe(engine, with_list, order(SIMVASTATIN_28), call(), based_on=0)
    bare = Patient(
        id=uuid.uuid4(),
        national_id=NationalId("01019000083"),
        given_name="Ola",
        family_name="Nordmann",
        birth_date=NationalId("01019000083").birth_date,
    )
    register_patient(engine, bare, call())
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0019")  # the revision before 0021
        # As before 0007: the list is there, the revision is the column's default.
        conn.execute(text("UPDATE patient SET revision = 0"))

    upgrade(engine)

    with engine.connect() as conn:
        revisions = dict(conn.execute(text("SELECT id, revision FROM patient")).all())
    assert revisions == {str(with_list): 1, str(bare.id): FIRST_REVISION}
    cache_for(engine).clear()  # another process: nothing cached
    second = prescribe(engine, with_list, order(SIMVASTATIN_98), call(), based_on=1)
    assert second.list_version == 2
    engine.dispose()
