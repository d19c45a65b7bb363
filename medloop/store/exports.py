"""FHIR Bulk Data exports (``$export``): one row per requested export, its state and the files
it produced. Not patient data: who asked for what, when, and where the NDJSON files are; the
patients an export reads are audited when it runs (``store.access.audited_many``).

Statuses: ``accepted`` (kicked off, waiting for the ``fhir-export`` job), ``in-progress``,
``completed`` (``output`` lists the files), ``failed`` (``error`` says why) and ``cancelled``
(the client deleted it; its files are removed)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    String,
    Table,
    Text,
    select,
    update,
)

from fest.schema import metadata
from medloop.store.columns import UUID_LENGTH, utc
from medloop.store.db import writer

fhir_export = Table(
    "fhir_export",
    metadata,
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("requested_by", JSON, nullable=False),  # actor, role, organisation, request id
    Column("kind", String(16), nullable=False),  # system | group
    Column("group_id", String(UUID_LENGTH), nullable=True),
    Column("types", JSON, nullable=False),
    Column("since", DateTime(timezone=True), nullable=True),
    Column("request_url", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("output", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_fhir_export_status", "status", "requested_at"),
)

PENDING = "accepted"
RUNNING = "in-progress"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class Export:
    id: UUID
    requested_at: datetime
    requested_by: dict[str, Any]
    kind: str
    group_id: UUID | None
    types: tuple[str, ...]
    since: datetime | None
    request_url: str
    status: str
    finished_at: datetime | None
    output: list[dict[str, Any]] | None
    error: str | None


def _export(row: Any) -> Export:
    return Export(
        id=UUID(row.id),
        requested_at=utc(row.requested_at),
        requested_by=dict(row.requested_by),
        kind=row.kind,
        group_id=None if row.group_id is None else UUID(row.group_id),
        types=tuple(row.types),
        since=None if row.since is None else utc(row.since),
        request_url=row.request_url,
        status=row.status,
        finished_at=None if row.finished_at is None else utc(row.finished_at),
        output=row.output,
        error=row.error,
    )


def add(engine: Engine, export: Export) -> None:
    with writer(engine).begin() as conn:
        conn.execute(
            fhir_export.insert().values(
                id=str(export.id),
                requested_at=export.requested_at,
                requested_by=export.requested_by,
                kind=export.kind,
                group_id=None if export.group_id is None else str(export.group_id),
                types=list(export.types),
                since=export.since,
                request_url=export.request_url,
                status=PENDING,
            )
        )


def read(conn: Connection, export_id: UUID) -> Export | None:
    row = conn.execute(select(fhir_export).where(fhir_export.c.id == str(export_id))).first()
    return None if row is None else _export(row)


def claim_next(engine: Engine) -> Export | None:
    """The oldest accepted export, now in progress (``None``: none waits). Claimed with a
    conditional update, so two runners never take the same one."""
    with writer(engine).begin() as conn:
        row = conn.execute(
            select(fhir_export)
            .where(fhir_export.c.status == PENDING)
            .order_by(fhir_export.c.requested_at, fhir_export.c.id)
            .limit(1)
        ).first()
        if row is None:
            return None
        taken = conn.execute(
            update(fhir_export)
            .where(fhir_export.c.id == row.id, fhir_export.c.status == PENDING)
            .values(status=RUNNING)
        ).rowcount
    if taken != 1:
        return None
    with engine.connect() as conn:
        return read(conn, UUID(row.id))


def finish(
    engine: Engine,
    export_id: UUID,
    status: str,
    at: datetime,
    *,
    output: list[dict[str, Any]] | None = None,
    error: str | None = None,
) -> bool:
    """Record how an export ended; ``False`` when it was cancelled meanwhile (left as is)."""
    with writer(engine).begin() as conn:
        return (
            conn.execute(
                update(fhir_export)
                .where(fhir_export.c.id == str(export_id), fhir_export.c.status != CANCELLED)
                .values(status=status, finished_at=at, output=output, error=error)
            ).rowcount
            == 1
        )


def cancel(engine: Engine, export_id: UUID, at: datetime) -> bool:
    """Mark an export cancelled (``False``: no such export or already cancelled)."""
    with writer(engine).begin() as conn:
        return (
            conn.execute(
                update(fhir_export)
                .where(fhir_export.c.id == str(export_id), fhir_export.c.status != CANCELLED)
                .values(status=CANCELLED, finished_at=at)
            ).rowcount
            == 1
        )


def patient_ids(conn: Connection, ward_id: UUID | None, chunk: int = 1000) -> Iterator[UUID]:
    """Every patient (system export), or every patient ever admitted to ``ward_id``, in id
    order, read ``chunk`` at a time (keyset pages: no server-side cursor, which an autocommit
    connection on PostgreSQL cannot hold)."""
    from medloop.store.administration import admission
    from medloop.store.patients import patient

    column = patient.c.id if ward_id is None else admission.c.patient_id
    after = ""
    while True:
        query = select(column).where(column > after).order_by(column).limit(chunk).distinct()
        if ward_id is not None:
            query = query.where(admission.c.ward_id == str(ward_id))
        found = [row[0] for row in conn.execute(query)]
        yield from (UUID(value) for value in found)
        if len(found) < chunk:
            return
        after = found[-1]
