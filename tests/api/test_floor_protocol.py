"""The floor of bench/floor.py (issue #20) stays honest: for the same requests on copies of the
same database it sends PostgreSQL medloop's round trips (libpq's protocol trace) and answers
with medloop's bodies, byte for byte."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from medloop.api.app import create_app
from medloop.api.config import DEV_PUBLIC_KEY, ApiSettings
from medloop.demo import national_id
from medloop.domain.patient import NationalId, Patient
from medloop.loop.patients import register_patient
from medloop.loop.runner import Call
from medloop.settings import DEFAULT_AUDIENCE, DEV_ISSUER
from medloop.store import state_cache
from medloop.store.db import make_engine, normalise_url
from medloop.store.migrate import upgrade
from tests.api.helpers import GP_TOKEN
from tests.loop.helpers import GP, NOW, TODAY, demo_world
from tests.pg_protocol import _parse, round_trips

FLOOR_PATH = Path(__file__).resolve().parents[2] / "bench" / "floor.py"


def _floor_module():
    if "floor" not in sys.modules:
        spec = importlib.util.spec_from_file_location("floor", FLOOR_PATH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["floor"] = module
        spec.loader.exec_module(module)
    return sys.modules["floor"]


class Ticking:
    """A clock one second further at each call: the two servers see the same moments."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return NOW + timedelta(seconds=self.calls)


def _register(engine, n: int) -> tuple[str, str]:
    birth = date(1950 + n, 3, 1 + n)
    nid = national_id(birth, 17 + n)
    patient = Patient(
        id=uuid.uuid4(),
        national_id=NationalId(nid),
        given_name="Golv",
        family_name=f"Pasient {n}",
        birth_date=birth,
    )
    register_patient(engine, patient, Call(actor=GP, at=NOW))
    return str(patient.id), nid


def _medloop(engine, clock) -> TestClient:
    return TestClient(create_app(ApiSettings.from_env("sqlite://"), engine=engine, clock=clock))


def _scenario(patient_id: str) -> list[tuple[str, str, dict | None, dict[str, str]]]:
    """Read, prescribe, read, prescribe, read: the same ids on both servers."""
    floor = _floor_module()
    steps: list[tuple[str, str, dict | None, dict[str, str]]] = []
    for v in range(2):
        steps.append(("GET", f"/patients/{patient_id}/list", None, {}))
        body = {
            "entry_id": str(uuid.uuid4()),
            "drug": {"varenr": floor.ROTATION[v]},
            "use": "regular",
            "start": TODAY.isoformat(),
            "terms": {"prescription_id": str(uuid.uuid4()), "quantity": {"packages": 1}},
        }
        headers = {"If-Match": f'"{v}"', "Idempotency-Key": str(uuid.uuid4())}
        steps.append(("POST", f"/patients/{patient_id}/prescriptions", body, headers))
    steps.append(("GET", f"/patients/{patient_id}/list", None, {}))
    return steps


def _send(client: TestClient, step) -> tuple:
    method, path, body, headers = step
    sent = {"Authorization": f"Bearer {GP_TOKEN}", **headers}
    response = client.request(method, path, json=body, headers=sent)
    return (
        response.status_code,
        response.content,
        response.headers.get("etag"),
        response.headers.get("location"),
        response.headers.get("cache-control"),
        response.headers.get("x-content-type-options"),
    )


def _trace_floor(client: TestClient, floor_app, steps) -> tuple[list, list[list[str]]]:
    """The floor's answers to ``steps`` and its one connection's round trips (parsed as
    ``tests.pg_protocol`` parses medloop's)."""
    import tempfile

    from psycopg.pq import Trace

    conn = floor_app.connections[0]

    async def prepared() -> dict[str, str]:
        cursor = await conn.execute("SELECT name, statement FROM pg_prepared_statements")
        return dict(await cursor.fetchall())

    pgconn = conn.pgconn
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
        try:
            answers = [_send(client, step) for step in steps]
        finally:
            pgconn.untrace()
        trace.seek(0)
        lines = trace.read().splitlines()
    # pg_prepared_statements in the connection's own (idle) state: autocommit for the query.
    names = client.portal.call(_autocommit_prepared, conn, prepared)
    return answers, _parse(lines, {k: v.split()[0].upper() for k, v in names.items()})


