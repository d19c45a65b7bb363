"""The runner skips what has nothing to do when a command raises no alerts, has no blanket
override reason or handles nothing (issue #20): guarded here by what each skipped step gives
when it does have something — a blanket reason (``Call.override_every``) answers the alerts as
keyed overrides do (the same response, stored alerts, handled alerts, audited detail and
overridden-alert metric), and a command without alerts answers and audits ``[]``."""

from __future__ import annotations

from sqlalchemy import select

from interactions.dosage import Dosage, FixedDose, Quantity, Use
from medloop.loop.prescribe import prescribe
from medloop.ops import metrics
from medloop.store import audit
from medloop.store.alerts import alert as alert_table
from medloop.store.patient_state import load_patient_state
from medloop.store.patients import read_patient
from tests.loop.helpers import KLARITROMYCIN, SIMVASTATIN_28, call, demo_world, prescription_order


def _overridden_count() -> float:
    return sum(
        sample.value
        for family in metrics.OVERRIDES.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def _prescribed_twice(engine, second_call):
    patient_id = demo_world(engine)
    dosed = prescription_order(SIMVASTATIN_28).model_copy(
        update={
            "dosage": Dosage(
                use=Use.REGULAR, fixed=(FixedDose(amount=Quantity(value=1, unit="tablett")),)
            )
        }
    )
    first = prescribe(engine, patient_id, dosed, call(), based_on=0)
    before = _overridden_count()
    order = prescription_order(KLARITROMYCIN)
    done = prescribe(engine, patient_id, order, second_call(), based_on=1)
    with engine.connect() as conn:
        stored = conn.execute(
            select(alert_table.c.key, alert_table.c.override_reason).where(
                alert_table.c.patient_id == str(patient_id)
            )
        ).all()
        state = load_patient_state(conn, read_patient(conn, patient_id))
        records = audit.events_for_patient(conn, str(state.patient.national_id)).events
    return first, done, before, sorted(stored), state, records


def test_a_command_without_alerts_answers_and_audits_none(engine):
    first, *_rest, records = _prescribed_twice(engine, lambda: call(override_every="ok"))
    assert first.alerts == () and first.response["alerts"] == []
    assert first.response["overridden"] == []
    # Newest first: the first prescribe's record is the last.
    prescribed = [r for r in records if r.action == "medication-list.prescribe"]
    assert prescribed[-1].detail["alerts"] == [] and prescribed[-1].detail["replayed"] is False


def test_a_blanket_reason_answers_the_alerts_as_keyed_overrides_do(engine):
    _first, blanket, before, stored, state, records = _prescribed_twice(
        engine, lambda: call(override_every="known and watched")
    )
    counted = _overridden_count() - before
    keys = [a.key for a in blanket.alerts if a.requires_override]
    assert keys, "the pair must need an override for this test to mean anything"
    assert blanket.response["overridden"] == sorted(keys)
    assert {k: r for k, r in stored if r is not None} == dict.fromkeys(keys, "known and watched")
    assert {h.key for h in state.handled} >= set(keys)
    assert counted == len(keys)
    audited = next(r for r in records if r.action == "medication-list.prescribe")
    assert audited.detail["alerts"] == [a.key for a in blanket.alerts]
    assert audited.detail["overridden"] == sorted(keys)
