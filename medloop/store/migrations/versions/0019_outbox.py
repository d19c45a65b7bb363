"""outbox: the messages medloop sends (issue #17: the multidose doctor's answer to an M25.2 as
the updated M25.1) and the marks that an integrator sent them; append-only, attested

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-05

``outbox_message`` holds each message's bytes (base64), SHA-256, size and the record of what it
answers, keyed by its own MsgId; ``outbox_sent`` one row per message marked sent (its state is
``ready`` until then). Both carry the patient's id (the distribution column, docs/scaling.md).
Triggers refuse UPDATE and DELETE, as for the received messages (0013).
"""

import sqlalchemy as sa
from alembic import op

from medloop.store import append_only

revision = "0019"
down_revision = "0017"
branch_labels = None
depends_on = None

APPEND_ONLY = ("outbox_message", "outbox_sent")
FUNCTION = "outbox_refuse_change"


def upgrade() -> None:
    op.create_table(
        "outbox_message",
        sa.Column("command_id", sa.String(length=32), nullable=True),
        sa.Column("msg_id", sa.String(length=200), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("proposal_id", sa.String(length=36), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.PrimaryKeyConstraint("msg_id"),
    )
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_message_patient", ["patient_id", "created_at"], unique=False
        )
    op.create_table(
        "outbox_sent",
        sa.Column("command_id", sa.String(length=32), nullable=True),
        sa.Column("msg_id", sa.String(length=200), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["msg_id"], ["outbox_message.msg_id"]),
        sa.PrimaryKeyConstraint("msg_id"),
    )
    with op.batch_alter_table("outbox_sent", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_sent_patient", ["patient_id"], unique=False)
    for statement in append_only.install(op.get_bind().dialect.name, APPEND_ONLY, FUNCTION):
        op.execute(statement)


def downgrade() -> None:
    for statement in append_only.remove(op.get_bind().dialect.name, APPEND_ONLY, FUNCTION):
        op.execute(statement)
    with op.batch_alter_table("outbox_sent", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_sent_patient")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_message_patient")
    op.drop_table("outbox_sent")
    op.drop_table("outbox_message")
