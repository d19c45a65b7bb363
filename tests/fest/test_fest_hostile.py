"""Hostile FEST files: the import's memory is bounded by the streaming design, not by the input.

Every file is generated here, on the fly, in tmp: small versions prove each rule (elements of no
catalogue are not kept, a document with no catalogue is refused, zip members and comments are
size-checked before anything is read, the decompressed content, one entry and one comment or
other buffered markup have a maximum size, a directory is not a file); one test measures the
peak memory of a parse in a subprocess at a moderate size."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from typer.testing import CliRunner

from fest import schema
from fest.errors import FestFormatError
from fest.loader import import_catalogue
from fest.parser import Limits, _MarkupGuard, content_sha256, iter_entries, read_header
from medloop.cli import app
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.fest import festfiles as ff

runner = CliRunner()
HEAD = (
    f'<?xml version="1.0" encoding="UTF-8"?>\n<FEST xmlns="{ff.M30}">\n'
    "<HentetDato>2026-01-01T03:00:00</HentetDato>\n"
)
GROUP = ff.substitution_group("ID_E1", "ID_G1", "000001")


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    data = text.encode() if isinstance(text, str) else text
    if name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=1)
    path.write_bytes(data)
    return path


def entries_of(path: Path, limits: Limits | None = None) -> list[str]:
    header = read_header(path, limits)
    return [e.entry_id for e in iter_entries(path, header, limits=limits)]


def catalogue_versions(url: str) -> int:
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(schema.fest_version)).scalar_one()
    finally:
        engine.dispose()


# --- elements of no catalogue ------------------------------------------------------------------


def test_entries_among_unknown_elements_anywhere_are_all_read(tmp_path):
    junk = "<Junk><a/><b>text</b></Junk>" * 50
    text = (
        HEAD
        + junk
        + f"<KatByttegruppe>{junk}{GROUP}{junk}"
        + ff.substitution_group("ID_E2", "ID_G2", "000002")
        + f"<Nested>{junk}</Nested></KatByttegruppe>{junk}</FEST>\n"
    )
    assert entries_of(write(tmp_path, "junk.xml", text)) == ["ID_E1", "ID_E2"]


PEAK_RSS = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    from fest.errors import FestFormatError
    from fest.parser import iter_entries, read_header
    path = Path(sys.argv[1])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        found = sum(1 for _ in iter_entries(path, read_header(path)))
        outcome = f"entries={found}"
    except FestFormatError as error:
        outcome = f"error={error.message}"
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) // 1024, outcome)
""")


def peak_growth_mb(path: Path) -> tuple[int, str]:
    out = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.split(maxsplit=1)
    return int(out[0]), out[1].strip()


def test_millions_of_unknown_elements_parse_in_bounded_memory(tmp_path):
    """1.5 million unknown elements (12 MB of XML, a few KB gzipped), where the catalogue and
    inside one unknown element that stays open: the parse grows by a few MB, not by the input
    (before: about 140 MB per million elements kept in lxml's tree)."""
    half = b"<J/>" * 500_000
    data = (
        HEAD.encode()
        + half
        + b"<KatByttegruppe>"
        + GROUP.encode()
        + half
        + b"</KatByttegruppe><Open>"
        + half
        + b"</Open></FEST>\n"
    )
    growth, outcome = peak_growth_mb(write(tmp_path, "flood.xml.gz", data))
    assert outcome == "entries=1"
    assert growth < 40, f"the parse grew by {growth} MB"


# --- a document with no catalogue --------------------------------------------------------------


def test_a_document_with_no_catalogue_is_not_a_fest_file_and_nothing_is_stored(
    tmp_path, sqlite_url
):
    path = write(tmp_path, "empty.xml.gz", HEAD + "<Junk/>" * 1000 + "</FEST>\n")
    result = runner.invoke(app, ["fest", "import", str(path), "--db", sqlite_url])
    assert result.exit_code == 1, result.output
    assert "no catalogue" in result.output and "not a FEST catalogue" in result.output
    assert catalogue_versions(sqlite_url) == 0


