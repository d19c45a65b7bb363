"""A received list that cannot be applied directly is a proposal; a prescriber takes it in
whole or entry by entry (one list change, decision support, prescriptions issued), once, and
only against the list version it was made for. SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from interactions.dosage import Dosage, FixedDose, Quantity, TimeOfDay, Use
from medloop import queries
from medloop.domain.codes import PrescriptionStatus
from medloop.domain.messages import (
    ProposalAlreadyDecided,
    ProposalNotFound,
    ProposalStale,
    ProposalUnknownEntry,
)
from medloop.loop import prescribe
from medloop.loop.catalogue import DrugOrder
from medloop.loop.messages import accept_list_proposal, import_message
from medloop.store import messages as stored
from tests.eresept.importing import demo_world, reader_config, with_demo_drugs
from tests.eresept.messages import example, needs_shared
from tests.loop.helpers import NOW, call

pytestmark = needs_shared

ZOCOR = uuid.UUID("b08e4a01-fe66-41eb-8f07-16810c2e3eb3")  # the M25.1's simvastatin entry
CETIMAX = "c4044d55-2279-422b-9975-164661c52a8c"
MSG_ID = "36638174-088b-498c-9908-168116c13f53"


def _state(engine, patient_id):
    with engine.connect() as conn:
        return queries.patient_state(conn, patient_id)


def _proposed(engine):
    """Our list holds the message's simvastatin entry (other dose); the message is proposed."""
    patient_id = demo_world(engine)
    order = prescribe.PrescribeOrder(
        entry_id=ZOCOR,
        drug=DrugOrder(varenr="090470"),
        use=Use.REGULAR,
        dosage=Dosage(
            use=Use.REGULAR,
            fixed=(
                FixedDose(amount=Quantity(value=2, unit="tablett"), time_of_day=TimeOfDay.EVENING),
            ),
        ),
        start=date(2026, 11, 1),
        terms=prescribe.PrescriptionTerms(prescription_id=uuid.uuid4(), quantity={"packages": 1}),
    )
    prescribe.prescribe(engine, patient_id, order, call(), based_on=0)
    receipt = import_message(
        engine, with_demo_drugs(example("M25.1")), source="m25.1", config=reader_config()
    )
    assert receipt.result == "proposed"
    kinds = {
        (e.kind, str(e.entry_id) if e.entry_id else e.incoming.message_entry_id)
        for e in receipt.proposal.entries
    }
    assert ("changed", str(ZOCOR)) in kinds
    return patient_id


def test_a_proposal_taken_in_whole_is_one_list_change_with_the_new_prescriptions(engine):
    patient_id = _proposed(engine)
    before = _state(engine, patient_id)
    result = accept_list_proposal(engine, patient_id, MSG_ID, call(at=NOW), based_on=1)
    assert result.list_version == 2
    after = _state(engine, patient_id)
    zocor = after.medication_list.entry(ZOCOR)
    assert [d.amount.value for d in zocor.dosage.fixed] == [1.0]  # the message's dose
    assert zocor.indication == "KOLESTEROLSENKENDE"
    added = {e.id for e in after.medication_list.entries} - {
        e.id for e in before.medication_list.entries
    }
    assert uuid.UUID(CETIMAX) in added and len(added) == 2  # Cetimax and Paracet are new
    new_prescriptions = set(after.prescriptions) - set(before.prescriptions)
    assert uuid.UUID("665e2a11-787a-4dac-aec1-16466a9838d1") in new_prescriptions
    assert all(
        after.prescriptions[p].status is PrescriptionStatus.DISPENSABLE for p in new_prescriptions
    )
    with engine.connect() as conn:
        decision = stored.find_decision(conn, patient_id, MSG_ID)
    assert decision.based_on == 1 and len(decision.accepted) == 3
    with pytest.raises(ProposalAlreadyDecided):
        accept_list_proposal(engine, patient_id, MSG_ID, call(at=NOW), based_on=2)


def test_a_proposal_taken_in_entry_by_entry_changes_only_those(engine):
    patient_id = _proposed(engine)
    accept_list_proposal(engine, patient_id, MSG_ID, call(at=NOW), entries=[CETIMAX], based_on=1)
    after = _state(engine, patient_id)
    assert len(after.medication_list.entries) == 2
    assert [d.amount.value for d in after.medication_list.entry(ZOCOR).dosage.fixed] == [2.0]


def test_a_proposal_is_refused_once_the_list_has_changed_or_for_an_unknown_entry(engine):
    patient_id = _proposed(engine)
    with pytest.raises(ProposalUnknownEntry):
        accept_list_proposal(
            engine, patient_id, MSG_ID, call(at=NOW), entries=["no-such-entry"], based_on=1
        )
    with pytest.raises(ProposalNotFound):
        accept_list_proposal(engine, patient_id, "no-such-message", call(at=NOW), based_on=1)
    order = prescribe.PrescribeOrder(
        entry_id=uuid.uuid4(),
        drug=DrugOrder(varenr="090334"),
        use=Use.REGULAR,
        start=date(2026, 11, 1),
        terms=prescribe.PrescriptionTerms(prescription_id=uuid.uuid4(), quantity={"packages": 1}),
    )
    prescribe.prescribe(engine, patient_id, order, call(), based_on=1)
    with pytest.raises(ProposalStale):
        accept_list_proposal(engine, patient_id, MSG_ID, call(at=NOW), based_on=2)
    with engine.connect() as conn:
        assert stored.find_decision(conn, patient_id, MSG_ID) is None
