"""FHIR bulk exports as the loop keeps them: kick-off, the state a client polls, cancelling,
the job's claim of the next export and its end, and the audit of the patients an export read
(one record per patient, ``store.access.audited_many``). The export's content is written by
``medloop.fhir.export``; nothing here decides what a caller may export (``api.policy``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Engine

from medloop.store import exports as store
from medloop.store.access import Accessor, audited_many
from medloop.store.db import reader

Export = store.Export
PENDING, RUNNING, COMPLETED, FAILED, CANCELLED = (
    store.PENDING,
    store.RUNNING,
    store.COMPLETED,
    store.FAILED,
    store.CANCELLED,
)


def connection(engine: Engine) -> Any:
    """A connection for an export's reads (autocommit, outside a transaction)."""
    return reader(engine).connect()


def kick_off(engine: Engine, export: Export) -> None:
    store.add(engine, export)


def status(engine: Engine, export_id: UUID) -> Export | None:
    with reader(engine).connect() as conn:
        return store.read(conn, export_id)


def cancel(engine: Engine, export_id: UUID, at: datetime) -> bool:
    return store.cancel(engine, export_id, at)


def claim_next(engine: Engine) -> Export | None:
    return store.claim_next(engine)


def finish(engine: Engine, export_id: UUID, state: str, at: datetime, **fields: Any) -> bool:
    return store.finish(engine, export_id, state, at, **fields)


def patient_ids(engine: Engine, ward_id: UUID | None) -> Iterator[UUID]:
    """The patients an export covers, streamed (all, or those ever admitted to the ward)."""
    with reader(engine).connect() as conn:
        yield from store.patient_ids(conn, ward_id)


def audit_export(engine: Engine, export: Export, patients: list[UUID]) -> None:
    """One audit record per patient the export read, in the requester's name."""
    who = export.requested_by
    accessor = Accessor(
        actor=str(who["actor"]),
        actor_role=str(who["role"]),
        organisation=who.get("organisation"),
        request_id=who.get("request_id"),
    )
    for start in range(0, len(patients), 500):
        chunk = patients[start : start + 500]
        audited_many(engine, accessor, "fhir.export", lambda conn, c=chunk: (None, c))
