"""XML signatures (XMLDSig, enveloped): found, reported, verified when a trust store is set.

Every ``ds:Signature`` in the message and in every embedded document is reported; none is
dropped.  Without a trust store (``MEDLOOP_ERESEPT_TRUST_STORE``, a folder of PEM
certificates) a signature is "present, not verified (no trust store)".  With one, ``signxml``
checks the signature value, the digests of what it references, and the chain from the
certificate in ``KeyInfo`` to a certificate in the store: "verified" or "invalid" (with the
reason).  SHA-1 signature and digest methods are refused as ``signxml`` refuses them by
default.
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

from lxml import etree

from medloop.eresept.model import SignatureReport

DSIG = "http://www.w3.org/2000/09/xmldsig#"
NO_TRUST_STORE = "present, not verified (no trust store)"


def find_signatures(root: etree._Element) -> list[etree._Element]:
    return list(root.iter(f"{{{DSIG}}}Signature"))


def _signer(signature: etree._Element) -> str | None:
    cert = signature.find(f".//{{{DSIG}}}X509Certificate")
    if cert is None or not (cert.text or "").strip():
        return None
    try:
        from cryptography import x509

        der = base64.b64decode("".join(cert.text.split()))
        return x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except Exception:  # noqa: BLE001 - an unreadable certificate is reported, not fatal here
        return "unreadable X509Certificate"


def _methods(signature: etree._Element) -> str:
    method = signature.find(f"{{{DSIG}}}SignedInfo/{{{DSIG}}}SignatureMethod")
    algorithm = method.get("Algorithm") if method is not None else None
    return algorithm.rsplit("#", 1)[-1] if algorithm else "no SignatureMethod"


def trust_store_pem(trust_store: Path) -> bytes:
    """Every certificate in the folder (``*.pem``, ``*.crt``, ``*.cer`` in PEM form)."""
    pems = b""
    for path in sorted(trust_store.iterdir()):
        if path.suffix.lower() in (".pem", ".crt", ".cer") and path.is_file():
            pems += path.read_bytes().strip() + b"\n"
    return pems


def check(
    document: bytes,
    signature: etree._Element,
    *,
    where: str,
    trust_store: Path | None,
) -> SignatureReport:
    """Report one signature of ``document`` (the bytes of the document it signs)."""
    signer = _signer(signature)
    line = signature.sourceline
    if trust_store is None:
        return SignatureReport(
            where=where,
            line=line,
            status=NO_TRUST_STORE,
            signer=signer,
            detail=f"{_methods(signature)} signature; set MEDLOOP_ERESEPT_TRUST_STORE to verify",
        )
    if not trust_store.is_dir():
        return SignatureReport(
            where=where,
            line=line,
            status="invalid",
            signer=signer,
            detail=f"the trust store {trust_store} is not a folder (MEDLOOP_ERESEPT_TRUST_STORE)",
        )
    pems = trust_store_pem(trust_store)
    if not pems:
        return SignatureReport(
            where=where,
            line=line,
            status="invalid",
            signer=signer,
            detail=f"the trust store {trust_store} holds no PEM certificate",
        )
    from signxml import SignatureConfiguration, XMLVerifier
    from signxml.exceptions import InvalidInput, SignXMLException

    handle, bundle = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(pems)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.fromstring(document, parser)
        # the signature this report is about: a child of the document element (enveloped)
        # is looked for there; one deeper is verified on the element that holds it
        config = SignatureConfiguration(location="./")
        target = root
        if signature.getparent() is not None and signature.getparent().getparent() is not None:
            target = etree.fromstring(etree.tostring(signature.getparent()), parser)
        XMLVerifier().verify(target, ca_pem_file=bundle, parser=parser, expect_config=config)
    except (SignXMLException, InvalidInput, ValueError) as exc:
        return SignatureReport(
            where=where,
            line=line,
            status="invalid",
            signer=signer,
            detail=f"{type(exc).__name__}: {exc}",
        )
    finally:
        os.unlink(bundle)
    return SignatureReport(
        where=where,
        line=line,
        status="verified",
        signer=signer,
        detail=f"{_methods(signature)} signature verified against the trust store {trust_store}",
    )