async def _autocommit_prepared(conn, prepared):
    await conn.set_autocommit(True)
    try:
        return await prepared()
    finally:
        await conn.set_autocommit(False)


@pytest.mark.postgres
def test_the_floor_sends_medloops_round_trips_and_answers_with_its_bodies(
    postgres_url, monkeypatch
):
    monkeypatch.setattr(state_cache, "VERIFY", False)  # its check reads would be counted
    floor = _floor_module()
    engine = make_engine(postgres_url)
    admin = create_engine(normalise_url(postgres_url), isolation_level="AUTOCOMMIT")
    original = make_url(postgres_url).database
    copy = f"{original}_floor"
    copy_url = make_url(normalise_url(postgres_url)).set(database=copy)
    try:
        upgrade(engine)
        warm_patient = demo_world(engine)
        calibration_patient, calibration_nid = _register(engine, 1)
        compared_patient, _ = _register(engine, 2)
        with _medloop(engine, Ticking()) as client:
            # The first command builds the catalogue knowledge: not what calibration records.
            warm = client.post(
                f"/patients/{warm_patient}/prescriptions",
                json={
                    "entry_id": str(uuid.uuid4()),
                    "drug": {"varenr": floor.ROTATION[0]},
                    "use": "regular",
                    "start": TODAY.isoformat(),
                    "terms": {"prescription_id": str(uuid.uuid4()), "quantity": {"packages": 1}},
                },
                headers={"Authorization": f"Bearer {GP_TOKEN}", "If-Match": '"0"'},
            )
            assert warm.status_code == 201, warm.text
            calibration = floor.calibrate(
                client,
                calibration_patient,
                calibration_nid,
                GP_TOKEN,
                (DEV_PUBLIC_KEY.read_text(), DEV_ISSUER, DEFAULT_AUDIENCE),
                TODAY,
            )
        engine.dispose()
        with admin.connect() as conn:  # the same database twice: one for each server
            conn.execute(text(f'CREATE DATABASE "{copy}" TEMPLATE "{original}"'))
        steps = _scenario(compared_patient)

        engine = make_engine(postgres_url)
        with _medloop(engine, Ticking()) as client:
            assert _send(client, steps[0])[0] == 200  # medloop caches the patient's state
            with round_trips(engine) as ours:
                expected = [_send(client, step) for step in steps[1:]]
        engine.dispose()

        floor_app = floor.Floor(
            calibration,
            copy_url.set(drivername="postgresql").render_as_string(hide_password=False),
            pool_size=1,
            clock=Ticking(),
        )
        with TestClient(floor_app) as client:
            assert _send(client, steps[0])[0] == 200
            answers, theirs = _trace_floor(client, floor_app, steps[1:])
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)'))
        admin.dispose()

    assert [a[0] for a in expected] == [201, 200, 201, 200]
    assert answers == expected  # status, body bytes, ETag and Location alike
    assert ours == theirs
    # After the first prescribe (whose statements were prepared on the way: empty trips), the
    # steady state: a list read is two round trips (BEGIN with the patient; the audit record
    # and the COMMIT in one pipeline), a prescribe three (BEGIN with the idempotency claim; the
    # revision; the appends, the audit record and the COMMIT in one).
    read = [["BEGIN", "SELECT"], ["INSERT", "COMMIT"]]
    second = ours[-5:-2]
    assert ours[-2:] == ours[-7:-5] == read
    assert second[:2] == [["BEGIN", "INSERT"], ["UPDATE"]]
    assert second[2][-3:] == ["UPDATE", "INSERT", "COMMIT"] and len(second[2]) >= 6


def test_the_floor_puts_a_requests_values_into_recorded_text_longest_first():
    floor = _floor_module()
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    values = floor.Substitution({"ab": "X", "abc": "Y"})
    values.moments = {moment: moment + timedelta(seconds=1)}
    assert values.text("abc ab abd") == "Y X Xd"
    params = values.value({"a": "abc", "at": moment, "n": 3, "rows": [floor.JsonText('"ab"')]})
    assert params["a"] == "Y" and params["n"] == 3
    assert params["at"] == moment + timedelta(seconds=1)
    assert params["rows"][0].obj == '"X"'
