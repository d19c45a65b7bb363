"""Column types and value conversions every table module of the store shares.

A UUID is stored as its 36-character text form (``UUID_LENGTH``); every instant is stored in UTC
and read back aware. SQLite keeps only the wall-clock time, so what it hands back is naive UTC.
A domain record stored as JSON is read back with ``parsed``, which names the row of a record
that no longer loads (``StoredRecordUnreadable``; ``medloop.store.records`` finds them all), or
by a read decorated with ``names_unreadable``, which names it once a load has failed.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import Column, Index, String, Table

from medloop.domain.errors import DomainError

UUID_LENGTH = 36
"""``String(UUID_LENGTH)``: a UUID in its canonical text form."""

#: The column every table of one patient's data is distributed by (docs/scaling.md).
SHARD_KEY = "patient_id"


def shard_key(table: str) -> tuple[Column, Index]:
    """``patient_id`` of a child table whose parent row names the patient (migration 0020): a
    copy of the parent's, written with the row, so that a statement on the child alone routes
    by patient (docs/scaling.md). No foreign key: the parent's already ties the row to the
    patient. Left out of the row's attested digest (``medloop.store.attestation``)."""
    return (
        Column(SHARD_KEY, String(UUID_LENGTH), nullable=False),
        Index(f"ix_{table}_patient", SHARD_KEY),
    )


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC: an aware instant converted, a naive one (as SQLite hands back what was
    stored) taken as UTC wall-clock time."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def aware(moment: datetime) -> datetime:
    """``moment`` as read back, made aware: naive (SQLite) is UTC, aware is left as it is."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def iso(moment: datetime | date) -> str:
    return moment.isoformat()


# -- stored records ----------------------------------------------------------------------------

Model = TypeVar("Model", bound=BaseModel)


class StoredRecordUnreadable(Exception):
    """A stored record that does not load as its model (table, key, why)."""

    def __init__(self, table: str, key: Mapping[str, Any], reason: str) -> None:
        self.table = table
        self.key = {name: str(value) for name, value in key.items()}
        self.reason = reason
        super().__init__(f"the stored {table} record ({self._names()}) cannot be read: {reason}")

    def _names(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.key.items())

    @property
    def record(self) -> str:
        """The record as support looks it up: ``table (key=value, ...)`` (never its value)."""
        return f"{self.table} ({self._names()})"


LOAD_FAILURES = (ValueError, TypeError, KeyError, AttributeError)
"""How loading a record that no longer fits its model fails: a ``ValidationError`` (a
``ValueError``) from ``model_validate``, or a missing or mistyped field met by a loader that
builds the value without validating it (``administration._stored_dose``)."""


UNREADABLE = (*LOAD_FAILURES, DomainError)
"""What a record's own validation may raise: a load failure, or a domain value refusing it."""


def parsed(model: type[Model], value: Any, table: Table, key: Mapping[str, Any]) -> Model:
    """``model`` validated from the stored ``value`` of ``table``'s row ``key``;
    ``StoredRecordUnreadable`` when it does not load."""
    try:
        return model.model_validate(value)
    except UNREADABLE as error:
        raise StoredRecordUnreadable(table.name, key, why(error)) from None


Read = TypeVar("Read", bound=Callable[..., Any])


def names_unreadable(*tables: Table) -> Callable[[Read], Read]:
    """Decorate a read that loads records of ``tables`` itself (``model_validate`` over the
    rows it selected, or a loader that trusts what the engine stored): a record that does not
    load raises ``StoredRecordUnreadable`` naming the first such row of those tables (the
    read's patient's, when the read takes a ``patient_id``), as ``parsed`` names it. The row is
    found by ``medloop.store.records.check`` only once a load has failed (``LOAD_FAILURES``); a
    read whose failure no stored record explains raises its own error unchanged."""
    names = frozenset(table.name for table in tables)

    def decorate(read: Read) -> Read:
        signature = inspect.signature(read)

        @functools.wraps(read)
        def named(*args: Any, **kwargs: Any) -> Any:
            try:
                return read(*args, **kwargs)
            except LOAD_FAILURES:
                bound = signature.bind(*args, **kwargs).arguments
                found = unreadable_behind(bound["conn"], bound.get("patient_id"), names)
                if found is None:
                    raise
                raise found from None

        return named  # type: ignore[return-value]

    return decorate


def unreadable_behind(
    conn: Any, patient_id: Any | None, tables: Collection[str] | None = None
) -> StoredRecordUnreadable | None:
    """Once loading has failed: the first stored record that does not load, as the error that
    names it, or ``None`` when every record loads. Of the patient's records (with ``tables``,
    of those tables; the whole of a table not kept per patient), or of every table's."""
    from medloop.store import records  # imports every table module

    found = next(records.check(conn, patient_id, tables=tables), None)
    return None if found is None else StoredRecordUnreadable(found.table, found.key, found.reason)


def why(error: Exception) -> str:
    """What is wrong, without the stored value (it may be patient data)."""
    if isinstance(error, ValidationError):
        first = error.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "the record"
        more = error.error_count() - 1
        return f"{where}: {first['msg']}" + (f" (and {more} more)" if more else "")
    return f"{type(error).__name__}: {error}"
