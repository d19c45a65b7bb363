"""The database going away under the API: a dead pooled connection is replaced before a
request uses it (no round trip added), a connection lost during a request answers 503 with
``Retry-After`` (never 500), a read is retried once on a fresh connection, a write is not
(its retry with the same Idempotency-Key has one effect) and no acknowledged write is lost.
On PostgreSQL the backends are really terminated (``pg_terminate_backend``, only those of the
test's own database); on SQLite a database locked by another process answers 503 too."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from psycopg import errors as psycopg_errors
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from medloop.api.app import create_app
from medloop.api.config import ApiSettings
from medloop.store import audit, batch
from medloop.store import db as store_db
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.api.helpers import GP_TOKEN, auth, make_world, prescribe_body
from tests.loop.helpers import SIMVASTATIN_28

PROBLEM = "https://medloop.dev/problems/database-unavailable"


@pytest.fixture
def pg(postgres_url):
    engine = make_engine(postgres_url)
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        upgrade(engine)
        yield engine, admin, make_url(postgres_url).database
    finally:
        engine.dispose()
        admin.dispose()


def terminate_all(admin, database: str) -> int:
    """Terminate every backend of the test's own database but the one asking (and wait)."""
    with admin.connect() as conn:
        return len(
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            ).all()
        )


def terminate(admin, pid: int) -> None:
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar()


@contextmanager
def killed_once(engine, admin, target, when: str):
    """Terminate the backend of the connection the next request uses, once: right after it is
    checked out of the pool (``checkout``: before its first statement) or as its transaction
    commits (``commit``: before COMMIT is sent — on its own, where SQLAlchemy's ``commit``
    event announces it, or in the round trip of the transaction's last row, where a command's
    audit record carries it: ``store.batch.commit_with_next_row``)."""
    fired = []

    def kill(pid: int) -> None:
        if not fired:
            fired.append(pid)
            terminate(admin, pid)

    if when == "checkout":

        def listener(dbapi_connection, _record, _proxy):
            kill(dbapi_connection.info.backend_pid)
    else:

        def listener(conn):
            kill(conn.connection.driver_connection.info.backend_pid)

    event.listen(target, when, listener)
    send = batch._send
    if when == "commit":

        def sending(conn, pending, last, *, commit=False, **rest):
            if commit:
                kill(conn.connection.driver_connection.info.backend_pid)
            return send(conn, pending, last, commit=commit, **rest)

        batch._send = sending
    try:
        yield fired
    finally:
        batch._send = send
        event.remove(target, when, listener)


def entries(world) -> list[str]:
    response = world.get(f"/patients/{world.patient_id}/list")
    assert response.status_code == 200, response.text
    return sorted(e["id"] for e in response.json()["entries"])


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == PROBLEM


def prescribe(world, key: str | None = None):
    headers = {"If-Match": f'"{world.version()}"'}
    if key is not None:
        headers["Idempotency-Key"] = key
    body = prescribe_body(SIMVASTATIN_28)
    response = world.client.post(
        f"/patients/{world.patient_id}/prescriptions", json=body, headers=auth(GP_TOKEN, **headers)
    )
    return body, response


@pytest.mark.postgres
def test_pooled_connections_whose_backends_were_terminated_are_replaced_before_use(pg):
    engine, admin, database = pg
    world = make_world(engine)
    before = entries(world)
    for _ in range(3):  # every connection of the pool dies, three times over
        assert terminate_all(admin, database) >= 1
        assert entries(world) == before
        body, response = prescribe(world)
        assert response.status_code == 201, response.text
        before = sorted([*before, body["entry_id"]])
        assert world.get("/catalogue/packages?name=simvastatin").status_code == 200
    assert entries(world) == before


@pytest.mark.postgres
@pytest.mark.parametrize("path", ["list", "catalogue"])
def test_a_read_whose_backend_dies_before_its_first_statement_is_retried_once(pg, path):
    engine, admin, _ = pg
    world = make_world(engine)
    url = (
        f"/patients/{world.patient_id}/list"
        if path == "list"
        else "/catalogue/packages?name=simvastatin"
    )
    assert world.get(url).status_code == 200
    request_id = f"retried-read-{uuid.uuid4().hex[:8]}"
    with killed_once(engine, admin, engine.pool, "checkout") as fired:
        response = world.get(url, **{"X-Request-ID": request_id})
    assert fired
    assert response.status_code == 200, response.text
    if path == "list":  # the first attempt's audit record was rolled back with it
        with engine.connect() as conn:
            recorded = conn.execute(
                select(func.count())
                .select_from(audit.audit_event)
                .where(audit.audit_event.c.request_id == request_id)
            ).scalar_one()
        assert recorded == 1


