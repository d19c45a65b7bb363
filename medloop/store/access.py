"""Access through the HTTP API: audited reads of patient data, audited refusals, and the CDS
Hooks records — the cards issued (``cds_card``) and the feedback on them (``cds_feedback``).

Both tables are append-only (triggers in migration 0006, like 0003). A card is stored when it
is issued, so feedback can only name a card this server issued, for the patient it was about.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    select,
)

from fest.schema import metadata
from medloop.domain.patient import PatientNotFound
from medloop.store import attestation, audit, batch, light
from medloop.store.columns import UUID_LENGTH, shard_key
from medloop.store.db import writer
from medloop.store.patients import (
    Accessed,
    national_id_of,
    national_ids_of,
    read_for_access,
    read_own_for_access,
)

Read = TypeVar("Read")

cds_card = Table(
    "cds_card",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("service", String(64), nullable=False),
    Column("hook_instance", String(100), nullable=False),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("alert_key", String(500), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("issued_to", String(64), nullable=False),
    Column("record", JSON, nullable=False),  # the card as sent
    Index("ix_cds_card_patient", "patient_id", "issued_at"),
)

cds_feedback = Table(
    "cds_feedback",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("card_id", String(UUID_LENGTH), ForeignKey("cds_card.id"), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("outcome_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(64), nullable=False),
    Column("override_reason", JSON, nullable=True),
    Column("comment", Text, nullable=True),
    *shard_key("cds_feedback"),
    Index("ix_cds_feedback_card", "card_id"),
)


@dataclass(frozen=True)
class Accessor:
    """Who reads or is refused, as the audit log records it."""

    actor: str
    actor_role: str
    organisation: str | None
    request_id: str | None


def _event(who: Accessor, national_id: str | None, action: str, **fields: Any) -> audit.AuditEvent:
    return audit.AuditEvent(
        actor=who.actor,
        actor_role=who.actor_role,
        organisation=who.organisation,
        patient=national_id,
        action=action,
        request_id=who.request_id,
        **fields,
    )


def read_audited(
    engine: Engine,
    who: Accessor,
    patient_id: UUID,
    what: str,
    read: Callable[[Connection], Read],
    *,
    reason: str | None = None,
) -> Read:
    """``read(conn)`` for ``who``, with the audit record of the access in the same transaction;
    ``PatientNotFound`` for an unknown patient."""
    return audited(engine, who, patient_id, f"medication-list.read.{what}", read, reason=reason)


def audited(
    engine: Engine,
    who: Accessor,
    patient_id: UUID,
    action: str,
    work: Callable[[Connection], Read],
    *,
    reason: str | None = None,
) -> Read:
    """``work(conn)`` in one write transaction that ends with the audit record of ``action``
    on the patient; ``PatientNotFound`` for an unknown patient."""
    with light.begin(writer(engine)) as conn:  # store.light: the hot transaction
        # One round trip: the national id, and (PostgreSQL) the audit chain's lock; the
        # record and revision read with them serve the work's queries.
        accessed = read_for_access(conn, patient_id)
        if accessed is None:
            raise PatientNotFound(f"there is no patient {patient_id}", patient_id=patient_id)
        return _recorded(conn, who, accessed, action, work(conn), reason)


def read_own_audited(
    engine: Engine,
    who: Accessor,
    national_id: str,
    what: str,
    read: Callable[[Connection, UUID], Read],
) -> Read:
    """``read_audited`` for the patient whose national id is ``national_id`` (a patient reading
    their own data): one transaction finds them, runs ``read(conn, patient_id)`` and records
    the access; ``PatientNotFound`` when no list is kept for that person."""
    with light.begin(writer(engine)) as conn:
        accessed = read_own_for_access(conn, national_id)
        if accessed is None:
            raise PatientNotFound("no medication list is kept for this person")
        result = read(conn, accessed.patient_id)
        return _recorded(conn, who, accessed, f"medication-list.read.{what}", result, None)


def _recorded(
    conn: Connection,
    who: Accessor,
    accessed: Accessed,
    action: str,
    result: Read,
    reason: str | None,
) -> Read:
    """``result``, once the audit record of ``action`` on the accessed patient is appended:
    the transaction's last statement, so on PostgreSQL its insert and the COMMIT go in one
    round trip (``batch.commit_with_next_row``): an audited read is three round trips — BEGIN,
    the patient with its audit chain's lock, the audit record with the COMMIT. ``audit.append``
    compares the database's hash of the record with its own once that trip is back, so after
    the COMMIT: a mismatch still fails the request, and ``audit verify`` reports the record."""
    batch.commit_with_next_row(conn)
    audit.append(
        conn,
        _event(
            who,
            accessed.national_id,
            action,
            reason=reason,
            detail={"patient_id": str(accessed.patient_id)},
        ),
    )
    return result


def audited_many(
    engine: Engine,
    who: Accessor,
    action: str,
    work: Callable[[Connection], tuple[Read, list[UUID]]],
) -> Read:
    """``work(conn)`` returns a result about several patients (a ward's chart) and their ids;
    one audit record per patient is appended in the same transaction (:func:`record_reads`)."""
    with writer(engine).begin() as conn:
        result, patient_ids = work(conn)
        record_reads(conn, who, action, patient_ids)
    return result


def record_reads(
    conn: Connection, who: Accessor, action: str, patient_ids: Sequence[UUID]
) -> list[audit.AuditRecord]:
    """The audit records of ``who``'s ``action`` on each of ``patient_ids`` (a read of several
    patients), in that order, in statements that do not grow with the patients: one query for
    their national ids (which notes their ids for the records, ``national_ids_of``) and
    ``audit.append_many``. A patient that does not exist is recorded on the system chain."""
    national_ids = national_ids_of(conn, patient_ids)
    return audit.append_many(
        conn,
        [
            _event(
                who, national_ids.get(patient_id), action, detail={"patient_id": str(patient_id)}
            )
            for patient_id in patient_ids
        ],
    )


def audit_refused(
    engine: Engine, who: Accessor, patient_id: UUID | None, action: str, why: str
) -> None:
    """Record a refused access (no token scope for this patient or action)."""
    with writer(engine).begin() as conn:
        national_id = None if patient_id is None else national_id_of(conn, patient_id)
        detail = {"patient_id": None if patient_id is None else str(patient_id), "why": why}
        audit.append(
            conn,
            _event(who, national_id, f"api.{action}", outcome=audit.Outcome.REFUSED, detail=detail),
        )


@dataclass(frozen=True)
class IssuedCard:
    id: UUID
    service: str
    hook_instance: str
    patient_id: UUID
    alert_key: str
    issued_to: str
    record: dict[str, Any]


def append_cards(conn: Connection, cards: list[IssuedCard], at: datetime) -> None:
    if not cards:
        return
    conn.execute(
        cds_card.insert(),
        attestation.stamp(
            conn,
            cds_card,
            [
                {
                    "id": str(card.id),
                    "service": card.service,
                    "hook_instance": card.hook_instance,
                    "patient_id": str(card.patient_id),
                    "alert_key": card.alert_key,
                    "issued_at": at,
                    "issued_to": card.issued_to,
                    "record": card.record,
                }
                for card in cards
            ],
        ),
    )


def card(conn: Connection, card_id: UUID) -> IssuedCard | None:
    row = conn.execute(select(cds_card).where(cds_card.c.id == str(card_id))).first()
    if row is None:
        return None
    return IssuedCard(
        id=UUID(row.id),
        service=row.service,
        hook_instance=row.hook_instance,
        patient_id=UUID(row.patient_id),
        alert_key=row.alert_key,
        issued_to=row.issued_to,
        record=row.record,
    )


@dataclass(frozen=True)
class Feedback:
    id: UUID
    card_id: UUID
    outcome: str
    outcome_at: datetime
    recorded_by: str
    override_reason: dict[str, Any] | None
    comment: str | None


def append_feedback(conn: Connection, patient_id: UUID, feedback: Feedback, at: datetime) -> None:
    attestation.insert(
        conn,
        cds_feedback,
        patient_id=str(patient_id),
        id=str(feedback.id),
        card_id=str(feedback.card_id),
        outcome=feedback.outcome,
        outcome_at=feedback.outcome_at,
        recorded_at=at,
        recorded_by=feedback.recorded_by,
        override_reason=feedback.override_reason,
        comment=feedback.comment,
    )


def feedback_for(conn: Connection, card_id: UUID) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(cds_feedback)
        .where(cds_feedback.c.card_id == str(card_id))
        .order_by(cds_feedback.c.recorded_at)
    ).mappings()
    return [dict(row) for row in rows]
