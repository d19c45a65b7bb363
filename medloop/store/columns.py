"""Column types and value conversions every table module of the store shares.

A UUID is stored as its 36-character text form (``UUID_LENGTH``); every instant is stored in UTC
and read back aware. SQLite keeps only the wall-clock time, so what it hands back is naive UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

UUID_LENGTH = 36
"""``String(UUID_LENGTH)``: a UUID in its canonical text form."""


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC: an aware instant converted, a naive one (as SQLite hands back what was
    stored) taken as UTC wall-clock time."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def aware(moment: datetime) -> datetime:
    """``moment`` as read back, made aware: naive (SQLite) is UTC, aware is left as it is."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def iso(moment: datetime | date) -> str:
    return moment.isoformat()
