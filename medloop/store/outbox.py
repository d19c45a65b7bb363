"""Messages medloop sends (the outbox, migration 0019): the answer to a proposal that came in an
M25.2, an M25.1 written in the decision's transaction, its bytes (base64, byte for byte), their
SHA-256 and the record of what it answers (``domain.multidose.proposals.ProposalAnswer``),
keyed by its own MsgId; and the marks that an integrator sent one (``outbox_sent``). Both
append-only: a message's state is ``ready`` until its mark exists, then ``sent``. Every
statement names the patient (``patient_id``), but for ``ready``, the operator's list of what is
due across patients."""

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
    select,
)

from fest.schema import metadata
from medloop.domain.messages import MessageSent, OutboxMessage
from medloop.domain.multidose.proposals import ProposalAnswer
from medloop.store import attestation
from medloop.store.columns import UUID_LENGTH, aware, parsed

APPEND_ONLY = ("outbox_message", "outbox_sent")

MSG_ID_LENGTH = 200

outbox_message = Table(
    "outbox_message",
    metadata,
    attestation.command_column(),
    Column("msg_id", String(MSG_ID_LENGTH), primary_key=True),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("type", String(16), nullable=False),
    Column("proposal_id", String(UUID_LENGTH), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("content", Text, nullable=False),  # base64 of the bytes sent
    Column("size", Integer, nullable=False),
    Column("record", JSON, nullable=False),  # the ProposalAnswer
    Index("ix_outbox_message_patient", "patient_id", "created_at"),
)

outbox_sent = Table(
    "outbox_sent",
    metadata,
    attestation.command_column(),
    Column("msg_id", String(MSG_ID_LENGTH), ForeignKey("outbox_message.msg_id"), primary_key=True),
    Column("patient_id", String(UUID_LENGTH), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the MessageSent
    Index("ix_outbox_sent_patient", "patient_id"),
)


def append_answer(
    conn: Connection, answer: ProposalAnswer, data: bytes, sha256: str, *, type_: str
) -> None:
    attestation.insert(
        conn,
        outbox_message,
        msg_id=answer.msg_id,
        patient_id=str(answer.patient_id),
        type=type_,
        proposal_id=str(answer.proposal_id),
        sha256=sha256,
        created_at=answer.decided_at,
        content=base64.b64encode(data).decode("ascii"),
        size=len(data),
        record=answer.model_dump(mode="json"),
    )


def append_sent(conn: Connection, sent: MessageSent) -> None:
    attestation.insert(
        conn,
        outbox_sent,
        msg_id=sent.msg_id,
        patient_id=str(sent.patient_id),
        sent_at=sent.at,
        record=sent.model_dump(mode="json"),
    )


#: A message's mark, joined on the patient too (co-located rows: docs/scaling.md).
_SENT_OF_MESSAGE = (outbox_sent.c.msg_id == outbox_message.c.msg_id) & (
    outbox_sent.c.patient_id == outbox_message.c.patient_id
)

_COLUMNS = (
    outbox_message.c.msg_id,
    outbox_message.c.patient_id,
    outbox_message.c.type,
    outbox_message.c.sha256,
    outbox_message.c.size,
    outbox_message.c.created_at,
    outbox_message.c.record,
    outbox_sent.c.record.label("sent"),
)


def _message(row) -> OutboxMessage:
    key = {"msg_id": row.msg_id}
    return OutboxMessage(
        msg_id=row.msg_id,
        patient_id=UUID(row.patient_id),
        type=row.type,
        sha256=row.sha256,
        size=row.size,
        created_at=aware(row.created_at),
        answer=parsed(ProposalAnswer, row.record, outbox_message, key),
        sent=None if row.sent is None else parsed(MessageSent, row.sent, outbox_sent, key),
    )


def messages_of(conn: Connection, patient_id: UUID) -> list[OutboxMessage]:
    """The patient's outgoing messages, oldest first."""
    return [
        _message(row)
        for row in conn.execute(
            select(*_COLUMNS)
            .outerjoin(outbox_sent, _SENT_OF_MESSAGE)
            .where(outbox_message.c.patient_id == str(patient_id))
            .order_by(outbox_message.c.created_at, outbox_message.c.msg_id)
        )
    ]


def find_message(conn: Connection, patient_id: UUID, msg_id: str) -> OutboxMessage | None:
    row = conn.execute(
        select(*_COLUMNS)
        .outerjoin(outbox_sent, _SENT_OF_MESSAGE)
        .where(outbox_message.c.patient_id == str(patient_id), outbox_message.c.msg_id == msg_id)
    ).first()
    return None if row is None else _message(row)


def content_of(conn: Connection, patient_id: UUID, msg_id: str) -> bytes | None:
    """The bytes of one of the patient's outgoing messages, as written."""
    found = conn.execute(
        select(outbox_message.c.content).where(
            outbox_message.c.patient_id == str(patient_id), outbox_message.c.msg_id == msg_id
        )
    ).scalar_one_or_none()
    return None if found is None else base64.b64decode(found)


def ready(conn: Connection) -> list[OutboxMessage]:
    """Every message not yet marked sent, across patients, oldest first (the operator's list of
    what is due: a fan-out, like a job's selection)."""
    return [
        _message(row)
        for row in conn.execute(
            select(*_COLUMNS)
            .outerjoin(outbox_sent, _SENT_OF_MESSAGE)
            .where(outbox_sent.c.msg_id.is_(None))
            .order_by(outbox_message.c.created_at, outbox_message.c.msg_id)
        )
    ]
