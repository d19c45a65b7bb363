"""API access: CDS Hooks cards issued and the feedback on them (append-only)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

Triggers refuse UPDATE and DELETE on both tables, as in 0003.
"""

import sqlalchemy as sa
from alembic import op

from medloop.store import append_only

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

APPEND_ONLY = ("cds_card", "cds_feedback")

FUNCTION = "cds_record_refuse_change"


def upgrade() -> None:
    op.create_table(
        "cds_card",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("hook_instance", sa.String(length=100), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("alert_key", sa.String(length=500), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_to", sa.String(length=64), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("cds_card", schema=None) as batch_op:
        batch_op.create_index("ix_cds_card_patient", ["patient_id", "issued_at"], unique=False)

    op.create_table(
        "cds_feedback",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("card_id", sa.String(length=36), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("override_reason", sa.JSON(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["card_id"],
            ["cds_card.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("cds_feedback", schema=None) as batch_op:
        batch_op.create_index("ix_cds_feedback_card", ["card_id"], unique=False)

    for statement in append_only.install(op.get_bind().dialect.name, APPEND_ONLY, FUNCTION):
        op.execute(statement)


def downgrade() -> None:
    for statement in append_only.remove(op.get_bind().dialect.name, APPEND_ONLY, FUNCTION):
        op.execute(statement)
    with op.batch_alter_table("cds_feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_cds_feedback_card")
    op.drop_table("cds_feedback")
    with op.batch_alter_table("cds_card", schema=None) as batch_op:
        batch_op.drop_index("ix_cds_card_patient")
    op.drop_table("cds_card")
