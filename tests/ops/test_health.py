"""/health/live and /health/ready: what a load balancer or an orchestrator asks."""

from __future__ import annotations

import os
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from medloop.api.app import create_app
from medloop.api.config import ApiSettings
from medloop.ops import health


def test_live_answers_without_asking_the_database(world):
    world.engine.dispose()
    response = world.client.get("/health/live")
    assert response.status_code == 200 and response.json() == {"status": "pass"}


def test_ready_passes_with_the_schema_at_head_and_the_catalogue_loaded(world):
    response = world.client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "pass"
    assert body["checks"]["database"]["schema"] == health.migration_head()
    assert body["checks"]["catalogue"]["status"] == "pass"
    assert body["checks"]["catalogue"]["version"] >= 1


def test_ready_fails_without_a_catalogue(engine):
    client = TestClient(create_app(ApiSettings.from_env("sqlite://"), engine=engine))
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["catalogue"] == {
        "status": "fail",
        "reason": "no FEST catalogue imported",
    }


def test_ready_fails_when_the_schema_is_not_at_the_migration_head(world):
    with world.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0007'"))
    response = world.client.get("/health/ready")
    assert response.status_code == 503
    database = response.json()["checks"]["database"]
    assert database["status"] == "fail" and database["schema"] == "0007"


def test_ready_fails_when_the_database_is_unreachable(tmp_path):
    from medloop.store.db import make_engine
    from medloop.store.migrate import upgrade

    path = tmp_path / "gone.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    client = TestClient(create_app(ApiSettings.from_env("sqlite://"), engine=engine))
    engine.dispose()
    path.unlink()
    os.mkdir(path)  # a folder where the database file was: it cannot be opened
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["status"] == "fail"


@pytest.mark.parametrize(
    ("age_seconds", "status"), [(1, "pass"), (health.HEARTBEAT_STALE + 30, "fail")]
)
def test_ready_follows_the_scheduler_heartbeat(tmp_path, monkeypatch, age_seconds, status):
    monkeypatch.setenv("MEDLOOP_SCHEDULER", "on")
    health.heartbeat(tmp_path)
    beat = tmp_path / health.HEARTBEAT_FILE
    then = time.time() - age_seconds
    os.utime(beat, (then, then))
    assert health.scheduler_state(tmp_path)["status"] == status
    beat.unlink()
    assert health.scheduler_state(tmp_path)["status"] == "fail"


def test_scheduler_switched_off_is_information_not_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLOOP_SCHEDULER", "off")
    assert health.scheduler_state(tmp_path) == {"status": "info", "enabled": False}


def test_the_scheduler_writes_its_heartbeat_into_the_run_folder(tmp_path, monkeypatch, sqlite_url):
    from medloop.jobs import start_scheduler
    from medloop.store.db import make_engine

    monkeypatch.setenv("MEDLOOP_SCHEDULER", "on")
    monkeypatch.setenv("MEDLOOP_RUN_DIR", str(tmp_path))
    scheduler = start_scheduler(make_engine(sqlite_url))
    try:
        assert health.scheduler_state(tmp_path)["status"] == "pass"
        assert scheduler.get_job("heartbeat") is not None
    finally:
        scheduler.shutdown(wait=False)


def test_a_server_run_in_process_leaves_no_run_folder_or_variable_behind(monkeypatch, sqlite_url):
    import uvicorn
    from typer.testing import CliRunner

    from medloop.cli import app

    seen = []

    def served(*_args, **_kwargs):
        from medloop.settings import current

        seen.append(current().ops.run_dir)

    monkeypatch.setattr(uvicorn, "run", served)
    monkeypatch.setenv("MEDLOOP_ALLOW_DEV_KEYS", "1")
    monkeypatch.setenv("MEDLOOP_SCHEDULER", "off")
    monkeypatch.delenv("MEDLOOP_RUN_DIR", raising=False)
    result = CliRunner().invoke(app, ["serve", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert seen and seen[0] is not None  # the server had its run folder in its settings ...
    assert "MEDLOOP_RUN_DIR" not in os.environ  # ... never in the environment ...
    assert not os.path.exists(seen[0])  # ... and took it away with it
