"""Nursing-home administration: wards and their configuration versions, admissions and
discharges, entry schedules and planned doses, chartings and their corrections (append-only)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

Triggers refuse UPDATE and DELETE on every table of this revision, as 0003 does for the list.
"""

import sqlalchemy as sa
from alembic import op

from medloop.store import append_only

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

APPEND_ONLY = (
    "ward",
    "ward_config",
    "admission",
    "discharge",
    "schedule",
    "planned_dose",
    "administration",
    "administration_error",
)
FUNCTION = "administration_record_refuse_change"


def upgrade() -> None:
    op.create_table(
        "ward",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ward", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ward_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "ward_config",
        sa.Column("ward_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.JSON(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ward_id"],
            ["ward.id"],
        ),
        sa.PrimaryKeyConstraint("ward_id", "version"),
    )
    op.create_table(
        "admission",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("ward_id", sa.String(length=36), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.ForeignKeyConstraint(
            ["ward_id"],
            ["ward.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("admission", schema=None) as batch_op:
        batch_op.create_index("ix_admission_patient", ["patient_id", "admitted_at"], unique=False)
        batch_op.create_index("ix_admission_ward", ["ward_id", "admitted_at"], unique=False)

    op.create_table(
        "discharge",
        sa.Column("admission_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["admission_id"],
            ["admission.id"],
        ),
        sa.PrimaryKeyConstraint("admission_id"),
    )
    op.create_table(
        "schedule",
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("entry_version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.PrimaryKeyConstraint("entry_id", "version"),
    )
    with op.batch_alter_table("schedule", schema=None) as batch_op:
        batch_op.create_index("ix_schedule_patient", ["patient_id"], unique=False)

    op.create_table(
        "planned_dose",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("ward_id", sa.String(length=36), nullable=False),
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("schedule_version", sa.Integer(), nullable=False),
        sa.Column("local_time", sa.String(length=16), nullable=False),
        sa.Column("dose_index", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id", "schedule_version"],
            ["schedule.entry_id", "schedule.version"],
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.ForeignKeyConstraint(
            ["ward_id"],
            ["ward.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "entry_id",
            "schedule_version",
            "local_time",
            "dose_index",
            name="uq_planned_dose_intake",
        ),
    )
    with op.batch_alter_table("planned_dose", schema=None) as batch_op:
        batch_op.create_index("ix_planned_dose_patient", ["patient_id", "due_at"], unique=False)
        batch_op.create_index("ix_planned_dose_ward", ["ward_id", "due_at"], unique=False)

    op.create_table(
        "administration",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("planned_dose_id", sa.String(length=36), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.ForeignKeyConstraint(
            ["planned_dose_id"],
            ["planned_dose.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("administration", schema=None) as batch_op:
        batch_op.create_index("ix_administration_patient", ["patient_id", "at"], unique=False)
        batch_op.create_index("ix_administration_planned_dose", ["planned_dose_id"], unique=False)

    op.create_table(
        "administration_error",
        sa.Column("administration_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["administration_id"],
            ["administration.id"],
        ),
        sa.PrimaryKeyConstraint("administration_id"),
    )
    for statement in append_only.install(op.get_bind().dialect.name, APPEND_ONLY, FUNCTION):
        op.execute(statement)


def downgrade() -> None:
    for statement in append_only.remove(op.get_bind().dialect.name, APPEND_ONLY, FUNCTION):
        op.execute(statement)
    for table in reversed(APPEND_ONLY):
        op.drop_table(table)
