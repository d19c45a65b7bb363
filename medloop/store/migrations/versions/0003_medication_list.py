"""Medication list: patients, list changes and entry versions, prescriptions and their versions,
dispenses and annulments, alerts with overrides, handled alerts, reconciliations (append-only
but for patient)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Triggers refuse UPDATE and DELETE on every table but ``patient`` (a national id may change), so
the history of a list cannot be rewritten with ordinary SQL; they are not part of the table
metadata, so autogenerate neither sees nor needs them.
"""

import sqlalchemy as sa
from alembic import op

from medloop.store import append_only

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APPEND_ONLY = (
    "list_change",
    "entry_version",
    "prescription",
    "prescription_version",
    "dispense",
    "dispense_annulment",
    "alert",
    "handled_alert",
    "reconciliation",
)
FUNCTION = "medication_record_refuse_change"


def upgrade() -> None:
    op.create_table(
        "patient",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("national_id", sa.String(length=11), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("national_id"),
    )
    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("list_version", sa.Integer(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("requires_override", sa.Boolean(), nullable=False),
        sa.Column("catalogue_version", sa.Integer(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("override_by", sa.JSON(), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index("ix_alert_patient", ["patient_id", "raised_at"], unique=False)

    op.create_table(
        "handled_alert",
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("handled_by", sa.JSON(), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.PrimaryKeyConstraint("patient_id", "key"),
    )
    op.create_table(
        "list_change",
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("list_version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.PrimaryKeyConstraint("patient_id", "list_version"),
    )
    op.create_table(
        "reconciliation",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("list_version", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reconciliation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reconciliation_patient", ["patient_id", "list_version"], unique=False
        )

    op.create_table(
        "prescription",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("prescription", schema=None) as batch_op:
        batch_op.create_index("ix_prescription_patient", ["patient_id"], unique=False)

    op.create_table(
        "dispense",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("prescription_id", sa.String(length=36), nullable=False),
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("dispensed_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
        ),
        sa.ForeignKeyConstraint(
            ["prescription_id"],
            ["prescription.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dispense", schema=None) as batch_op:
        batch_op.create_index("ix_dispense_patient", ["patient_id", "dispensed_on"], unique=False)

    op.create_table(
        "entry_version",
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("list_version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id", "list_version"],
            ["list_change.patient_id", "list_change.list_version"],
        ),
        sa.PrimaryKeyConstraint("entry_id", "version"),
    )
    with op.batch_alter_table("entry_version", schema=None) as batch_op:
        batch_op.create_index(
            "ix_entry_version_patient", ["patient_id", "list_version"], unique=False
        )

    op.create_table(
        "prescription_version",
        sa.Column("prescription_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("to_status", sa.String(length=1), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["prescription_id"],
            ["prescription.id"],
        ),
        sa.PrimaryKeyConstraint("prescription_id", "version"),
    )
    op.create_table(
        "dispense_annulment",
        sa.Column("dispense_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dispense_id"],
            ["dispense.id"],
        ),
        sa.PrimaryKeyConstraint("dispense_id"),
    )
    for statement in append_only.install(op.get_bind().dialect.name, APPEND_ONLY, FUNCTION):
        op.execute(statement)


def downgrade() -> None:
    for statement in append_only.remove(op.get_bind().dialect.name, APPEND_ONLY, FUNCTION):
        op.execute(statement)
    op.drop_table("dispense_annulment")
    op.drop_table("prescription_version")
    with op.batch_alter_table("entry_version", schema=None) as batch_op:
        batch_op.drop_index("ix_entry_version_patient")

    op.drop_table("entry_version")
    with op.batch_alter_table("dispense", schema=None) as batch_op:
        batch_op.drop_index("ix_dispense_patient")

    op.drop_table("dispense")
    with op.batch_alter_table("prescription", schema=None) as batch_op:
        batch_op.drop_index("ix_prescription_patient")

    op.drop_table("prescription")
    with op.batch_alter_table("reconciliation", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_patient")

    op.drop_table("reconciliation")
    op.drop_table("list_change")
    op.drop_table("handled_alert")
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_patient")

    op.drop_table("alert")
    op.drop_table("patient")
