"""Pharmacy proposals wait for a prescriber: accepting runs the loop's own command (with its
checks) in the same transaction as the decision; rejecting needs a reason; only a doctor
decides, once; retries with the same idempotency key change nothing twice."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from interactions.dosage import TimeOfDay
from medloop import queries
from medloop.domain.codes import DiscontinuationReason, EntryStatus
from medloop.domain.entry import Discontinuation
from medloop.domain.medication_list import StaleListVersion
from medloop.domain.multidose.errors import (
    InvalidProposal,
    NotTheMultidosePharmacy,
    PharmacistRequired,
    PrescriberRequired,
    ProposalAlreadyDecided,
    ProposalNotFound,
)
from medloop.domain.multidose.proposals import ProposalKind
from medloop.domain.prescription import PrescribedQuantity
from medloop.loop import multidose
from medloop.loop.prescribe import PrescriptionTerms, RenewOrder
from tests.loop.helpers import GP, NOW, PHARMACIST, call, demo_world
from tests.loop.multidose.helpers import (
    AMLODIPIN,
    NURSE,
    OTHER_PHARMACIST,
    SIMVASTATIN,
    dosage,
    multidose_order,
    prescribe_all,
    with_responsibility,
)

LATER = NOW + timedelta(hours=1)


def _world(engine):
    patient_id = demo_world(engine)
    with_responsibility(engine, patient_id)
    order = multidose_order(SIMVASTATIN, dosage(TimeOfDay.EVENING))
    version = prescribe_all(engine, patient_id, [order])
    return patient_id, order, version


def _propose(engine, patient_id, who=PHARMACIST, **fields):
    proposal_id = uuid.uuid4()
    multidose.propose_change(
        engine, patient_id, multidose.ProposalOrder(proposal_id=proposal_id, **fields), call(who)
    )
    return proposal_id


def _propose_morning_dose(engine, patient_id, order, **fields):
    """The pharmacy proposes moving the evening simvastatin of ``_world`` to the morning."""
    return _propose(
        engine,
        patient_id,
        kind=ProposalKind.CHANGE_DOSAGE,
        entry_id=order.entry_id,
        dosage=dosage(TimeOfDay.MORNING),
        **fields,
    )


def _propose_stop(engine, patient_id, order):
    """The pharmacy proposes discontinuing ``order``'s entry: the patient stopped taking it."""
    return _propose(
        engine,
        patient_id,
        kind=ProposalKind.DISCONTINUE,
        entry_id=order.entry_id,
        discontinuation=Discontinuation(at=NOW, reason=DiscontinuationReason.PATIENT_STOPPED),
    )


def _accept_later(engine, patient_id, proposal_id, version, **call_fields):
    """The GP accepts ``proposal_id`` an hour after the world's NOW, based on list ``version``."""
    return multidose.accept_proposal(
        engine, patient_id, proposal_id, call(GP, at=LATER, **call_fields), based_on=version
    )


def _entry(engine, patient_id, entry_id):
    with engine.connect() as conn:
        listed = queries.current_list(conn, patient_id, LATER)
    return listed.list_version, next(e for e in listed.entries if e.id == entry_id)


def test_an_accepted_dosage_proposal_changes_the_list_and_is_no_longer_pending(engine):
    patient_id, order, version = _world(engine)
    proposal_id = _propose_morning_dose(
        engine, patient_id, order, note="patient sleeps badly with the evening dose"
    )
    with engine.connect() as conn:
        assert [p.id for p in multidose.pending_proposals(conn, patient_id)] == [proposal_id]
    result = _accept_later(engine, patient_id, proposal_id, version)
    assert result.list_version == version + 1
    now, entry = _entry(engine, patient_id, order.entry_id)
    assert now == version + 1
    assert entry.dosage == dosage(TimeOfDay.MORNING)
    with engine.connect() as conn:
        assert multidose.pending_proposals(conn, patient_id) == []
        [(proposal, decision)] = multidose.proposals(conn, patient_id)
    assert decision.accepted and decision.list_version == version + 1
    assert decision.by == GP


def test_a_proposal_made_over_the_json_api_is_answered_by_no_outbox_message(engine):
    patient_id, order, version = _world(engine)
    changed = _propose_morning_dose(engine, patient_id, order)
    asked = _propose(
        engine, patient_id, kind=ProposalKind.QUESTION, entry_id=order.entry_id, question="?"
    )
    result = multidose.accept_proposal(engine, patient_id, changed, call(GP), based_on=version)
    rejected = multidose.reject_proposal(engine, patient_id, asked, call(GP, reason="no"))
    assert "answer_msg_id" not in result.response | rejected.response
    with engine.connect() as conn:
        assert queries.outbox(conn, patient_id, GP.organisation.id) == []
        assert queries.outbox_ready(conn)[0] == []


def test_only_a_prescriber_accepts_or_rejects_a_proposal(engine):
    patient_id, order, version = _world(engine)
    proposal_id = _propose_morning_dose(engine, patient_id, order)
    for who in (PHARMACIST, NURSE):
        with pytest.raises(PrescriberRequired):
            multidose.accept_proposal(engine, patient_id, proposal_id, call(who), based_on=version)
        with pytest.raises(PrescriberRequired):
            multidose.reject_proposal(engine, patient_id, proposal_id, call(who, reason="no"))
    now, entry = _entry(engine, patient_id, order.entry_id)
    assert now == version and entry.dosage == dosage(TimeOfDay.EVENING)
    with engine.connect() as conn:
        assert len(multidose.pending_proposals(conn, patient_id)) == 1


