"""Medication reviews (issue #19): ``medication_review``, append-only, attested

Revision ID: 0015
Revises: 0011
Create Date: 2026-12-05

One row per signed review (the whole ``MedicationReview`` as JSON: the list at a version, the
findings with criterion and source, the decisions, the participants, what changed since the
last review). Triggers refuse UPDATE and DELETE, as for the list's own records.
"""

import sqlalchemy as sa
from alembic import op

from medloop.store import append_only

revision = "0015"
down_revision = "0011"
branch_labels = None
depends_on = None

APPEND_ONLY = ("medication_review",)
FUNCTION = "medication_review_refuse_change"


def upgrade() -> None:
    op.create_table(
        "medication_review",
        sa.Column("command_id", sa.String(length=32), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("list_version", sa.Integer(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("medication_review", schema=None) as batch_op:
        batch_op.create_index(
            "ix_medication_review_patient", ["patient_id", "signed_at"], unique=False
        )
    for statement in append_only.install(op.get_bind().dialect.name, APPEND_ONLY, FUNCTION):
        op.execute(statement)


def downgrade() -> None:
    for statement in append_only.remove(op.get_bind().dialect.name, APPEND_ONLY, FUNCTION):
        op.execute(statement)
    with op.batch_alter_table("medication_review", schema=None) as batch_op:
        batch_op.drop_index("ix_medication_review_patient")
    op.drop_table("medication_review")
