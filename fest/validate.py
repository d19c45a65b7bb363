"""Validation of a FEST file against the official M30 XML schema (lxml, XSD 1.0).

The schemas are not shipped with the code: they are resolved from a configured folder
holding ``ER-M30-<date>.xsd`` beside ``Forskrivning-<date>.xsd`` and
``../felleskomponenter/kith.xsd`` (the layout KITH publishes them in).  Files up to
:data:`FULL_TREE_LIMIT` bytes are validated as a tree and every violation is reported;
larger files are validated while streaming, in flat memory, up to the first violation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lxml import etree

from fest.errors import FestFormatError
from fest.parser import Limits, open_xml, read_header

FULL_TREE_LIMIT = 32 * 1024 * 1024


class SchemaNotFound(Exception):
    """No schema for the file's namespace in the configured folder."""


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


def schema_file(xsd_dir: Path | None, namespace: str) -> Path:
    date = namespace.rstrip("/").rsplit("/", 1)[-1]
    if xsd_dir is None:
        raise SchemaNotFound(
            "no schema folder configured: pass --xsd-dir or set MEDLOOP_FEST_XSD_DIR to the folder "
            f"holding ER-M30-{date}.xsd"
        )
    candidate = Path(xsd_dir) / f"ER-M30-{date}.xsd"
    if not candidate.is_file():
        raise SchemaNotFound(f"{candidate} not found (needed for namespace {namespace})")
    return candidate


@lru_cache(maxsize=4)
def _load_schema(path: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(path)))


def validate_file(
    path: str | Path, xsd_dir: Path | None, limits: Limits | None = None
) -> list[Violation]:
    """Schema violations of the file (empty when valid), read within ``limits`` (default: the
    parser's defaults)."""
    path = Path(path)
    header = read_header(path, limits)
    schema = _load_schema(schema_file(xsd_dir, header.namespace))
    stream, size = open_xml(path, limits=limits)
    try:
        if size is not None and size <= FULL_TREE_LIMIT:
            return _validate_tree(path, stream, schema)
        return _validate_streaming(path, stream, schema)
    finally:
        stream.close()


def _validate_tree(path: Path, stream, schema: etree.XMLSchema) -> list[Violation]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    try:
        tree = etree.parse(stream, parser)
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        raise FestFormatError(str(path), line, column, f"malformed XML: {exc.msg}") from exc
    if schema.validate(tree):
        return []
    return [Violation(str(path), e.line, e.column, e.message) for e in schema.error_log]


def _validate_streaming(path: Path, stream, schema: etree.XMLSchema) -> list[Violation]:
    events = etree.iterparse(
        stream, events=("end",), schema=schema, resolve_entities=False, no_network=True
    )
    try:
        for _, elem in events:
            catalogue = elem.getparent()
            if catalogue is None or catalogue.getparent() is None:
                continue
            if catalogue.getparent().getparent() is None:  # an Oppf* entry: done with it
                elem.clear(keep_tail=False)
                while elem.getprevious() is not None:
                    del catalogue[0]
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        return [Violation(str(path), line, column, exc.msg)]
    return []
