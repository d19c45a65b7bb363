"""What a charting reads (SQLite and PostgreSQL): each administration table once per command,
the ward's configuration parsed once per version per process and still followed when it
changes, and the roll-forward reusing the list state the commands cached."""

from __future__ import annotations

from datetime import timedelta

from interactions.dosage import TimeOfDay
from medloop.domain.ward import WardConfig
from medloop.loop import administration
from medloop.store import state_cache
from tests.loop.administration.helpers import (
    NURSE,
    daily,
    given,
    planned_doses,
    prescribe_with,
    reads_of,
    simvastatin_world,
    statements,
)
from tests.loop.helpers import call


def test_a_charting_reads_each_administration_table_once_and_not_the_ward_again(engine):
    patient_id, _, entry_id, first = simvastatin_world(engine)
    second = planned_doses(engine, patient_id, entry_id)[1]
    administration.chart(engine, patient_id, given(entry_id, first), call(NURSE, at=first.due_at))
    with statements(engine) as seen:
        result = administration.chart(
            engine, patient_id, given(entry_id, second), call(NURSE, at=second.due_at)
        )
    assert result.response["outcome"] == "given"
    for table in ("admission", "schedule", "planned_dose", "administration"):
        assert reads_of(seen, table) == 1, (table, seen)
    # The ward and its configuration version are known: only the version in force is read.
    assert not any("ward.record" in s or "ward_config.record" in s for s in seen), seen


def test_a_new_ward_configuration_applies_to_the_next_charting(engine):
    patient_id, ward_id, entry_id, first = simvastatin_world(engine)
    second = planned_doses(engine, patient_id, entry_id)[1]
    late = timedelta(minutes=90)
    charted = administration.chart(
        engine,
        patient_id,
        given(entry_id, first, at=first.due_at + late),
        call(NURSE, at=first.due_at + late),
    )
    assert charted.response["late"] is True  # the default late window is 60 minutes
    wider = WardConfig(late_after=timedelta(minutes=120), missed_after=timedelta(minutes=180))
    administration.configure_ward(engine, ward_id, wider, call(NURSE, at=first.due_at + late))
    charted = administration.chart(
        engine,
        patient_id,
        given(entry_id, second, at=second.due_at + late),
        call(NURSE, at=second.due_at + late),
    )
    assert charted.response["late"] is False


LEVOTYROKSIN = "090606"


def test_roll_forward_plans_from_the_cached_list_state_without_reading_the_history(
    engine, monkeypatch
):
    # The suite checks every cached state against the tables; here the reads are counted.
    monkeypatch.setattr(state_cache, "VERIFY", False)
    patient_id, _, entry_id, first = simvastatin_world(engine)
    administration.chart(engine, patient_id, given(entry_id, first), call(NURSE, at=first.due_at))
    later = first.due_at + timedelta(hours=1)
    new_entry = prescribe_with(engine, patient_id, LEVOTYROKSIN, daily(TimeOfDay.EVENING), at=later)
    # The prescription planned the new entry's doses in its own transaction.
    assert planned_doses(engine, patient_id, new_entry)
    with statements(engine) as seen:
        planned = administration.roll_forward(engine, later + timedelta(days=1))
    assert planned["schedules"] == 0 and planned["planned"] > 0  # the next day's top-up
    assert reads_of(seen, "list_change") == 0 and reads_of(seen, "entry_version") == 0, seen
