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
from pathlib import Path

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
    "ERM912": "MsgHead",
    "ERM94": "MsgHead",
}

# M9.x answers from the prescription intermediary that carry a whole message base64-encoded
# (in a ``Base64Container`` in their ``Content``): type code -> the type of the message they
# must carry. M9.12 (``Nedlasting av varer i bruk``) carries an M25.1, M9.4 (``Nedlasting av
# resept``) an M1. The wrapped message is read, validated and imported as if received alone.
WRAPPER_TYPES: dict[str, str] = {"ERM912": "ERM251", "ERM94": "ERM1"}
M9_NS_PREFIX = "http://www.kith.no/xmlstds/eresept/m9"
"""The namespaces of the M9.x documents (``…/eresept/m912/…``, ``…/eresept/m94/2010-07-01``)."""

# elements that carry a base64-encoded XML document: the ones the standards name, and any
# element whose name ends in "B64" (the e-prescription naming rule) or that is a KITH
# base64 container
BASE64_ELEMENTS = frozenset({"ReseptDokLegemiddelB64", "ReseptDokHandelsvareB64"})
_HOLDERS = etree.XPath(
    "descendant::*[substring(local-name(), string-length(local-name()) - 2) = 'B64'"
    " or namespace-uri() = $container]"
)
"""The elements below a document that hold a base64-encoded document (``BASE64_ELEMENTS``
end in "B64" too), in document order: one search in C instead of a look at every element
(lxml serialises the evaluations of one compiled XPath: safe across threads)."""


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
    wrapped: Message | None = None
    """In an M9.x answer (:data:`WRAPPER_TYPES`): the message it carries, read as if received
    alone (its own envelope, documents, signatures and content; ``source`` says where it was)."""

    @property
    def type(self) -> str:
        return self.msg_info.type

    @property
    def subject(self) -> Message:
        """The message whose content takes effect: the wrapped one of an M9.x answer, else this."""
        return self.wrapped if self.wrapped is not None else self

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
            # the siblings of that local name, in any namespace or none
            same = list(parent.iterchildren(f"{{*}}{name}"))
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

    top = [d for d in docs if d.depth == 0]
    if type_code in WRAPPER_TYPES:
        problems += _wrapper_problems(type_code, docs, source, root)
    else:
        problems += _content_problems(type_code, top, source, root)

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
    wrapped = None
    if type_code in WRAPPER_TYPES:
        (carrier,) = _wrapped(docs)
        inside = [d for d in docs if d.where.startswith(carrier.where + "/")]
        inner_info = read_msg_info(carrier.element.find(f"{{{MSGHEAD_NS}}}MsgInfo"))
        assert carrier.data is not None
        wrapped = Message(
            source=f"{source}: {carrier.where}",
            sha256=hashlib.sha256(carrier.data).hexdigest(),
            size=len(carrier.data),
            msg_info=inner_info,
            documents=tuple(_document(d) for d in inside),
            signatures=tuple(r for r in reports if r.where.startswith(carrier.where + "/")),
            **_content([d for d in inside if d.depth == carrier.depth], inner_info, embedded),
        )
        top = [d for d in top if d is not carrier]
    return Message(
        source=source,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        msg_info=msg_info,
        documents=tuple(_document(d) for d in docs),
        signatures=tuple(reports),
        wrapped=wrapped,
        **_content(top, msg_info, embedded),
    )


def _content(top: list[_Doc], msg_info: MsgInfo, embedded: dict) -> dict:
    """The typed content of an envelope's documents (``top``): lists, prescriptions, and the
    documents without a typed model kept whole."""
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
        elif doc.type_name not in ("MsgHead",):
            kept.append(c.unmapped(doc.element, doc.where))
    return {"lists": tuple(lists), "prescriptions": tuple(prescriptions), "unmapped": tuple(kept)}


