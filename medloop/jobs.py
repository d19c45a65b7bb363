"""Scheduled jobs (APScheduler 3.x), each also runnable once from the CLI
(``medloop jobs run <name>``). Every job is idempotent: run twice at the same moment, the
second run changes nothing.

- ``roll-forward``: keep the next 48 h of planned doses generated for every admitted patient;
- ``mark-missed``: chart as missed the planned doses whose ward window has passed;
- ``flag-multidose-deadlines``: flag multidose periods whose order deadline is near with list
  changes not yet applied (``medloop.loop.multidose.flag_deadlines``);
- ``expire-prescriptions``: dispensable prescriptions past their validity become expired (F),
  one audited command per patient;
- ``refresh-catalogue``: import the newest FEST file in ``MEDLOOP_CATALOGUE_DIR`` when it is
  not the catalogue in force;
- ``fhir-export``: run the FHIR bulk exports (``$export``) waiting, every 5 seconds
  (``medloop.fhir.export``; NDJSON files in ``MEDLOOP_FHIR_EXPORT_DIR``);
- ``audit-checkpoint``: walk the audit chains and write a signed checkpoint of their heads to
  ``MEDLOOP_AUDIT_CHECKPOINT_DIR`` with ``MEDLOOP_AUDIT_SIGNING_KEY_FILE``
  (``medloop.audit_checkpoints``); without both it refuses (``CheckpointNotConfigured``,
  logged as an error on every scheduled run), with a broken link too (``CheckpointRefused``).

One runner at a time: on PostgreSQL each run holds a session-level advisory lock for its job
(another process that finds it taken skips the run); on SQLite only the serving process runs a
scheduler. ``MEDLOOP_SCHEDULER=off`` disables the scheduler.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from medloop.domain.oslo import OSLO
from medloop.loop import administration
from medloop.loop.expire import SCHEDULER, expire_prescriptions, patients_with_expired_prescriptions
from medloop.loop.runner import Call, skipping_unreadable, with_skipped
from medloop.ops import health, logs, metrics
from medloop.settings import current
from medloop.store.db import reader

log = logs.get_logger(__name__)

CATALOGUE_SUFFIXES = (".xml", ".xml.gz", ".zip")


@dataclass(frozen=True)
class JobSettings:
    """What the jobs read from the environment: whether the scheduler runs
    (``MEDLOOP_SCHEDULER``: ``on``/``off``) and where new catalogue files appear
    (``MEDLOOP_CATALOGUE_DIR``)."""

    enabled: bool = True
    catalogue_dir: Path | None = None

    @classmethod
    def from_env(cls) -> JobSettings:
        """From the process's settings (``medloop.settings.JobsSettings``)."""
        found = current().jobs
        return cls(enabled=found.scheduler, catalogue_dir=found.catalogue_dir)


JobFunction = Callable[[Engine, datetime, JobSettings], dict[str, Any]]


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    run: JobFunction
    trigger: dict[str, Any]


def _roll_forward(engine: Engine, now: datetime, settings: JobSettings) -> dict[str, Any]:
    return administration.roll_forward(engine, now)


def _mark_missed(engine: Engine, now: datetime, settings: JobSettings) -> dict[str, Any]:
    return administration.mark_missed(engine, now)


def _flag_multidose_deadlines(
    engine: Engine, now: datetime, settings: JobSettings
) -> dict[str, Any]:
    from medloop.loop.multidose import flag_deadlines

    skipped: list[str] = []
    return with_skipped({"flagged": flag_deadlines(engine, now, skipped=skipped)}, skipped)


def _expire_prescriptions(engine: Engine, now: datetime, settings: JobSettings) -> dict[str, Any]:
    call = Call(actor=SCHEDULER, at=now, reason="prescription validity has passed")
    with reader(engine).connect() as conn:
        patients = patients_with_expired_prescriptions(conn, call)
    expired = 0
    skipped: list[str] = []
    for patient_id in patients:
        result = skipping_unreadable(
            "expire-prescriptions",
            patient_id,
            lambda patient_id=patient_id: expire_prescriptions(engine, patient_id, call),
            skipped,
        )
        if result is not None:
            expired += len(result.response["expired"])
    return with_skipped({"patients": len(patients), "expired": expired}, skipped)


def _refresh_catalogue(engine: Engine, now: datetime, settings: JobSettings) -> dict[str, Any]:
    from fest.errors import FestFormatError, FestImportRejected
    from fest.loader import import_catalogue
    from fest.parser import content_sha256
    from fest.queries import version_in_force

    newest = newest_catalogue_file(settings.catalogue_dir)
    if newest is None:
        return {"imported": False, "file": None}
    with reader(engine).connect() as conn:
        in_force = version_in_force(conn)
    limits = current().fest_limits
    try:
        if in_force is not None and in_force["sha256"] == content_sha256(newest, limits):
            return {"imported": False, "file": newest.name, "version": in_force["id"]}
        result = import_catalogue(engine, newest, limits=limits)
    except (FestFormatError, FestImportRejected) as refusal:
        log.warning("catalogue file not imported", file=newest.name, reason=str(refusal))
        return {"imported": False, "file": newest.name, "refused": str(refusal)}
    return {"imported": not result.unchanged, "file": newest.name, "version": result.version}


def _audit_checkpoint(engine: Engine, now: datetime, settings: JobSettings) -> dict[str, Any]:
    from medloop import audit_checkpoints  # noqa: PLC0415 - cryptography only when needed

    return audit_checkpoints.write_checkpoint(engine, now, audit_checkpoints.config_from_env())


