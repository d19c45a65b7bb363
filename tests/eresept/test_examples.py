"""Every official example message reads, validates and parses, with the values it carries."""

from __future__ import annotations

import pytest

from tests.eresept.messages import EXAMPLES, example, needs_shared, read

pytestmark = needs_shared


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_official_example_reads_with_its_envelope_and_documents(name):
    message = read(example(name))
    info = message.msg_info
    assert (
        info.type
        == {
            "M1": "ERM1",
            "M10": "ERM10",
            "M25.1": "ERM251",
            "M25.2": "ERM252",
            "M27.1": "ERM271",
            "M5": "ERM5",
        }[name]
    )
    assert info.mig_version == "v1.2 2006-05-24"
    assert info.patient.national_id == "21014605158"
    assert info.patient.national_id_type == "FNR"
    assert message.documents[0].type == name
    assert message.documents[0].depth == 0
    assert len(message.sha256) == 64


def test_the_envelope_of_the_m25_1_example_as_typed_values():
    info = read(example("M25.1")).msg_info
    assert info.msg_id == "36638174-088b-498c-9908-168116c13f53"
    assert info.type_name == "Varer i bruk"
    assert info.gen_date == "2019-07-17T08:54:38.2069848+02:00"
    assert info.conversation_ref.ref_to_parent == "2870c920-7b7c-41fc-bc1e-16810c344e9c"
    assert info.sender.name == "Virginia Legekontor"
    assert info.sender.her_id == "8095068"
    assert info.sender.org_number == "100169444"
    assert [i.type_code for i in info.sender.idents] == ["ENH", "HER", "RSH"]
    gp = info.sender.healthcare_professional
    assert (gp.hpr, gp.given_name, gp.family_name, gp.type.v) == (
        "431002737",
        "Anja Fos",
        "Eidsvik",
        "LE",
    )
    assert info.receiver.name == "Reseptformidleren"
    assert info.receiver.her_id == "80624"
    assert info.receiver.org_number == "915933149"
    assert (info.patient.given_name, info.patient.family_name, info.patient.sex.v) == (
        "OTTAR",
        "KNUTSEN",
        "1",
    )


def test_the_m25_1_example_unwraps_each_entrys_m1_with_its_path_and_type():
    message = read(example("M25.1"))
    embedded = [d for d in message.documents if d.embedded]
    assert [(d.type, d.root, d.depth, d.validation) for d in embedded] == [
        ("M1", "ReseptDokLegemiddel", 1, "valid")
    ] * 4
    assert embedded[1].where == (
        "MsgHead/Document/RefDoc/Content/LegemidlerIBruk/EnkeltoppforingLIB[2]/ReseptDokLegemiddelB64"
    )
    assert embedded[1].line == 149  # the line of the base64 element in the message
    assert embedded[1].namespace == "http://www.kith.no/xmlstds/eresept/m1/2013-10-08"
    assert all(len(d.sha256) == 64 for d in embedded)


def test_the_m25_1_example_as_a_list_of_entries_with_drugs_dosage_and_discontinuation():
    lib = read(example("M25.1")).lists[0]
    assert lib.type == "M25.1"
    assert [r.role.v for r in lib.roles] == ["L", "F"]
    assert lib.roles[0].person.hpr == "431002737"
    assert lib.locum.v == "2"
    assert len(lib.entries) == 4
    first, second, third, fourth = lib.entries
    assert first.id == "c4044d55-2279-422b-9975-164661c52a8c"
    assert first.prescription_id == "665e2a11-787a-4dac-aec1-16466a9838d1"
    assert first.prescription_expires == "2020-06-17+02:00"
    assert first.start_date == "2019-06-18"
    assert first.type.v == "E"
    drug = first.drug
    assert (drug.kind, drug.varenr, drug.atc.v, drug.atc.dn) == (
        "Legemiddelpakning",
        "057932",
        "R06AE07",
        "Cetirizin",
    )
    assert drug.name_form_strength == "Cetimax Tab 10 mg"
    assert (drug.trade_name, drug.package_size, drug.package_unit.v) == ("Cetimax", "100", "stk")
    assert drug.dosage_form.v == "53"
    rx = first.prescription
    assert (rx.quantity, rx.repeats, rx.reimbursement_basis.v, rx.reimbursement_code.v) == (
        "1",
        3,
        "200",
        "R97",
    )
    fs = rx.forskrivning
    assert fs.dosage_text == "1 tablett daglig"
    assert (fs.short_dose.v, fs.short_dose.ot) == ("93", "1 tablett daglig")
    assert fs.use.v == "1"
    assert fs.use_area == "ALLERGIMEDISIN"
    dose = fs.dosages[0]
    assert dose.start == "2019-06-18"
    assert [
        (d.amount.v, d.amount.u, d.interval.v, d.interval.u, d.time_of_day.v, d.exact)
        for d in dose.fixed
    ] == [("1", "tablett", "1", "Døgn", "1", False)]
    assert third.roles[0].person.specialty.dn == "Revmatologi"
    assert third.prescription.forskrivning.dosages == ()  # as needed, dosage as text only
    assert third.prescription.forskrivning.dosage_text == "1-2 tabletter inntil 3 ganger daglig"
    assert second.discontinued is None
    assert fourth.discontinued.time == "2019-07-23T00:00:00"
    assert fourth.discontinued.reason.v == "X"
    assert [len(d.fixed) for d in fourth.prescription.forskrivning.dosages] == [3]
    assert fourth.prescription.forskrivning.dosages[0].end == "2019-07-23"
    # everything in the example is mapped: nothing left over anywhere
    for entry in lib.entries:
        assert entry.unmapped == () and entry.prescription.unmapped == ()
        assert entry.prescription.forskrivning.unmapped == () and entry.drug.unmapped == ()


