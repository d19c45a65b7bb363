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
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import JSON, Connection, Date, Engine, bindparam, func, select, text, update

from fest import schema
from fest.errors import FestFormatError, FestImportRejected
from fest.parser import content_sha256, iter_entries, read_header
from fest.queries import active_counts, version_in_force
from fest.records import FULLY_TYPED, RecordError, extract

#: A full file may not shrink a catalogue below this share of what is in force ...
SHRINK_FLOOR = 0.8
#: ... when that catalogue held at least this many entries.
SHRINK_MIN_ROWS = 50
_FLUSH_ROWS = 20_000
_PG_IMPORT_LOCK = 0x4645_5354  # "FEST"

Progress = Callable[[int, int | None], None]


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


class _Writer:
    """Buffers rows per table and writes them in batches, parents first.

    Rows go to the driver's ``executemany`` as tuples, with JSON and dates already
    serialised: SQLAlchemy's per-row parameter processing would cost more than parsing.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.buffers: dict[Any, list[tuple]] = {}
        self.plans: dict[Any, tuple[str, tuple[str, ...], tuple[tuple[int, Callable], ...]]] = {}
        self.pending = 0
        self.closing: list[dict[str, int]] = []

    def _plan(self, table: Any) -> tuple[str, tuple[str, ...], tuple[tuple[int, Callable], ...]]:
        quote = self.conn.dialect.identifier_preparer.quote
        marker = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        names = tuple(c.name for c in table.columns)
        sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
            f"VALUES ({', '.join([marker] * len(names))})"
        )
        serialisers = tuple(
            (i, serialise)
            for i, c in enumerate(table.columns)
            if (serialise := _serialiser(c.type)) is not None
        )
        plan = sql, names, serialisers
        self.plans[table] = plan
        return plan

    def add(self, table: Any, row: dict[str, Any]) -> None:
        _, names, serialisers = self.plans.get(table) or self._plan(table)
        values = list(map(row.get, names))
        for index, serialise in serialisers:
            if values[index] is not None:
                values[index] = serialise(values[index])
        self.buffers.setdefault(table, []).append(tuple(values))
        self.pending += 1
        if self.pending >= _FLUSH_ROWS:
            self.flush()

    def close_row(self, pk: int) -> None:
        self.closing.append({"pk": pk})

    def flush(self) -> None:
        entries = self.buffers.pop(schema.fest_entry, None)
        if entries:
            self.conn.exec_driver_sql(self.plans[schema.fest_entry][0], entries)
        for table, rows in self.buffers.items():
            self.conn.exec_driver_sql(self.plans[table][0], rows)
        self.buffers = {}
        self.pending = 0

    def apply_closings(self, version: int) -> None:
        if self.closing:
            statement = (
                update(schema.fest_entry)
                .where(schema.fest_entry.c.id == bindparam("pk"))
                .values(valid_to=version)
            )
            self.conn.execute(statement, self.closing)
            self.closing = []


def _serialiser(column_type: Any) -> Callable | None:
    if isinstance(column_type, JSON):
        return partial(json.dumps, ensure_ascii=False)
    if isinstance(column_type, Date):
        return date.isoformat
    return None


def import_catalogue(
    engine: Engine,
    path: str | Path,
    *,
    incremental: bool = False,
    allow_shrink: bool = False,
    allow_older: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Import one FEST file as a new catalogue version (or detect that it is already in force).

    Raises :class:`FestFormatError` for unreadable input and :class:`FestImportRejected`
    when the file is readable but would make the catalogue implausible; in both cases the
    catalogue in force is unchanged.
    """
    started = time.perf_counter()
    path = Path(path)
    header = read_header(path)
    sha256 = content_sha256(path)
    with engine.begin() as conn:
        _serialize_imports(conn)
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
        total = path.stat().st_size if path.suffix.lower() == ".xml" else None
        read = 0

        def on_read(n: int) -> None:
            nonlocal read
            read += n
            if progress is not None:
                progress(read, total)

        run = _Run(conn, path, current, incremental)
        run.load(iter_entries(path, header, on_read))
        result = run.finish(header.hentet_dato or "", sha256, header.fest_version, allow_shrink, started)
        return result


def _serialize_imports(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_IMPORT_LOCK})