def _fhir_export(engine: Engine, now: datetime, settings: JobSettings) -> dict[str, Any]:
    from medloop.fhir.export import run_pending
    from medloop.settings import Settings

    return run_pending(engine, now, Settings.from_env().export_dir)


def newest_catalogue_file(directory: Path | None) -> Path | None:
    """The most recently modified FEST file (``.xml``, ``.xml.gz``, ``.zip``) in
    ``directory``."""
    if directory is None or not directory.is_dir():
        return None
    files = [p for p in directory.iterdir() if p.is_file() and p.name.endswith(CATALOGUE_SUFFIXES)]
    return max(files, key=lambda p: (p.stat().st_mtime, p.name), default=None)


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "roll-forward",
            "keep the next 48 h of planned doses generated",
            _roll_forward,
            {"trigger": "interval", "minutes": 15},
        ),
        Job(
            "mark-missed",
            "chart as missed the doses whose window has passed",
            _mark_missed,
            {"trigger": "interval", "minutes": 5},
        ),
        Job(
            "flag-multidose-deadlines",
            "flag multidose periods near their order deadline with unapplied list changes",
            _flag_multidose_deadlines,
            {"trigger": "interval", "minutes": 30},
        ),
        Job(
            "expire-prescriptions",
            "expire prescriptions past their validity",
            _expire_prescriptions,
            {"trigger": "cron", "hour": "*", "minute": 7, "timezone": OSLO},
        ),
        Job(
            "refresh-catalogue",
            "import a newer FEST file from MEDLOOP_CATALOGUE_DIR",
            _refresh_catalogue,
            {"trigger": "interval", "minutes": 60},
        ),
        Job(
            "audit-checkpoint",
            "sign the audit chains' heads into MEDLOOP_AUDIT_CHECKPOINT_DIR",
            _audit_checkpoint,
            {"trigger": "interval", "minutes": 60},
        ),
        Job(
            "fhir-export",
            "run the FHIR bulk exports waiting (NDJSON in MEDLOOP_FHIR_EXPORT_DIR)",
            _fhir_export,
            {"trigger": "interval", "seconds": 5},
        ),
    )
}


class UnknownJob(KeyError):
    pass


def run_job(
    engine: Engine, name: str, now: datetime | None = None, settings: JobSettings | None = None
) -> dict[str, Any]:
    """Run job ``name`` once (under its lock on PostgreSQL); ``{"skipped": True}`` when another
    process is running it."""
    job = JOBS.get(name)
    if job is None:
        raise UnknownJob(name)
    moment = now or datetime.now(UTC)
    started = time.perf_counter()
    with _job_lock(engine, name) as acquired:
        if not acquired:
            metrics.job_finished(name, "skipped", time.perf_counter() - started)
            return {"job": name, "skipped": True}
        try:
            result = job.run(engine, moment, settings or JobSettings.from_env())
        except Exception:
            metrics.job_finished(name, "failed", time.perf_counter() - started)
            raise
    # "partial": the job went on past patients whose stored records cannot be read.
    outcome = "partial" if result.get("skipped_unreadable") else "ok"
    metrics.job_finished(name, outcome, time.perf_counter() - started)
    return {"job": name, "at": moment.isoformat(), **result}


def _lock_key(name: str) -> int:
    digest = hashlib.sha256(f"medloop.jobs/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _job_lock(engine: Engine, name: str) -> Iterator[bool]:
    """A session-level PostgreSQL advisory lock for the job, held for the run (always granted
    on SQLite, where one process runs the jobs)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        key = _lock_key(name)
        acquired = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield acquired
        finally:
            if acquired:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


def start_scheduler(engine: Engine, settings: Any = None) -> Any:
    """Start a ``BackgroundScheduler`` running every job on its trigger, or return ``None``
    when disabled (``MEDLOOP_SCHEDULER=off``). ``settings`` may be a ``JobSettings``; anything
    else (e.g. ``medloop.settings.Settings``) leaves the job settings to the environment."""
    from apscheduler.schedulers.background import BackgroundScheduler

    job_settings = settings if isinstance(settings, JobSettings) else JobSettings.from_env()
    if not job_settings.enabled:
        return None
    scheduler = BackgroundScheduler(timezone="UTC")
    for job in JOBS.values():
        scheduler.add_job(
            _scheduled,
            kwargs={"engine": engine, "name": job.name, "settings": job_settings},
            id=job.name,
            name=job.description,
            coalesce=True,
            max_instances=1,
            replace_existing=True,
            **job.trigger,
        )
    run_dir = health.run_dir_from_env()
    if run_dir is not None:
        # /health/ready in every serving process sees that this scheduler is alive.
        health.heartbeat(run_dir)
        scheduler.add_job(
            health.heartbeat,
            "interval",
            seconds=health.HEARTBEAT_EVERY_SECONDS,
            kwargs={"run_dir": run_dir},
            id="heartbeat",
            coalesce=True,
            max_instances=1,
        )
    scheduler.start()
    return scheduler


def _scheduled(engine: Engine, name: str, settings: JobSettings) -> None:
    from medloop.audit_checkpoints import CheckpointNotConfigured, CheckpointRefused  # noqa: PLC0415

    try:
        result = run_job(engine, name, settings=settings)
        # Counts only: a job's result can name patients, which belong in the audit log.
        log.info("job run", job=name, **_counts(result))
    except (CheckpointNotConfigured, CheckpointRefused) as refusal:
        log.error("job refused", job=name, reason=str(refusal))
    except Exception as error:  # noqa: BLE001 - logged and retried on the next trigger
        log.error("job failed", job=name, error=type(error).__name__)


def _counts(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if isinstance(v, int | float | bool)}
