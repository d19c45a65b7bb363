"""XML signatures: reported per document, verified against a trust store when there is one,
and never dropped.  Keys and certificates are made for the test (``pki.py``) and thrown away
after it."""

from __future__ import annotations

import pytest
from cryptography import x509
from lxml import etree
from signxml import XMLSigner
from signxml.algorithms import CanonicalizationMethod

from medloop.eresept.errors import SignatureInvalid
from medloop.eresept.signatures import NO_TRUST_STORE
from tests.eresept.messages import (
    example,
    needs_shared,
    read,
    replace_embedded,
    without_signature,
)
from tests.eresept.pki import make_ca, make_leaf, trust_store

pytestmark = needs_shared


@pytest.fixture(scope="module")
def pki():
    ca_key, ca_cert = make_ca("medloop test CA")
    key, cert = make_leaf(ca_key, ca_cert, "LEGE TEST")
    _, other_ca = make_ca("some other CA")
    return {"ca": ca_cert, "key": key, "cert": cert, "other_ca": other_ca}


def sign(data: bytes, pki) -> bytes:
    """The document signed enveloped (the way MsgHead is: RSA-SHA256, exclusive c14n)."""
    root = etree.fromstring(without_signature(data))
    signed = XMLSigner(
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    ).sign(root, key=pki["key"], cert=[pki["cert"]])
    return etree.tostring(signed, xml_declaration=True, encoding="utf-8")


def test_a_signed_message_verifies_against_a_trust_store_holding_its_ca(pki, tmp_path):
    message = read(sign(example("M1"), pki), trust_store=trust_store(tmp_path, pki["ca"]))
    (report,) = message.signatures
    assert report.status == "verified"
    assert report.where == "MsgHead/Signature"
    assert "CN=LEGE TEST" in report.signer


def test_a_tampered_message_is_refused_as_invalid(pki, tmp_path):
    signed = sign(example("M1"), pki).replace(b"<Antall>1</Antall>", b"<Antall>9</Antall>")
    with pytest.raises(SignatureInvalid) as caught:
        read(signed, trust_store=trust_store(tmp_path, pki["ca"]))
    problem = caught.value.problems[0]
    assert problem.code == "signature-invalid"
    assert problem.where == "MsgHead/Signature"
    assert "Digest mismatch" in problem.message


def test_a_signature_from_a_ca_outside_the_trust_store_is_invalid(pki, tmp_path):
    with pytest.raises(SignatureInvalid) as caught:
        read(sign(example("M1"), pki), trust_store=trust_store(tmp_path, pki["other_ca"]))
    assert caught.value.problems[0].code == "signature-invalid"


def test_without_a_trust_store_a_signature_is_reported_present_not_verified(pki):
    message = read(sign(example("M1"), pki).replace(b"<Antall>1</Antall>", b"<Antall>9</Antall>"))
    (report,) = message.signatures
    assert report.status == NO_TRUST_STORE == "present, not verified (no trust store)"
    assert "rsa-sha256" in report.detail


def test_the_official_examples_signatures_are_reported_never_dropped():
    message = read(example("M25.1"))
    assert [(s.where, s.status) for s in message.signatures] == [
        ("MsgHead/Signature", NO_TRUST_STORE)
    ]
    assert "ANJA FOS EIDSVIK" in message.signatures[0].signer
    assert read(example("M25.2")).signatures == ()  # the M25.2 example is not signed


def test_the_official_examples_test_certificate_is_not_trusted_by_an_unrelated_store(pki, tmp_path):
    with pytest.raises(SignatureInvalid):
        read(example("M5"), trust_store=trust_store(tmp_path, pki["ca"]))


def test_a_whole_signed_message_embedded_in_base64_has_its_signature_checked(pki, tmp_path):
    """The M9.x answers carry a whole signed message base64-encoded: its signature is found in
    the decoded bytes and verified on them."""
    data = without_signature(example("M25.1"))
    signed_m1 = sign(example("M1"), pki)
    message_data = replace_embedded(data, 0, signed_m1)
    store = trust_store(tmp_path, pki["ca"])
    message = read(message_data, trust_store=store)
    holder = "MsgHead/Document/RefDoc/Content/LegemidlerIBruk/EnkeltoppforingLIB[1]"
    holder += "/ReseptDokLegemiddelB64"
    (report,) = message.signatures
    assert report.status == "verified"
    assert report.where == holder + "/MsgHead/Signature"
    assert [(d.type, d.where, d.depth) for d in message.documents[1:3]] == [
        ("MsgHead", holder, 1),
        ("M1", holder + "/MsgHead/Document/RefDoc/Content/Resept", 1),
    ]
    tampered = replace_embedded(
        data, 0, signed_m1.replace(b"<Antall>1</Antall>", b"<Antall>4</Antall>")
    )
    with pytest.raises(SignatureInvalid) as caught:
        read(tampered, trust_store=store)
    assert caught.value.problems[0].where == holder + "/MsgHead/Signature"


def test_a_trust_store_that_is_not_a_folder_or_is_empty_verifies_nothing(pki, tmp_path):
    signed = sign(example("M1"), pki)
    with pytest.raises(SignatureInvalid) as caught:
        read(signed, trust_store=tmp_path / "absent")
    assert "is not a folder" in caught.value.problems[0].message
    (tmp_path / "empty").mkdir()
    with pytest.raises(SignatureInvalid) as caught:
        read(signed, trust_store=tmp_path / "empty")
    assert "holds no PEM certificate" in caught.value.problems[0].message


def test_a_sha1_signature_is_invalid_whatever_the_trust_store(tmp_path):
    """The official M10 example is signed RSA-SHA1, which signxml refuses by default."""
    import base64
    import re

    data = example("M10")
    der = re.search(rb"<X509Certificate>([^<]+)<", data).group(1)
    own = x509.load_der_x509_certificate(base64.b64decode(der))
    with pytest.raises(SignatureInvalid) as caught:
        read(data, trust_store=trust_store(tmp_path, own))
    assert "RSA_SHA1 forbidden" in caught.value.problems[0].message
