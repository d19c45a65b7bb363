"""Importing messages into the list: the official examples on the real 2017 FEST extract and on
the demo catalogue, idempotency by MsgId, and every bad input refused with nothing stored.
SQLite and PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from medloop import queries
from medloop.domain.codes import EntryStatus, PrescriptionStatus
from medloop.domain.drug_reference import CatalogueDrug, UnresolvedDrug
from medloop.domain.errors import DomainError
from medloop.domain.messages import (
    MessageIdReused,
    MessageNotMatched,
    MessagePatientMismatch,
)
from medloop.domain.multidose.errors import InvalidResponsibility
from medloop.domain.patient import PatientNotFound
from medloop.eresept.errors import (
    EmbeddedNotXml,
    MalformedXml,
    SchemaViolation,
    SignatureInvalid,
    UnknownMessage,
    UnsafeXml,
)
from medloop.loop import multidose
from medloop.loop.messages import import_message
from medloop.store import messages as stored
from tests.eresept.hostile import BILLION_LAUGHS, XXE
from tests.eresept.importing import (
    OTHER,
    PATIENT,
    counts,
    demo_world,
    multidose_from_2019,
    multidose_world,
    reader_config,
    real_world,
    register,
    with_demo_drugs,
    with_msg_id,
)
from tests.eresept.messages import example, needs_shared, replace_embedded
from tests.eresept.pki import make_ca, trust_store
from tests.loop.helpers import GP, PHARMACIST, call

pytestmark = needs_shared


def _import(engine, data: bytes, **kwargs):
    return import_message(engine, data, source="msg.xml", config=reader_config(**kwargs))


def _state(engine, patient_id):
    with engine.connect() as conn:
        return queries.patient_state(conn, patient_id)


# -- the official examples on the real 2017 extract -------------------------------------------


def test_the_official_m25_1_on_an_empty_list_from_its_gp_is_applied_and_keeps_every_drug(
    engine,
):
    patient_id = real_world(engine)
    receipt = _import(engine, example("M25.1"))
    assert receipt.as_contract() == {
        "message_id": "36638174-088b-498c-9908-168116c13f53",
        "type": "ERM251",
        "patient": PATIENT,
        "result": "applied",
        "entries": 4,
        "reasons": list(receipt.reasons),
    }
    entries = _state(engine, patient_id).medication_list.entries
    assert len(entries) == 4
    # the extract holds none of the four drugs: each is kept, unresolved, with its notice
    assert all(isinstance(e.drug, UnresolvedDrug) for e in entries)
    names = {e.drug.name for e in entries}
    assert names == {
        "Cetimax Tab 10 mg",
        "Zocor Tab 10 mg",
        "Paracet Tab 500 mg",
        "Apocillin Tab 660 mg",
    }
    zocor = next(e for e in entries if e.drug.name == "Zocor Tab 10 mg")
    assert zocor.drug.varenr == "454165" and zocor.drug.atc == "C10AA01"
    assert "not checked" in zocor.drug.notice and "catalogue version" in zocor.drug.notice
    assert sum("not checked: Zocor Tab 10 mg" in r for r in receipt.reasons) == 1
    # its dosage mapped faithfully: 1 tablet in the evening, text and short dose kept
    assert zocor.dosage.text == "1 tablett kveld"
    assert zocor.dosage.short_dose.code == "21"
    assert [(d.amount.value, d.amount.unit, d.time_of_day.value) for d in zocor.dosage.fixed] == [
        (1.0, "tablett", "evening")
    ]
    assert counts(engine)[0] == 1


def test_the_same_message_twice_is_one_effect_and_a_duplicate_receipt(engine):
    patient_id = real_world(engine)
    _import(engine, example("M25.1"))
    before = counts(engine), _state(engine, patient_id).medication_list.version
    again = _import(engine, example("M25.1"))
    assert again.result == "duplicate" and again.entries == 4
    assert (counts(engine), _state(engine, patient_id).medication_list.version) == before


def test_the_same_msg_id_with_other_content_is_refused_and_nothing_is_stored(engine):
    real_world(engine)
    _import(engine, example("M25.1"))
    before = counts(engine)
    changed = example("M25.1").replace(
        b"<Etternavn>Eidsvik</Etternavn>", b"<Etternavn>X</Etternavn>", 1
    )
    with pytest.raises(MessageIdReused):
        _import(engine, changed)
    assert counts(engine) == before


def test_the_official_m1_becomes_an_entry_kept_unresolved_when_the_extract_lacks_its_drug(engine):
    patient_id = real_world(engine)
    receipt = _import(engine, example("M1"))
    assert (receipt.type, receipt.result, receipt.entries) == ("ERM1", "applied", 1)
    (entry,) = _state(engine, patient_id).medication_list.entries
    assert isinstance(entry.drug, UnresolvedDrug) and entry.drug.name == "Ibux Tab 400 mg"
    assert entry.use.value == "course" and len(entry.dosage.fixed) == 3
    assert entry.stop is not None and entry.stop.isoformat() == "2019-08-19"
    assert any("not checked" in r for r in receipt.reasons)


def test_a_list_for_a_patient_with_entries_becomes_a_proposal_and_changes_nothing(engine):
    patient_id = real_world(engine)
    _import(engine, example("M1"))
    version = _state(engine, patient_id).medication_list.version
    receipt = _import(engine, example("M25.1"))
    assert receipt.result == "proposed"
    kinds = sorted(e.kind for e in receipt.proposal.entries)
    # three entries new, one discontinued in the message, our M1 entry absent from it
    assert kinds.count("absent") == 1
    assert len(kinds) == 5
    assert _state(engine, patient_id).medication_list.version == version
    with engine.connect() as conn:
        kept = stored.find_received(conn, receipt.message_id)
        original = stored.original_of(conn, receipt.message_id)
    assert kept.result == "proposed" and kept.proposal == receipt.proposal
    assert original == example("M25.1")


def test_the_official_recall_of_a_prescription_we_do_not_hold_is_refused(engine):
    real_world(engine)
    _import(engine, example("M25.1"))  # its drugs are unresolved: no prescription is issued
    before = counts(engine)
    with pytest.raises(MessageNotMatched):
        _import(engine, example("M5"))
    assert counts(engine) == before


# -- the examples naming demo-catalogue drugs: prescriptions issued, recalled -------------------


def test_an_applied_list_issues_its_prescriptions_and_the_official_recall_recalls_one(engine):
    patient_id = demo_world(engine)
    receipt = _import(engine, with_demo_drugs(example("M25.1")))
    assert receipt.result == "applied"
    state = _state(engine, patient_id)
    assert all(isinstance(e.drug, CatalogueDrug) for e in state.medication_list.entries)
    recalled = uuid.UUID("f63b9535-5160-4972-b923-168114660619")
    assert state.prescriptions[recalled].status is PrescriptionStatus.DISPENSABLE
    discontinued = [
        e for e in state.medication_list.entries if e.status is EntryStatus.DISCONTINUED
    ]
    assert len(discontinued) == 1  # the entry the message carries with a Seponering
    recall = _import(engine, example("M5"))
    assert (recall.type, recall.result) == ("ERM5", "applied")
    assert _state(engine, patient_id).prescriptions[recalled].status is PrescriptionStatus.RECALLED


def test_a_recall_naming_another_patients_prescription_is_refused_as_a_patient_mismatch(engine):
    demo_world(engine)
    _import(engine, with_demo_drugs(example("M25.1")))
    register(engine, OTHER, birth=date(1990, 1, 1))
    other = example("M5").replace(PATIENT.encode(), OTHER.encode())
    other = with_msg_id(other, str(uuid.uuid4()))
    before = counts(engine)
    with pytest.raises(MessagePatientMismatch):
        _import(engine, other)
    assert counts(engine) == before


def test_a_message_for_a_patient_we_keep_no_list_for_is_refused(engine):
    demo_world(engine)
    other = example("M1").replace(PATIENT.encode(), OTHER.encode())
    before = counts(engine)
    with pytest.raises(PatientNotFound):
        _import(engine, other)
    assert counts(engine) == before


# -- bad input: a precise refusal, nothing stored ------------------------------------------------


def _bad_inputs() -> dict[str, tuple[bytes, type[Exception]]]:
    m25 = example("M25.1")
    return {
        "truncated": (m25[: len(m25) // 2], MalformedXml),
        "wrong-namespace": (
            m25.replace(b"msghead/2006-05-24", b"msghead/2099-01-01"),
            UnknownMessage,
        ),
        "xsd-invalid": (
            m25.replace(b"<MIGversion>", b"<MIGversjon>").replace(
                b"</MIGversion>", b"</MIGversjon>"
            ),
            SchemaViolation,
        ),
        "unknown-type": (m25.replace(b'V="ERM251"', b'V="ERM999"'), UnknownMessage),
        "xxe": (XXE, UnsafeXml),
        "billion-laughs": (BILLION_LAUGHS, UnsafeXml),
        "base64-not-xml": (replace_embedded(m25, 0, b"just some text"), EmbeddedNotXml),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_input_is_refused_precisely_and_nothing_is_stored(engine, case):
    real_world(engine)
    data, error = _bad_inputs()[case]
    before = counts(engine)
    with pytest.raises(error) as caught:
        _import(engine, data)
    problem = caught.value.problems[0]
    assert problem.source == "msg.xml" and problem.line is not None
    assert counts(engine) == before


def test_a_signature_that_does_not_verify_is_refused_and_nothing_is_stored(engine, tmp_path):
    real_world(engine)
    before = counts(engine)
    _, unrelated = make_ca("a CA that did not sign the example")
    with pytest.raises(SignatureInvalid):
        _import(engine, example("M1"), trust_store=trust_store(tmp_path, unrelated))
    assert counts(engine) == before


# -- M27.1: the multidose doctor ---------------------------------------------------------------


def test_the_official_m27_1_without_a_registered_pharmacy_is_refused_and_nothing_is_stored(engine):
    real_world(engine)
    before = counts(engine)
    with pytest.raises(InvalidResponsibility):
        _import(engine, example("M27.1"))
    assert counts(engine) == before


def test_the_official_m27_1_makes_its_sender_the_multidose_doctor_from_its_date(engine):
    patient_id = real_world(engine)
    other_doctor = GP.model_copy(
        update={"personnel": GP.personnel.model_copy(update={"hpr_number": "7777777"})}
    )
    multidose_from_2019(engine, patient_id, doctor=other_doctor)
    receipt = _import(engine, example("M27.1"))
    assert (receipt.type, receipt.result, receipt.entries) == ("ERM271", "applied", 0)
    with engine.connect() as conn:
        current = multidose.responsibility(conn, patient_id)
    assert current.doctor.personnel.hpr_number == "431002737"
    assert current.valid_from == date(2019, 7, 17)
    assert current.pharmacy == PHARMACIST.organisation


# -- M25.2: the multidose pharmacy's proposals ---------------------------------------------------


def test_the_official_m25_2_question_becomes_a_pending_proposal_for_the_multidose_doctor(engine):
    patient_id = multidose_world(engine)
    receipt = import_message(
        engine,
        with_demo_drugs(example("M25.2")),
        source="m25.2",
        config=reader_config(),
        call=call(PHARMACIST),
    )
    assert (receipt.type, receipt.result, receipt.entries) == ("ERM252", "proposed", 2)
    with engine.connect() as conn:
        (pending,) = multidose.pending_proposals(conn, patient_id)
    assert pending.kind.value == "question"
    assert pending.entry_id == uuid.UUID("c4044d55-2279-422b-9975-164661c52a8c")
    assert pending.question.startswith("Skal resepten fornyes")


def test_an_m25_2_from_a_pharmacy_that_is_not_the_multidose_pharmacy_is_refused(engine):
    patient_id = demo_world(engine)
    _import(engine, with_demo_drugs(example("M25.1")))
    before = counts(engine)
    with pytest.raises(DomainError) as caught:
        import_message(
            engine,
            with_demo_drugs(example("M25.2")),
            source="m25.2",
            config=reader_config(),
            call=call(PHARMACIST),
        )
    assert caught.value.code == "no-multidose-responsibility"
    assert counts(engine) == before
    with engine.connect() as conn:
        assert multidose.pending_proposals(conn, patient_id) == []


def test_an_m25_2_entry_new_to_the_list_becomes_a_pending_new_entry_the_doctor_can_accept(
    engine,
):
    patient_id = multidose_world(engine)
    new_entry, new_prescription = uuid.uuid4(), uuid.uuid4()
    data = with_demo_drugs(example("M25.2"))
    data = data.replace(b"b08e4a01-fe66-41eb-8f07-16810c2e3eb3", str(new_entry).encode())
    data = data.replace(b"252bc3f1-af62-4a37-9810-16810c33e84f", str(new_prescription).encode())
    # valid when the doctor accepts (2026): the example's prescription expired in 2020
    at = data.index(str(new_entry).encode())
    data = data[:at] + data[at:].replace(b"2020-07-16+02:00", b"2027-07-16+02:00", 1)
    receipt = import_message(
        engine, data, source="m25.2", config=reader_config(), call=call(PHARMACIST)
    )
    assert receipt.result == "proposed"
    assert receipt.reasons[0] == "2 proposal(s) waiting for the multidose doctor"
    with engine.connect() as conn:
        pending = {p.kind.value: p for p in multidose.pending_proposals(conn, patient_id)}
    assert set(pending) == {"question", "new-entry"}
    order = pending["new-entry"].new_entry
    assert (order["entry_id"], order["drug"]["varenr"], order["multidose"]) == (
        str(new_entry),
        "090470",  # the second demo drug with_demo_drugs puts in the M25.2
        True,
    )
    assert order["terms"]["prescription_id"] == str(new_prescription)
    version = _state(engine, patient_id).medication_list.version
    multidose.accept_proposal(
        engine, patient_id, pending["new-entry"].id, call(GP), based_on=version
    )
    state = _state(engine, patient_id)
    assert state.medication_list.entry(new_entry).multidose
    assert new_prescription in state.prescriptions
