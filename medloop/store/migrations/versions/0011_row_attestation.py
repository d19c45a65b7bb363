"""command_id on every table of patient data: the audit record of the command commits to its rows

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-05

Each row of patient (and ward) data names the command that appended it (``command_id``, 32 hex
digits); that command's audit record carries the digest of all its rows
(``medloop.store.attestation``), so ``medloop audit verify`` detects a changed, deleted or added
row. Rows that exist already keep ``command_id`` NULL: nothing recorded what they were when
they were written, so they cannot be attested after the fact, and verify reports them as
unattested. The column is nullable and has no index: adding it rewrites no table, and the
write path pays nothing for an index verify does not need (it reads each table once).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None

# medloop.store.attestation.ATTESTED as of this revision.
TABLES = (
    "patient",
    "list_change",
    "entry_version",
    "prescription",
    "prescription_version",
    "dispense",
    "dispense_annulment",
    "alert",
    "handled_alert",
    "reconciliation",
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
    "ward",
    "ward_config",
    "admission",
    "discharge",
    "schedule",
    "planned_dose",
    "administration",
    "administration_error",
    "cds_card",
    "cds_feedback",
)


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("command_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "command_id")
