"""Versioned, atomic import of a FEST file into the catalogue tables.

One import = one database transaction = one catalogue version.  Until it commits, the
previous version stays in force and readable (SQLite WAL and PostgreSQL MVCC both give
readers the old snapshot); an error, a refusal or a killed process leaves nothing behind.

Full files replace the catalogue: an entry whose entry id is already in force is
unchanged and is not even extracted; a new entry id for a known domain id replaces the
old row; domain ids missing from the file expire.  Incremental files (detected by
``Status U`` entries, or asked for) only add and replace, then expire the entry ids
listed with ``Status U``: all ``A`` entries are applied first, so a ``U`` for an entry
that an ``A`` of the same file already superseded is a no-op.

Where the platform can fork, parsing and extraction run in a child process that streams
ready-to-insert row batches to the importing process, which only writes them: the two
halves of the work then use both cores.  The child never touches the database; the
transaction, and so the atomicity, stays with the parent.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import JSON, Connection, Date, Engine, Table, bindparam, func, select, text, update

from fest import schema
from fest.errors import FestFormatError, FestImportRejected
from fest.parser import Header, Limits, RawEntry, content_sha256, iter_entries, read_header
from fest.queries import active_counts, version_in_force
from fest.records import FULLY_TYPED, Extracted, RecordError, extract

#: A full file may not shrink a catalogue below this share of what is in force ...
SHRINK_FLOOR = 0.8
#: ... when that catalogue held at least this many entries.
SHRINK_MIN_ROWS = 50
_FLUSH_ROWS = 5_000
_PG_IMPORT_LOCK = 0x4645_5354  # "FEST"
_TABLES = {table.name: table for table in schema.metadata.sorted_tables}
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

Progress = Callable[[int, int | None], None]
Batch = dict[str, list[tuple]]


@dataclass
class ImportResult:
    version: int
    hentet_dato: str
    counts: dict[str, int]
    seconds: float
    unchanged: bool = False
    mode: str = "full"
    changes: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The ``medloop fest import --json`` contract."""
        return {
            "version": self.version,
            "hentet_dato": self.hentet_dato,
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
        }


def import_catalogue(
    engine: Engine,
    path: str | Path,
    *,
    incremental: bool = False,
    allow_shrink: bool = False,
    allow_older: bool = False,
    progress: Progress | None = None,
    limits: Limits | None = None,
) -> ImportResult:
    """Import one FEST file as a new catalogue version (or detect that it is already in force).

    Raises :class:`FestFormatError` for unreadable input and :class:`FestImportRejected`
    when the file is readable but would make the catalogue implausible; in both cases the
    catalogue in force is unchanged.
    """
    started = time.perf_counter()
    path = Path(path)
    limits = Limits() if limits is None else limits
    header = read_header(path, limits)
    sha256 = content_sha256(path, limits)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_IMPORT_LOCK})
        current = version_in_force(conn)
        if current is not None and current["sha256"] == sha256:
            return ImportResult(
                version=current["id"],
                hentet_dato=current["hentet_dato"],
                counts=active_counts(conn),
                seconds=time.perf_counter() - started,
                unchanged=True,
                mode=current["mode"],
            )
        if (
            current is not None
            and header.hentet_dato
            and header.hentet_dato < current["hentet_dato"]
            and not allow_older
        ):
            raise FestImportRejected(
                f"{path}: HentetDato {header.hentet_dato} is older than the catalogue in force "
                f"(version {current['id']}, HentetDato {current['hentet_dato']}); "
                "pass allow_older (--allow-older) to import it anyway"
            )
        run = _Run(
            path=path,
            version=(conn.scalar(select(func.max(schema.fest_version.c.id))) or 0) + 1,
            next_pk=(conn.scalar(select(func.max(schema.fest_entry.c.id))) or 0) + 1,
            in_force=_entries_in_force(conn),
            incremental=incremental,
            limits=limits,
        )
        _insert_version_placeholder(conn, run.version, path)
        writer = _BatchWriter(conn)
        total = path.stat().st_size if path.suffix.lower() == ".xml" else None
        if "fork" in multiprocessing.get_all_start_methods():
            _parse_in_child(run, header, writer, total, progress)
        else:
            _parse_here(run, header, writer, total, progress)
        return _finish(conn, run, header, sha256, allow_shrink, started)


# --- the parse stage: RawEntry -> extracted records -> row batches ------------------------


def _serialiser(column_type: Any) -> Callable | None:
    if isinstance(column_type, JSON):
        return _JSON.encode
    if isinstance(column_type, Date):
        return date.isoformat
    return None


