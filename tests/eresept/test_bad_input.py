"""Each class of bad input is refused with its own precise error: code, file, line (and
column where the parser gives one), and for embedded documents the path of the embedding
element."""

from __future__ import annotations

import base64

import pytest

from medloop.eresept import Limits
from medloop.eresept.errors import (
    EmbeddedNotXml,
    LimitExceeded,
    MalformedXml,
    SchemaViolation,
    UnknownMessage,
    UnsafeXml,
)
from tests.eresept.hostile import BILLION_LAUGHS, XXE
from tests.eresept.messages import (
    embedded_m1s,
    example,
    line_of,
    needs_shared,
    read,
    replace_embedded,
)

pytestmark = needs_shared

SECOND_ENTRY = (
    "MsgHead/Document/RefDoc/Content/LegemidlerIBruk/EnkeltoppforingLIB[2]/ReseptDokLegemiddelB64"
)


def test_a_truncated_message_is_malformed_with_the_line_where_it_ends():
    data = example("M1")
    cut = data[: data.index(b"</Forskrivning>")]
    with pytest.raises(MalformedXml) as caught:
        read(cut, source="cut.xml")
    problem = caught.value.problems[0]
    assert problem.code == "malformed-xml"
    assert problem.source == "cut.xml"
    assert problem.line == cut.count(b"\n") + 1
    assert problem.column is not None


def test_a_tag_mismatch_names_line_and_column():
    data = example("M5").replace(b"</Merknad>", b"</Merknadx>")
    with pytest.raises(MalformedXml) as caught:
        read(data)
    problem = caught.value.problems[0]
    assert problem.line == line_of(data, b"</Merknadx>")
    assert "Merknad" in problem.message


def test_an_empty_file_is_malformed():
    with pytest.raises(MalformedXml):
        read(b"  \n")


def test_a_document_that_is_not_a_msghead_is_refused_by_its_namespace():
    data = example("M1").replace(
        b'<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24">',
        b'<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2099-01-01">',
    )
    with pytest.raises(UnknownMessage) as caught:
        read(data)
    assert caught.value.code == "wrong-namespace"
    assert "msghead/2099-01-01" in caught.value.problems[0].message


def test_a_document_in_a_namespace_we_do_not_handle_is_refused_with_its_path():
    data = example("M5").replace(b"eresept/m5/2013-04-16", b"eresept/m5/2099-01-01")
    with pytest.raises(UnknownMessage) as caught:
        read(data)
    problem = caught.value.problems[0]
    assert problem.code == "unknown-namespace"
    assert problem.where == "MsgHead/Document/RefDoc/Content/Tilbakekalling"
    assert "m5/2099-01-01" in problem.message


def test_a_message_type_we_do_not_handle_is_refused_by_name():
    data = example("M1").replace(b'<Type DN="Resept" V="ERM1"/>', b'<Type DN="Svar" V="ERM99"/>')
    with pytest.raises(UnknownMessage) as caught:
        read(data)
    problem = caught.value.problems[0]
    assert problem.code == "unknown-message-type"
    assert "'ERM99' (Svar) is not handled" in problem.message
    assert problem.line == line_of(data, b'V="ERM99"')


def test_a_message_whose_content_is_not_its_type_is_refused():
    data = example("M5").replace(b'V="ERM5"', b'V="ERM1"')
    with pytest.raises(UnknownMessage) as caught:
        read(data)
    assert caught.value.code == "content-type-mismatch"
    assert (
        "ERM1 message must carry an M1 document; it carries M5" in caught.value.problems[0].message
    )


def test_an_envelope_schema_violation_has_its_line():
    data = example("M1").replace(
        b"<MIGversion>v1.2 2006-05-24</MIGversion>", b"<MIGversion>v9</MIGversion>"
    )
    with pytest.raises(SchemaViolation) as caught:
        read(data)
    problem = caught.value.problems[0]
    assert problem.line == line_of(data, b"<MIGversion>v9")
    assert problem.where is None
    assert "MIGversion" in problem.message


def test_every_violation_of_a_content_document_is_reported_with_its_line():
    data = (
        example("M1")
        .replace(b"<Utloper>2020-07-16+02:00</Utloper>", b"<Utloper>next summer</Utloper>")
        .replace(b"<Antall>1</Antall>", b"<Antall>one</Antall>")
    )
    with pytest.raises(SchemaViolation) as caught:
        read(data)
    lines = sorted(p.line for p in caught.value.problems)
    assert lines == [line_of(data, b"<Utloper>next"), line_of(data, b"<Antall>one")]
    assert {p.where for p in caught.value.problems} == {"MsgHead/Document/RefDoc/Content/Resept"}


def test_a_violation_inside_an_embedded_m1_names_the_embedding_element_and_its_own_line():
    data = example("M25.1")
    m1 = embedded_m1s(data)[1].replace(
        b"<Reiterasjon>3</Reiterasjon>", b"<Reiterasjon>tre</Reiterasjon>"
    )
    bad = replace_embedded(data, 1, m1)
    with pytest.raises(SchemaViolation) as caught:
        read(bad)
    problem = caught.value.problems[0]
    assert problem.where == SECOND_ENTRY
    assert problem.line == line_of(m1, b"<Reiterasjon>tre")  # counted in the decoded document
    assert "Reiterasjon" in problem.message


