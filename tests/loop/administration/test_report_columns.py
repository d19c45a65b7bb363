"""The charting's report columns (migration 0017): the store writes ``late``, ``scanned``,
``scan_skipped`` and ``reason`` from the record the charting decision made, the migration fills
them from the JSON records of chartings written before it (and drops them again on downgrade),
and the audit log's row digests still verify afterwards (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import inspect, select

from interactions.dosage import TimeOfDay
from medloop.domain.administration import ChartRequest, Outcome, ScanSkipReason
from medloop.loop import administration
from medloop.store import audit
from medloop.store.administration import administration as charting
from medloop.store.migrate import alembic_config, upgrade
from tests.loop.administration.helpers import (
    NURSE,
    PLANNED_AT,
    SIMVASTATIN,
    call,
    daily,
    given,
    nursing_home,
    planned_doses,
    prescribe_with,
)

COLUMNS = (charting.c.late, charting.c.scanned, charting.c.scan_skipped, charting.c.reason)


def _columns(engine) -> dict[str, tuple]:
    with engine.connect() as conn:
        return {
            r.id: (r.outcome, *r[2:])
            for r in conn.execute(select(charting.c.id, charting.c.outcome, *COLUMNS))
        }


def _world(engine) -> dict[str, tuple]:
    """Three chartings of the resident's first simvastatin doses (morning and evening): given
    late with a scan, given without a scan (a multidose bag), refused with a reason; what each
    should hold."""
    patient_id, _ = nursing_home(engine)
    twice = daily(TimeOfDay.MORNING, TimeOfDay.EVENING)
    entry_id = prescribe_with(engine, patient_id, SIMVASTATIN, twice)
    administration.roll_forward(engine, PLANNED_AT)
    first, second, third = planned_doses(engine, patient_id, entry_id)[:3]
    two_hours_on = first.due_at + timedelta(hours=2)
    late = given(entry_id, first, at=two_hours_on)
    administration.chart(engine, patient_id, late, call(NURSE, at=two_hours_on))
    bag = given(entry_id, second, skipped=ScanSkipReason.MULTIDOSE_BAG)
    administration.chart(engine, patient_id, bag, call(NURSE, at=second.due_at))
    refused = ChartRequest(
        administration_id=uuid.uuid4(),
        entry_id=entry_id,
        planned_dose_id=third.id,
        outcome=Outcome.REFUSED,
        reason="Vil ikke",
    )
    administration.chart(engine, patient_id, refused, call(NURSE, at=third.due_at))
    return {
        str(late.administration_id): ("given", True, True, None, None),
        str(bag.administration_id): ("given", False, False, "multidose-bag", None),
        str(refused.administration_id): ("refused", False, False, None, "Vil ikke"),
    }


def test_the_charting_command_writes_the_report_columns(engine):
    expected = _world(engine)
    assert _columns(engine) == expected


def test_migration_0017_fills_the_columns_of_earlier_chartings_and_goes_down_again(db_url):
    from medloop.store.db import make_engine

    engine = make_engine(db_url)
    upgrade(engine)
    expected = _world(engine)
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0020")  # the revision before 0017
    with engine.connect() as conn:
        names = {c["name"] for c in inspect(conn).get_columns(charting.name)}
    assert not names & {"late", "scanned", "scan_skipped", "reason"}

    upgrade(engine)  # 0017 again: filled from the records

    assert _columns(engine) == expected
    with engine.connect() as conn:
        assert audit.verify(conn).ok
    with engine.begin() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(charting.update().values(late=False))
    engine.dispose()


def test_audit_verify_reports_a_report_column_changed_behind_the_records_back(engine):
    expected = _world(engine)
    refused = next(i for i, row in expected.items() if row[0] == "refused")
    with engine.connect() as conn:
        assert audit.verify(conn).ok
    # An intruder past the append-only trigger rewrites why the dose was not given: the
    # column is left out of the row digest, so verify compares it with the attested record.
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER administration_refuse_update")
        else:
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(charting.update().where(charting.c.id == refused).values(reason="Sover"))
    with engine.connect() as conn:
        result = audit.verify(conn)
    assert not result.ok
    assert [(p.problem, p.row) for p in result.problems] == [
        ("projection", f"administration {refused}")
    ]