class _Rows:
    """Turns typed rows into driver-ready tuples and hands them on in batches.

    JSON and dates are serialised here: SQLAlchemy's per-row parameter processing would
    cost more than parsing the file.
    """

    def __init__(self, sink: Callable[[Batch], None]) -> None:
        self.sink = sink
        self.buffers: Batch = {}
        self.pending = 0
        self.plans: dict[Table, tuple[tuple[str, ...], tuple[tuple[int, Callable], ...]]] = {}

    def _plan(self, table: Table) -> tuple[tuple[str, ...], tuple[tuple[int, Callable], ...]]:
        names = tuple(c.name for c in table.columns)
        serialisers = tuple(
            (i, serialise)
            for i, c in enumerate(table.columns)
            if (serialise := _serialiser(c.type)) is not None
        )
        self.plans[table] = (names, serialisers)
        return names, serialisers

    def add(self, table: Table, row: dict[str, Any]) -> None:
        names, serialisers = self.plans.get(table) or self._plan(table)
        values = list(map(row.get, names))
        for index, serialise in serialisers:
            if values[index] is not None:
                values[index] = serialise(values[index])
        self.buffers.setdefault(table.name, []).append(tuple(values))
        self.pending += 1
        if self.pending >= _FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.buffers:
            self.sink(self.buffers)
        self.buffers = {}
        self.pending = 0


class _Run:
    """What one import decides, entry by entry; no database access (it may run in a child)."""

    def __init__(
        self,
        path: Path,
        version: int,
        next_pk: int,
        in_force: Iterable[tuple[int, str, str, str]],
        incremental: bool,
        limits: Limits | None = None,
    ) -> None:
        self.path = path
        self.limits = limits
        self.version = version
        self.next_pk = self.first_new_pk = next_pk
        self.incremental = incremental
        self.by_key: dict[tuple[str, str], tuple[int, str]] = {}
        self.by_entry_id: dict[str, tuple[int, str, str]] = {}
        for pk, kind, domain_id, entry_id in in_force:
            self.by_key[(kind, domain_id)] = (pk, entry_id)
            self.by_entry_id[entry_id] = (pk, kind, domain_id)
        self.before = Counter(kind for kind, _ in self.by_key)
        self.seen: set[int] = set()
        self.closing: list[int] = []
        self.expired_entry_ids: list[str] = []
        self.changes: dict[str, Counter] = {
            "added": Counter(),
            "replaced": Counter(),
            "expired": Counter(),
        }
        self.duplicates: Counter = Counter()
        self.unmatched: list[str] = []
        self.mode = "full"

    def load(self, entries: Iterable[RawEntry], rows: _Rows) -> None:
        for raw in entries:
            if raw.status == "U" or not raw.payload:
                self.expired_entry_ids.append(raw.entry_id)
                continue
            known = self.by_entry_id.get(raw.entry_id)
            if known is not None:
                self.seen.add(known[0])
                continue
            try:
                record = extract(raw.catalogue, raw.entry_id, raw.payload)
            except RecordError as exc:
                raise FestFormatError(
                    str(self.path), raw.line, None, f"Oppf{raw.catalogue} {raw.entry_id}: {exc}"
                ) from None
            self._store(raw, record, rows)
        rows.flush()

    def _store(self, raw: RawEntry, record: Extracted, rows: _Rows) -> None:
        key = (record.kind, record.domain_id)
        old = self.by_key.get(key)
        if old is not None:
            if old[0] >= self.first_new_pk:
                self.duplicates[record.kind] += 1
            else:
                self.changes["replaced"][record.kind] += 1
            self.closing.append(old[0])
            self.by_entry_id.pop(old[1], None)
        else:
            self.changes["added"][record.kind] += 1
        pk = self.next_pk
        self.next_pk += 1
        self.by_key[key] = (pk, raw.entry_id)
        self.by_entry_id[raw.entry_id] = (pk, record.kind, record.domain_id)
        self.seen.add(pk)
        if record.kind in FULLY_TYPED:
            payload = None
        elif len(raw.payload) == 1:
            payload = etree.tostring(raw.payload[0], encoding="unicode")
        else:
            payload = "".join(etree.tostring(el, encoding="unicode") for el in raw.payload)
        rows.add(
            schema.fest_entry,
            {
                "id": pk,
                "kind": record.kind,
                "domain_id": record.domain_id,
                "entry_id": raw.entry_id,
                "tidspunkt": raw.tidspunkt,
                "valid_from": self.version,
                "payload": payload,
            },
        )
        for table, row in record.rows:
            row["entry"] = pk
            rows.add(table, row)
        for field_name, position, target_kind, target_id in record.refs:
            rows.add(
                schema.fest_ref,
                {
                    "entry": pk,
                    "field": field_name,
                    "position": position,
                    "target_kind": target_kind,
                    "target_id": target_id,
                },
            )

    def conclude(self) -> None:
        """Decide what this file ends, then drop the per-entry maps.

        A full file closes every row in force it did not list.  An increment closes the rows
        its ``Status U`` entries name; those naming no row in force are kept in ``unmatched``
        for the database to tell superseded from never-imported entries.
        """
        self.mode = "incremental" if (self.incremental or self.expired_entry_ids) else "full"
        if self.mode == "full":
            for (kind, _), (pk, _) in self.by_key.items():
                if pk not in self.seen:
                    self.closing.append(pk)
                    self.changes["expired"][kind] += 1
        else:
            for entry_id in self.expired_entry_ids:
                known = self.by_entry_id.pop(entry_id, None)
                if known is None:
                    self.unmatched.append(entry_id)
                    continue
                pk, kind, domain_id = known
                self.by_key.pop((kind, domain_id), None)
                self.closing.append(pk)
                self.changes["expired"][kind] += 1
        self.forget_entries()

    def forget_entries(self) -> None:
        self.by_key, self.by_entry_id, self.seen, self.expired_entry_ids = {}, {}, set(), []

    def shrinkage(self) -> list[str]:
        after = Counter(self.before)
        after.update(self.changes["added"])
        after.subtract(self.changes["expired"])
        return [
            f"{kind}: {self.before[kind]} -> {after[kind]}"
            for kind in self.before
            if self.before[kind] >= SHRINK_MIN_ROWS
            and after[kind] < SHRINK_FLOOR * self.before[kind]
        ]

    def outcome(self) -> dict[str, Any]:
        """What the importing process needs once a child has parsed the file (no per-entry maps)."""
        return {
            name: getattr(self, name)
            for name in ("mode", "closing", "unmatched", "changes", "duplicates")
        }

    def adopt(self, outcome: dict[str, Any]) -> None:
        for name, value in outcome.items():
            setattr(self, name, value)


