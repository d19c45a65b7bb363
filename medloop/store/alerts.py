"""Alerts: every alert a command raised (``alert``, the ``Alert`` as JSON with the override
that let the command through) and the alerts a patient's clinicians have handled
(``handled_alert``, one per alert key and patient).

``alert`` is append-only; a handled alert keeps its first record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    distinct,
    exists,
    func,
    select,
)

from fest.schema import metadata
from interactions import Alert, HandledAlert
from medloop.domain._model import id_text
from medloop.domain.personnel import Actor
from medloop.domain.state import StoredAlert
from medloop.store import attestation, batch
from medloop.store.columns import UUID_LENGTH, StoredRecordUnreadable, utc, why

alert = Table(
    "alert",
    metadata,
    attestation.command_column(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("action", String(64), nullable=False),
    Column("list_version", Integer, nullable=False),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("key", String(500), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("requires_override", Boolean, nullable=False),
    Column("catalogue_version", Integer, nullable=False),
    Column("record", JSON, nullable=False),  # the Alert
    Column("override_by", JSON, nullable=True),  # the Actor who overrode it
    Column("override_reason", Text, nullable=True),
    Index("ix_alert_patient", "patient_id", "raised_at"),
)


handled_alert = Table(
    "handled_alert",
    metadata,
    attestation.command_column(),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), primary_key=True),
    Column("key", String(500), primary_key=True),
    Column("handled_by", JSON, nullable=False),
    Column("handled_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
)


def alerts_for(conn: Connection, patient_id: UUID) -> list[Any]:
    """Every stored alert of the patient, oldest first."""
    return list(
        conn.execute(
            select(alert).where(alert.c.patient_id == str(patient_id)).order_by(alert.c.id)
        ).all()
    )


def stored_alerts(conn: Connection, patient_id: UUID) -> tuple[StoredAlert, ...]:
    """Every alert raised for the patient, oldest first, as the patient's state keeps them."""
    return tuple(
        StoredAlert(
            key=row.key,
            action=row.action,
            list_version=row.list_version,
            raised_at=utc(row.raised_at),
            record=row.record,
            override_by=row.override_by,
            override_reason=row.override_reason,
        )
        for row in alerts_for(conn, patient_id)
    )


def open_alert_counts(conn: Connection, patient_ids: Sequence[UUID]) -> dict[UUID, int]:
    """Per patient of ``patient_ids`` with any: how many alert keys were raised that nobody
    has handled (what ``medloop.queries.open_alerts`` lists, counted), in one query per 500."""
    found: dict[UUID, int] = {}
    ids = [str(p) for p in patient_ids]
    unhandled = ~exists().where(
        handled_alert.c.patient_id == alert.c.patient_id, handled_alert.c.key == alert.c.key
    )
    for start in range(0, len(ids), 500):
        for row in conn.execute(
            select(alert.c.patient_id, func.count(distinct(alert.c.key)))
            .where(alert.c.patient_id.in_(ids[start : start + 500]), unhandled)
            .group_by(alert.c.patient_id)
        ):
            found[UUID(row[0])] = int(row[1])
    return found


def handled_alerts(conn: Connection, patient_id: UUID) -> tuple[HandledAlert, ...]:
    """The alerts the patient's clinicians have handled, by key."""
    pid = str(patient_id)
    rows = conn.execute(
        select(handled_alert).where(handled_alert.c.patient_id == pid).order_by(handled_alert.c.key)
    ).all()
    return tuple(_handled_alert(row, pid) for row in rows)


def _handled_alert(row: Any, pid: str) -> HandledAlert:
    try:
        return HandledAlert(
            key=row.key,
            handled_by=row.handled_by["personnel"]["hpr_number"],
            handled_at=utc(row.handled_at),
            reason=row.reason,
        )
    except (ValueError, TypeError, KeyError) as error:
        raise StoredRecordUnreadable(
            handled_alert.name, {"patient_id": pid, "key": row.key}, why(error)
        ) from None


@dataclass(frozen=True)
class RaisedAlert:
    """An alert as raised by one command, with the override that let the command through."""

    alert: Alert
    override_by: Actor | None = None
    override_reason: str | None = None
    record: dict[str, Any] | None = None
    """``alert.model_dump(mode="json")`` when the caller has made it already (the runner dumps
    a command's alerts once, for its response and for these rows); ``None``: dumped here."""


def append_alerts(
    conn: Connection,
    patient_id: UUID,
    action: str,
    version: int,
    at: datetime,
    raised: Sequence[RaisedAlert],
) -> tuple[StoredAlert, ...]:
    """Store the alerts one command raised; returns them as the patient's state keeps them."""
    if not raised:
        return ()
    pid = id_text(patient_id)
    # (Loops, not a comprehension and a generator: Python calls and steps of their own.)
    rows = []
    stored = []
    for r in raised:
        row = {
            "patient_id": pid,
            "action": action,
            "list_version": version,
            "raised_at": at,
            "key": r.alert.key,
            "kind": r.alert.kind.value,
            "severity": r.alert.severity.value,
            "requires_override": r.alert.requires_override,
            "catalogue_version": r.alert.source.catalogue_version,
            "record": r.alert.model_dump(mode="json") if r.record is None else r.record,
            "override_by": (
                None if r.override_by is None else r.override_by.model_dump(mode="json")
            ),
            "override_reason": r.override_reason,
        }
        rows.append(row)
    batch.insert(conn, alert, rows)
    raised_at = utc(at)
    for row in rows:
        stored.append(
            StoredAlert(
                key=row["key"],
                action=action,
                list_version=version,
                raised_at=raised_at,
                record=row["record"],
                override_by=row["override_by"],
                override_reason=row["override_reason"],
            )
        )
    return tuple(stored)


def add_handled_alerts(
    conn: Connection,
    patient_id: UUID,
    by: Actor,
    at: datetime,
    reasons: dict[str, str],
    known: set[str],
) -> dict[str, str]:
    """Record alerts as handled for the patient; a key already handled (``known``, from the
    patient's state read under its lock) keeps its first record. Returns the keys newly
    recorded, with their reasons."""
    pid = str(patient_id)
    new = {key: reason for key, reason in reasons.items() if key not in known}
    if new:
        batch.insert(
            conn,
            handled_alert,
            [
                {
                    "patient_id": pid,
                    "key": key,
                    "handled_by": by.model_dump(mode="json"),
                    "handled_at": utc(at),
                    "reason": reason,
                }
                for key, reason in new.items()
            ],
        )
    return new
