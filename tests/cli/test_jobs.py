"""Scheduled jobs: each one idempotent (a second run at the same moment changes nothing, audit
log included), runnable from the CLI, one runner at a time on PostgreSQL, and a scheduler
that configuration can switch off."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from interactions.dosage import TimeOfDay
from medloop import jobs
from medloop.cli import app
from medloop.domain.codes import PrescriptionStatus
from medloop.loop import administration as wards
from medloop.loop.prescribe import prescribe
from medloop.ops import metrics
from medloop.queries import prescriptions
from medloop.store import administration
from medloop.store import prescriptions as prescriptions_store
from medloop.store.audit import audit_event
from medloop.store.patients import patient
from tests.loop.administration.helpers import (
    ADMITTED,
    NURSE,
    SIMVASTATIN,
    admission_order,
    daily,
    nursing_home,
    prescribe_with,
)
from tests.loop.helpers import another_patient, call, prescription_order
from tests.reference import DEMO, REPO
from tests.store.helpers import intruded

NOW = ADMITTED + timedelta(hours=1)


def audit_count(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_event)).scalar_one())


def run_twice(engine, name, now, settings=None):
    first = jobs.run_job(engine, name, now, settings)
    events = audit_count(engine)
    second = jobs.run_job(engine, name, now, settings)
    assert audit_count(engine) == events, f"the second {name} run wrote to the audit log"
    return first, second


def test_roll_forward_tops_up_48_hours_once(engine):
    patient_id, _ = nursing_home(engine)
    prescribe_with(engine, patient_id, SIMVASTATIN, daily(TimeOfDay.MORNING, TimeOfDay.EVENING))
    # The prescription planned its 48 h in its own transaction: nothing to add an hour later.
    first, second = run_twice(engine, "roll-forward", NOW)
    assert first["planned"] == 0 and second["planned"] == 0
    later, again = run_twice(engine, "roll-forward", NOW + timedelta(hours=12))
    assert later["planned"] == 1 and again["planned"] == 0  # moved on by one evening dose


def test_mark_missed_marks_each_dose_once(engine):
    patient_id, _ = nursing_home(engine)
    prescribe_with(engine, patient_id, SIMVASTATIN, daily(TimeOfDay.MORNING, TimeOfDay.EVENING))
    jobs.run_job(engine, "roll-forward", NOW)
    first, second = run_twice(engine, "mark-missed", NOW + timedelta(days=1))
    assert first["missed"] == 2 and second["missed"] == 0  # 19 Nov 18:00 and 20 Nov 08:00
    with engine.connect() as conn:
        assert administration.count_missed(conn) == 2


def test_expire_prescriptions_is_an_audited_command_run_once(engine):
    patient_id, _ = nursing_home(engine)
    order = prescription_order(SIMVASTATIN, expires=date(2026, 11, 25))
    prescribe(engine, patient_id, order, call(at=ADMITTED), based_on=0)
    first, second = run_twice(
        engine, "expire-prescriptions", datetime(2026, 11, 26, 0, 30, tzinfo=UTC)
    )
    assert first["expired"] == 1 and second["expired"] == 0
    with engine.connect() as conn:
        (expired,) = prescriptions(conn, patient_id)
        event = conn.execute(
            select(audit_event).where(
                audit_event.c.action == "medication-list.expire-prescriptions"
            )
        ).one()
    assert expired.status is PrescriptionStatus.EXPIRED
    assert (event.actor, event.actor_role) == ("0", "system")


def test_expiry_waits_until_the_last_valid_day_has_passed_in_oslo(engine):
    patient_id, _ = nursing_home(engine)
    order = prescription_order(SIMVASTATIN, expires=date(2026, 11, 25))
    prescribe(engine, patient_id, order, call(at=ADMITTED), based_on=0)
    # 23:30 UTC on the 25th is already the 26th in Oslo; 22:30 UTC is still the 25th.
    assert (
        jobs.run_job(engine, "expire-prescriptions", datetime(2026, 11, 25, 22, 30, tzinfo=UTC))[
            "expired"
        ]
        == 0
    )
    assert (
        jobs.run_job(engine, "expire-prescriptions", datetime(2026, 11, 25, 23, 30, tzinfo=UTC))[
            "expired"
        ]
        == 1
    )


def _second_resident(engine, ward_id):
    """Another patient (Ola) admitted to the same ward; returns the patient id."""
    patient_id = another_patient(engine)
    wards.admit(engine, patient_id, admission_order(ward_id), call(NURSE, at=ADMITTED))
    return patient_id


def test_a_resident_whose_record_cannot_be_read_holds_up_no_other_residents_jobs(engine):
    """Roll-forward, mark-missed and expiry go through the residents one by one: one whose
    stored record no longer loads is skipped (named in the job's result by id, and in a
    warning naming the record), and every other resident's doses are still planned and
    charted missed and prescriptions expired. The next run tries the skipped one again."""
    kari, ward_id = nursing_home(engine)
    ola = _second_resident(engine, ward_id)
    for patient_id in (kari, ola):  # a morning dose on a prescription valid to 25 Nov
        order = prescription_order(SIMVASTATIN, expires=date(2026, 11, 25))
        dosage = daily(TimeOfDay.MORNING)
        order = order.model_copy(update={"dosage": dosage, "use": dosage.use})
        prescribe(engine, patient_id, order, call(at=ADMITTED), based_on=0)
    with engine.connect() as conn:
        stored = conn.execute(select(patient.c.record).where(patient.c.id == str(kari))).scalar()
    intruded(engine, patient, patient.c.id == str(kari), record={**stored, "birth_date": "?"})

    later = NOW + timedelta(days=1)
    partial = metrics.JOB_RUNS.labels("roll-forward", "partial")
    runs = partial._value.get()
    planned = jobs.run_job(engine, "roll-forward", later)
    assert partial._value.get() == runs + 1  # an operator's alert can see it
    assert planned["skipped_unreadable"] == [str(kari)]
    assert planned["patients"] == 1 and planned["planned"] >= 1  # Ola's doses
    missed = jobs.run_job(engine, "mark-missed", later)
    assert missed["skipped_unreadable"] == [str(kari)] and missed["missed"] >= 1
    expired = jobs.run_job(engine, "expire-prescriptions", datetime(2026, 11, 26, 1, tzinfo=UTC))
    assert expired["skipped_unreadable"] == [str(kari)] and expired["expired"] == 1
    with engine.connect() as conn:
        assert [p.status for p in prescriptions(conn, ola)].count(PrescriptionStatus.EXPIRED) == 1

    intruded(engine, patient, patient.c.id == str(kari), record=stored)  # mended
    again = jobs.run_job(engine, "expire-prescriptions", datetime(2026, 11, 26, 1, tzinfo=UTC))
    assert "skipped_unreadable" not in again and again["expired"] == 1  # Kari's, now


def test_flag_multidose_deadlines_runs_once(engine):
    nursing_home(engine)
    first, second = run_twice(engine, "flag-multidose-deadlines", NOW)
    assert second["flagged"] == 0


def test_refresh_catalogue_imports_a_new_file_once(engine, tmp_path):
    shutil.copy(DEMO, tmp_path / "fest-2026-11-02.xml")
    settings = jobs.JobSettings(catalogue_dir=tmp_path)
    first, second = run_twice(engine, "refresh-catalogue", NOW, settings)
    assert first["imported"] is True and first["version"] == 1
    assert second["imported"] is False and second["version"] == 1
    assert jobs.run_job(engine, "refresh-catalogue", NOW, jobs.JobSettings())["imported"] is False


def test_refresh_catalogue_refuses_a_file_beyond_the_fest_limits_instead_of_failing(
    engine, tmp_path, monkeypatch
):
    """Even the content hash that tells a new file from the one in force reads within the
    FEST limits (``MEDLOOP_FEST_MAX_*``); a file beyond them is refused and reported."""
    shutil.copy(DEMO, tmp_path / "fest-2026-11-02.xml")
    settings = jobs.JobSettings(catalogue_dir=tmp_path)
    assert jobs.run_job(engine, "refresh-catalogue", NOW, settings)["imported"] is True
    monkeypatch.setenv("MEDLOOP_FEST_MAX_XML_BYTES", "1000")
    refused = jobs.run_job(engine, "refresh-catalogue", NOW, settings)
    assert refused["imported"] is False
    assert "larger than 1000 bytes" in refused["refused"]


def test_a_job_another_process_is_running_is_skipped_on_postgresql(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs the jobs in the one serving process, without a lock")
    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": jobs._lock_key("roll-forward")})
        assert jobs.run_job(engine, "roll-forward", NOW)["skipped"] is True
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": jobs._lock_key("roll-forward")})
    assert "skipped" not in jobs.run_job(engine, "roll-forward", NOW)


def test_the_scheduler_starts_every_job_and_configuration_can_switch_it_off(engine, monkeypatch):
    monkeypatch.setenv("MEDLOOP_SCHEDULER", "off")
    assert jobs.start_scheduler(engine, None) is None
    monkeypatch.setenv("MEDLOOP_SCHEDULER", "on")
    scheduler = jobs.start_scheduler(engine, None)
    try:
        assert sorted(job.id for job in scheduler.get_jobs()) == sorted(jobs.JOBS)
    finally:
        scheduler.shutdown(wait=False)


def test_jobs_run_from_the_command_line(sqlite_url):
    runner = CliRunner()
    listed = runner.invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0 and "roll-forward" in listed.output
    ran = runner.invoke(
        app,
        ["jobs", "run", "mark-missed", "--db", sqlite_url, "--now", "2026-11-20T08:00:00+01:00"],
    )
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output) == {
        "job": "mark-missed",
        "at": "2026-11-20T08:00:00+01:00",
        "missed": 0,
    }
    unknown = runner.invoke(app, ["jobs", "run", "tidy-up", "--db", sqlite_url])
    assert unknown.exit_code == 1
    for moment, said in (
        ("notatime", "--now must be an ISO 8601 moment"),  # was a ValueError traceback
        ("2026-13-01T00:00+01:00", "month must be in 1..12"),
        ("2026-11-20T08:00:00", "--now needs a UTC offset"),
    ):
        bad = runner.invoke(
            app, ["jobs", "run", "mark-missed", "--db", sqlite_url, "--now", moment]
        )
        assert bad.exit_code == 1 and said in bad.output, bad.output
        assert "Traceback" not in bad.output


def test_the_jobs_examples_in_the_readme_run(sqlite_url):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    examples = re.findall(r"^\.venv/bin/medloop (jobs .*)$", readme, re.M)
    assert len(examples) == 2
    for example in examples:
        args = shlex.split(example)
        if args[1] == "run":
            args += ["--db", sqlite_url]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (example, result.output)


def test_an_unreadable_prescription_version_stops_no_other_patients_expiry(engine):
    """The expiry job lists the patients with a prescription past its last valid day from the
    stored versions: a version that no longer loads lists its patient (whose command then
    names it, and is skipped) instead of failing the listing for everyone."""
    kari, ward_id = nursing_home(engine)
    ola = _second_resident(engine, ward_id)
    for patient_id in (kari, ola):
        order = prescription_order(SIMVASTATIN, expires=date(2026, 11, 25))
        prescribe(engine, patient_id, order, call(at=ADMITTED), based_on=0)
    version = prescriptions_store.prescription_version
    rx = prescriptions_store.prescription
    with engine.connect() as conn:
        (kari_rx,) = conn.execute(select(rx.c.id).where(rx.c.patient_id == str(kari))).scalars()
    intruded(engine, version, version.c.prescription_id == kari_rx, record={"prescription": 7})
    expired = jobs.run_job(engine, "expire-prescriptions", datetime(2026, 11, 26, 1, tzinfo=UTC))
    assert expired["skipped_unreadable"] == [str(kari)] and expired["expired"] == 1
    assert expired["patients"] == 2


def test_a_resident_whose_admission_cannot_be_read_holds_up_no_other_residents_plan(engine):
    """Roll-forward and mark-missed list the residents from their admissions: an admission
    that no longer loads leaves its resident out (skipped, named in the result), not the
    whole nursing home."""
    kari, ward_id = nursing_home(engine)
    ola = _second_resident(engine, ward_id)
    for patient_id in (kari, ola):
        prescribe_with(engine, patient_id, SIMVASTATIN, daily(TimeOfDay.MORNING))
    stay = administration.admission
    intruded(engine, stay, stay.c.patient_id == str(kari), record={"ward_id": "nowhere"})
    later = NOW + timedelta(days=1)
    planned = jobs.run_job(engine, "roll-forward", later)
    assert planned["skipped_unreadable"] == [str(kari)] and planned["patients"] == 1
    missed = jobs.run_job(engine, "mark-missed", later)
    assert missed["skipped_unreadable"] == [str(kari)] and missed["missed"] >= 1


def test_a_ward_whose_configuration_cannot_be_read_holds_up_no_other_wards_plan(engine):
    """A ward whose stored configuration no longer loads leaves out its own residents only:
    the residents of the other wards are still planned."""
    kari, ward_id = nursing_home(engine)
    other_ward = uuid.uuid4()
    wards.create_ward(
        engine, wards.WardOrder(ward_id=other_ward, name="Avdeling 3"), call(NURSE, at=ADMITTED)
    )
    ola = _second_resident(engine, other_ward)
    for patient_id in (kari, ola):
        prescribe_with(engine, patient_id, SIMVASTATIN, daily(TimeOfDay.MORNING))
    config = administration.ward_config
    intruded(engine, config, config.c.ward_id == str(ward_id), record={"missed_after": "soon"})
    planned = jobs.run_job(engine, "roll-forward", NOW + timedelta(days=1))
    assert planned["skipped_unreadable"] == [str(kari)]
    assert planned["patients"] == 1 and planned["planned"] >= 1  # Ola's, on the other ward
    missed = jobs.run_job(engine, "mark-missed", NOW + timedelta(days=1))
    assert missed["skipped_unreadable"] == [str(kari)] and missed["missed"] >= 1
