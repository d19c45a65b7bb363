"""Read-only questions about the catalogue in force, shared by the loader and the CLI."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from fest import schema


def version_in_force(conn: Connection) -> dict[str, Any] | None:
    """The newest committed catalogue version, or None before the first import."""
    row = (
        conn.execute(select(schema.fest_version).order_by(schema.fest_version.c.id.desc()).limit(1))
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


VERSION_KEY_IN_FORCE = (
    select(schema.fest_version.c.id, schema.fest_version.c.sha256)
    .order_by(schema.fest_version.c.id.desc())
    .limit(1)
)


def version_key_in_force(conn: Connection) -> tuple[int, str] | None:
    """Id and file hash of the version in force (a cheap query for callers that cache by it)."""
    return version_key_of(conn.execute(VERSION_KEY_IN_FORCE).first())


def version_key_of(row: Any) -> tuple[int, str] | None:
    """The key in a row of ``VERSION_KEY_IN_FORCE`` (``None``: no row, no import yet)."""
    return None if row is None else (int(row.id), str(row.sha256))


def active_counts(conn: Connection) -> dict[str, int]:
    """Entries in force per counted catalogue kind (every key present, zero when empty)."""
    entry = schema.fest_entry
    found = dict(
        conn.execute(
            select(entry.c.kind, func.count())
            .where(entry.c.valid_to.is_(None))
            .group_by(entry.c.kind)
        ).all()
    )
    return {kind: int(found.get(kind, 0)) for kind in schema.COUNTED_KINDS}
