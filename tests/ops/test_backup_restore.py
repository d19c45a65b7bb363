"""Backups are proven by restore: a dump of a database holding the demo world, restored into a
fresh database, verifies to the same audit heads digest and reads every list the same."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from medloop import demo, queries
from medloop.cli import app
from medloop.store.db import make_engine, normalise_url
from medloop.store.migrate import upgrade
from tests.reference import DEMO

pytestmark = pytest.mark.postgres
runner = CliRunner()
AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _verify(url: str) -> dict:
    result = runner.invoke(app, ["audit", "verify", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _lists(url: str, patients: list) -> dict:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                pid: (
                    queries.current_list(conn, pid, AT),
                    queries.prescriptions(conn, pid),
                    queries.dispenses(conn, pid),
                    queries.overrides(conn, pid),
                )
                for pid in patients
            }
    finally:
        engine.dispose()


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed")
def test_a_dump_restored_into_a_fresh_database_verifies_and_reads_the_same(postgres_url):
    engine = make_engine(postgres_url)
    upgrade(engine)
    world = demo.build(engine, DEMO, now=AT)
    engine.dispose()
    patients = list(world.patients.values())
    assert patients
    before = _verify(postgres_url)
    lists = _lists(postgres_url, patients)
    assert all(found[0].entries for found in lists.values())

    source = make_url(normalise_url(postgres_url))
    restored_name = f"{source.database}_restored"
    admin = create_engine(source.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{restored_name}"'))
    restored = source.set(database=restored_name).render_as_string(hide_password=False)
    try:
        plain = source.set(drivername="postgresql")
        dump = subprocess.run(
            [
                "pg_dump",
                "--format=custom",
                "--host",
                plain.host or "127.0.0.1",
                "--port",
                str(plain.port or 5432),
                "--username",
                plain.username or "postgres",
                plain.database,
            ],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(
            [
                "pg_restore",
                "--exit-on-error",
                "--no-owner",
                "--host",
                plain.host or "127.0.0.1",
                "--port",
                str(plain.port or 5432),
                "--username",
                plain.username or "postgres",
                "--dbname",
                restored_name,
            ],
            input=dump,
            capture_output=True,
            check=True,
        )
        after = _verify(restored)
        assert after == before and before["events"] > 0
        assert _lists(restored, patients) == lists
        # The restored database is a working one: append-only triggers and all.
        check = make_engine(restored)
        with pytest.raises(Exception, match="append-only|not allowed|refuse"):  # noqa: B017
            with check.begin() as conn:
                conn.execute(text("DELETE FROM audit_event"))
        check.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{restored_name}" WITH (FORCE)'))
        admin.dispose()
