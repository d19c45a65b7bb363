"""Streaming reader for the FEST M30 file.

Owns opening the file as DMP ships it (``.xml``, ``.xml.gz`` or the ``.zip`` around
``fest251.xml``, with or without a UTF-8 byte-order mark), checking the root element and
its namespace (FEST 2.5.1 = 2014-12-01, FEST 2.5.0 = 2013-10-08), and yielding one
:class:`RawEntry` per ``Oppf*`` element with lxml ``iterparse``.  Each element is cleared
as soon as the consumer has moved on, so memory stays flat however large the file is.
Every failure becomes a :class:`~fest.errors.FestFormatError` naming file, line and column.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from fest.errors import FestFormatError

M30_NAMESPACES = {
    "http://www.kith.no/xmlstds/eresept/m30/2014-12-01": "2.5.1",
    "http://www.kith.no/xmlstds/eresept/m30/2013-10-08": "2.5.0",
}

#: The ``Kat<X>``/``Oppf<X>`` catalogue names in XSD order.
CATALOGUES = (
    "LegemiddelMerkevare",
    "Legemiddelpakning",
    "Virkestoff",
    "OrdineringVirkestoff",
    "LegemiddelVirkestoff",
    "Handelsvare",
    "Diagnose",
    "Refusjon",
    "Vilkar",
    "VarselSlv",
    "Kodeverk",
    "Byttegruppe",
    "Legemiddeldose",
    "Interaksjon",
    "StrDosering",
)

_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20


@dataclass(slots=True)
class Header:
    """What the file says about itself before the first entry."""

    namespace: str
    fest_version: str
    hentet_dato: str | None = None


@dataclass(slots=True)
class RawEntry:
    """One ``Oppf*`` element: the entry wrapper plus its payload element(s).

    ``payload`` is empty for an expired (``Status V="U"``) entry of an increment and holds
    ``Info`` followed by its ``Element`` children for ``OppfKodeverk``.  The elements are
    only valid until the iterator advances.
    """

    catalogue: str
    entry_id: str
    tidspunkt: str | None
    status: str
    payload: list[etree._Element]
    line: int


def local_name(tag: str) -> str:
    return tag[tag.rfind("}") + 1 :]


class _CountingReader(io.RawIOBase):
    """A read-only stream that skips a leading BOM and reports bytes read."""

    def __init__(self, raw: BinaryIO, on_read: Callable[[int], None] | None) -> None:
        self._raw = raw
        self._on_read = on_read
        self._first = True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        if self._first:
            self._first = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
                if not data:
                    data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if self._on_read is not None and n:
            self._on_read(n)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_raw(path: Path) -> tuple[BinaryIO, int | None]:
    """Open the decompressed XML byte stream and return it with its size when known."""
    name = path.name.lower()
    if name.endswith(".zip"):
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise FestFormatError(str(path), None, None, f"not a readable zip archive: {exc}") from exc
        members = [i for i in archive.infolist() if i.filename.lower().endswith(".xml")]
        if not members:
            archive.close()
            raise FestFormatError(str(path), None, None, "the zip archive holds no .xml file")
        member = max(members, key=lambda i: i.file_size)
        return archive.open(member), member.file_size
    if name.endswith(".gz"):
        return gzip.open(path, "rb"), None  # type: ignore[return-value]
    return open(path, "rb"), path.stat().st_size


def open_xml(path: Path, on_read: Callable[[int], None] | None = None) -> tuple[BinaryIO, int | None]:
    """The file's XML bytes (decompressed, BOM removed) and their size when known."""
    if not path.exists():
        raise FestFormatError(str(path), None, None, "no such file")
    raw, size = _open_raw(path)
    return io.BufferedReader(_CountingReader(raw, on_read), _CHUNK), size  # type: ignore[return-value]


def content_sha256(path: Path) -> str:
    """SHA-256 of the XML content, so the same catalogue zipped or plain hashes alike."""
    digest = hashlib.sha256()
    stream, _ = open_xml(path)
    with _reading(path, stream):
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _reading(path: Path, stream: BinaryIO) -> Iterator[None]:
    """Close ``stream`` in the end; turn parse and read failures into FestFormatError."""
    try:
        yield
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(path, exc) from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise FestFormatError(str(path), None, None, f"cannot read the file: {exc}") from exc
    finally:
        stream.close()