def test_an_empty_catalogue_element_is_still_a_catalogue(tmp_path, sqlite_url):
    """An increment with no change lists its catalogue empty (the XSD allows it)."""
    path = write(tmp_path, "no-change.xml", HEAD + "<KatByttegruppe></KatByttegruppe></FEST>\n")
    assert entries_of(path) == []


def test_a_directory_is_a_clear_error(tmp_path, sqlite_url):
    result = runner.invoke(app, ["fest", "import", str(tmp_path), "--db", sqlite_url])
    assert result.exit_code == 1, result.output
    assert "is a directory, not a FEST file" in result.output
    with pytest.raises(FestFormatError, match="is a directory"):
        content_sha256(tmp_path)


# --- archives ----------------------------------------------------------------------------------


def zipped(
    tmp_path: Path, members: dict[str, bytes], comment: bytes = b"", member_comment: bytes = b""
) -> Path:
    path = tmp_path / "fest.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.comment = member_comment
            archive.writestr(info, data)
        archive.comment = comment
    return path


def document_bytes(entries: int = 1) -> bytes:
    groups = [ff.substitution_group(f"ID_E{i}", f"ID_G{i}", f"{i:06d}") for i in range(entries)]
    return ff.document("2026-01-01T03:00:00", {"Byttegruppe": groups}).encode()


def test_a_zip_member_larger_than_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = zipped(tmp_path, {"fest251.xml": document_bytes(50)})
    size = zipfile.ZipFile(path).getinfo("fest251.xml").file_size
    opened = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: opened.append(a) or 1 / 0)
    with pytest.raises(FestFormatError, match=rf"would inflate to {size} bytes, more than 1000"):
        read_header(path, Limits(max_xml_bytes=1000))
    assert opened == []


@pytest.mark.parametrize("where", ["archive", "member"])
def test_zip_comments_larger_than_the_limit_are_refused(tmp_path, where):
    comment = b"c" * 5000
    path = zipped(
        tmp_path,
        {"fest251.xml": document_bytes()},
        comment=comment if where == "archive" else b"",
        member_comment=comment if where == "member" else b"",
    )
    with pytest.raises(FestFormatError, match="comment .*5000 bytes, more than 100"):
        read_header(path, Limits(max_archive_comment_bytes=100))
    assert entries_of(path) == ["ID_E0"]  # within the default limits


def test_a_zip_with_too_many_members_is_refused(tmp_path):
    path = zipped(tmp_path, {f"m{i}.xml": b"<x/>" for i in range(20)})
    with pytest.raises(FestFormatError, match="20 members, more than 10"):
        read_header(path, Limits(max_archive_members=10))


def test_a_member_that_inflates_beyond_its_declared_size_stops_at_the_limit(tmp_path):
    """gzip declares no size (and a zip's declared size can lie): the decompressed bytes are
    counted as they are read."""
    path = write(tmp_path, "bomb.xml.gz", HEAD + "<KatByttegruppe>" + " " * 200_000)
    with pytest.raises(FestFormatError, match="XML content is larger than 50000 bytes"):
        content_sha256(path, Limits(max_xml_bytes=50_000))


# --- one entry, one comment --------------------------------------------------------------------


def test_an_entry_larger_than_the_limit_is_refused_with_its_line(tmp_path):
    huge = ff.substitution_group("ID_E9", "ID_G9", "000009").replace(
        "<Id>", "<Padding>" + "<p/>" * 100_000 + "</Padding><Id>", 1
    )
    path = write(
        tmp_path,
        "big-entry.xml",
        HEAD + "<KatByttegruppe>\n" + GROUP + huge + "</KatByttegruppe></FEST>\n",
    )
    with pytest.raises(FestFormatError, match="Oppf element longer than 100000 bytes") as error:
        entries_of(path, Limits(max_entry_bytes=100_000))
    assert error.value.line == 6  # where the entry starts
    assert entries_of(path) == ["ID_E1", "ID_E9"]


