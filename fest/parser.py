"""Streaming reader for the FEST M30 file.

Owns opening the file as DMP ships it (``.xml``, ``.xml.gz`` or the ``.zip`` around
``fest251.xml``, with or without a UTF-8 byte-order mark), checking the root element and
its namespace (FEST 2.5.1 = 2014-12-01, FEST 2.5.0 = 2013-10-08), and yielding one
:class:`RawEntry` per ``Oppf*`` element from lxml's pull parser, fed in chunks.  Each
element is cleared as soon as the consumer has moved on, so memory stays flat however large
the file is.
Every failure becomes a :class:`~fest.errors.FestFormatError` naming file, line and column.

Memory is bounded by this design, not by the input (:class:`Limits`): whatever the parser has
built and the consumer does not need is pruned after every chunk (elements of no catalogue
included, which lxml would otherwise keep in the tree to the end); one ``Oppf*`` element, one
comment, CDATA section, processing instruction or declaration (which libxml2 buffers whole
before it parses it) and the whole decompressed content each have a maximum size; a zip's
members and comments are size-checked from its directory before anything is read.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from fest.errors import FestConfigurationError, FestFormatError

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
_FEED = 1 << 16
"""Bytes fed to the parser at a time: what it has built is pruned after each feed."""

_MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """How large a FEST file and its parts may be. The defaults leave ample room for DMP's
    full file (a few hundred MB of XML, entries of a few KB) and bound what a hostile one
    can make the importer hold; ``from_env`` reads overrides (``MEDLOOP_FEST_MAX_*``)."""

    max_xml_bytes: int = 2048 * _MIB
    """The decompressed XML content (a zip member's declared size is checked before reading)."""
    max_entry_bytes: int = 16 * _MIB
    """One ``Oppf*`` element, from its start tag to its end tag."""
    max_markup_bytes: int = 1 * _MIB
    """One comment, CDATA section, processing instruction or ``<!...>`` declaration."""
    max_archive_comment_bytes: int = 64 * 1024
    """A zip archive's comment, and each member's."""
    max_archive_members: int = 1000

    ENV = {
        "max_xml_bytes": "MEDLOOP_FEST_MAX_XML_BYTES",
        "max_entry_bytes": "MEDLOOP_FEST_MAX_ENTRY_BYTES",
        "max_markup_bytes": "MEDLOOP_FEST_MAX_MARKUP_BYTES",
        "max_archive_comment_bytes": "MEDLOOP_FEST_MAX_ARCHIVE_COMMENT_BYTES",
        "max_archive_members": "MEDLOOP_FEST_MAX_ARCHIVE_MEMBERS",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Limits:
        """The defaults, overridden by positive integers in ``environ`` (the variables as
        ``medloop.settings`` read them: fest never reads the process's environment);
        ``FestConfigurationError`` naming the variable for anything else."""
        values: dict[str, int] = {}
        for name, variable in cls.ENV.items():
            given = environ.get(variable, "").strip()
            if not given:
                continue
            try:
                value = int(given)
            except ValueError:
                value = 0
            if value <= 0:
                raise FestConfigurationError(
                    f"{variable} must be a positive whole number, not {given!r}"
                )
            values[name] = value
        return cls(**values)


def _limits(limits: Limits | None) -> Limits:
    return Limits() if limits is None else limits


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
    """A read-only stream that skips a leading BOM, reports bytes read, and refuses content
    beyond ``limits`` (the whole, and each markup construct the parser would buffer whole)."""

    def __init__(
        self, raw: BinaryIO, on_read: Callable[[int], None] | None, path: Path, limits: Limits
    ) -> None:
        self._raw = raw
        self._on_read = on_read
        self._first = True
        self._path = path
        self._limits = limits
        self._total = 0
        self._markup = _MarkupGuard(path, limits.max_markup_bytes)

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
        self._total += n
        if self._total > self._limits.max_xml_bytes:
            raise FestFormatError(
                str(self._path),
                None,
                None,
                f"the XML content is larger than {self._limits.max_xml_bytes} bytes "
                f"({Limits.ENV['max_xml_bytes']})",
            )
        self._markup.scan(data)
        buffer[:n] = data
        if self._on_read is not None and n:
            self._on_read(n)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _opener(data: bytes, pos: int) -> int:
    """Where the first ``<!`` or ``<?`` at or after ``pos`` begins, or -1. Looks for the rare
    second byte (``memchr``, fast) rather than ``<``, which begins every tag."""
    best = -1
    for mark in (b"!", b"?"):
        i = data.find(mark, pos + 1)
        while i >= 0 and data[i - 1] != 0x3C:  # "<"
            i = data.find(mark, i + 1)
        if i >= 0 and (best < 0 or i - 1 < best):
            best = i - 1
    return best


class _MarkupGuard:
    """Refuses a comment, CDATA section, processing instruction or ``<!...>`` declaration
    longer than ``limit`` bytes as the bytes stream past, before the parser gets them:
    libxml2's push parser buffers each of them whole before it looks at it (a 2 GiB comment
    costs 2 GiB before its "Comment too big" error). Scans with ``bytes.find`` per chunk; in
    well-formed XML ``<!`` and ``<?`` begin nothing else (``<`` cannot appear in text or
    attribute values)."""

    _CLOSERS = ((b"<!--", b"-->", "comment"), (b"<![CDATA[", b"]]>", "CDATA section"))

    def __init__(self, path: Path, limit: int) -> None:
        self._path = path
        self._limit = limit
        self._offset = 0  # bytes scanned before the carried ones and the new chunk
        self._newlines = 0  # newlines in those bytes
        self._carry = b""  # the tail of the last chunk that may begin or end a construct
        self._closer: bytes | None = None
        self._kind = ""
        self._started = 0  # offset of the open construct
        self._line = 0

    def scan(self, chunk: bytes) -> None:
        data = self._carry + chunk
        base = self._offset
        pos = 0
        carry_from = len(data)
        while True:
            if self._closer is not None:
                end = data.find(self._closer, pos)
                closed = len(data) if end < 0 else end + len(self._closer)
                length = base + closed - self._started
                if length > self._limit:
                    raise FestFormatError(
                        str(self._path),
                        self._line,
                        None,
                        f"a {self._kind} longer than {self._limit} bytes "
                        f"({Limits.ENV['max_markup_bytes']})",
                    )
                if end < 0:  # keep what may be the start of the closer
                    carry_from = max(pos, len(data) - len(self._closer) + 1)
                    break
                pos = end + len(self._closer)
                self._closer = None
                continue
            start = _opener(data, pos)
            if start < 0:
                carry_from = len(data) - 1 if data.endswith(b"<") else len(data)
                break
            if len(data) - start < 9:  # too short to tell a comment from CDATA: next chunk
                carry_from = start
                break
            opener, self._closer, self._kind = data[start : start + 2], b">", "declaration"
            if opener == b"<?":
                self._closer, self._kind = b"?>", "processing instruction"
            for prefix, closer, kind in self._CLOSERS:
                if data.startswith(prefix, start):
                    self._closer, self._kind = closer, kind
                    opener = prefix
            self._started = base + start
            self._line = self._newlines + data.count(b"\n", 0, start) + 1
            pos = start + len(opener)
        self._newlines += data.count(b"\n", 0, carry_from)
        self._offset = base + carry_from
        self._carry = data[carry_from:]


def _open_raw(path: Path, limits: Limits) -> tuple[BinaryIO, int | None]:
    """Open the decompressed XML byte stream and return it with its size when known."""
    name = path.name.lower()
    if name.endswith(".zip"):
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise FestFormatError(
                str(path), None, None, f"not a readable zip archive: {exc}"
            ) from exc
        try:
            member = _zip_member(path, archive, limits)
            return archive.open(member), member.file_size
        except BaseException:
            archive.close()
            raise
    if name.endswith(".gz"):
        return gzip.open(path, "rb"), None  # type: ignore[return-value]
    return open(path, "rb"), path.stat().st_size


def _zip_member(path: Path, archive: zipfile.ZipFile, limits: Limits) -> zipfile.ZipInfo:
    """The archive's (largest) ``.xml`` member, once its directory has passed ``limits``:
    nothing is decompressed before the member count, the comments and the declared sizes
    are known to be within them (the size is enforced while reading too)."""
    members = archive.infolist()
    if len(members) > limits.max_archive_members:
        raise FestFormatError(
            str(path),
            None,
            None,
            f"the zip archive has {len(members)} members, more than "
            f"{limits.max_archive_members} ({Limits.ENV['max_archive_members']})",
        )
    comment_limit = limits.max_archive_comment_bytes
    if len(archive.comment) > comment_limit:
        raise FestFormatError(
            str(path),
            None,
            None,
            f"the zip archive's comment is {len(archive.comment)} bytes, more than {comment_limit} "
            f"({Limits.ENV['max_archive_comment_bytes']})",
        )
    xml = [i for i in members if i.filename.lower().endswith(".xml") and not i.is_dir()]
    if not xml:
        raise FestFormatError(str(path), None, None, "the zip archive holds no .xml file")
    for info in xml:
        if len(info.comment) > comment_limit:
            raise FestFormatError(
                str(path),
                None,
                None,
                f"the comment of zip member {info.filename!r} is {len(info.comment)} bytes, more "
                f"than {comment_limit} ({Limits.ENV['max_archive_comment_bytes']})",
            )
        if info.file_size > limits.max_xml_bytes:
            raise FestFormatError(
                str(path),
                None,
                None,
                f"zip member {info.filename!r} would inflate to {info.file_size} bytes, more than "
                f"{limits.max_xml_bytes} ({Limits.ENV['max_xml_bytes']})",
            )
    return max(xml, key=lambda i: i.file_size)


def open_xml(
    path: Path, on_read: Callable[[int], None] | None = None, limits: Limits | None = None
) -> tuple[BinaryIO, int | None]:
    """The file's XML bytes (decompressed, BOM removed, within ``limits``) and their size
    when known."""
    limits = _limits(limits)
    if path.is_dir():
        raise FestFormatError(str(path), None, None, "is a directory, not a FEST file")
    if not path.exists():
        raise FestFormatError(str(path), None, None, "no such file")
    raw, size = _open_raw(path, limits)
    reader = _CountingReader(raw, on_read, path, limits)
    return io.BufferedReader(reader, _CHUNK), size  # type: ignore[return-value]


def content_sha256(path: Path, limits: Limits | None = None) -> str:
    """SHA-256 of the XML content, so the same catalogue zipped or plain hashes alike."""
    digest = hashlib.sha256()
    stream, _ = open_xml(path, limits=limits)
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


def read_header(path: Path, limits: Limits | None = None) -> Header:
    """Check the root element and its namespace, and read ``HentetDato`` (the first child)."""
    stream, _ = open_xml(path, limits=limits)
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
    return Header(
        namespace=namespace, fest_version=M30_NAMESPACES[namespace], hentet_dato=hentet_dato
    )


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
    path: Path,
    header: Header,
    on_read: Callable[[int], None] | None = None,
    limits: Limits | None = None,
) -> Iterator[RawEntry]:
    """Yield every ``Oppf*`` entry of the file in document order.

    Sets ``header.hentet_dato`` when the ``HentetDato`` element has been read (it precedes
    the catalogues).  Raises :class:`FestFormatError` on malformed or truncated XML, on
    entries missing their ``Id`` or ``Status``, and on content beyond ``limits``.
    """
    limits = _limits(limits)
    ns = header.namespace
    root_tag = f"{{{ns}}}FEST"
    kat_prefix = f"{{{ns}}}Kat"
    tags = [root_tag, f"{{{ns}}}HentetDato"] + [
        f"{{{ns}}}{kind}{name}" for name in CATALOGUES for kind in ("Kat", "Oppf")
    ]
    oppf_prefix = f"{{{ns}}}Oppf"
    catalogues = entries = 0
    stream, _ = open_xml(path, on_read, limits)
    with _reading(path, stream):
        parser = etree.XMLPullParser(
            events=("start", "end"), tag=tags, resolve_entities=False, no_network=True
        )
        root: etree._Element | None = None
        fed = 0
        entry_started: int | None = None  # bytes fed when the open Oppf element started
        entry_line = 0
        while True:
            chunk = stream.read(_FEED)
            if chunk:
                parser.feed(chunk)
                fed += len(chunk)
            else:
                parser.close()
            for event, elem in parser.read_events():
                tag = elem.tag
                if event == "start":
                    if tag == root_tag and root is None:
                        root = elem
                    elif tag.startswith(oppf_prefix):
                        entry_started, entry_line = fed, elem.sourceline or 0
                    elif tag.startswith(kat_prefix):
                        catalogues += 1
                    continue
                if not tag.startswith(oppf_prefix):
                    if tag != root_tag and not tag.startswith(kat_prefix):
                        header.hentet_dato = (elem.text or "").strip()
                    continue
                entry_started = None
                entries += 1
                yield _entry(path, elem, tag[len(oppf_prefix) :])
                elem.clear(keep_tail=False)
                parent = elem.getparent()
                while elem.getprevious() is not None:
                    del parent[0]
            if not chunk:
                break
            if entry_started is not None and fed - entry_started > limits.max_entry_bytes:
                raise FestFormatError(
                    str(path),
                    entry_line,
                    None,
                    f"an Oppf element longer than {limits.max_entry_bytes} bytes "
                    f"({Limits.ENV['max_entry_bytes']})",
                )
            if root is not None:
                _prune(root, oppf_prefix)
    if not header.hentet_dato:
        raise FestFormatError(str(path), None, None, "the file has no HentetDato element")
    if not catalogues and not entries:
        # Every Kat* element is optional, but a document with none of them (and no entry)
        # is no catalogue: importing it would put an empty catalogue in force.
        raise FestFormatError(
            str(path),
            None,
            None,
            "the file has no catalogue (no Kat* element and no Oppf* entry): not a FEST catalogue",
        )


def _prune(root: etree._Element, oppf_prefix: str) -> None:
    """Drop what the parser has built and nobody needs any more: along the path of open
    elements from the root down to an ``Oppf*`` element (whose children are its payload),
    every child but the last (the open one, or the last one finished) of each element.
    Without this, elements of no catalogue (unknown ones, or anything between the entries)
    stay in the tree to the end of the file: 11 million of them took 2.5 GB."""
    node = root
    while True:
        count = len(node)
        if count > 1:
            del node[: count - 1]
        if not count:
            return
        node = node[0]
        tag = node.tag
        if isinstance(tag, str) and tag.startswith(oppf_prefix):
            return


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