def _syntax_error(path: Path, exc: etree.XMLSyntaxError) -> FestFormatError:
    line, column = exc.position if exc.position else (None, None)
    return FestFormatError(str(path), line, column, f"malformed XML: {exc.msg}")


def read_header(path: Path) -> Header:
    """Check the root element and its namespace, and read ``HentetDato`` (the first child)."""
    stream, _ = open_xml(path)
    root = None
    hentet_dato = None
    with _reading(path, stream):
        events = etree.iterparse(
            stream, events=("start", "end"), resolve_entities=False, no_network=True
        )
        for event, elem in events:
            if root is None:
                root = elem
                _check_root(path, root)
            elif event == "end":
                if local_name(elem.tag) == "HentetDato":
                    hentet_dato = (elem.text or "").strip()
                break
    if root is None:
        raise FestFormatError(str(path), 1, 1, "the file is empty")
    namespace = etree.QName(root).namespace
    return Header(namespace=namespace, fest_version=M30_NAMESPACES[namespace], hentet_dato=hentet_dato)


def _check_root(path: Path, root: etree._Element) -> None:
    qname = etree.QName(root)
    if qname.localname != "FEST" or qname.namespace not in M30_NAMESPACES:
        expected = " or ".join(f"{{{ns}}}FEST (FEST {v})" for ns, v in M30_NAMESPACES.items())
        raise FestFormatError(
            str(path),
            root.sourceline,
            None,
            f"root element is {root.tag!s}; expected {expected}",
        )


def iter_entries(
    path: Path, header: Header, on_read: Callable[[int], None] | None = None
) -> Iterator[RawEntry]:
    """Yield every ``Oppf*`` entry of the file in document order.

    Sets ``header.hentet_dato`` when the ``HentetDato`` element has been read (it precedes
    the catalogues).  Raises :class:`FestFormatError` on malformed or truncated XML and on
    entries missing their ``Id`` or ``Status``.
    """
    ns = header.namespace
    tags = [f"{{{ns}}}HentetDato"] + [f"{{{ns}}}Oppf{name}" for name in CATALOGUES]
    oppf_prefix = f"{{{ns}}}Oppf"
    stream, _ = open_xml(path, on_read)
    with _reading(path, stream):
        events = etree.iterparse(
            stream, events=("end",), tag=tags, resolve_entities=False, no_network=True
        )
        for _, elem in events:
            tag = elem.tag
            if not tag.startswith(oppf_prefix):
                header.hentet_dato = (elem.text or "").strip()
                continue
            yield _entry(path, elem, tag[len(oppf_prefix) :])
            elem.clear(keep_tail=False)
            parent = elem.getparent()
            while elem.getprevious() is not None:
                del parent[0]
    if not header.hentet_dato:
        raise FestFormatError(str(path), None, None, "the file has no HentetDato element")


def _entry(path: Path, elem: etree._Element, catalogue: str) -> RawEntry:
    entry_id = tidspunkt = status = None
    payload: list[etree._Element] = []
    for child in elem:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        name = local_name(tag)
        if name == "Id" and entry_id is None:
            entry_id = (child.text or "").strip()
        elif name == "Tidspunkt" and tidspunkt is None:
            tidspunkt = (child.text or "").strip()
        elif name == "Status" and status is None:
            status = child.get("V")
        else:
            payload.append(child)
    if not entry_id:
        raise FestFormatError(str(path), elem.sourceline, None, f"Oppf{catalogue} without an Id")
    if status not in ("A", "U"):
        raise FestFormatError(
            str(path),
            elem.sourceline,
            None,
            f"Oppf{catalogue} {entry_id}: Status V={status!r}, expected 'A' or 'U'",
        )
    return RawEntry(catalogue, entry_id, tidspunkt, status, payload, elem.sourceline or 0)