@pytest.mark.postgres
@pytest.mark.parametrize("when", ["checkout", "commit"])
def test_a_write_whose_backend_dies_answers_503_and_its_retry_has_one_effect(pg, when):
    engine, admin, _ = pg
    world = make_world(engine)
    before = entries(world)
    key = f"faults-{uuid.uuid4()}"
    headers = auth(GP_TOKEN, **{"If-Match": f'"{world.version()}"', "Idempotency-Key": key})
    body = prescribe_body(SIMVASTATIN_28)
    path = f"/patients/{world.patient_id}/prescriptions"
    target = engine.pool if when == "checkout" else engine
    with killed_once(engine, admin, target, when) as fired:
        failed = world.client.post(path, json=body, headers=headers)
    assert fired
    assert_unavailable(failed)
    assert entries(world) == before  # nothing of it stayed
    retried = world.client.post(path, json=body, headers=headers)
    assert retried.status_code == 201, retried.text
    again = world.client.post(path, json=body, headers=headers)
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert entries(world) == sorted([*before, body["entry_id"]])


@pytest.mark.postgres
def test_acknowledged_writes_survive_backends_terminated_between_and_during_requests(pg):
    engine, admin, database = pg
    world = make_world(engine)
    acknowledged = set(entries(world))
    path = f"/patients/{world.patient_id}/prescriptions"
    for round_ in range(6):
        body = prescribe_body(SIMVASTATIN_28)
        headers = auth(
            GP_TOKEN,
            **{
                "If-Match": f'"{world.version()}"',
                "Idempotency-Key": f"round-{round_}-{uuid.uuid4()}",
            },
        )
        if round_ % 2:  # between requests: every backend of the pool
            terminate_all(admin, database)
        else:  # during the request: its own backend, then the client retries
            with killed_once(engine, admin, engine.pool, "checkout") as fired:
                assert_unavailable(world.client.post(path, json=body, headers=headers))
            assert fired
        response = world.client.post(path, json=body, headers=headers)
        assert response.status_code == 201, response.text
        acknowledged.add(body["entry_id"])
    engine.dispose()
    fresh = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        assert set(entries(make_world_reading(fresh, world))) == acknowledged
    finally:
        fresh.dispose()


def make_world_reading(engine, world):
    """The same patient, read through another engine (another pool)."""
    app = create_app(ApiSettings.from_env("sqlite://"), engine=engine, clock=world.clock)
    return type(world)(TestClient(app), engine, world.patient_id, world.clock)


def test_a_locked_sqlite_database_answers_503_with_retry_after(tmp_path, monkeypatch):
    monkeypatch.setattr(store_db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "locked.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        world = make_world(engine)
        before = entries(world)
        version = world.version()
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            assert_unavailable(world.get(f"/patients/{world.patient_id}/list"))
            response = world.client.post(
                f"/patients/{world.patient_id}/prescriptions",
                json=prescribe_body(SIMVASTATIN_28),
                headers=auth(GP_TOKEN, **{"If-Match": f'"{version}"'}),
            )
            assert_unavailable(response)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert entries(world) == before
        body, response = prescribe(world)
        assert response.status_code == 201, response.text
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("unable to open database file"), True),
        (sqlite3.OperationalError("no such table: patient"), False),  # a bug: stays a 500
        (psycopg_errors.AdminShutdown("terminating connection"), True),  # 57P01
        (psycopg_errors.SerializationFailure("could not serialize"), True),  # 40001
        (psycopg_errors.UndefinedTable("no such relation"), False),
    ],
)
def test_only_an_unavailable_database_is_a_503_not_a_bug(error, unavailable):
    wrapped = sa_exc.DBAPIError.instance("SELECT 1", None, error, Exception)
    assert store_db.database_unavailable(wrapped) is unavailable
    assert store_db.database_unavailable(sa_exc.IntegrityError("INSERT", None, error)) is False


def test_a_sqlite_database_that_cannot_be_opened_answers_503(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    engine = make_engine(f"sqlite:///{folder / 'gone.db'}")
    try:
        upgrade(engine)
        world = make_world(engine)
        before = entries(world)
        folder.rename(tmp_path / "moved")  # the volume went away
        engine.dispose()  # no connection left open to the old file
        assert_unavailable(world.get(f"/patients/{world.patient_id}/list"))
        assert_unavailable(world.get("/catalogue/packages?name=simvastatin"))
        (tmp_path / "moved").rename(folder)
        assert entries(world) == before
    finally:
        engine.dispose()
