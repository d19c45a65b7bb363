"""Reading one e-prescription message: envelope, documents (inline and base64-embedded, to
any depth), XSD validation of each, signatures, and the typed content.

:func:`read_message` either returns a :class:`Message` or raises an
:class:`~medloop.eresept.errors.EreseptError` listing *every* problem found (malformed XML
stops at the first, as a parser must; schema violations, unknown namespaces, embedded
payloads that are not XML and signatures that do not verify are all collected).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from lxml import etree

from medloop.eresept import content as c
from medloop.eresept import schemas, signatures
from medloop.eresept.config import ReaderConfig
from medloop.eresept.errors import (
    EmbeddedNotXml,
    EreseptError,
    LimitExceeded,
    MalformedXml,
    Problem,
    SchemaViolation,
    SignatureInvalid,
    UnknownMessage,
    UnsafeXml,
)
from medloop.eresept.model import (
    ConversationRef,
    Document,
    Frozen,
    HealthcareProfessional,
    MsgInfo,
    Organisation,
    Patient,
    SignatureReport,
    Unmapped,
)
from medloop.eresept.parsing import parse_document
from medloop.eresept.schemas import BASE64_CONTAINER_NS, DOCUMENT_TYPES, MSGHEAD_NS

# MsgHead type code -> the document type its Content must carry
HANDLED_TYPES: dict[str, str] = {
    "ERM1": "M1",
    "ERM5": "M5",
    "ERM10": "M10",
    "ERM251": "M25.1",
    "ERM252": "M25.2",
    "ERM253": "M25.3",
    "ERM271": "M27.1",
}

# elements that carry a base64-encoded XML document: the ones the standards name, and any
# element whose name ends in "B64" (the e-prescription naming rule) or that is a KITH
# base64 container
BASE64_ELEMENTS = frozenset({"ReseptDokLegemiddelB64", "ReseptDokHandelsvareB64"})


class Message(Frozen):
    """A message as read: its envelope, every document in it, every signature, and the
    content of the documents we map.  ``unmapped`` keeps, whole, the documents whose content
    has no typed model yet (M5, M10, M27.1, ...)."""

    source: str
    sha256: str
    size: int
    msg_info: MsgInfo
    documents: tuple[Document, ...]
    signatures: tuple[SignatureReport, ...]
    lists: tuple[c.LegemidlerIBruk, ...] = ()
    prescriptions: tuple[c.Resept, ...] = ()
    unmapped: tuple[Unmapped, ...] = ()

    @property
    def type(self) -> str:
        return self.msg_info.type

    @property
    def msg_id(self) -> str:
        return self.msg_info.msg_id


@dataclass
class _Doc:
    where: str
    element: etree._Element
    depth: int
    embedded: bool
    line: int | None
    data: bytes | None  # the decoded bytes of an embedded document
    type_name: str
    validation: str


_ERROR_CLASSES = {
    "unknown-message-type": UnknownMessage,
    "wrong-namespace": UnknownMessage,
    "unknown-namespace": UnknownMessage,
    "content-type-mismatch": UnknownMessage,
    "embedded-not-base64": EmbeddedNotXml,
    "embedded-not-xml": EmbeddedNotXml,
    "embedding-too-deep": LimitExceeded,
    "signature-invalid": SignatureInvalid,
    "doctype-refused": UnsafeXml,
    "entity-refused": UnsafeXml,
    "too-large": LimitExceeded,
    "too-deep": LimitExceeded,
    "malformed-xml": MalformedXml,
}


def refuse(problems: list[Problem]) -> EreseptError:
    """The error for a list of problems: its class is that of the first."""
    for problem in problems:
        if problem.code in _ERROR_CLASSES:
            return _ERROR_CLASSES[problem.code](problems)
    return SchemaViolation(problems)


def _qname(element) -> str:
    tag = element.tag
    return tag[tag.find("}") + 1 :]


def _ns(element) -> str | None:
    tag = element.tag
    return tag[1 : tag.find("}")] if tag.startswith("{") else None


def path_of(element: etree._Element, root: etree._Element, prefix: str) -> str:
    """``prefix/A/B[2]/C``: local names from ``root`` (included) down to ``element``, with the
    position among same-named siblings where there are several."""
    parts = []
    node = element
    while node is not None:
        parent = node.getparent()
        name = _qname(node)
        if parent is not None and node is not root:
            same = [s for s in parent if isinstance(s.tag, str) and _qname(s) == name]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        if node is root:
            break
        node = parent
    return "/".join(filter(None, [prefix, *reversed(parts)]))


def read_message(data: bytes, *, source: str, config: ReaderConfig) -> Message:
    """Read, validate and check one message; raises :class:`EreseptError` with every problem,
    or :class:`~medloop.eresept.errors.SchemaConfigMissing` when the XSD folder is missing."""
    limits = config.limits
    tree = parse_document(data, source=source, limits=limits)
    root = tree.getroot()
    if _ns(root) != MSGHEAD_NS or _qname(root) != "MsgHead":
        raise UnknownMessage(
            [
                Problem(
                    "wrong-namespace",
                    f"the document element is {{{_ns(root)}}}{_qname(root)}, "
                    f"not a MsgHead in {MSGHEAD_NS}",
                    source,
                    root.sourceline,
                )
            ]
        )
    type_el = root.find(f"{{{MSGHEAD_NS}}}MsgInfo/{{{MSGHEAD_NS}}}Type")
    type_code = type_el.get("V") if type_el is not None else None
    if type_el is not None and type_code not in HANDLED_TYPES:
        raise UnknownMessage(
            [
                Problem(
                    "unknown-message-type",
                    f"message type {type_code!r} ({type_el.get('DN')}) "
                    f"is not handled; handled: {', '.join(HANDLED_TYPES)}",
                    source,
                    type_el.sourceline,
                )
            ]
        )

    problems: list[Problem] = []
    docs: list[_Doc] = []
    problems += _take_envelope(docs, root, prefix="", depth=0, source=source, config=config)

    expected = HANDLED_TYPES.get(type_code or "")
    top = [d for d in docs if d.depth == 0]
    if expected is not None and not top:
        problems.append(
            Problem(
                "content-type-mismatch",
                f"a {type_code} message must carry an {expected} document in "
                "Document/RefDoc/Content; it carries none",
                source,
                root.sourceline,
            )
        )
    elif expected is not None and not any(d.type_name == expected for d in top):
        problems.append(
            Problem(
                "content-type-mismatch",
                f"a {type_code} message must carry an {expected} document; "
                f"it carries {', '.join(d.type_name for d in top)}",
                source,
                top[0].line,
                None,
                top[0].where,
            )
        )

    reports = [
        signatures.check(data, sig, where=path_of(sig, root, ""), trust_store=config.trust_store)
        for sig in signatures.find_signatures(root)
    ]
    for doc in docs:
        if doc.data is not None:  # the root of a decoded document
            for sig in signatures.find_signatures(doc.element):
                reports.append(
                    signatures.check(
                        doc.data,
                        sig,
                        where=path_of(sig, doc.element, doc.where),
                        trust_store=config.trust_store,
                    )
                )
    problems += [
        Problem("signature-invalid", r.detail, source, r.line, None, r.where)
        for r in reports
        if r.status == "invalid"
    ]
    if problems:
        raise refuse(problems)

    msg_info = read_msg_info(root.find(f"{{{MSGHEAD_NS}}}MsgInfo"))
    embedded = {d.where: d.element for d in docs if d.embedded}
    lists, prescriptions, kept = [], [], []
    for doc in top:
        if (
            doc.type_name in ("M25.1", "M25.2", "M25.3")
            and _qname(doc.element) == "LegemidlerIBruk"
        ):
            lists.append(c.read_lib(doc.element, doc.where, doc.type_name, embedded))
        elif doc.type_name == "M1" and _qname(doc.element) == "Resept":
            prescriptions.append(
                c.read_resept(doc.element, doc.where, msg_info.sender.healthcare_professional)
            )
        else:
            kept.append(c.unmapped(doc.element, doc.where))
    return Message(
        source=source,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        msg_info=msg_info,
        documents=tuple(
            Document(
                where=d.where,
                namespace=_ns(d.element) or "",
                root=_qname(d.element),
                type=d.type_name,
                line=d.line,
                depth=d.depth,
                embedded=d.embedded,
                validation=d.validation,
                sha256=hashlib.sha256(d.data).hexdigest() if d.data is not None else None,
            )
            for d in docs
        ),
        signatures=tuple(reports),
        lists=tuple(lists),
        prescriptions=tuple(prescriptions),
        unmapped=tuple(kept),
    )


def _take_envelope(
    docs: list[_Doc],
    root,
    *,
    prefix: str,
    depth: int,
    source: str,
    config: ReaderConfig,
    embedded: bool = False,
) -> list[Problem]:
    """Validate a MsgHead (the message, or a whole message embedded in base64 as the M9.x
    answers carry them) without its documents, then each document in its ``Content``."""
    envelope_schema = schemas.load_schema(config.xsd_dir, DOCUMENT_TYPES[MSGHEAD_NS])
    if envelope_schema is None:
        raise schemas.SchemaConfigMissing(
            f"{schemas.schema_path(config.xsd_dir, DOCUMENT_TYPES[MSGHEAD_NS])} not found"
        )
    where = f"{prefix}/MsgHead" if prefix else None
    contents = root.findall(
        f"{{{MSGHEAD_NS}}}Document/{{{MSGHEAD_NS}}}RefDoc/{{{MSGHEAD_NS}}}Content"
    )
    # the envelope is validated without its documents (each is validated against its own
    # schema below), then the documents are put back in place
    detached = [(content, list(content)) for content in contents]
    for content, children in detached:
        for child in children:
            content.remove(child)
    try:
        problems = schemas.violations(
            envelope_schema, root.getroottree(), source=source, where=where
        )
    finally:
        for content, children in detached:
            for child in children:
                content.append(child)
    for content in contents:
        for element in content:
            if not isinstance(element.tag, str):
                continue
            problems += _take_document(
                docs,
                element,
                where=path_of(element, root, prefix),
                depth=depth,
                embedded=embedded,
                data=None,
                line=element.sourceline,
                source=source,
                config=config,
                inline=True,
            )
    return problems


def _take_document(
    docs: list[_Doc],
    element,
    *,
    where: str,
    depth: int,
    embedded: bool,
    data: bytes | None,
    line: int | None,
    source: str,
    config: ReaderConfig,
    inline: bool = False,
) -> list[Problem]:
    """Validate one document, record it, and unwrap the base64 documents inside it.
    ``inline``: a Content child of an envelope (as opposed to the root of decoded bytes)."""
    problems: list[Problem] = []
    namespace = _ns(element)
    doc_type = DOCUMENT_TYPES.get(namespace or "")
    if doc_type is not None and doc_type.name == "MsgHead" and embedded and not inline:
        docs.append(_Doc(where, element, depth, True, line, data, "MsgHead", "valid"))
        found = _take_envelope(
            docs, element, prefix=where, depth=depth, source=source, config=config, embedded=True
        )
        if any(p.where == where + "/MsgHead" for p in found):
            docs[-1].validation = "schema violation(s)"
        return problems + found
    if doc_type is None or doc_type.name == "MsgHead":
        problems.append(
            Problem(
                "unknown-namespace",
                f"no document type we handle has the namespace {namespace!r} "
                f"(element {_qname(element)})",
                source,
                element.sourceline if not embedded else line,
                None,
                where,
            )
        )
        return problems
    if doc_type.xsd11:
        status = f"not validated: its schema {doc_type.schema} is XSD 1.1, which lxml cannot read"
    else:
        schema = schemas.load_schema(config.xsd_dir, doc_type)
        if schema is None:
            status = (
                f"not validated: no official schema for {doc_type.name} in the XSD folder "
                f"({doc_type.schema} not found)"
            )
        else:
            status = "valid"
            target = element if inline else element.getroottree()
            found = schemas.violations(schema, target, source=source, where=where)
            if found:
                status = f"{len(found)} schema violation(s)"
            problems += found
    docs.append(_Doc(where, element, depth, embedded, line, data, doc_type.name, status))
    # paths inside this document: below the element holding it (embedded), or below Content
    prefix = where.rsplit("/", 1)[0] if inline else where

    for holder in element.iter():
        if not isinstance(holder.tag, str) or holder is element:
            continue
        name = _qname(holder)
        if not (
            name in BASE64_ELEMENTS or name.endswith("B64") or _ns(holder) == BASE64_CONTAINER_NS
        ):
            continue
        holder_where = path_of(holder, element, prefix)
        at_line = holder.sourceline
        if depth + 1 > config.limits.max_embedding:
            problems.append(
                Problem(
                    "embedding-too-deep",
                    f"documents embedded more than {config.limits.max_embedding} "
                    "deep (MEDLOOP_ERESEPT_MAX_EMBEDDING)",
                    source,
                    at_line,
                    None,
                    holder_where,
                )
            )
            continue
        text = "".join((holder.text or "").split())
        try:
            decoded = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            problems.append(
                Problem(
                    "embedded-not-base64",
                    f"{name} is not valid base64 ({exc})",
                    source,
                    at_line,
                    None,
                    holder_where,
                )
            )
            continue
        if not decoded.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            problems.append(
                Problem(
                    "embedded-not-xml",
                    f"{name} decodes to {len(decoded)} bytes that are not an XML "
                    f"document (they start {decoded[:16]!r})",
                    source,
                    at_line,
                    None,
                    holder_where,
                )
            )
            continue
        try:
            inner = parse_document(
                decoded,
                source=source,
                limits=config.limits,
                where=f"{holder_where} (line {at_line}), decoded",
            )
        except EreseptError as exc:
            for p in exc.problems:
                code = "embedded-not-xml" if p.code == "malformed-xml" else p.code
                problems.append(
                    Problem(
                        code,
                        f"{name} does not hold well-formed XML: {p.message}"
                        if code == "embedded-not-xml"
                        else p.message,
                        p.source,
                        p.line,
                        p.column,
                        p.where,
                    )
                )
            continue
        problems += _take_document(
            docs,
            inner.getroot(),
            where=holder_where,
            depth=depth + 1,
            embedded=True,
            data=decoded,
            line=at_line,
            source=source,
            config=config,
        )
    return problems


# --- the envelope --------------------------------------------------------------------------


def _ident_list(r: c._Reader) -> tuple:
    return tuple(c.ident(i) for i in r.all("Ident"))


def read_hcp(element) -> HealthcareProfessional:
    r = c._Reader(element, "")
    return HealthcareProfessional(
        type=r.coded("TypeHealthcareProfessional"),
        family_name=r.text("FamilyName"),
        middle_name=r.text("MiddleName"),
        given_name=r.text("GivenName"),
        idents=_ident_list(r),
    )


def read_organisation(element) -> Organisation:
    r = c._Reader(element, "")
    hcp = r.one("HealthcareProfessional")
    sub = r.one("Organisation")
    return Organisation(
        name=r.text("OrganisationName"),
        idents=_ident_list(r),
        healthcare_professional=read_hcp(hcp) if hcp is not None else None,
        organisation=read_organisation(sub) if sub is not None else None,
    )


def read_patient(element) -> Patient:
    r = c._Reader(element, "")
    return Patient(
        family_name=r.text("FamilyName"),
        middle_name=r.text("MiddleName"),
        given_name=r.text("GivenName"),
        date_of_birth=r.text("DateOfBirth"),
        sex=r.coded("Sex"),
        idents=_ident_list(r),
    )


def read_msg_info(element) -> MsgInfo:
    r = c._Reader(element, "MsgHead/MsgInfo")
    type_el = r.one("Type")
    conv = r.one("ConversationRef")
    conversation = None
    if conv is not None:
        cr = c._Reader(conv, "")
        conversation = ConversationRef(
            ref_to_parent=cr.text("RefToParent") or "",
            ref_to_conversation=cr.text("RefToConversation") or "",
        )
    sender = r.one("Sender")
    receiver = r.one("Receiver")
    patient = r.one("Patient")
    return MsgInfo(
        type=type_el.get("V"),
        type_name=type_el.get("DN"),
        mig_version=r.text("MIGversion") or "",
        gen_date=r.text("GenDate") or "",
        msg_id=(r.text("MsgId") or "").strip(),
        conversation_ref=conversation,
        sender=read_organisation(sender.find(f"{{{MSGHEAD_NS}}}Organisation")),
        receiver=read_organisation(receiver.find(f"{{{MSGHEAD_NS}}}Organisation")),
        patient=read_patient(patient) if patient is not None else None,
    )