def _document(d: _Doc) -> Document:
    return Document(
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


def _content_problems(type_code: str | None, top: list[_Doc], source: str, root) -> list[Problem]:
    """A message of ``type_code`` must carry its document type in its ``Content``."""
    expected = HANDLED_TYPES.get(type_code or "")
    if expected is not None and not top:
        return [
            Problem(
                "content-type-mismatch",
                f"a {type_code} message must carry an {expected} document in "
                "Document/RefDoc/Content; it carries none",
                source,
                root.sourceline,
            )
        ]
    if expected is not None and not any(d.type_name == expected for d in top):
        return [
            Problem(
                "content-type-mismatch",
                f"a {type_code} message must carry an {expected} document; "
                f"it carries {', '.join(d.type_name for d in top)}",
                source,
                top[0].line,
                None,
                top[0].where,
            )
        ]
    return []


def _wrapped(docs: list[_Doc]) -> list[_Doc]:
    """The messages an M9.x answer carries: a MsgHead in a ``Base64Container`` of its Content."""
    return [
        d
        for d in docs
        if d.type_name == "MsgHead" and d.depth == 1 and d.where.endswith("/Base64Container")
    ]


def _wrapper_problems(type_code: str, docs: list[_Doc], source: str, root) -> list[Problem]:
    """The structure of an M9.x answer: its own M9 document(s) (checked against an ER-M9
    schema when the XSD folder has one), and exactly one message of the type it must carry,
    base64-encoded in a ``Base64Container``, which carries its own document."""
    wanted = WRAPPER_TYPES[type_code]
    carried = _wrapped(docs)
    others = [
        d
        for d in docs
        if d.depth == 0 and not d.type_name.startswith("M9") and d.type_name != "MsgHead"
    ]
    problems = [
        Problem(
            "content-type-mismatch",
            f"an {type_code} answer carries its M9 document and the {wanted} message it "
            f"answers with; {d.type_name} is neither",
            source,
            d.line,
            None,
            d.where,
        )
        for d in others
    ]
    if len(carried) != 1:
        return [
            *problems,
            Problem(
                "content-type-mismatch",
                f"an {type_code} answer must carry one {wanted} message base64-encoded in "
                f"Document/RefDoc/Content/Base64Container; it carries {len(carried)}",
                source,
                root.sourceline,
            ),
        ]
    (carrier,) = carried
    type_el = carrier.element.find(f"{{{MSGHEAD_NS}}}MsgInfo/{{{MSGHEAD_NS}}}Type")
    inner_type = type_el.get("V") if type_el is not None else None
    if inner_type != wanted:
        return [
            *problems,
            Problem(
                "content-type-mismatch",
                f"an {type_code} answer must carry an {wanted} message; it carries {inner_type!r}",
                source,
                carrier.line,
                None,
                carrier.where,
            ),
        ]
    inner_top = [
        d
        for d in docs
        if d.depth == carrier.depth and d is not carrier and d.where.startswith(carrier.where + "/")
    ]
    return problems + _content_problems(inner_type, inner_top, source, carrier.element)


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
            if _ns(element) == BASE64_CONTAINER_NS and depth == 0 and not embedded:
                # an M9.x answer: a whole message, base64-encoded in the envelope's Content
                problems += _unwrap(
                    docs,
                    element,
                    path_of(element, root, prefix),
                    depth=depth,
                    source=source,
                    config=config,
                )
                continue
            if (_ns(element) or "").startswith(M9_NS_PREFIX):
                problems += _take_m9(
                    docs, element, path_of(element, root, prefix), depth, source, config
                )
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

    for holder in _HOLDERS(element, container=BASE64_CONTAINER_NS):
        problems += _unwrap(
            docs,
            holder,
            path_of(holder, element, prefix),
            depth=depth,
            source=source,
            config=config,
        )
    return problems


def _unwrap(
    docs: list[_Doc], holder, holder_where: str, *, depth: int, source: str, config: ReaderConfig
) -> list[Problem]:
    """Decode the base64 document in ``holder`` (one layer deeper than ``depth``), parse it the
    same hardened way, and take it as a document of its own."""
    name = _qname(holder)
    at_line = holder.sourceline
    if depth + 1 > config.limits.max_embedding:
        return [
            Problem(
                "embedding-too-deep",
                f"documents embedded more than {config.limits.max_embedding} "
                "deep (MEDLOOP_ERESEPT_MAX_EMBEDDING)",
                source,
                at_line,
                None,
                holder_where,
            )
        ]
    text = "".join((holder.text or "").split())
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        return [
            Problem(
                "embedded-not-base64",
                f"{name} is not valid base64 ({exc})",
                source,
                at_line,
                None,
                holder_where,
            )
        ]
    if not decoded.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return [
            Problem(
                "embedded-not-xml",
                f"{name} decodes to {len(decoded)} bytes that are not an XML "
                f"document (they start {decoded[:16]!r})",
                source,
                at_line,
                None,
                holder_where,
            )
        ]
    try:
        inner = parse_document(
            decoded,
            source=source,
            limits=config.limits,
            where=f"{holder_where} (line {at_line}), decoded",
        )
    except EreseptError as exc:
        problems = []
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
        return problems
    return _take_document(
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


_M9_SCHEMAS: dict[str, dict[str, schemas.DocumentType]] = {}
_SCHEMA_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _m9_types(xsd_dir) -> dict[str, schemas.DocumentType]:
    """namespace -> document type of the ``eresept/ER-M9*.xsd`` schemas in the XSD folder (none
    is in the published reference folder; an installation that has them gets them used)."""
    key = str(xsd_dir)
    found = _M9_SCHEMAS.get(key)
    if found is None:
        found = {}
        folder = Path(xsd_dir) / "eresept" if xsd_dir is not None else None
        for path in sorted(folder.glob("ER-M9*.xsd")) if folder and folder.is_dir() else ():
            try:
                namespace = etree.parse(str(path), _SCHEMA_PARSER).getroot().get("targetNamespace")
            except etree.XMLSyntaxError:
                continue
            if namespace:
                found[namespace] = schemas.DocumentType(f"M9 ({path.stem})", f"eresept/{path.name}")
        _M9_SCHEMAS[key] = found
    return found


def _take_m9(
    docs: list[_Doc], element, where: str, depth: int, source: str, config: ReaderConfig
) -> list[Problem]:
    """An M9.x document in an answer's Content: validated against its ER-M9 schema when the
    XSD folder has one, else recorded as checked structurally only."""
    namespace = _ns(element) or ""
    doc_type = _m9_types(config.xsd_dir).get(namespace)
    problems: list[Problem] = []
    name = f"M9 {_qname(element)}"
    if doc_type is None:
        status = (
            f"not validated: no ER-M9 schema for {namespace} in the XSD folder "
            "(the answer is checked structurally)"
        )
    else:
        name = doc_type.name
        schema = schemas.load_schema(config.xsd_dir, doc_type)
        assert schema is not None
        found = schemas.violations(schema, element, source=source, where=where)
        status = f"{len(found)} schema violation(s)" if found else "valid"
        problems += found
    docs.append(_Doc(where, element, depth, False, element.sourceline, None, name, status))
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
