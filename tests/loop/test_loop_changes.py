"""The other commands of the loop: dosage changes, hold and resume, entered-in-error, entries
without prescription, annulled dispenses, acknowledged alerts, reconciliations and safety
notices — and which entries decision support pairs."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from interactions.dosage import Dosage, FixedDose, Quantity, Use
from medloop import queries
from medloop.domain.codes import (
    DiscontinuationReason,
    EntryStatus,
    PrescriptionStatus,
    RecallReason,
    ReconciliationOutcome,
    SourceKind,
)
from medloop.domain.drug_reference import NonCatalogueItem
from medloop.domain.entry import Discontinuation
from medloop.domain.prescription import PrescriptionLocked
from medloop.domain.reconciliation import ConsultedSource, EntryOutcome, ReconciliationIncomplete
from medloop.loop.acknowledge import acknowledge
from medloop.loop.catalogue import DrugOrder
from medloop.loop.change import (
    EntryOrder,
    add_entry,
    change_dosage,
    discontinue,
    hold,
    mark_entered_in_error,
    resume,
)
from medloop.loop.dispense import annul_dispense, dispense, lock_for_dispensing, release
from medloop.loop.errors import ReasonRequired
from medloop.loop.prescribe import prescribe
from medloop.loop.reconcile import ReconciliationOrder, record_reconciliation
from medloop.loop.runner import OverrideRequired
from medloop.store import audit
from medloop.store.patient_state import load_patient_state
from medloop.store.patients import read_patient
from tests.loop.helpers import (
    KLARITROMYCIN,
    NOW,
    PHARMACIST,
    SIMVASTATIN_28,
    TODAY,
    call,
    demo_world,
    dispense_order,
    prescription_order,
)

ENALAPRIL = "090368"
SPIRONOLAKTON = "090419"


def test_dosage_change_hold_and_resume_each_make_one_entry_version(engine):
    patient_id = demo_world(engine)
    done = prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    entry_id = uuid.UUID(done.response["entry_id"])
    dosage = Dosage(use=Use.REGULAR, fixed=(FixedDose(amount=Quantity(value=1, unit="tablett")),))

    assert change_dosage(engine, patient_id, entry_id, dosage, call(), based_on=1).list_version == 2
    assert hold(engine, patient_id, entry_id, call(reason="surgery"), based_on=2).list_version == 3
    with engine.connect() as conn:
        held = queries.current_list(conn, patient_id, NOW).entries[0]
    assert held.status is EntryStatus.ON_HOLD and held.dosage == dosage
    assert resume(engine, patient_id, entry_id, call(), based_on=3).list_version == 4

    with engine.connect() as conn:
        history = queries.entry_history(conn, patient_id, entry_id)
        assert audit.verify(conn).ok
    assert [v.kind.value for v in history] == ["added", "edited", "put-on-hold", "resumed"]
    assert history[2].reason == "surgery"
    assert [c.field for c in history[1].diff] == ["dosage"]


def test_entries_that_never_overlap_or_were_entered_in_error_do_not_pair(engine):
    patient_id = demo_world(engine)
    simva = prescription_order(SIMVASTATIN_28).model_copy(
        update={"stop": TODAY + timedelta(days=10)}
    )
    prescribe(engine, patient_id, simva, call(), based_on=0)
    later = prescription_order(KLARITROMYCIN).model_copy(
        update={"start": TODAY + timedelta(days=30)}
    )
    assert not any(
        a.requires_override for a in prescribe(engine, patient_id, later, call(), based_on=1).alerts
    )

    overlapping = prescription_order(SIMVASTATIN_28)
    with pytest.raises(OverrideRequired):
        prescribe(engine, patient_id, overlapping, call(), based_on=2)
    mark_entered_in_error(
        engine, patient_id, later.entry_id, call(reason="wrong patient"), based_on=2
    )
    done = prescribe(engine, patient_id, overlapping, call(), based_on=3)
    assert not any(a.requires_override for a in done.alerts)


def test_an_entry_without_prescription_is_checked_like_any_other(engine):
    patient_id = demo_world(engine)
    prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    cod_liver_oil = EntryOrder(
        entry_id=uuid.uuid4(), item=NonCatalogueItem(name="Tran"), use=Use.REGULAR, start=TODAY
    )
    assert add_entry(engine, patient_id, cod_liver_oil, call(), based_on=1).alerts == ()
    antibiotic = EntryOrder(
        entry_id=uuid.uuid4(), drug=DrugOrder(varenr=KLARITROMYCIN), use=Use.COURSE, start=TODAY
    )
    with pytest.raises(OverrideRequired):
        add_entry(engine, patient_id, antibiotic, call(), based_on=2)
    with engine.connect() as conn:
        entries = queries.current_list(conn, patient_id, NOW).entries
    assert [e.drug.name for e in entries][1] == "Tran"
    assert all(e.prescription_ids == () for e in entries[1:])


def test_an_annulled_dispense_stops_counting_and_reopens_the_prescription(engine):
    patient_id = demo_world(engine)
    done = prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    handed = dispense(
        engine,
        patient_id,
        dispense_order(done.response["prescription_id"], SIMVASTATIN_28),
        call(PHARMACIST),
    )
    assert handed.response["prescription_status"] == "R"
    annulled = annul_dispense(
        engine,
        patient_id,
        uuid.UUID(handed.response["dispense_id"]),
        call(PHARMACIST, reason="wrong strength handed out"),
    )
    assert annulled.response["prescription_status"] == "E"
    with engine.connect() as conn:
        (summary,) = queries.prescriptions(conn, patient_id)
        (shown,) = queries.dispenses(conn, patient_id)
    assert summary.status is PrescriptionStatus.DISPENSABLE and summary.dispensed == 0
    assert str(shown.id) == handed.response["dispense_id"]
    assert shown.annulment.reason == "wrong strength handed out" and not shown.counts


def test_an_acknowledged_alert_is_not_raised_again_for_the_patient(engine):
    patient_id = demo_world(engine)
    first = prescribe(engine, patient_id, prescription_order(ENALAPRIL), call(), based_on=0)
    second = prescribe(engine, patient_id, prescription_order(SPIRONOLAKTON), call(), based_on=1)
    (alert,) = [a for a in second.alerts if a.kind == "interaction"]
    assert not alert.requires_override
    with engine.connect() as conn:
        assert alert.key in {a.key for a in queries.open_alerts(conn, patient_id)}

    acknowledge(engine, patient_id, alert.key, call(reason="potassium monitored monthly"))
    entry_id = uuid.UUID(first.response["entry_id"])
    hold(engine, patient_id, entry_id, call(), based_on=2)
    resumed = resume(engine, patient_id, entry_id, call(), based_on=3)
    assert alert.key not in {a.key for a in resumed.alerts}
    with engine.connect() as conn:
        assert alert.key not in {a.key for a in queries.open_alerts(conn, patient_id)}


def test_a_reconciliation_covers_every_live_entry_and_is_stored(engine):
    patient_id = demo_world(engine)
    done = prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    entry_id = uuid.UUID(done.response["entry_id"])
    sources = (ConsultedSource(kind=SourceKind.PATIENT),)
    with pytest.raises(ReconciliationIncomplete):
        record_reconciliation(
            engine,
            patient_id,
            ReconciliationOrder(reconciliation_id=uuid.uuid4(), sources=sources, outcomes=()),
            call(),
            based_on=1,
        )
    order = ReconciliationOrder(
        reconciliation_id=uuid.uuid4(),
        sources=sources,
        outcomes=(EntryOutcome(entry_id=entry_id, outcome=ReconciliationOutcome.CONFIRMED),),
    )
    assert record_reconciliation(engine, patient_id, order, call(), based_on=1).list_version == 1
    with engine.connect() as conn:
        (stored,) = queries.reconciliations(conn, patient_id)
    assert stored.id == order.reconciliation_id
    assert [(e.entry_id, e.entry_version) for e in stored.entries] == [(entry_id, 1)]


def test_a_safety_notice_on_the_dispensed_package_is_shown_to_the_pharmacist(engine):
    patient_id = demo_world(engine)
    suppository = "090079"  # Leveringssvikt notice on the package (seeds/README.md)
    done = prescribe(engine, patient_id, prescription_order(suppository), call(), based_on=0)
    handed = dispense(
        engine,
        patient_id,
        dispense_order(done.response["prescription_id"], suppository),
        call(PHARMACIST),
    )
    assert "notice" in {a.kind for a in handed.alerts}


def test_a_dispense_is_checked_against_what_was_dispensed_in_the_last_twelve_months(engine):
    patient_id = demo_world(engine)
    simva = prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    dispense(
        engine,
        patient_id,
        dispense_order(simva.response["prescription_id"], SIMVASTATIN_28),
        call(PHARMACIST),
    )
    discontinue(
        engine,
        patient_id,
        uuid.UUID(simva.response["entry_id"]),
        Discontinuation(at=NOW, reason=DiscontinuationReason.DRUG_REACTION),
        call(),
        based_on=1,
    )
    later = prescription_order(KLARITROMYCIN).model_copy(
        update={"start": TODAY + timedelta(days=1)}
    )
    antibiotic = prescribe(engine, patient_id, later, call(), based_on=2)
    assert not any(a.requires_override for a in antibiotic.alerts)

    handed = dispense_order(
        antibiotic.response["prescription_id"], KLARITROMYCIN, on=TODAY + timedelta(days=1)
    )
    with pytest.raises(OverrideRequired) as refused:
        dispense(engine, patient_id, handed, call(PHARMACIST))
    (alert,) = refused.value.alerts
    assert set(alert.medications) == {simva.response["entry_id"], antibiotic.response["entry_id"]}


def test_a_clinicians_read_of_the_list_leaves_an_audit_record(engine):
    patient_id = demo_world(engine)
    prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    shown = queries.read_for(
        engine,
        PHARMACIST,
        patient_id,
        "current-list",
        lambda conn: queries.current_list(conn, patient_id, NOW),
        reason="dispensing",
    )
    assert shown.list_version == 1
    with engine.connect() as conn:
        last = conn.execute(
            select(audit.audit_event).order_by(audit.audit_event.c.seq.desc()).limit(1)
        ).one()
        assert audit.verify(conn).ok
    assert (last.action, last.actor, last.reason, last.patient) == (
        "medication-list.read.current-list",
        PHARMACIST.personnel.hpr_number,
        "dispensing",
        "21014605158",
    )


def test_a_locked_prescription_cannot_be_recalled_until_the_pharmacy_releases_it(engine):
    patient_id = demo_world(engine)
    done = prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    prescription_id = uuid.UUID(done.response["prescription_id"])
    entry_id = uuid.UUID(done.response["entry_id"])
    stop = Discontinuation(at=NOW, reason=DiscontinuationReason.TREATMENT_ENDED)

    lock_for_dispensing(engine, patient_id, prescription_id, call(PHARMACIST))
    with pytest.raises(PrescriptionLocked):
        discontinue(engine, patient_id, entry_id, stop, call(), based_on=1)
    release(engine, patient_id, prescription_id, call(PHARMACIST))
    assert discontinue(engine, patient_id, entry_id, stop, call(), based_on=1).response[
        "recalled"
    ] == [str(prescription_id)]


def test_an_entry_entered_in_error_has_its_prescriptions_recalled(engine):
    patient_id = demo_world(engine)
    order = prescription_order(SIMVASTATIN_28)
    prescribe(engine, patient_id, order, call(), based_on=0)

    done = mark_entered_in_error(
        engine, patient_id, order.entry_id, call(reason="wrong patient"), based_on=1
    )

    assert done.response["recalled"] == [str(order.terms.prescription_id)]
    with engine.connect() as conn:
        [summary] = queries.prescriptions(conn, patient_id)
        state = load_patient_state(conn, read_patient(conn, patient_id))
    assert summary.status is PrescriptionStatus.RECALLED
    recall = state.prescriptions[order.terms.prescription_id].recall
    assert recall.reason is RecallReason.OTHER and "wrong patient" in recall.note


def test_entered_in_error_without_a_reason_is_refused_and_changes_nothing(engine):
    patient_id = demo_world(engine)
    order = prescription_order(SIMVASTATIN_28)
    prescribe(engine, patient_id, order, call(), based_on=0)

    with pytest.raises(ReasonRequired):
        mark_entered_in_error(engine, patient_id, order.entry_id, call(reason=" "), based_on=1)

    with engine.connect() as conn:
        assert queries.current_list(conn, patient_id, NOW).list_version == 1
        [summary] = queries.prescriptions(conn, patient_id)
    assert summary.status is PrescriptionStatus.DISPENSABLE
