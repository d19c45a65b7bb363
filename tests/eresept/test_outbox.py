"""The multidose doctor's decision on a proposal of an M25.2 goes out as the updated M25.1: one
answer per decision, written in the decision's transaction, XSD-valid, to the M25.2's sender, in
its conversation, stored once (bytes, SHA-256, its own MsgId) and ``ready`` until an integrator
marks it ``sent``; a proposal made over the JSON API is answered by nobody. SQLite and
PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

import pytest
from lxml import etree
from sqlalchemy import func, select

from medloop import queries
from medloop.domain.messages import OutboxMessageAlreadySent, OutboxMessageNotFound
from medloop.domain.multidose.proposals import ProposalKind
from medloop.eresept import read_message
from medloop.loop import multidose
from medloop.loop.messages import import_message, mark_outbox_sent
from medloop.store import outbox as stored
from medloop.store.columns import StoredRecordUnreadable
from medloop.store.idempotency import idempotency_key
from tests.eresept.importing import (
    M25_2_CONVERSATION,
    M25_2_MSG_ID,
    M25_2_QUESTION_ENTRY,
    PHARMACY_HER_ID,
    m25_2_from_pharmacy,
    multidose_world,
    reader_config,
)
from tests.eresept.messages import needs_shared
from tests.loop.helpers import GP, PHARMACIST, call
from tests.store.helpers import intruded

pytestmark = needs_shared

M251 = "{http://www.kith.no/xmlstds/eresept/m251/2013-10-08}"


def _world(engine, data: bytes):
    """The official list applied, the GP the multidose doctor and PHARMACIST's pharmacy the
    multidose pharmacy, and ``data`` (an M25.2) received: its proposals by kind."""
    patient_id = multidose_world(engine)
    receipt = import_message(
        engine, data, source="m25.2", config=reader_config(), call=call(PHARMACIST)
    )
    assert receipt.result == "proposed"
    with engine.connect() as conn:
        pending = {p.kind: p for p in multidose.pending_proposals(conn, patient_id)}
    return patient_id, pending


def _version(engine, patient_id) -> int:
    with engine.connect() as conn:
        return queries.patient_state(conn, patient_id).medication_list.version


def _outbox(engine, patient_id, organisation=GP.organisation.id):
    with engine.connect() as conn:
        return queries.outbox(conn, patient_id, organisation)


def _bytes(engine, patient_id, msg_id, organisation=GP.organisation.id) -> bytes:
    with engine.connect() as conn:
        return queries.outbox_message(conn, patient_id, msg_id, organisation)


def _rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(stored.outbox_message)).scalar_one()


def _valid(data: bytes):
    """The answer read back by our own reader: every document valid against its XSD."""
    message = read_message(data, source="answer", config=reader_config())
    assert message.type == "ERM251"
    assert [d.validation for d in message.documents] == ["valid"] * len(message.documents)
    return message


def test_an_accepted_proposal_goes_out_once_as_an_xsd_valid_m25_1_to_the_pharmacy(engine):
    new_entry = uuid.uuid4()
    patient_id, pending = _world(engine, m25_2_from_pharmacy(new_entry))
    proposal = pending[ProposalKind.NEW_ENTRY]
    result = multidose.accept_proposal(
        engine, patient_id, proposal.id, call(GP), based_on=_version(engine, patient_id)
    )

    (sent,) = _outbox(engine, patient_id)
    assert result.response["answer_msg_id"] == sent.msg_id
    assert sent.state == "ready" and sent.type == "ERM251"
    assert sent.answer.accepted and sent.answer.list_version == result.list_version
    data = _bytes(engine, patient_id, sent.msg_id)
    assert hashlib.sha256(data).hexdigest() == sent.sha256 and len(data) == sent.size
    message = _valid(data)
    info = message.msg_info
    assert message.msg_id == sent.msg_id != M25_2_MSG_ID
    assert (info.receiver.her_id, info.receiver.name) == (PHARMACY_HER_ID, "Apotek 1 Ski")
    assert info.sender.healthcare_professional.hpr == GP.personnel.hpr_number
    assert info.sender.her_id == GP.organisation.id
    ref = info.conversation_ref
    assert (ref.ref_to_parent, ref.ref_to_conversation) == (M25_2_MSG_ID, M25_2_CONVERSATION)
    (lib,) = message.lists
    assert str(new_entry) in {e.id for e in lib.entries}  # the accepted change is on it
    note = etree.fromstring(data).find(f".//{M251}LegemidlerIBruk/{M251}Merknad").text
    assert M25_2_MSG_ID in note and "godtatt" in note


def test_a_rejected_proposal_is_answered_too_with_the_list_unchanged(engine):
    new_entry = uuid.uuid4()
    patient_id, pending = _world(engine, m25_2_from_pharmacy(new_entry))
    version = _version(engine, patient_id)
    multidose.reject_proposal(
        engine, patient_id, pending[ProposalKind.NEW_ENTRY].id, call(GP, reason="ikke indisert")
    )
    (answer,) = _outbox(engine, patient_id)
    assert not answer.answer.accepted and answer.answer.list_version == version
    assert _version(engine, patient_id) == version
    message = _valid(_bytes(engine, patient_id, answer.msg_id))
    (lib,) = message.lists
    assert str(new_entry) not in {e.id for e in lib.entries}
    with engine.connect() as conn:
        listed = queries.current_list(conn, patient_id, answer.created_at)
    assert {e.id for e in lib.entries} == {str(e.id) for e in listed.entries}


def test_a_question_is_answered_on_its_entry_with_the_question_as_asked(engine):
    patient_id, pending = _world(engine, m25_2_from_pharmacy())
    question = pending[ProposalKind.QUESTION]
    multidose.accept_proposal(
        engine,
        patient_id,
        question.id,
        call(GP, reason="Ja, fornyes ved neste konsultasjon"),
        based_on=_version(engine, patient_id),
    )
    (answer,) = _outbox(engine, patient_id)
    data = _bytes(engine, patient_id, answer.msg_id)
    _valid(data)
    entries = etree.fromstring(data).iter(f"{M251}EnkeltoppforingLIB")
    asked = {e.findtext(f"{M251}Id"): e.find(f"{M251}Sporsmal") for e in entries}
    sporsmal = asked[str(M25_2_QUESTION_ENTRY)]
    assert sporsmal.find(f"{M251}Kode").get("V") == "3"  # "Skal resepten fornyes", as asked
    assert sporsmal.findtext(f"{M251}Stiller") == "8091831"
    assert sporsmal.findtext(f"{M251}Svar/{M251}Merknad") == "Ja, fornyes ved neste konsultasjon"
    assert [k for k, v in asked.items() if v is not None] == [str(M25_2_QUESTION_ENTRY)]


def test_the_same_decision_retried_with_its_idempotency_key_is_still_one_answer(engine):
    patient_id, pending = _world(engine, m25_2_from_pharmacy())
    question = pending[ProposalKind.QUESTION]
    for _ in range(2):
        multidose.reject_proposal(
            engine, patient_id, question.id, call(GP, reason="nei", idempotency_key="answer-1")
        )
    assert len(_outbox(engine, patient_id)) == 1
    assert _rows(engine) == 1


def test_only_the_deciding_doctors_organisation_reads_and_marks_the_answer_once(engine):
    patient_id, pending = _world(engine, m25_2_from_pharmacy())
    multidose.reject_proposal(
        engine, patient_id, pending[ProposalKind.QUESTION].id, call(GP, reason="nei")
    )
    (answer,) = _outbox(engine, patient_id)
    written = _bytes(engine, patient_id, answer.msg_id)
    assert _outbox(engine, patient_id, PHARMACIST.organisation.id) == []
    with pytest.raises(queries.MessageNotFound):
        _bytes(engine, patient_id, answer.msg_id, PHARMACIST.organisation.id)
    with pytest.raises(OutboxMessageNotFound):
        mark_outbox_sent(engine, patient_id, answer.msg_id, call(PHARMACIST))
    with engine.connect() as conn:
        assert [m.msg_id for m, _ in queries.outbox_ready(conn)[0]] == [answer.msg_id]

    done = mark_outbox_sent(engine, patient_id, answer.msg_id, call(GP))
    assert done["state"] == "sent"
    (marked,) = _outbox(engine, patient_id)
    assert marked.state == "sent" and marked.sent.by == GP
    with pytest.raises(OutboxMessageAlreadySent):
        mark_outbox_sent(engine, patient_id, answer.msg_id, call(GP))
    with engine.connect() as conn:
        assert queries.outbox_ready(conn)[0] == []
    # stored once: marking it sent leaves its bytes as they were written
    assert _bytes(engine, patient_id, answer.msg_id) == written
    assert hashlib.sha256(written).hexdigest() == marked.sha256


def test_a_retried_mark_sent_whose_stored_answer_no_longer_loads_names_the_key(engine):
    """Marking the answer sent, retried with its idempotency key, answers what the first call
    answered, loaded again as that answer: a stored one that no longer loads is named by the
    key's row (never its value), and the retry changes nothing."""
    patient_id, pending = _world(engine, m25_2_from_pharmacy())
    multidose.reject_proposal(
        engine, patient_id, pending[ProposalKind.QUESTION].id, call(GP, reason="nei")
    )
    (answer,) = _outbox(engine, patient_id)
    first = mark_outbox_sent(engine, patient_id, answer.msg_id, call(GP, idempotency_key="s-1"))
    again = mark_outbox_sent(engine, patient_id, answer.msg_id, call(GP, idempotency_key="s-1"))
    assert again == {**first, "sent_at": again["sent_at"]} and again["state"] == "sent"
    assert datetime.fromisoformat(again["sent_at"]) == datetime.fromisoformat(first["sent_at"])
    with engine.connect() as conn:
        claimed = conn.execute(select(idempotency_key).where(idempotency_key.c.key == "s-1")).one()
    where = idempotency_key.c.key == "s-1"
    intruded(engine, idempotency_key, where, response={**first, "state": "ready"})
    with pytest.raises(StoredRecordUnreadable) as error:
        mark_outbox_sent(engine, patient_id, answer.msg_id, call(GP, idempotency_key="s-1"))
    assert (error.value.table, error.value.key) == (
        "idempotency_key",
        {"scope": claimed.scope, "key": "s-1"},
    )
    assert "state" in error.value.reason and "ready" not in error.value.reason
    (marked,) = _outbox(engine, patient_id)
    assert marked.state == "sent"


def test_the_stored_answer_cannot_be_changed(engine):
    patient_id, pending = _world(engine, m25_2_from_pharmacy())
    multidose.reject_proposal(
        engine, patient_id, pending[ProposalKind.QUESTION].id, call(GP, reason="nei")
    )
    with engine.begin() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(stored.outbox_message.update().values(content=""))