@pytest.mark.parametrize(
    ("open_", "close", "kind"),
    [
        ("<!--", "-->", "comment"),
        ("<![CDATA[", "]]>", "CDATA section"),
        ("<?pi ", "?>", "processing instruction"),
    ],
)
def test_a_comment_or_other_buffered_markup_beyond_the_limit_is_refused_early(
    tmp_path, open_, close, kind
):
    body = open_ + "x" * 3_000_000 + close
    where = "<KatByttegruppe>" + GROUP + body if kind == "CDATA section" else body
    path = write(
        tmp_path,
        "markup.xml.gz",
        HEAD + "\n" + where + "</KatByttegruppe></FEST>\n"
        if kind == "CDATA section"
        else HEAD + "\n" + body + "</FEST>\n",
    )
    with pytest.raises(FestFormatError, match=f"a {kind} longer than 1048576 bytes") as error:
        entries_of(path)
    assert error.value.line == (6 if kind == "CDATA section" else 5)


def test_a_two_gigabyte_comment_style_bomb_is_refused_in_bounded_memory(tmp_path):
    """The shape of the 2 MB zip that peaked at 2.1 GB, scaled down: a 64 MB comment inside a
    zipped member is refused at 1 MiB, without buffering it."""
    data = HEAD.encode() + b"<!--" + b" " * (64 << 20) + b"--></FEST>\n"
    path = zipped(tmp_path, {"fest251.xml": data})
    assert path.stat().st_size < 200_000
    growth, outcome = peak_growth_mb(path)
    assert outcome.startswith("error=a comment longer than 1048576 bytes"), outcome
    assert growth < 40, f"the parse grew by {growth} MB"


CONSTRUCT = re.compile(rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>|<![^>]*>", re.DOTALL)

piece = st.one_of(
    st.sampled_from([b"<a>", b"</a>", b"text", b"\n", b"<b x='1'/>", b"<", b">", b"-", b"]"]),
    st.tuples(
        st.sampled_from(
            [(b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?p ", b"?>"), (b"<!D ", b">")]
        ),
        st.integers(0, 40),
    ).map(lambda t: t[0][0] + b"y" * t[1] + t[0][1]),
)


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(piece, max_size=30),
    cuts=st.lists(st.integers(0, 2000), max_size=8),
    limit=st.integers(9, 40),
)
def test_the_markup_guard_finds_every_long_construct_however_the_bytes_are_split(
    pieces, cuts, limit
):
    data = b"".join(pieces)
    longest = max((len(m.group()) for m in CONSTRUCT.finditer(data)), default=0)
    guard = _MarkupGuard(Path("f.xml"), limit)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    try:
        for start, end in zip(bounds, bounds[1:], strict=False):
            guard.scan(data[start:end])
    except FestFormatError:
        assert longest > limit
    else:
        assert longest <= limit


def test_limits_come_from_the_environment_and_bad_values_are_named():
    assert Limits.from_env({"MEDLOOP_FEST_MAX_XML_BYTES": "123"}).max_xml_bytes == 123
    assert Limits.from_env({}) == Limits()
    with pytest.raises(ValueError, match="MEDLOOP_FEST_MAX_ENTRY_BYTES must be a positive"):
        Limits.from_env({"MEDLOOP_FEST_MAX_ENTRY_BYTES": "-1"})


def test_an_unusable_limit_setting_is_a_configuration_error(tmp_path, sqlite_url, monkeypatch):
    monkeypatch.setenv("MEDLOOP_FEST_MAX_XML_BYTES", "lots")
    path = write(tmp_path, "ok.xml", document_bytes())
    result = runner.invoke(app, ["fest", "import", str(path), "--db", sqlite_url])
    assert result.exit_code == 2, result.output
    assert "MEDLOOP_FEST_MAX_XML_BYTES must be a positive whole number" in result.output


def test_the_limits_apply_to_an_import_and_nothing_is_stored(tmp_path, sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        upgrade(engine)
        path = write(tmp_path, "ok.xml", document_bytes(20))
        with pytest.raises(FestFormatError, match="larger than 1000 bytes"):
            import_catalogue(engine, path, limits=Limits(max_xml_bytes=1000))
    finally:
        engine.dispose()
    assert catalogue_versions(sqlite_url) == 0
