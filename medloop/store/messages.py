"""Received e-prescription messages: every message accepted (applied or proposed), its original
bytes (base64, so any encoding the XML declares comes back byte for byte), their SHA-256 and
the record of what it did (``domain.messages.ReceivedMessage``). Append-only (migration 0013
adds the triggers); the MsgId is the key, so one MsgId names one message also when two
imports of it race. Refused messages are not stored (their refusal is audited)."""

from __future__ import annotations

import base64
from uuid import UUID

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    select,
)

from fest.schema import metadata
from medloop.domain.messages import ListProposalDecision, ReceivedMessage
from medloop.store import attestation
from medloop.store.columns import UUID_LENGTH, parsed

APPEND_ONLY = ("received_message", "list_proposal_decision")

MSG_ID_LENGTH = 200

received_message = Table(
    "received_message",
    metadata,
    attestation.command_column(),
    Column("msg_id", String(MSG_ID_LENGTH), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=True),
    Column("national_id", String(11), nullable=True),
    Column("result", String(16), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("original", Text, nullable=False),  # base64 of the bytes as received
    Column("record", JSON, nullable=False),  # the ReceivedMessage
    Column("size", Integer, nullable=False),
    Index("ix_received_message_patient", "patient_id", "received_at"),
)


proposal_decision = Table(
    "list_proposal_decision",
    metadata,
    attestation.command_column(),
    Column(
        "msg_id", String(MSG_ID_LENGTH), ForeignKey("received_message.msg_id"), primary_key=True
    ),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the ListProposalDecision
)


def append_decision(conn: Connection, decision: ListProposalDecision) -> None:
    attestation.insert(
        conn,
        proposal_decision,
        msg_id=decision.msg_id,
        patient_id=str(decision.patient_id),
        decided_at=decision.at,
        record=decision.model_dump(mode="json"),
    )


def find_decision(conn: Connection, patient_id: UUID, msg_id: str) -> ListProposalDecision | None:
    """The patient's decision on the proposal of message ``msg_id`` (``None``: none yet)."""
    row = conn.execute(
        select(proposal_decision.c.record).where(
            proposal_decision.c.patient_id == str(patient_id), proposal_decision.c.msg_id == msg_id
        )
    ).first()
    if row is None:
        return None
    return parsed(ListProposalDecision, row.record, proposal_decision, {"msg_id": msg_id})


def append_received(conn: Connection, record: ReceivedMessage, original: bytes) -> None:
    attestation.insert(
        conn,
        received_message,
        msg_id=record.msg_id,
        type=record.type,
        sha256=record.sha256,
        patient_id=None if record.patient_id is None else str(record.patient_id),
        national_id=record.national_id,
        result=record.result,
        received_at=record.received_at,
        original=base64.b64encode(original).decode("ascii"),
        record=record.model_dump(mode="json"),
        size=len(original),
    )


def find_received(conn: Connection, msg_id: str) -> ReceivedMessage | None:
    row = conn.execute(
        select(received_message.c.record).where(received_message.c.msg_id == msg_id)
    ).first()
    if row is None:
        return None
    return parsed(ReceivedMessage, row.record, received_message, {"msg_id": msg_id})


def original_of(conn: Connection, msg_id: str) -> bytes | None:
    """The bytes of the message as received."""
    found = conn.execute(
        select(received_message.c.original).where(received_message.c.msg_id == msg_id)
    ).scalar_one_or_none()
    return None if found is None else base64.b64decode(found)


def received_for(conn: Connection, patient_id: UUID) -> list[ReceivedMessage]:
    """The patient's received messages, oldest first."""
    return [
        parsed(ReceivedMessage, row.record, received_message, {"msg_id": row.msg_id})
        for row in conn.execute(
            select(received_message.c.msg_id, received_message.c.record)
            .where(received_message.c.patient_id == str(patient_id))
            .order_by(received_message.c.received_at, received_message.c.msg_id)
        )
    ]


def count_received(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(received_message)).scalar_one()
