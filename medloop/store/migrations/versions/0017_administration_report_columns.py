"""administration_report_columns: what the ward report reads of each charting as columns

``late``, ``scanned`` (a pack was scanned: the record's ``scan`` has a GTIN), ``scan_skipped``
(the reason none was) and ``reason`` (why a dose was not given) were read out of every
charting's JSON record; the ward report of a quarter reads ~90 000 of them. The columns are a
projection of ``record`` (the store writes both from the same ``Administration``), left out of
the row digest (``attestation.ATTESTED``) like the ids the database assigns: the digests of the
rows written before this migration stay valid, and the record they are taken from is attested.

Existing rows are filled from their records in one UPDATE per database. ``administration`` is
append-only: its trigger is lifted for the UPDATE and installed again (the trigger function of
0005 stays).

Revision ID: 0017
Revises: 0014
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from medloop.store import append_only

revision = "0017"
down_revision = "0020"
branch_labels = None
depends_on = None

TABLE = "administration"
FUNCTION = "administration_record_refuse_change"  # migration 0005's

FILL = {
    "sqlite": """
        UPDATE administration SET
            late = coalesce(json_extract(record, '$.late'), 0) != 0,
            scanned = json_extract(record, '$.scan.gtin') IS NOT NULL,
            scan_skipped = json_extract(record, '$.scan_skipped'),
            reason = json_extract(record, '$.reason')
    """,
    "postgresql": """
        UPDATE administration SET
            late = coalesce((record ->> 'late')::boolean, false),
            scanned = (record -> 'scan' ->> 'gtin') IS NOT NULL,
            scan_skipped = record ->> 'scan_skipped',
            reason = record ->> 'reason'
    """,
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in append_only.remove(dialect, [TABLE], None):
        op.execute(statement)
    # Plain ALTER TABLE (no batch copy on SQLite, which would drop the table's triggers).
    op.add_column(TABLE, sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column(
        TABLE, sa.Column("scanned", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column(TABLE, sa.Column("scan_skipped", sa.String(32), nullable=True))
    op.add_column(TABLE, sa.Column("reason", sa.Text(), nullable=True))
    op.execute(FILL[dialect])
    for statement in append_only.install(dialect, [TABLE], FUNCTION, create_function=False):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in append_only.remove(dialect, [TABLE], None):
        op.execute(statement)
    for column in ("reason", "scan_skipped", "scanned", "late"):
        op.drop_column(TABLE, column)
    for statement in append_only.install(dialect, [TABLE], FUNCTION, create_function=False):
        op.execute(statement)
