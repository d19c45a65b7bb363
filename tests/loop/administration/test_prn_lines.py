"""The ward chart's PRN lines read the residents' as-needed entries in one query
(``store.list_changes.current_entries_for_use``) instead of replaying each resident's list: the
same ``PrnLine``s as the lists replayed from their history give — held, discontinued, not yet
started and re-dosed entries, an entry changed to and from as-needed, doses given in the window
— and a number of statements that does not grow with the residents (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, timedelta

import pytest
from sqlalchemy import event

from interactions.dosage import Quantity, TimeOfDay, Use
from medloop import demo
from medloop.domain.administration import (
    PRN_WINDOW_MAX,
    ChartRequest,
    Intake,
    Outcome,
    is_as_needed,
    prn_status,
)
from medloop.domain.codes import DiscontinuationReason
from medloop.domain.entry import Discontinuation
from medloop.domain.oslo import local_date
from medloop.domain.patient import Patient
from medloop.loop import administration
from medloop.loop.administration.queries import PrnLine, _prn_lines
from medloop.loop.change import change_dosage, discontinue, hold
from medloop.loop.patients import register_patient
from medloop.store import administration as store
from medloop.store.db import make_engine
from medloop.store.list_changes import current_entries_for_use, list_version
from medloop.store.migrate import upgrade
from medloop.store.patient_state import load_patient_state
from medloop.store.patients import read_patient
from tests.loop.administration.helpers import (
    ADMITTED,
    GLARGIN,
    NURSE,
    OKSYKODON,
    OKSYKODON_EAN,
    SECOND_NURSE,
    SIMVASTATIN,
    admission_order,
    as_needed,
    daily,
    nursing_home,
    prescribe_with,
)
from tests.loop.helpers import GP, call

ATORVASTATIN = "090487"
NOW = ADMITTED + timedelta(hours=3)


def prn_given(entry_id, at) -> ChartRequest:
    return ChartRequest(
        administration_id=uuid.uuid4(),
        entry_id=entry_id,
        outcome=Outcome.GIVEN,
        given_at=at,
        dose=Quantity(value=1, unit="kapsel"),
        scan=OKSYKODON_EAN,
    )


def _version(engine, patient_id) -> int:
    with engine.connect() as conn:
        return list_version(conn, patient_id)


@pytest.fixture(scope="module")
def prn_ward(module_db_url: str):
    """A ward of four residents: (engine, ward id, resident ids).

    1. oksykodon as needed (one dose given in the window), simvastatin regular, insulin as
       needed from tomorrow;
    2. oksykodon as needed then held, simvastatin as needed re-dosed, insulin regular changed to
       as needed;
    3. oksykodon as needed then discontinued, atorvastatin as needed changed to regular;
    4. nothing as needed."""
    engine = make_engine(module_db_url)
    upgrade(engine)
    first, ward_id = nursing_home(engine)
    residents = [first]
    for n in range(3):
        patient = Patient(
            id=uuid.uuid4(),
            national_id=demo.national_id(date(1931, 3, 1 + n), 300 + 37 * n),
            given_name=f"Beboer{n}",
            family_name="Test",
            birth_date=date(1931, 3, 1 + n),
        )
        register_patient(engine, patient, call(GP, at=ADMITTED - timedelta(hours=1)))
        administration.admit(engine, patient.id, admission_order(ward_id), call(NURSE, at=ADMITTED))
        residents.append(patient.id)
    one, two, three, _ = residents
    later = ADMITTED + timedelta(minutes=30)

    oksykodon = prescribe_with(engine, one, OKSYKODON, as_needed(max_24h=2, min_hours=4))
    prescribe_with(engine, one, SIMVASTATIN, daily(TimeOfDay.MORNING))
    prescribe_with(
        engine, one, GLARGIN, as_needed(unit="IE"), start=ADMITTED.date() + timedelta(days=1)
    )
    given_at = ADMITTED + timedelta(hours=1)
    administration.chart(
        engine, one, prn_given(oksykodon, given_at), call(NURSE, at=given_at), witness=SECOND_NURSE
    )

    held = prescribe_with(engine, two, OKSYKODON, as_needed())
    hold(engine, two, held, call(GP, at=later), based_on=_version(engine, two))
    redosed = prescribe_with(engine, two, SIMVASTATIN, as_needed(unit="tablett"))
    change_dosage(
        engine,
        two,
        redosed,
        as_needed(unit="tablett", max_24h=3, min_hours=6),
        call(GP, at=later),
        based_on=_version(engine, two),
    )
    to_prn = prescribe_with(engine, two, GLARGIN, daily(TimeOfDay.EVENING, unit="IE"))
    change_dosage(
        engine,
        two,
        to_prn,
        as_needed(unit="IE", max_24h=None),
        call(GP, at=later),
        based_on=_version(engine, two),
    )

    stopped = prescribe_with(engine, three, OKSYKODON, as_needed())
    discontinue(
        engine,
        three,
        stopped,
        Discontinuation(at=later, reason=DiscontinuationReason.TREATMENT_ENDED),
        call(GP, at=later),
        based_on=_version(engine, three),
    )
    to_regular = prescribe_with(engine, three, ATORVASTATIN, as_needed(unit="tablett"))
    change_dosage(
        engine,
        three,
        to_regular,
        daily(TimeOfDay.MORNING),
        call(GP, at=later),
        based_on=_version(engine, three),
    )
    yield engine, ward_id, residents
    engine.dispose()


def _replayed_prn_lines(conn, patient_ids, now) -> dict:
    """The PRN lines as the ward chart computed them before: each resident's list replayed from
    its history (``load_patient_state``), then the same limits over the doses given."""
    entries = {}
    for patient_id in patient_ids:
        state = load_patient_state(conn, read_patient(conn, patient_id))
        found = [
            e
            for e in state.medication_list.entries
            if is_as_needed(e) and e.in_use(local_date(now)) and e.dosage is not None
        ]
        if found:
            entries[patient_id] = found
    given = defaultdict(list)
    until = now + timedelta(microseconds=1)
    for charted in store.chartings_of_patients(conn, list(entries), now - PRN_WINDOW_MAX, until):
        record = charted.administration
        if charted.stands and record.outcome is Outcome.GIVEN and record.dose is not None:
            given[record.entry_id].append((record.at, record.dose))
    lines = defaultdict(list)
    for patient_id, found in entries.items():
        for entry in found:
            for dose in entry.dosage.as_needed:
                intakes = [
                    Intake(at, amount.value)
                    for at, amount in given.get(entry.id, ())
                    if amount.unit == dose.amount.unit
                ]
                lines[patient_id].append(
                    PrnLine(entry.id, entry.drug.name, prn_status(dose, intakes, now))
                )
    return lines


def test_the_ward_charts_prn_lines_are_those_of_the_replayed_lists(prn_ward):
    engine, ward_id, residents = prn_ward
    with engine.connect() as conn:
        chart = administration.ward_chart(conn, ward_id, local_date(NOW), NOW)
        expected = _replayed_prn_lines(conn, residents, NOW)
    shown = {p.patient_id: list(p.prn) for p in chart.patients}
    assert shown == {r: expected.get(r, []) for r in residents}
    one, two, three, four = residents
    # what the world is for: a dose given counts, held/stopped/future/regular entries do not
    (oksykodon,) = shown[one]
    assert oksykodon.status.given_last_24h == 1 and oksykodon.status.doses_remaining == 1
    assert len(shown[two]) == 2  # the re-dosed entry and the one changed to as needed
    assert shown[three] == [] and shown[four] == []


def test_the_as_needed_entries_read_together_are_those_of_the_replayed_lists(prn_ward):
    engine, _, residents = prn_ward
    with engine.connect() as conn:
        found = current_entries_for_use(conn, residents, Use.AS_NEEDED.value)
        replayed = {
            r: [
                e
                for e in load_patient_state(conn, read_patient(conn, r)).medication_list.entries
                if is_as_needed(e)
            ]
            for r in residents
        }
    assert {r: found.get(r, []) for r in residents} == replayed
    # in list order, whatever their status (held, discontinued, not started yet)
    assert [len(replayed[r]) for r in residents] == [2, 3, 1, 0]


def test_the_prn_lines_statements_do_not_grow_with_the_residents(prn_ward):
    engine, _, residents = prn_ward
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    counts = []
    with engine.connect() as conn:
        for some in (residents[:1], residents):
            seen.clear()
            event.listen(engine, "before_cursor_execute", note)
            try:
                lines = _prn_lines(conn, some, NOW)
            finally:
                event.remove(engine, "before_cursor_execute", note)
            assert lines  # resident 1 has a PRN entry in use
            counts.append(sum(1 for statement in seen if statement != "BEGIN"))  # SQLite's
    assert counts[0] == counts[1] == 2  # the entries, the doses given
