"""Wristbands (issue #16): ``wristband``, the GS1 GSRN registered for a resident's stay;
append-only, attested

Revision ID: 0018
Revises: 0014
Create Date: 2026-12-05

One row per GSRN registered for an admission (a new wristband: a new row; the latest counts).
A GSRN names one service relation and is never reused, so it is unique across all stays.
Triggers refuse UPDATE and DELETE, as for the other administration records.
"""

import sqlalchemy as sa
from alembic import op

from medloop.store import append_only

revision = "0018"
down_revision = "0014"
branch_labels = None
depends_on = None

APPEND_ONLY = ("wristband",)
FUNCTION = "wristband_refuse_change"


def upgrade() -> None:
    op.create_table(
        "wristband",
        sa.Column("command_id", sa.String(length=32), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("admission_id", sa.String(length=36), nullable=False),
        sa.Column("gsrn", sa.String(length=18), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.JSON(), nullable=False),
        # The patient's id, copied from the admission: the distribution column (docs/scaling.md).
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["admission_id"], ["admission.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("gsrn", name="uq_wristband_gsrn"),
    )
    with op.batch_alter_table("wristband", schema=None) as batch_op:
        batch_op.create_index("ix_wristband_admission", ["admission_id", "at"], unique=False)
        batch_op.create_index("ix_wristband_patient", ["patient_id"], unique=False)
    for statement in append_only.install(op.get_bind().dialect.name, APPEND_ONLY, FUNCTION):
        op.execute(statement)


def downgrade() -> None:
    for statement in append_only.remove(op.get_bind().dialect.name, APPEND_ONLY, FUNCTION):
        op.execute(statement)
    with op.batch_alter_table("wristband", schema=None) as batch_op:
        batch_op.drop_index("ix_wristband_patient")
        batch_op.drop_index("ix_wristband_admission")
    op.drop_table("wristband")
