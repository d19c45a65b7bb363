"""Received e-prescription messages (append-only): original bytes, SHA-256, MsgId, type,
patient, result and the record of what each did; the decisions on received list proposals

Revision ID: 0013
Revises: 0015
Create Date: 2026-12-05

The MsgId is the primary key: a MsgId names one message. Triggers refuse UPDATE and DELETE,
like 0003; on PostgreSQL they call 0003's ``medication_record_refuse_change``.
"""

import sqlalchemy as sa
from alembic import op

from medloop.store import append_only

revision = "0013"
down_revision = "0015"
branch_labels = None
depends_on = None

APPEND_ONLY = ("received_message", "list_proposal_decision")
FUNCTION = "medication_record_refuse_change"


def upgrade() -> None:
    op.create_table(
        "received_message",
        sa.Column("command_id", sa.String(length=32), nullable=True),
        sa.Column("msg_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=True),
        sa.Column("national_id", sa.String(length=11), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("original", sa.Text(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.PrimaryKeyConstraint("msg_id"),
    )
    with op.batch_alter_table("received_message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_received_message_patient", ["patient_id", "received_at"], unique=False
        )
    op.create_table(
        "list_proposal_decision",
        sa.Column("command_id", sa.String(length=32), nullable=True),
        sa.Column("msg_id", sa.String(length=200), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["msg_id"], ["received_message.msg_id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.PrimaryKeyConstraint("msg_id"),
    )
    for statement in append_only.install(
        op.get_bind().dialect.name, APPEND_ONLY, FUNCTION, create_function=False
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in append_only.remove(op.get_bind().dialect.name, APPEND_ONLY, None):
        op.execute(statement)
    with op.batch_alter_table("received_message", schema=None) as batch_op:
        batch_op.drop_index("ix_received_message_patient")
    op.drop_table("list_proposal_decision")
    op.drop_table("received_message")
