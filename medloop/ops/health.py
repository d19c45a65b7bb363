"""Health of a serving process, for load balancers and orchestrators.

``live``: the process answers (nothing else is asked: a liveness probe that reads the database
would restart every server when the database blinks). ``ready``: this process can serve —

- ``database``: reachable, and its schema at the migration head this code expects;
- ``catalogue``: a FEST catalogue version is in force and its knowledge is loaded in this process
  (the first ready probe loads it, so a new worker is warm before it takes traffic);
- ``scheduler``: whether the scheduled jobs are enabled and, when ``medloop serve`` runs them, that
  its scheduler is alive (a heartbeat file in the run folder, at most ``HEARTBEAT_STALE`` old).

The answer follows the shape of the IETF "Health Check Response Format" draft: ``status``
``pass``/``fail`` and one object per check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from fest.queries import version_in_force
from medloop.settings import current
from medloop.store.db import reader

HEARTBEAT_FILE = "scheduler.heartbeat"
HEARTBEAT_EVERY_SECONDS = 15
HEARTBEAT_STALE = 60.0


@dataclass(frozen=True)
class Readiness:
    ok: bool
    checks: dict[str, dict[str, Any]]

    def body(self) -> dict[str, Any]:
        return {"status": "pass" if self.ok else "fail", "checks": self.checks}


@cache
def migration_head() -> str | None:
    from alembic.script import ScriptDirectory

    from medloop.store.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def ready(engine: Engine, load_catalogue: Any, run_dir: Path | None) -> Readiness:
    """Check the database, the catalogue and the scheduler; ``load_catalogue(conn)`` builds (or
    finds) this process's knowledge of the catalogue in force."""
    checks: dict[str, dict[str, Any]] = {}
    try:
        with reader(engine).connect() as conn:
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            head = migration_head()
            checks["database"] = {
                "status": "pass" if current == head else "fail",
                "schema": current,
                "expected": head,
            }
            version = version_in_force(conn)
            if version is None:
                checks["catalogue"] = {"status": "fail", "reason": "no FEST catalogue imported"}
            else:
                started = time.perf_counter()
                load_catalogue(conn)
                checks["catalogue"] = {
                    "status": "pass",
                    "version": version["id"],
                    "hentet_dato": version["hentet_dato"],
                    "load_seconds": round(time.perf_counter() - started, 3),
                }
    except Exception as error:  # noqa: BLE001 - any failure to reach the database is "fail"
        checks.setdefault(
            "database", {"status": "fail", "reason": f"not reachable ({type(error).__name__})"}
        )
        checks.setdefault("catalogue", {"status": "fail", "reason": "database not reachable"})
    checks["scheduler"] = scheduler_state(run_dir)
    ok = all(check["status"] in ("pass", "info") for check in checks.values())
    return Readiness(ok=ok, checks=checks)


def scheduler_state(run_dir: Path | None) -> dict[str, Any]:
    """``pass`` with a fresh heartbeat, ``fail`` with a stale one, ``info`` when the jobs are
    off or this process was not started by ``medloop serve`` (no run folder)."""
    if not current().jobs.scheduler:
        return {"status": "info", "enabled": False}
    if run_dir is None:
        return {"status": "info", "enabled": True, "reason": "not started by medloop serve"}
    beat = run_dir / HEARTBEAT_FILE
    try:
        age = time.time() - beat.stat().st_mtime
    except FileNotFoundError:
        return {"status": "fail", "enabled": True, "reason": "no scheduler heartbeat"}
    return {
        "status": "pass" if age <= HEARTBEAT_STALE else "fail",
        "enabled": True,
        "heartbeat_age_seconds": round(age, 1),
    }


def heartbeat(run_dir: Path) -> None:
    """Called by the scheduler every ``HEARTBEAT_EVERY_SECONDS``: it is alive."""
    path = run_dir / HEARTBEAT_FILE
    path.write_text(datetime.now(UTC).isoformat())


def run_dir_from_env() -> Path | None:
    """The run folder of the process's settings (``MEDLOOP_RUN_DIR``, set by ``medloop serve``)."""
    return current().ops.run_dir