def test_the_m1_example_as_a_prescription_with_its_prescriber():
    message = read(example("M1"))
    assert message.msg_id == "ef36537f-563b-4fb1-b93d-1681170f9817"
    rx = message.prescriptions[0]
    assert (rx.issued, rx.expires, rx.free_card, rx.multidose_prescription) == (
        "2019-07-17+02:00",
        "2020-07-16+02:00",
        False,
        False,
    )
    assert rx.fest_updated == "2019-07-05T13:37:50"
    assert rx.prescriber.hpr == "431002737"
    assert (rx.document.quantity, rx.document.repeats, rx.document.product_group.v) == ("1", 0, "L")
    fs = rx.document.forskrivning
    assert fs.drug.varenr == "154021" and fs.drug.atc.v == "M01AE01"
    assert fs.drug.name_form_strength == "Ibux Tab 400 mg"
    assert fs.dosage_text.startswith("1 tablett morgen, 1 tablett midt på dagen")
    assert [d.time_of_day.dn for d in fs.dosages[0].fixed] == ["Morgen", "Midt på dagen", "Kveld"]
    assert (fs.dosages[0].start, fs.dosages[0].end) == ("2019-07-17", "2019-08-19")
    assert rx.unmapped == ()


def test_the_m25_2_example_keeps_the_pharmacys_question():
    lib = read(example("M25.2")).lists[0]
    assert lib.type == "M25.2"
    question = lib.entries[0].questions[0]
    assert (question.code.v, question.code.dn, question.asked_by) == (
        "3",
        "Skal resepten fornyes",
        "8091831",
    )
    assert lib.entries[1].questions == ()


def test_documents_without_a_typed_model_are_kept_whole():
    m5 = read(example("M5"))
    assert m5.lists == () and m5.prescriptions == ()
    assert "f63b9535-5160-4972-b923-168114660619" in m5.unmapped[0].xml
    assert m5.unmapped[0].path == "MsgHead/Document/RefDoc/Content/Tilbakekalling"
    m10 = read(example("M10"))
    assert "<Varenr>541409</Varenr>" in m10.unmapped[0].xml


def test_m27_1_has_no_published_schema_and_says_so():
    message = read(example("M27.1"))
    assert message.documents[0].validation.startswith("not validated: no official schema for M27.1")


def test_an_element_the_models_do_not_map_is_kept_with_its_path_and_xml():
    data = example("M1").replace(
        b"<OppdatertFest>",
        b'<EkspAnm><Vilkar>true</Vilkar><MetodeEkspedering V="1"/>'
        b"<Utleverer>Apotek</Utleverer><Kontaktperson>Kari</Kontaktperson>"
        b"<OrgNrUtleverer>983044778</OrgNrUtleverer>"
        b"<UtlevererNavn>Apotek 1</UtlevererNavn></EkspAnm>"
        b"<OppdatertFest>",
    )
    rx = read(data).prescriptions[0]
    assert [u.path for u in rx.unmapped] == ["MsgHead/Document/RefDoc/Content/Resept/EkspAnm"]
    assert "<Kontaktperson>Kari</Kontaktperson>" in rx.unmapped[0].xml


def test_an_extension_document_is_reported_as_not_validated_because_its_schema_is_xsd_1_1():
    extension = (
        b'<Document><RefDoc><MsgType V="XML" DN="XML-instans"/><Content>'
        b'<LegemidlerIbrukUtvidelse xmlns="http://www.kith.no/xmlstds/eresept/m251/2013-10-08/'
        b'extension/1"><Dosering><EnkeltoppforingLIB_ref>x</EnkeltoppforingLIB_ref></Dosering>'
        b"</LegemidlerIbrukUtvidelse></Content></RefDoc></Document>"
    )
    data = example("M25.1").replace(b"  </Document>\n", b"  </Document>\n" + extension, 1)
    message = read(data)
    (doc,) = [d for d in message.documents if d.type == "M25.1 extension 1"]
    assert doc.where == "MsgHead/Document[2]/RefDoc/Content/LegemidlerIbrukUtvidelse"
    assert doc.validation == (
        "not validated: its schema eresept/ER-M251-2013-10-08-extension-1.xsd is XSD 1.1, "
        "which lxml cannot read"
    )
    assert "EnkeltoppforingLIB_ref" in message.unmapped[0].xml  # kept whole, not dropped


def test_a_message_survives_a_json_round_trip_as_the_same_frozen_value():
    from medloop.eresept import Message

    message = read(example("M25.1"))
    again = Message.model_validate_json(message.model_dump_json())
    assert again == message
    assert again.lists[0].entries[3].discontinued.reason.dn == "Annen årsak"
    with pytest.raises(ValueError):
        message.lists[0].entries[0].id = "changed"  # frozen
