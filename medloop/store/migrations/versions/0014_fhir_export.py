"""fhir_export: FHIR Bulk Data exports ($export), their state and output files

Revision ID: 0014
Revises: 0015 (re-chained after 0015 when main was merged in)
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fhir_export",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_by", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("group_id", sa.String(36), nullable=True),
        sa.Column("types", sa.JSON(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("request_url", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_fhir_export_status", "fhir_export", ["status", "requested_at"])


def downgrade() -> None:
    op.drop_index("ix_fhir_export_status", table_name="fhir_export")
    op.drop_table("fhir_export")
