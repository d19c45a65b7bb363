"""Multidose: responsibility, packing periods, urgent packs, plans taken, deadline flags,
reconciliations of packing reports, tasks and their resolutions, proposals and decisions
(all append-only)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

Triggers refuse UPDATE and DELETE on every table here, like 0003; they are not part of the
table metadata, so autogenerate neither sees nor needs them.
"""

import sqlalchemy as sa
from alembic import op

from medloop.store import append_only

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

APPEND_ONLY = (
    "multidose_responsibility",
    "multidose_period",
    "multidose_urgent_pack",
    "multidose_plan_taken",
    "multidose_deadline_flag",
    "multidose_reconciliation",
    "multidose_task",
    "multidose_task_resolution",
    "multidose_proposal",
    "multidose_proposal_decision",
)
FUNCTION = "medication_record_refuse_change"


def upgrade() -> None:
    op.create_table(
        "multidose_responsibility",
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.PrimaryKeyConstraint("patient_id", "version"),
    )
    op.create_table(
        "multidose_period",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("order_deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("multidose_period", schema=None) as batch_op:
        batch_op.create_index(
            "ix_multidose_period_patient", ["patient_id", "first_day"], unique=True
        )
        batch_op.create_index("ix_multidose_period_deadline", ["order_deadline"], unique=False)

    op.create_table(
        "multidose_urgent_pack",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("period_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["period_id"],
            ["multidose_period.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("multidose_urgent_pack", schema=None) as batch_op:
        batch_op.create_index("ix_multidose_urgent_pack_period", ["period_id"], unique=False)

    op.create_table(
        "multidose_plan_taken",
        sa.Column("period_id", sa.String(length=36), nullable=False),
        sa.Column("list_version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["period_id"],
            ["multidose_period.id"],
        ),
        sa.PrimaryKeyConstraint("period_id", "list_version"),
    )
    op.create_table(
        "multidose_deadline_flag",
        sa.Column("period_id", sa.String(length=36), nullable=False),
        sa.Column("list_version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["period_id"],
            ["multidose_period.id"],
        ),
        sa.PrimaryKeyConstraint("period_id", "list_version"),
    )
    op.create_table(
        "multidose_reconciliation",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("period_id", sa.String(length=36), nullable=False),
        sa.Column("list_version", sa.Integer(), nullable=False),
        sa.Column("reconciled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.ForeignKeyConstraint(
            ["period_id"],
            ["multidose_period.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("multidose_reconciliation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_multidose_reconciliation_patient", ["patient_id", "period_id"], unique=False
        )

    op.create_table(
        "multidose_task",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("reconciliation_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("assigned_to", sa.String(length=9), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.ForeignKeyConstraint(
            ["reconciliation_id"],
            ["multidose_reconciliation.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("multidose_task", schema=None) as batch_op:
        batch_op.create_index("ix_multidose_task_patient", ["patient_id"], unique=False)
        batch_op.create_index("ix_multidose_task_assigned", ["assigned_to"], unique=False)

    op.create_table(
        "multidose_task_resolution",
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["multidose_task.id"],
        ),
        sa.PrimaryKeyConstraint("task_id"),
    )
    op.create_table(
        "multidose_proposal",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("multidose_proposal", schema=None) as batch_op:
        batch_op.create_index(
            "ix_multidose_proposal_patient", ["patient_id", "proposed_at"], unique=False
        )

    op.create_table(
        "multidose_proposal_decision",
        sa.Column("proposal_id", sa.String(length=36), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["multidose_proposal.id"],
        ),
        sa.PrimaryKeyConstraint("proposal_id"),
    )
    # The trigger function medication_record_refuse_change() is created by 0003.
    dialect = op.get_bind().dialect.name
    for statement in append_only.install(dialect, APPEND_ONLY, FUNCTION, create_function=False):
        op.execute(statement)


def downgrade() -> None:
    for statement in append_only.remove(op.get_bind().dialect.name, APPEND_ONLY, None):
        op.execute(statement)
    op.drop_table("multidose_proposal_decision")
    with op.batch_alter_table("multidose_proposal", schema=None) as batch_op:
        batch_op.drop_index("ix_multidose_proposal_patient")

    op.drop_table("multidose_proposal")
    op.drop_table("multidose_task_resolution")
    with op.batch_alter_table("multidose_task", schema=None) as batch_op:
        batch_op.drop_index("ix_multidose_task_assigned")
        batch_op.drop_index("ix_multidose_task_patient")

    op.drop_table("multidose_task")
    with op.batch_alter_table("multidose_reconciliation", schema=None) as batch_op:
        batch_op.drop_index("ix_multidose_reconciliation_patient")

    op.drop_table("multidose_reconciliation")
    op.drop_table("multidose_deadline_flag")
    op.drop_table("multidose_plan_taken")
    with op.batch_alter_table("multidose_urgent_pack", schema=None) as batch_op:
        batch_op.drop_index("ix_multidose_urgent_pack_period")

    op.drop_table("multidose_urgent_pack")
    with op.batch_alter_table("multidose_period", schema=None) as batch_op:
        batch_op.drop_index("ix_multidose_period_deadline")
        batch_op.drop_index("ix_multidose_period_patient")

    op.drop_table("multidose_period")
    op.drop_table("multidose_responsibility")
