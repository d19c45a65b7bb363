"""What the busiest reads cost the database (SQLite and PostgreSQL): a patient's own list is
one transaction, and an audited read learns the catalogue version in force from the same
statement that reads the patient."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select

from fest.queries import version_key_in_force
from medloop.store import audit, state_cache
from medloop.store.db import make_engine, reader
from medloop.store.migrate import upgrade
from medloop.store.patients import catalogue_key_in_force, read_for_access
from tests.api.helpers import (
    GP_TOKEN,
    NATIONAL_ID,
    OTHER_PATIENT_TOKEN,
    PATIENT_TOKEN,
    make_world,
    prescribe_body,
)
from tests.loop.helpers import KLARITROMYCIN, SIMVASTATIN_28
from tests.pg_protocol import round_trips, traced

_VERSION_KEY_QUERY = re.compile(
    r"^SELECT fest_version\.id, fest_version\.sha256 FROM fest_version ORDER BY", re.IGNORECASE
)


@contextmanager
def database_work(engine):
    seen = {"transactions": 0, "statements": []}

    def began(conn):
        seen["transactions"] += 1

    def executed(conn, cursor, statement, parameters, context, executemany):
        seen["statements"].append(" ".join(statement.split()))

    event.listen(engine, "begin", began)
    event.listen(engine, "before_cursor_execute", executed)
    try:
        yield seen
    finally:
        event.remove(engine, "begin", began)
        event.remove(engine, "before_cursor_execute", executed)


def _prescribe(world) -> None:
    response = world.write(
        f"/patients/{world.patient_id}/prescriptions", prescribe_body(SIMVASTATIN_28)
    )
    assert response.status_code == 201, response.text


def _audit_records(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(audit.audit_event)).scalar_one()


def test_a_patient_reads_their_own_list_in_one_audited_transaction(world):
    _prescribe(world)
    before = _audit_records(world.engine)
    with database_work(world.engine) as seen:
        response = world.get("/me/list", token=PATIENT_TOKEN)
    assert response.status_code == 200
    assert [e["drug"]["varenr"] for e in response.json()["entries"]] == [SIMVASTATIN_28]
    assert seen["transactions"] == 1, seen
    assert _audit_records(world.engine) == before + 1
    with world.engine.connect() as conn:
        newest = audit.events_for_patient(conn, NATIONAL_ID, limit=1).events[0]
    assert newest.action == "medication-list.read.own-list"
    assert newest.detail == {"patient_id": str(world.patient_id)}


def test_a_person_without_a_list_and_other_roles_are_refused_their_own_list_unrecorded(world):
    before = _audit_records(world.engine)
    nobody = world.get("/me/list", token=OTHER_PATIENT_TOKEN)
    assert nobody.status_code == 403
    assert nobody.json()["detail"] == "no medication list is kept for this person"
    doctor = world.get("/me/access-log", token=GP_TOKEN)
    assert doctor.status_code == 403
    assert NATIONAL_ID not in doctor.text
    assert _audit_records(world.engine) == before


def test_a_dry_run_check_reads_the_catalogue_version_with_the_patient(world):
    _prescribe(world)
    with database_work(world.engine) as seen:
        response = world.post(
            f"/patients/{world.patient_id}/list/check",
            {"proposed": [{"id": "new", "drug": {"varenr": KLARITROMYCIN}}]},
        )
    assert response.status_code == 200, response.text
    assert any(a["kind"] == "interaction" for a in response.json()["alerts"])
    assert not [s for s in seen["statements"] if _VERSION_KEY_QUERY.match(s)], seen
    assert seen["transactions"] == 1


_TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "ROLLBACK"})


@contextmanager
def statements_sent(conn):
    """The statements ``conn`` sends while the block runs: on PostgreSQL as the server gets
    them (some go to psycopg directly), on SQLite as SQLAlchemy executes them; BEGIN and
    COMMIT are not counted."""
    if conn.dialect.name == "postgresql":
        with traced(conn.engine, conn.connection.driver_connection) as trips:
            sent: list[str] = []
            yield sent
        sent.extend(s for trip in trips for s in trip if s not in _TRANSACTION_CONTROL)
    else:
        with database_work(conn.engine) as seen:
            yield seen["statements"]


def test_the_catalogue_version_read_with_the_patient_is_the_one_in_force(world):
    with world.engine.begin() as conn:
        expected = version_key_in_force(conn)
    assert expected is not None
    with world.engine.begin() as conn:
        read_for_access(conn, world.patient_id)
        with statements_sent(conn) as sent:
            assert catalogue_key_in_force(conn) == expected
        assert sent == []
    with world.engine.begin() as conn:
        with statements_sent(conn) as sent:
            # Not read with a patient in this transaction: asked now.
            assert catalogue_key_in_force(conn) == expected
        assert len(sent) == 1


@pytest.mark.postgres
def test_on_postgres_an_audited_read_is_two_round_trips_and_a_search_one(postgres_url, monkeypatch):
    """As the server sees them: a list read is BEGIN with the patient (with its audit chain's
    lock), then the audit record with the COMMIT (one pipeline); a catalogue search is its one
    statement, in autocommit (no BEGIN, and no ROLLBACK that would drop the connection's
    prepared statements)."""
    monkeypatch.setattr(state_cache, "VERIFY", False)  # its check reads would be counted
    engine = make_engine(postgres_url)
    try:
        upgrade(engine)
        world = make_world(engine)
        _prescribe(world)
        for _ in range(2):  # the catalogue knowledge is built on the first search
            assert world.get("/catalogue/packages?name=simvastatin").status_code == 200
        with round_trips(engine) as trips:
            assert world.get(f"/patients/{world.patient_id}/list").status_code == 200
        assert trips == [["BEGIN", "SELECT"], ["INSERT", "COMMIT"]]
        with round_trips(engine) as trips:
            assert world.get("/catalogue/packages?name=simvastatin").status_code == 200
        assert trips == [["SELECT"]]
        with reader(engine).connect() as conn:  # psycopg directly, as SQLAlchemy reads it
            key = catalogue_key_in_force(conn)
            assert key is not None
            assert key == version_key_in_force(conn)
    finally:
        engine.dispose()
