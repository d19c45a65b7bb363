"""M10 in: an external pharmacy's dispensing report becomes a dispense against our prescription
(matched by ``ReseptId``) under the closed-loop dispensing rules, with the pack's expiry (and
batch, without ``Batchnr``) absent and marked as not carried by the message; a report we cannot
match, or that the rules refuse, is refused with nothing stored. SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from medloop import queries
from medloop.domain.codes import PrescriptionStatus
from medloop.domain.dispense import NOT_CARRIED_BY_M10, QuantityExceedsRemaining
from medloop.domain.errors import NotDispensable
from medloop.domain.messages import MessageNotMatched, MessageWithoutAuthor
from medloop.fhir.resources import medication_dispense
from medloop.loop.messages import import_message, m10_dispense_id
from medloop.store.prescriptions import dispense, dispense_annulment
from tests.eresept.dispensing import FIRST, FIRST_VARENR, OFFICIAL_RESEPT_ID, m10
from tests.eresept.importing import counts, demo_world, reader_config, real_world, with_demo_drugs
from tests.eresept.messages import example, needs_shared
from tests.loop.helpers import PHARMACIST, call

pytestmark = needs_shared


def _import(engine, data: bytes):
    """An M10 as the dispensing pharmacist (its envelope names the pharmacy alone); the other
    messages as their senders."""
    by = call(PHARMACIST) if b'V="ERM10"' in data else None
    return import_message(engine, data, source="m10.xml", config=reader_config(), call=by)


def _rows(engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        extra = tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (dispense, dispense_annulment)
        )
    return (*counts(engine), *extra)


def _state(engine, patient_id):
    with engine.connect() as conn:
        return queries.patient_state(conn, patient_id)


def _listed(engine):
    """The demo world with the official M25.1 applied (its prescriptions issued)."""
    patient_id = demo_world(engine)
    assert _import(engine, with_demo_drugs(example("M25.1"))).result == "applied"
    return patient_id


def test_the_official_m10_names_a_prescription_no_official_example_issues_so_it_is_refused(
    engine,
):
    # ReseptId c2883dc2-… is in none of the official examples (the M1's MsgId, its prescription
    # id, is ef36537f-…; the M25.1's prescriptions are others): an unmatched report, even with
    # the M1 and the M25.1 imported first
    real_world(engine)
    _import(engine, example("M1"))
    _import(engine, example("M25.1"))
    before = _rows(engine)
    with pytest.raises(MessageNotMatched) as caught:
        _import(engine, example("M10"))
    assert OFFICIAL_RESEPT_ID in caught.value.detail
    assert "nothing is recorded" in caught.value.detail
    assert _rows(engine) == before


def test_a_matched_m10_is_a_dispense_with_expiry_and_batch_absent_and_marked_not_carried(engine):
    patient_id = _listed(engine)
    before = _rows(engine)
    msg_id = str(uuid.uuid4())
    receipt = _import(engine, m10(msg_id=msg_id))
    assert (receipt.type, receipt.result, receipt.entries) == ("ERM10", "applied", 1)
    assert f"batch {NOT_CARRIED_BY_M10}" in receipt.reasons
    assert f"expiry {NOT_CARRIED_BY_M10}" in receipt.reasons
    state = _state(engine, patient_id)
    (recorded,) = state.dispenses_of(FIRST)
    assert recorded.id == m10_dispense_id(msg_id)
    assert (recorded.batch, recorded.expiry, recorded.reported_in) == (None, None, "M10")
    assert recorded.not_carried == ("batch", "expiry")
    assert recorded.package.varenr == FIRST_VARENR
    assert recorded.quantity.packages == 1.0
    assert recorded.pharmacist.hpr_number == PHARMACIST.personnel.hpr_number  # the caller
    assert recorded.pharmacy.id == "8090688"  # the sending pharmacy's HER-id
    # one dispense and the received message more; the prescription (1 package, 3 repeats) goes on
    assert _rows(engine)[3] == before[3] + 1 and _rows(engine)[0] == before[0] + 1
    assert state.prescriptions[FIRST].status is PrescriptionStatus.DISPENSABLE
    # shown downstream as not given in the M10
    body = medication_dispense(recorded, patient_id, state.prescriptions[FIRST])
    assert body["note"] == [{"text": f"batch {NOT_CARRIED_BY_M10}, expiry {NOT_CARRIED_BY_M10}"}]


def test_an_m10_with_batchnr_keeps_the_batch_and_marks_only_the_expiry(engine):
    patient_id = _listed(engine)
    _import(engine, m10(batch="AB1234"))
    (recorded,) = _state(engine, patient_id).dispenses_of(FIRST)
    assert (recorded.batch, recorded.not_carried) == ("AB1234", ("expiry",))


def test_the_same_m10_twice_is_one_dispense(engine):
    patient_id = _listed(engine)
    data = m10()
    assert _import(engine, data).result == "applied"
    assert _import(engine, data).result == "duplicate"
    assert len(_state(engine, patient_id).dispenses_of(FIRST)) == 1


def test_an_m10_beyond_what_remains_is_refused_by_the_dispensing_rule_and_nothing_is_stored(
    engine,
):
    _listed(engine)
    before = _rows(engine)
    with pytest.raises(QuantityExceedsRemaining):
        _import(engine, m10(packages="5.000"))  # 1 package x (1 + 3 repeats) allowed
    assert _rows(engine) == before


def test_an_m10_against_a_recalled_prescription_is_refused_and_nothing_is_stored(engine):
    patient_id = _listed(engine)
    assert _import(engine, example("M5")).result == "applied"  # recalls f63b9535-…
    state = _state(engine, patient_id)
    (recalled,) = [
        p for p in state.prescriptions.values() if p.status is PrescriptionStatus.RECALLED
    ]
    varenr = state.medication_list.entry(recalled.entry_id).drug.varenr
    before = _rows(engine)
    with pytest.raises(NotDispensable):
        _import(engine, m10(recalled.id, varenr=varenr))
    assert _rows(engine) == before


def test_an_m10_of_a_package_that_is_not_the_prescribed_one_or_a_substitute_is_refused(engine):
    _listed(engine)
    before = _rows(engine)
    with pytest.raises(NotDispensable):
        _import(engine, m10(varenr="090470"))  # simvastatin against a levothyroxine prescription
    assert _rows(engine) == before


def test_an_m10_naming_a_reseptid_that_is_not_ours_is_refused_with_the_reason(engine):
    _listed(engine)
    before = _rows(engine)
    with pytest.raises(MessageNotMatched, match="not a prescription id of ours"):
        _import(engine, m10("RX-12345"))
    assert _rows(engine) == before


def test_an_annulling_m10_annuls_the_dispense_of_the_m10_it_names(engine):
    patient_id = _listed(engine)
    first = str(uuid.uuid4())
    _import(engine, m10(msg_id=first))
    receipt = _import(engine, m10(annuls=first))
    assert receipt.result == "applied"
    (recorded,) = _state(engine, patient_id).dispenses_of(FIRST)
    assert recorded.annulment is not None and not recorded.counts
    # an annulment of an M10 never received is refused, nothing stored
    before = _rows(engine)
    with pytest.raises(MessageNotMatched, match="not recorded"):
        _import(engine, m10(annuls=str(uuid.uuid4())))
    assert _rows(engine) == before


def test_the_m10s_ansatt_id_is_an_employee_id_not_the_dispensing_pharmacists_hpr(engine):
    # ER-M10-2013-10-08.xsd: AnsattId is a plain string, undocumented; "employee id"
    patient_id = _listed(engine)
    data = m10().replace(b"<AnsattId>9876543</AnsattId>", b"<AnsattId>1234567</AnsattId>")
    before = _rows(engine)
    with pytest.raises(MessageWithoutAuthor) as caught:
        import_message(engine, data, source="m10.xml", config=reader_config())
    assert "AnsattId '1234567' is the pharmacy's employee id" in caught.value.detail
    assert _rows(engine) == before
    receipt = _import(engine, data)
    (recorded,) = _state(engine, patient_id).dispenses_of(FIRST)
    assert recorded.pharmacist.hpr_number == PHARMACIST.personnel.hpr_number != "1234567"
    assert (
        "dispensed by the pharmacy's employee 1234567 (AnsattId, not an HPR number)"
        in receipt.reasons
    )