def test_a_base64_payload_that_is_not_xml_is_refused_with_where_it_is():
    data = example("M25.1")
    bad = replace_embedded(data, 1, b"%PDF-1.4 this is not a prescription")
    with pytest.raises(EmbeddedNotXml) as caught:
        read(bad)
    problem = caught.value.problems[0]
    assert problem.code == "embedded-not-xml"
    assert problem.where == SECOND_ENTRY
    assert problem.line == 149
    assert "not an XML document" in problem.message


def test_a_base64_payload_with_broken_xml_names_the_line_in_the_decoded_document():
    data = example("M25.1")
    m1 = embedded_m1s(data)[0]
    broken = m1[: m1.index(b"</Forskrivning>")]
    with pytest.raises(EmbeddedNotXml) as caught:
        read(replace_embedded(data, 0, broken))
    problem = caught.value.problems[0]
    assert problem.code == "embedded-not-xml"
    assert problem.line == broken.count(b"\n") + 1
    assert "EnkeltoppforingLIB[1]/ReseptDokLegemiddelB64 (line 129), decoded" in problem.where


def test_a_payload_that_is_not_base64_at_all_is_refused():
    data = replace_embedded(example("M25.1"), 2, b"***not base64***", encode=False)
    with pytest.raises((EmbeddedNotXml, SchemaViolation)) as caught:
        read(data)
    assert "embedded-not-base64" in {p.code for p in caught.value.problems}


@pytest.mark.parametrize("attack", [XXE, BILLION_LAUGHS], ids=["xxe", "billion-laughs"])
def test_entity_attacks_are_refused_at_the_doctype(attack):
    with pytest.raises(UnsafeXml) as caught:
        read(attack)
    problem = caught.value.problems[0]
    assert problem.code == "doctype-refused"
    assert problem.line == 2
    assert "passwd" not in str(caught.value)


def test_an_entity_attack_inside_an_embedded_document_is_refused_too():
    with pytest.raises(UnsafeXml) as caught:
        read(replace_embedded(example("M25.1"), 0, XXE))
    assert caught.value.problems[0].code == "doctype-refused"
    assert "EnkeltoppforingLIB[1]/ReseptDokLegemiddelB64" in caught.value.problems[0].where


def test_a_message_larger_than_the_limit_is_refused_before_parsing():
    with pytest.raises(LimitExceeded) as caught:
        read(example("M1"), limits=Limits(max_bytes=1000))
    assert caught.value.code == "too-large"
    assert "MEDLOOP_ERESEPT_MAX_BYTES" in caught.value.problems[0].message


def test_nesting_deeper_than_the_limit_is_refused_with_the_line():
    with pytest.raises(LimitExceeded) as caught:
        read(example("M1"), limits=Limits(max_depth=8))
    problem = caught.value.problems[0]
    assert problem.code == "too-deep"
    assert problem.line is not None


def test_documents_embedded_deeper_than_the_limit_are_refused():
    with pytest.raises(LimitExceeded) as caught:
        read(example("M25.1"), limits=Limits(max_embedding=0))
    assert caught.value.code == "embedding-too-deep"
    assert caught.value.problems[0].where.endswith("ReseptDokLegemiddelB64")


def test_base64_documents_unwrap_to_any_depth_and_each_is_validated():
    """An M1 wrapped in base64 inside an embedded document: two layers, both found, both
    validated, each knowing its path (the M9.x answers nest a whole M25.1 this way)."""
    data = example("M25.1")
    inner_m1 = embedded_m1s(data)[0]
    wrapper = inner_m1.replace(
        b"</ReseptDokLegemiddel>",
        b"<NestedB64>" + base64.b64encode(inner_m1) + b"</NestedB64></ReseptDokLegemiddel>",
    )
    with pytest.raises(SchemaViolation) as caught:  # the M1 schema has no NestedB64
        read(replace_embedded(data, 0, wrapper))
    assert any("NestedB64" in p.message for p in caught.value.problems)
    # the inner layer was unwrapped and validated as well: break it and it is reported too
    broken_inner = inner_m1.replace(b"<Antall>1</Antall>", b"<Antall>x</Antall>")
    wrapper = inner_m1.replace(
        b"</ReseptDokLegemiddel>",
        b"<NestedB64>" + base64.b64encode(broken_inner) + b"</NestedB64></ReseptDokLegemiddel>",
    )
    with pytest.raises(SchemaViolation) as caught:
        read(replace_embedded(data, 0, wrapper))
    inner = [p for p in caught.value.problems if "Antall" in p.message]
    assert inner and inner[0].where == (
        "MsgHead/Document/RefDoc/Content/LegemidlerIBruk/EnkeltoppforingLIB[1]/ReseptDokLegemiddelB64"
        "/ReseptDokLegemiddel/NestedB64"
    )