class _Run:
    """The state of one import inside its transaction."""

    def __init__(self, conn: Connection, path: Path, current: dict | None, incremental: bool) -> None:
        self.conn = conn
        self.path = path
        self.previous = current
        self.incremental = incremental
        self.version = (conn.scalar(select(func.max(schema.fest_version.c.id))) or 0) + 1
        self.next_pk = (conn.scalar(select(func.max(schema.fest_entry.c.id))) or 0) + 1
        self.first_new_pk = self.next_pk
        self.writer = _Writer(conn)
        self.by_key: dict[tuple[str, str], tuple[int, str]] = {}
        self.by_entry_id: dict[str, tuple[int, str, str]] = {}
        for pk, kind, domain_id, entry_id in conn.execute(
            select(
                schema.fest_entry.c.id,
                schema.fest_entry.c.kind,
                schema.fest_entry.c.domain_id,
                schema.fest_entry.c.entry_id,
            ).where(schema.fest_entry.c.valid_to.is_(None))
        ):
            self.by_key[(kind, domain_id)] = (pk, entry_id)
            self.by_entry_id[entry_id] = (pk, kind, domain_id)
        self.before = Counter(kind for kind, _ in self.by_key)
        self.seen: set[int] = set()
        self.expired_entry_ids: list[tuple[str, int]] = []
        self.changes: dict[str, Counter] = {"added": Counter(), "replaced": Counter(), "expired": Counter()}
        self.warnings: list[str] = []
        self.duplicates = Counter()
        self.unknown_expired = 0
        self._insert_version_placeholder()

    def _insert_version_placeholder(self) -> None:
        self.conn.execute(
            schema.fest_version.insert().values(
                id=self.version,
                hentet_dato="",
                sha256="",
                source_name=self.path.name,
                fest_version="",
                mode="",
                imported_at=datetime.now(UTC),
                seconds=0.0,
                counts={},
                changes={},
                warnings=[],
            )
        )

    def load(self, entries) -> None:
        for raw in entries:
            if raw.status == "U" or not raw.payload:
                self.expired_entry_ids.append((raw.entry_id, raw.line))
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
            self._store(raw, record)
        self.writer.flush()

    def _store(self, raw, record) -> None:
        key = (record.kind, record.domain_id)
        old = self.by_key.get(key)
        if old is not None:
            old_pk = old[0]
            if old_pk >= self.first_new_pk:
                self.duplicates[record.kind] += 1
            else:
                self.changes["replaced"][record.kind] += 1
            self.writer.close_row(old_pk)
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
        self.writer.add(
            schema.fest_entry,
            {
                "id": pk,
                "kind": record.kind,
                "domain_id": record.domain_id,
                "entry_id": raw.entry_id,
                "tidspunkt": raw.tidspunkt,
                "valid_from": self.version,
                "valid_to": None,
                "payload": payload,
            },
        )
        for table, row in record.rows:
            row["entry"] = pk
            self.writer.add(table, row)
        for field_name, position, target_kind, target_id in record.refs:
            self.writer.add(
                schema.fest_ref,
                {
                    "entry": pk,
                    "field": field_name,
                    "position": position,
                    "target_kind": target_kind,
                    "target_id": target_id,
                },
            )

    def finish(
        self, hentet_dato: str, sha256: str, fest_version: str, allow_shrink: bool, started: float
    ) -> ImportResult:
        mode = "incremental" if (self.incremental or self.expired_entry_ids) else "full"
        if mode == "full":
            for (kind, _), (pk, _) in list(self.by_key.items()):
                if pk not in self.seen:
                    self.writer.close_row(pk)
                    self.changes["expired"][kind] += 1
        else:
            self._expire_listed()
        after = Counter(self.before)
        for kind, n in self.changes["added"].items():
            after[kind] += n
        for kind, n in self.changes["expired"].items():
            after[kind] -= n
        if mode == "full" and not allow_shrink:
            self._refuse_shrinkage(after)
        self.writer.apply_closings(self.version)
        self._collect_warnings()
        counts = active_counts(self.conn)
        seconds = time.perf_counter() - started
        changes = {name: dict(counter) for name, counter in self.changes.items()}
        self.conn.execute(
            update(schema.fest_version)
            .where(schema.fest_version.c.id == self.version)
            .values(
                hentet_dato=hentet_dato,
                sha256=sha256,
                fest_version=fest_version,
                mode=mode,
                seconds=seconds,
                counts=counts,
                changes=changes,
                warnings=self.warnings,
            )
        )
        return ImportResult(
            version=self.version,
            hentet_dato=hentet_dato,
            counts=counts,
            seconds=seconds,
            mode=mode,
            changes=changes,
            warnings=self.warnings,
        )

    def _expire_listed(self) -> None:
        for entry_id, _line in self.expired_entry_ids:
            known = self.by_entry_id.pop(entry_id, None)
            if known is None:
                if not self._was_ever_stored(entry_id):
                    self.unknown_expired += 1
                continue
            pk, kind, domain_id = known
            self.by_key.pop((kind, domain_id), None)
            self.writer.close_row(pk)
            self.changes["expired"][kind] += 1

    def _was_ever_stored(self, entry_id: str) -> bool:
        row = self.conn.execute(
            select(schema.fest_entry.c.id).where(schema.fest_entry.c.entry_id == entry_id).limit(1)
        ).first()
        return row is not None

    def _refuse_shrinkage(self, after: Counter) -> None:
        shrunk = [
            f"{kind}: {self.before[kind]} -> {after[kind]}"
            for kind in self.before
            if self.before[kind] >= SHRINK_MIN_ROWS and after[kind] < SHRINK_FLOOR * self.before[kind]
        ]
        if shrunk:
            raise FestImportRejected(
                f"{self.path}: a full file would shrink the catalogue below "
                f"{SHRINK_FLOOR:.0%} of what is in force ({'; '.join(shrunk)}); "
                "if this is intended pass allow_shrink (--allow-shrink), or import it as an "
                "increment (--incremental)"
            )

    def _collect_warnings(self) -> None:
        for kind, n in sorted(self.duplicates.items()):
            self.warnings.append(f"{n} {kind} entries repeat a domain id already in the file; the last one is kept")
        if self.unknown_expired:
            self.warnings.append(
                f"{self.unknown_expired} expired (Status U) entry ids were never imported; ignored"
            )
        for field_name, target_kind, count, example in unresolved_references(self.conn):
            self.warnings.append(
                f"{count} unresolvable {field_name} references to {target_kind} (e.g. {example})"
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
