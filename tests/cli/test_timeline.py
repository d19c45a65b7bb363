"""The medication timeline read from the store (SQLite and PostgreSQL): every list change of
an entry, its dispenses and its chartings become events in time order; annulled dispenses and
chartings entered in error do not; held time is a span of its own."""

from __future__ import annotations

import uuid
from datetime import timedelta

from interactions.dosage import TimeOfDay
from medloop import queries
from medloop.domain.administration import ChartRequest, Outcome
from medloop.domain.codes import DiscontinuationReason
from medloop.domain.entry import Discontinuation
from medloop.loop import administration as nursing
from medloop.loop.change import change_dosage, discontinue, hold, resume
from medloop.loop.dispense import annul_dispense, dispense
from medloop.store import administration
from medloop.timeline import EventKind, SpanState
from tests.loop.administration.helpers import (
    ADMITTED,
    NURSE,
    SIMVASTATIN,
    SIMVASTATIN_EAN,
    daily,
    nursing_home,
    prescribe_with,
)
from tests.loop.helpers import GP, PHARMACIST, call, dispense_order


def test_the_timeline_has_each_change_dispense_and_standing_charting_in_time_order(engine):
    patient_id, _ = nursing_home(engine)
    entry_id = prescribe_with(engine, patient_id, SIMVASTATIN, daily(TimeOfDay.MORNING))
    with engine.connect() as conn:
        (rx,) = queries.prescriptions(conn, patient_id)
    day = ADMITTED.date()
    annulled = dispense(
        engine, patient_id, dispense_order(rx.id, SIMVASTATIN, on=day), call(PHARMACIST)
    )
    annul_dispense(
        engine,
        patient_id,
        uuid.UUID(annulled.response["dispense_id"]),
        call(PHARMACIST, reason="wrong patient"),
    )
    handed_at = ADMITTED + timedelta(hours=1)
    dispense(
        engine,
        patient_id,
        dispense_order(rx.id, SIMVASTATIN, on=day),
        call(PHARMACIST, at=handed_at),
    )
    nursing.roll_forward(engine, ADMITTED + timedelta(minutes=30))
    with engine.connect() as conn:
        doses = administration.planned_doses(
            conn, patient_ids=[patient_id], start=ADMITTED, end=ADMITTED + timedelta(days=2)
        )
    first, second = sorted(doses, key=lambda d: d.due_at)[:2]
    given = ChartRequest(
        administration_id=uuid.uuid4(),
        entry_id=entry_id,
        planned_dose_id=first.id,
        outcome=Outcome.GIVEN,
        given_at=first.due_at,
        dose=daily(TimeOfDay.MORNING).fixed[0].amount,
        scan=SIMVASTATIN_EAN,
    )
    nursing.chart(engine, patient_id, given, call(NURSE, at=first.due_at))
    wrong = given.model_copy(
        update={
            "administration_id": uuid.uuid4(),
            "planned_dose_id": second.id,
            "given_at": second.due_at,
        }
    )
    nursing.chart(engine, patient_id, wrong, call(NURSE, at=second.due_at))
    nursing.mark_in_error(
        engine, patient_id, wrong.administration_id, call(NURSE, at=second.due_at, reason="feil")
    )
    refused = ChartRequest(
        administration_id=uuid.uuid4(),
        entry_id=entry_id,
        planned_dose_id=second.id,
        outcome=Outcome.REFUSED,
        given_at=second.due_at,
        reason="kvalm",
    )
    nursing.chart(engine, patient_id, refused, call(NURSE, at=second.due_at + timedelta(minutes=5)))
    later = second.due_at + timedelta(hours=2)
    change_dosage(
        engine, patient_id, entry_id, daily(TimeOfDay.EVENING), call(GP, at=later), based_on=1
    )
    hold(
        engine,
        patient_id,
        entry_id,
        call(GP, at=later + timedelta(hours=1), reason="operasjon"),
        based_on=2,
    )
    resume(engine, patient_id, entry_id, call(GP, at=later + timedelta(hours=2)), based_on=3)
    stop = later + timedelta(hours=3)
    discontinue(
        engine,
        patient_id,
        entry_id,
        Discontinuation(at=stop, reason=DiscontinuationReason.DRUG_REACTION),
        call(GP, at=stop),
        based_on=4,
    )

    with engine.connect() as conn:
        timeline = queries.timeline(conn, patient_id)

    assert [lane.entry_id for lane in timeline.lanes] == [entry_id]
    assert [e.kind for e in timeline.events] == [
        EventKind.STARTED,
        EventKind.DISPENSED,
        EventKind.GIVEN,
        EventKind.NOT_GIVEN,
        EventKind.CHANGED,
        EventKind.HELD,
        EventKind.RESUMED,
        EventKind.STOPPED,
    ]
    assert [e.at for e in timeline.events] == sorted(e.at for e in timeline.events)
    assert timeline.events[1].at == handed_at
    not_given = timeline.events[3]
    assert (not_given.outcome, not_given.reason) == (Outcome.REFUSED, "kvalm")
    assert timeline.events[5].reason == "operasjon"
    assert timeline.events[7].at == stop
    assert [(s.state, s.end is not None) for s in timeline.spans] == [
        (SpanState.ACTIVE, True),
        (SpanState.HELD, True),
        (SpanState.ACTIVE, True),
    ]
    assert timeline.spans[-1].end == stop


def test_an_entry_still_in_use_has_an_open_span_and_a_window_keeps_only_its_events(engine):
    patient_id, _ = nursing_home(engine)
    entry_id = prescribe_with(engine, patient_id, SIMVASTATIN, daily(TimeOfDay.MORNING))
    with engine.connect() as conn:
        timeline = queries.timeline(conn, patient_id)

    (span,) = timeline.spans
    assert (span.entry_id, span.state, span.end) == (entry_id, SpanState.ACTIVE, None)
    before = timeline.within(ADMITTED - timedelta(days=10), ADMITTED - timedelta(days=5))
    assert before.events == () and before.lanes == ()
    assert timeline.within(ADMITTED - timedelta(days=1), ADMITTED + timedelta(days=1)).lanes