def _counting(progress: Progress | None, total: int | None):
    read = 0

    def on_read(n: int) -> None:
        nonlocal read
        read += n
        if progress is not None:
            progress(read, total)

    return on_read


def _parse_here(
    run: _Run, header: Header, writer: _BatchWriter, total: int | None, progress: Progress | None
) -> None:
    entries = iter_entries(run.path, header, _counting(progress, total), run.limits)
    run.load(entries, _Rows(writer.write))
    run.conclude()


def _parse_in_child(
    run: _Run, header: Header, writer: _BatchWriter, total: int | None, progress: Progress | None
) -> None:
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child_main, args=(run, header, sender, receiver), name="fest-parser", daemon=True
    )
    child.start()
    sender.close()
    run.forget_entries()  # the child has its own copy; this process needs only the outcome
    try:
        while True:
            try:
                message, payload, extra = receiver.recv()
            except EOFError:
                raise FestFormatError(
                    str(run.path),
                    None,
                    None,
                    f"the parser process ended unexpectedly (exit code {child.exitcode})",
                ) from None
            if message == "rows":
                writer.write(payload)
                if progress is not None:
                    progress(extra, total)
            elif message == "done":
                run.adopt(payload)
                header.hentet_dato = extra
                return
            else:
                raise payload
    finally:
        receiver.close()
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
            child.join()


def _child_main(run: _Run, header: Header, sender, receiver) -> None:
    """Parse in the child; the inherited database connection is never used here."""
    # Without the read end, a parent that dies (kill -9) breaks the pipe and ends us too.
    receiver.close()
    read = 0

    def on_read(n: int) -> None:
        nonlocal read
        read += n

    try:
        entries = iter_entries(run.path, header, on_read, run.limits)
        run.load(entries, _Rows(lambda batch: sender.send(("rows", batch, read))))
        run.conclude()
        sender.send(("done", run.outcome(), header.hentet_dato))
    except BaseException as exc:  # noqa: BLE001 - handed to the importing process
        try:
            sender.send(("error", exc, None))
        finally:
            os._exit(1)
    sender.close()
    os._exit(0)


# --- the database side -----------------------------------------------------------------------


