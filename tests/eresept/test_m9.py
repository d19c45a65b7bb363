"""M9.x answers (M9.12 "Nedlasting av varer i bruk", M9.4 "Nedlasting av resept"): a whole
M25.1 or M1 message base64-encoded in the answer's ``Content/Base64Container`` is unwrapped,
validated against its XSDs and imported exactly as if received alone, the receipt's ``type``
being the answer's (``ERM912``). No ER-M9 schema is in ../shared, so the answers here are built
by the tests; the M9 document element below is a stand-in checked structurally (and against an
``ER-M9*.xsd`` when the XSD folder has one: a test schema written by the test)."""

from __future__ import annotations

import uuid

import pytest

from medloop import queries
from medloop.domain.drug_reference import CatalogueDrug
from medloop.eresept.errors import SchemaViolation, UnknownMessage
from medloop.loop.messages import import_message
from tests.eresept.importing import PATIENT, counts, demo_world, reader_config, with_demo_drugs
from tests.eresept.m9 import M912_NS, answer
from tests.eresept.messages import XSD, example, needs_shared, read

pytestmark = needs_shared


def _import(engine, data: bytes, **kwargs):
    return import_message(engine, data, source="m912.xml", config=reader_config(**kwargs))


def test_an_m9_12_answer_is_read_with_the_m25_1_it_carries_and_every_layer_validated():
    message = read(answer(example("M25.1")))
    assert message.type == "ERM912"
    inner = message.wrapped
    assert inner is not None and message.subject is inner
    assert inner.msg_info.type == "ERM251"
    assert inner.msg_id == "36638174-088b-498c-9908-168116c13f53"
    assert len(inner.lists[0].entries) == 4
    m1s = [d for d in inner.documents if d.type == "M1"]
    assert [(d.depth, d.validation) for d in m1s] == [(2, "valid")] * 4
    (m912,) = [d for d in message.documents if d.root == "Nedlasting"]
    assert m912.validation.startswith("not validated: no ER-M9 schema for " + M912_NS)
    (carried,) = [d for d in message.documents if d.type == "MsgHead"]
    assert carried.where == "MsgHead/Document[2]/RefDoc/Content/Base64Container"
    assert carried.sha256 == inner.sha256


def test_an_m9_12_answer_imports_its_m25_1_as_if_received_alone(engine):
    patient_id = demo_world(engine)
    msg_id = str(uuid.uuid4())
    receipt = _import(engine, answer(with_demo_drugs(example("M25.1")), msg_id=msg_id))
    assert (receipt.message_id, receipt.type, receipt.patient) == (msg_id, "ERM912", PATIENT)
    assert (receipt.result, receipt.entries) == ("applied", 4)
    assert receipt.reasons[0].startswith(f"ERM912 {msg_id} carries ERM251 36638174-")
    with engine.connect() as conn:
        state = queries.patient_state(conn, patient_id)
    assert len(state.medication_list.entries) == 4
    assert all(isinstance(e.drug, CatalogueDrug) for e in state.medication_list.entries)
    assert uuid.UUID("665e2a11-787a-4dac-aec1-16466a9838d1") in state.prescriptions


def test_the_same_answer_twice_is_one_effect(engine):
    demo_world(engine)
    data = answer(with_demo_drugs(example("M25.1")))
    assert _import(engine, data).result == "applied"
    before = counts(engine)
    assert _import(engine, data).result == "duplicate"
    assert counts(engine) == before


def test_an_m9_4_answer_imports_its_m1_as_a_prescription_named_by_the_m1s_msg_id(engine):
    patient_id = demo_world(engine)
    m1 = example("M1").replace(b"<Varenr>154021</Varenr>", b"<Varenr>090606</Varenr>")
    receipt = _import(engine, answer(m1, type_code="ERM94"))
    assert (receipt.type, receipt.result, receipt.entries) == ("ERM94", "applied", 1)
    with engine.connect() as conn:
        state = queries.patient_state(conn, patient_id)
    assert uuid.UUID("ef36537f-563b-4fb1-b93d-1681170f9817") in state.prescriptions


def test_an_answer_carrying_another_message_type_than_its_own_is_refused(engine):
    demo_world(engine)
    before = counts(engine)
    with pytest.raises(UnknownMessage) as caught:
        _import(engine, answer(example("M1")))  # an M9.12 must carry an M25.1
    assert caught.value.problems[0].code == "content-type-mismatch"
    assert "must carry an ERM251 message; it carries 'ERM1'" in caught.value.problems[0].message
    assert counts(engine) == before


def test_an_answer_without_a_carried_message_is_refused():
    data = answer(example("M25.1"))
    start = data.rindex(b"  <Document>", 0, data.index(b"<Base64Container"))
    stripped = data[:start] + data[data.index(b"</MsgHead>") :]
    with pytest.raises(UnknownMessage, match="must carry one ERM251 message"):
        read(stripped)


def test_a_schema_violation_inside_the_carried_message_names_where_it_is():
    broken = example("M25.1").replace(b"<Rolle>", b"<Rollen/><Rolle>", 1)
    with pytest.raises(SchemaViolation) as caught:
        read(answer(broken))
    assert {p.where for p in caught.value.problems} == {
        "MsgHead/Document[2]/RefDoc/Content/Base64Container/MsgHead/Document/RefDoc/Content/"
        "LegemidlerIBruk"
    }


TEST_M912_XSD = f"""<?xml version="1.0" encoding="UTF-8"?>
<schema xmlns="http://www.w3.org/2001/XMLSchema" targetNamespace="{M912_NS}"
        xmlns:t="{M912_NS}" elementFormDefault="qualified">
  <element name="Nedlasting">
    <complexType><sequence>
      <element name="Status"><complexType>
        <attribute name="V" type="string" use="required"/>
        <attribute name="DN" type="string"/>
      </complexType></element>
    </sequence></complexType>
  </element>
</schema>
"""


def _xsd_dir_with_m9(tmp_path):
    """The reference XSD folder plus an ER-M9 schema (written here: none is published in it)."""
    for folder in ("eresept", "felleskomponenter"):
        target = tmp_path / folder
        target.mkdir(exist_ok=True)
        for xsd in (XSD / folder).iterdir():
            (target / xsd.name).symlink_to(xsd)
    (tmp_path / "eresept" / "ER-M912-test.xsd").write_text(TEST_M912_XSD)
    return tmp_path


def test_the_m9_document_is_validated_against_an_er_m9_schema_when_the_folder_has_one(tmp_path):
    from medloop.eresept import ReaderConfig, read_message

    config = ReaderConfig(xsd_dir=_xsd_dir_with_m9(tmp_path))
    message = read_message(answer(example("M25.1")), source="a.xml", config=config)
    (m912,) = [d for d in message.documents if d.root == "Nedlasting"]
    assert (m912.type, m912.validation) == ("M9 (ER-M912-test)", "valid")
    bad = answer(example("M25.1")).replace(b'<Status V="1" DN="OK"/>', b"<Stat/>")
    with pytest.raises(SchemaViolation) as caught:
        read_message(bad, source="a.xml", config=config)
    assert caught.value.problems[0].where == "MsgHead/Document[1]/RefDoc/Content/Nedlasting"
