"""The loop end to end on the demo catalogue: prescribe, an interaction that needs an override,
dispense with generic substitution, renew, discontinue."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from medloop import queries
from medloop.domain.codes import DiscontinuationReason, EntryStatus, PrescriptionStatus
from medloop.domain.dispense import PackageNotSubstitutable
from medloop.domain.entry import Discontinuation
from medloop.domain.prescription import PrescribedQuantity
from medloop.loop.change import discontinue
from medloop.loop.dispense import dispense
from medloop.loop.prescribe import PrescriptionTerms, RenewOrder, prescribe, renew
from medloop.loop.runner import OverrideRequired
from medloop.store import audit
from tests.loop.helpers import (
    ATORVASTATIN,
    GP,
    KLARITROMYCIN,
    NOW,
    PHARMACIST,
    SIMVASTATIN_28,
    SIMVASTATIN_NORDKYST,
    call,
    demo_world,
    dispense_order,
    prescription_order,
)


def test_interaction_needs_an_override_that_is_stored_and_shown_to_the_pharmacist(engine):
    patient_id = demo_world(engine)
    simva = prescription_order(SIMVASTATIN_28, packages=1, repeats=1)
    first = prescribe(engine, patient_id, simva, call(), based_on=0)
    assert first.list_version == 1
    assert not any(a.requires_override for a in first.alerts)

    antibiotic = prescription_order(KLARITROMYCIN)
    with pytest.raises(OverrideRequired) as refused:
        prescribe(engine, patient_id, antibiotic, call(), based_on=1)
    (alert,) = refused.value.alerts
    assert alert.kind == "interaction" and alert.requires_override
    assert alert.source.catalogue_version == 1
    with engine.connect() as conn:
        assert queries.current_list(conn, patient_id, NOW).list_version == 1

    reason = "short course, statin paused by patient"
    second = prescribe(
        engine, patient_id, antibiotic, call(overrides={alert.key: reason}), based_on=1
    )
    assert second.list_version == 2
    assert [a.key for a in second.alerts if a.requires_override] == [alert.key]
    with engine.connect() as conn:
        (stored,) = queries.overrides(conn, patient_id)
    assert stored.key == alert.key and stored.reason == reason
    assert stored.by == GP.personnel.name

    # The pharmacist substitutes within the group and sees the override on record.
    handed = dispense(
        engine,
        patient_id,
        dispense_order(first.response["prescription_id"], SIMVASTATIN_NORDKYST),
        call(PHARMACIST),
    )
    assert handed.response["substituted"] is True
    assert [o["key"] for o in handed.response["overrides_on_record"]] == [alert.key]
    assert not any(a.requires_override for a in handed.alerts)

    with pytest.raises(PackageNotSubstitutable):
        dispense(
            engine,
            patient_id,
            dispense_order(first.response["prescription_id"], ATORVASTATIN),
            call(PHARMACIST),
        )

    renewed = renew(
        engine,
        patient_id,
        RenewOrder(
            prescription_id=first.response["prescription_id"],
            terms=PrescriptionTerms(
                prescription_id=uuid.uuid4(), quantity=PrescribedQuantity(packages=1)
            ),
        ),
        call(),
        based_on=2,
    )
    assert renewed.list_version == 3
    assert renewed.response["recalled"] == first.response["prescription_id"]

    entry_id = first.response["entry_id"]
    entry_uuid = uuid.UUID(entry_id)
    stopped = discontinue(
        engine,
        patient_id,
        entry_uuid,
        Discontinuation(at=NOW, reason=DiscontinuationReason.TREATMENT_ENDED),
        call(),
        based_on=3,
    )
    assert stopped.response["recalled"] == [renewed.response["prescription_id"]]

    with engine.connect() as conn:
        shown = queries.current_list(conn, patient_id, NOW + timedelta(days=90))
        later = queries.current_list(conn, patient_id, NOW + timedelta(days=91))
        prescriptions = {p.id: p for p in queries.prescriptions(conn, patient_id)}
        history = queries.entry_history(conn, patient_id, uuid.UUID(entry_id))
        verified = audit.verify(conn)
        trail = [
            (row.action.removeprefix("medication-list."), row.outcome, row.patient)
            for row in conn.execute(select(audit.audit_event).order_by(audit.audit_event.c.seq))
        ]
    assert {str(e.id): e.status for e in shown.entries}[entry_id] is EntryStatus.DISCONTINUED
    assert entry_id not in {str(e.id) for e in later.entries}
    old = prescriptions[uuid.UUID(first.response["prescription_id"])]
    assert old.status is PrescriptionStatus.RECALLED and old.dispensed == 1
    assert prescriptions[uuid.UUID(renewed.response["prescription_id"])].status is (
        PrescriptionStatus.RECALLED
    )
    assert [v.kind.value for v in history] == ["added", "prescription-renewed", "discontinued"]
    assert verified.ok
    # register, prescribe, refused prescribe, prescribe, dispense, refused dispense, renew,
    # discontinue
    assert verified.events == 8
    assert [(action, outcome) for action, outcome, _ in trail] == [
        ("register-patient", "ok"),
        ("prescribe", "ok"),
        ("prescribe", "refused"),
        ("prescribe", "ok"),
        ("dispense", "ok"),
        ("dispense", "refused"),
        ("renew", "ok"),
        ("discontinue", "ok"),
    ]
    assert {patient for _, _, patient in trail} == {"21014605158"}
