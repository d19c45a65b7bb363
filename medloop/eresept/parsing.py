"""Hardened XML parsing (lxml): no DTD, no entities, no network, size and depth limits.

Every message and every decoded base64 document goes through :func:`parse_document`.  A
document type declaration is refused outright (it is how both external-entity (XXE) and
entity-expansion ("billion laughs") attacks arrive, and no e-prescription message has one);
entities are never resolved and nothing is ever fetched, so refusing happens before any
harm.  Malformed XML is refused with the parser's line and column.
"""

from __future__ import annotations

import functools
import re

from lxml import etree

from medloop.eresept.config import Limits
from medloop.eresept.errors import LimitExceeded, MalformedXml, Problem, UnsafeXml

_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        collect_ids=False,
        remove_pis=False,
    )


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    start = data.rfind(b"\n", 0, offset) + 1
    return line, offset - start + 1


def parse_document(
    data: bytes, *, source: str, limits: Limits, where: str | None = None
) -> etree._ElementTree:
    """The parsed document, or a precise refusal (:class:`MalformedXml`, :class:`UnsafeXml`,
    :class:`LimitExceeded`)."""
    if len(data) > limits.max_bytes:
        raise LimitExceeded(
            [
                Problem(
                    "too-large",
                    f"{len(data)} bytes is more than the limit of {limits.max_bytes} "
                    "(MEDLOOP_ERESEPT_MAX_BYTES)",
                    source,
                    where=where,
                )
            ]
        )
    if not data.strip():
        raise MalformedXml([Problem("malformed-xml", "empty document", source, 1, 1, where)])
    found = _DOCTYPE.search(data)
    if found is not None:
        line, column = _line_col(data, found.start())
        raise UnsafeXml(
            [
                Problem(
                    "doctype-refused",
                    "a document type declaration (DTD) is not allowed in an "
                    "e-prescription message: entity declarations (XXE, entity expansion) are "
                    "refused",
                    source,
                    line,
                    column,
                    where,
                )
            ]
        )
    try:
        tree = etree.ElementTree(etree.fromstring(data, _parser()))
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (exc.lineno, None)
        message = exc.msg or str(exc)
        if "depth" in message.lower():
            raise LimitExceeded(
                [Problem("too-deep", message, source, line, column, where)]
            ) from None
        raise MalformedXml(
            [Problem("malformed-xml", message, source, line, column, where)]
        ) from None
    except ValueError as exc:  # e.g. a unicode string with an encoding declaration
        raise MalformedXml([Problem("malformed-xml", str(exc), source, 1, 1, where)]) from None
    docinfo = tree.docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise UnsafeXml(
            [
                Problem(
                    "doctype-refused",
                    "a document type declaration (DTD) is not allowed",
                    source,
                    1,
                    1,
                    where,
                )
            ]
        )
    _check_depth(tree.getroot(), limits, source, where)
    _check_no_entities(tree.getroot(), source, where)
    return tree


@functools.lru_cache(maxsize=8)
def _deeper_than(max_depth: int) -> etree.XPath:
    """The elements one level deeper than ``max_depth``, compiled once per limit (lxml
    serialises the evaluations of one compiled XPath: safe across threads)."""
    return etree.XPath("/*" + "/*" * max_depth)


def _check_depth(root: etree._Element, limits: Limits, source: str, where: str | None) -> None:
    # one XPath in C: the elements one level deeper than the limit allows, if any
    too_deep = _deeper_than(limits.max_depth)(root.getroottree())
    if too_deep:
        element = too_deep[0]
        raise LimitExceeded(
            [
                Problem(
                    "too-deep",
                    f"elements nested more than {limits.max_depth} deep "
                    "(MEDLOOP_ERESEPT_MAX_DEPTH)",
                    source,
                    element.sourceline,
                    None,
                    where,
                )
            ]
        )


def _check_no_entities(root: etree._Element, source: str, where: str | None) -> None:
    for node in root.iter(etree.Entity):
        raise UnsafeXml(
            [
                Problem(
                    "entity-refused",
                    f"entity reference {node.text!r} is not allowed",
                    source,
                    node.sourceline,
                    None,
                    where,
                )
            ]
        )


_MSG_ID = re.compile(rb"<(?:\w+:)?MsgId>\s*([^<\s]{1,200})\s*</")
_TYPE = re.compile(rb"<(?:\w+:)?Type\b[^>]*\bV=\"(ERM[0-9]{1,4})\"")
_PATIENT = re.compile(rb"<(?:\w+:)?Patient>.*?<(?:\w+:)?Id>\s*([0-9]{11})\s*</", re.S)


def envelope_summary(data: bytes) -> dict[str, str | None]:
    """MsgId, type code and patient id as far as they can be found in bytes that may not be a
    well-formed message (for the receipt of a refused one): a text search of the first 64 KiB,
    never a parse, so nothing in them is resolved or expanded."""
    head = data[: 64 * 1024]
    found = {}
    for key, pattern in (("msg_id", _MSG_ID), ("type", _TYPE), ("patient", _PATIENT)):
        match = pattern.search(head)
        found[key] = match.group(1).decode("ascii", "replace") if match else None
    return found