def test_a_rejection_needs_a_reason_and_a_decided_proposal_stays_decided(engine):
    patient_id, order, version = _world(engine)
    proposal_id = _propose_stop(engine, patient_id, order)
    with pytest.raises(InvalidProposal):
        multidose.reject_proposal(engine, patient_id, proposal_id, call(GP))
    multidose.reject_proposal(
        engine, patient_id, proposal_id, call(GP, reason="discussed with the patient: continue")
    )
    with pytest.raises(ProposalAlreadyDecided):
        multidose.accept_proposal(engine, patient_id, proposal_id, call(GP), based_on=version)
    now, entry = _entry(engine, patient_id, order.entry_id)
    assert now == version and entry.status is EntryStatus.ACTIVE
    with engine.connect() as conn:
        [(_, decision)] = multidose.proposals(conn, patient_id)
    assert not decision.accepted and decision.reason.startswith("discussed")


def test_an_accepted_discontinuation_recalls_the_prescription(engine):
    patient_id, order, version = _world(engine)
    proposal_id = _propose_stop(engine, patient_id, order)
    result = _accept_later(engine, patient_id, proposal_id, version)
    assert result.response["recalled"] == [str(order.terms.prescription_id)]
    _, entry = _entry(engine, patient_id, order.entry_id)
    assert entry.status is EntryStatus.DISCONTINUED


def test_a_new_entry_proposal_accepted_is_prescribed_into_multidose(engine):
    patient_id, _, version = _world(engine)
    new = multidose_order(AMLODIPIN, dosage(TimeOfDay.MORNING))
    proposal_id = _propose(engine, patient_id, kind=ProposalKind.NEW_ENTRY, new_entry=new)
    result = _accept_later(engine, patient_id, proposal_id, version)
    assert result.response["entry_id"] == str(new.entry_id)
    _, entry = _entry(engine, patient_id, new.entry_id)
    assert (
        entry.multidose
        and entry.prescriber == GP
        and entry.prescription_ids == (new.terms.prescription_id,)
    )


def test_a_renewal_proposal_accepted_renews_the_prescription(engine):
    patient_id, order, version = _world(engine)
    renewal = RenewOrder(
        prescription_id=order.terms.prescription_id,
        terms=PrescriptionTerms(
            prescription_id=uuid.uuid4(), quantity=PrescribedQuantity(packages=2)
        ),
    )
    proposal_id = _propose(
        engine, patient_id, kind=ProposalKind.RENEW, renewal=renewal, note="renew the prescription?"
    )
    result = _accept_later(engine, patient_id, proposal_id, version)
    assert result.response["recalled"] == str(order.terms.prescription_id)
    _, entry = _entry(engine, patient_id, order.entry_id)
    assert entry.prescription_ids == (renewal.terms.prescription_id,)


def test_a_question_is_answered_without_changing_the_list(engine):
    patient_id, _, version = _world(engine)
    proposal_id = _propose(
        engine,
        patient_id,
        kind=ProposalKind.QUESTION,
        question="Should simvastatin be taken in the evening?",
    )
    with pytest.raises(InvalidProposal):
        multidose.accept_proposal(engine, patient_id, proposal_id, call(GP), based_on=version)
    result = multidose.accept_proposal(
        engine, patient_id, proposal_id, call(GP, reason="yes, keep it"), based_on=version
    )
    assert result.list_version == version and result.response["answer"] == "yes, keep it"


def test_a_retried_acceptance_returns_the_first_result_and_changes_the_list_once(engine):
    patient_id, order, version = _world(engine)
    proposal_id = _propose_morning_dose(engine, patient_id, order)
    first = _accept_later(engine, patient_id, proposal_id, version, idempotency_key="acc-1")
    again = _accept_later(engine, patient_id, proposal_id, version, idempotency_key="acc-1")
    assert again.replayed and again.response == first.response
    now, _ = _entry(engine, patient_id, order.entry_id)
    assert now == version + 1


def test_an_acceptance_based_on_a_stale_list_is_refused_and_the_proposal_stays_pending(engine):
    patient_id, order, version = _world(engine)
    proposal_id = _propose_morning_dose(engine, patient_id, order)
    with pytest.raises(StaleListVersion):
        multidose.accept_proposal(engine, patient_id, proposal_id, call(GP), based_on=version - 1)
    with engine.connect() as conn:
        assert len(multidose.pending_proposals(conn, patient_id)) == 1


def test_proposals_come_only_from_the_multidose_pharmacy_and_name_real_entries(engine):
    patient_id, order, _ = _world(engine)
    fields = {
        "kind": ProposalKind.CHANGE_DOSAGE,
        "entry_id": order.entry_id,
        "dosage": dosage(TimeOfDay.MORNING),
    }
    with pytest.raises(PharmacistRequired):
        _propose(engine, patient_id, who=GP, **fields)
    with pytest.raises(NotTheMultidosePharmacy):
        _propose(engine, patient_id, who=OTHER_PHARMACIST, **fields)
    with pytest.raises(InvalidProposal):
        _propose(engine, patient_id, **{**fields, "entry_id": uuid.uuid4()})
    with pytest.raises(InvalidProposal):  # a dosage change without a dosage
        _propose(engine, patient_id, kind=ProposalKind.CHANGE_DOSAGE, entry_id=order.entry_id)
    with pytest.raises(ProposalNotFound):
        multidose.reject_proposal(engine, patient_id, uuid.uuid4(), call(GP, reason="x"))
    with engine.connect() as conn:
        assert multidose.proposals(conn, patient_id) == []
