"""A primary switch, as Patroni does it: the app names every cluster member in one URL with
``target_session_attrs=read-write``; when the primary dies, requests answer 503 with
Retry-After (never 500), and once the replica is promoted the app recovers by itself, with every
write it acknowledged before the switch."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from medloop.api.app import create_app
from medloop.api.config import ApiSettings
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.api.helpers import GP_TOKEN, auth, prescribe_body
from tests.loop.helpers import ATORVASTATIN, SIMVASTATIN_28, demo_world

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pg-replica"

pytestmark = pytest.mark.postgres


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cluster():
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
        pytest.skip("no PostgreSQL server binaries to build a cluster from")
    # Not under pytest's tmp_path: the postgres user must reach it, and a socket path is short.
    parent = Path(tempfile.mkdtemp(prefix="medloop-fo-", dir="/tmp"))
    parent.chmod(0o755)
    folder = parent / "pair"
    ports = _free_port(), _free_port()
    subprocess.run(
        [str(SCRIPT), "start", str(folder), *map(str, ports)], check=True, capture_output=True
    )
    try:
        yield folder, ports
    finally:
        subprocess.run([str(SCRIPT), "stop", str(folder)], check=False, capture_output=True)
        parent.rmdir()


def _replica_caught_up(primary_port: int, replica_port: int) -> None:
    primary = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{primary_port}/postgres")
    replica = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{replica_port}/postgres")
    with primary.connect() as conn:
        target = conn.execute(text("SELECT pg_current_wal_lsn()")).scalar()
    try:
        for _ in range(200):
            with replica.connect() as conn:
                done = conn.execute(
                    text("SELECT pg_last_wal_replay_lsn() >= CAST(:t AS pg_lsn)"), {"t": target}
                ).scalar()
            if done:
                return
            time.sleep(0.05)
        raise AssertionError("the replica did not catch up")
    finally:
        primary.dispose()
        replica.dispose()


def test_the_app_answers_503_during_a_failover_and_recovers_with_every_acknowledged_write(
    cluster,
):
    folder, (primary_port, replica_port) = cluster
    url = (
        f"postgresql+psycopg://postgres@/postgres?host=127.0.0.1:{primary_port}"
        f"&host=127.0.0.1:{replica_port}&target_session_attrs=read-write"
    )
    engine = make_engine(url)
    upgrade(engine)
    patient_id = demo_world(engine)
    client = TestClient(create_app(ApiSettings.from_env("sqlite://"), engine=engine))
    path = f"/patients/{patient_id}/list"
    etag = client.get(path, headers=auth(GP_TOKEN)).headers["ETag"]
    acknowledged = []
    for varenr in (SIMVASTATIN_28, ATORVASTATIN):
        body = prescribe_body(varenr)
        response = client.post(
            f"/patients/{patient_id}/prescriptions",
            json=body,
            headers=auth(GP_TOKEN, **{"If-Match": etag}),
        )
        assert response.status_code == 201, response.text
        etag = response.headers["ETag"]
        acknowledged.append(body["entry_id"])
    # Synchronous replication in Patroni (synchronous_mode) waits for this before acknowledging.
    _replica_caught_up(primary_port, replica_port)

    subprocess.run([str(SCRIPT), "fail-primary", str(folder)], check=True)
    during = client.get(path, headers=auth(GP_TOKEN))
    assert during.status_code == 503, during.text
    assert during.headers["content-type"] == "application/problem+json"
    assert int(during.headers["Retry-After"]) >= 1

    subprocess.run([str(SCRIPT), "promote-replica", str(folder)], check=True)
    recovered = None
    for _ in range(50):
        recovered = client.get(path, headers=auth(GP_TOKEN))
        if recovered.status_code != 503:
            break
        time.sleep(0.1)
    assert recovered.status_code == 200, recovered.text
    assert recovered.headers["ETag"] == etag
    listed = {entry["id"] for entry in recovered.json()["entries"]}
    assert set(acknowledged) <= listed
    # And the new primary takes writes.
    again = client.post(
        f"/patients/{patient_id}/prescriptions",
        json=prescribe_body(SIMVASTATIN_28),
        headers=auth(GP_TOKEN, **{"If-Match": etag}),
    )
    assert again.status_code in (201, 409), again.text  # 409: an interaction to override
    engine.dispose()