class _BatchWriter:
    """Writes row batches with the driver's ``executemany``, parents before children."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sql: dict[str, str] = {}

    def _insert(self, name: str) -> str:
        quote = self.conn.dialect.identifier_preparer.quote
        marker = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        columns = [c.name for c in _TABLES[name].columns]
        sql = self.sql[name] = (
            f"INSERT INTO {quote(name)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({', '.join([marker] * len(columns))})"
        )
        return sql

    def write(self, batch: Batch) -> None:
        entries = batch.pop(schema.fest_entry.name, None)
        if entries:
            self.conn.exec_driver_sql(
                self.sql.get("fest_entry") or self._insert("fest_entry"), entries
            )
        for name, rows in batch.items():
            self.conn.exec_driver_sql(self.sql.get(name) or self._insert(name), rows)


def _entries_in_force(conn: Connection) -> list[tuple[int, str, str, str]]:
    entry = schema.fest_entry
    return [
        tuple(row)
        for row in conn.execute(
            select(entry.c.id, entry.c.kind, entry.c.domain_id, entry.c.entry_id).where(
                entry.c.valid_to.is_(None)
            )
        )
    ]


def _insert_version_placeholder(conn: Connection, version: int, path: Path) -> None:
    conn.execute(
        schema.fest_version.insert().values(
            id=version,
            hentet_dato="",
            sha256="",
            source_name=path.name,
            fest_version="",
            mode="",
            imported_at=datetime.now(UTC),
            seconds=0.0,
            counts={},
            changes={},
            warnings=[],
        )
    )


def _stored_entry_ids(conn: Connection, entry_ids: list[str]) -> set[str]:
    found: set[str] = set()
    column = schema.fest_entry.c.entry_id
    for start in range(0, len(entry_ids), 500):
        chunk = entry_ids[start : start + 500]
        found.update(conn.execute(select(column).where(column.in_(chunk))).scalars())
    return found


def _finish(
    conn: Connection, run: _Run, header: Header, sha256: str, allow_shrink: bool, started: float
) -> ImportResult:
    unmatched = sorted(set(run.unmatched))
    unknown_expired = len(set(unmatched) - _stored_entry_ids(conn, unmatched))
    if run.mode == "full" and not allow_shrink and (shrunk := run.shrinkage()):
        raise FestImportRejected(
            f"{run.path}: a full file would shrink the catalogue below "
            f"{SHRINK_FLOOR:.0%} of what is in force ({'; '.join(shrunk)}); "
            "if this is intended pass allow_shrink (--allow-shrink), or import it as an "
            "increment (--incremental)"
        )
    if run.closing:
        conn.execute(
            update(schema.fest_entry)
            .where(schema.fest_entry.c.id == bindparam("pk"))
            .values(valid_to=run.version),
            [{"pk": pk} for pk in run.closing],
        )
    warnings = [
        f"{n} {kind} entries repeat a domain id already in the file; the last one is kept"
        for kind, n in sorted(run.duplicates.items())
    ]
    if unknown_expired:
        warnings.append(
            f"{unknown_expired} expired (Status U) entry ids were never imported; ignored"
        )
    warnings.extend(
        f"{count} unresolvable {field_name} references to {target_kind} (e.g. {example})"
        for field_name, target_kind, count, example in unresolved_references(conn)
    )
    counts = active_counts(conn)
    seconds = time.perf_counter() - started
    changes = {name: dict(counter) for name, counter in run.changes.items()}
    hentet_dato = header.hentet_dato or ""
    conn.execute(
        update(schema.fest_version)
        .where(schema.fest_version.c.id == run.version)
        .values(
            hentet_dato=hentet_dato,
            sha256=sha256,
            fest_version=header.fest_version,
            mode=run.mode,
            seconds=seconds,
            counts=counts,
            changes=changes,
            warnings=warnings,
        )
    )
    return ImportResult(
        version=run.version,
        hentet_dato=hentet_dato,
        counts=counts,
        seconds=seconds,
        mode=run.mode,
        changes=changes,
        warnings=warnings,
    )


def unresolved_references(conn: Connection) -> list[tuple[str, str, int, str]]:
    """(field, target kind, count, example id) of references of the catalogue in force
    whose target is not in force."""
    rows = conn.execute(
        text(
            """
            SELECT r.field, r.target_kind, count(*), min(r.target_id)
            FROM fest_ref r
            JOIN fest_entry s ON s.id = r.entry AND s.valid_to IS NULL
            WHERE CASE WHEN r.target_kind = 'Refusjonsgruppe' THEN NOT EXISTS (
                      SELECT 1 FROM fest_refund_group g
                      JOIN fest_entry t ON t.id = g.entry AND t.valid_to IS NULL
                      WHERE g.group_id = r.target_id)
                  ELSE NOT EXISTS (
                      SELECT 1 FROM fest_entry t
                      WHERE t.kind = r.target_kind AND t.domain_id = r.target_id
                        AND t.valid_to IS NULL)
                  END
            GROUP BY r.field, r.target_kind
            ORDER BY r.field, r.target_kind
            """
        )
    )
    return [(f, k, int(n), e) for f, k, n, e in rows]
