"""audit_event: PostgreSQL learns that a chain names one patient (extended statistics)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06

Every audit append reads its chain's tail in the same statement (``store.audit._APPEND_PG``):
``WHERE chain = :chain AND patient_id = :patient_id ORDER BY seq DESC LIMIT 1``. The primary key
(chain, seq) answers it with one index entry, read backwards. But PostgreSQL's planner takes the
two conditions as independent, so it estimates that a chain holds about one row of the patient
(rows of the chain / patients) and then prefers a bitmap scan of the whole chain and a sort: a
plan whose cost grows with the chain. A patient read many times (every audited read appends) paid
for every record of their chain on every read: 3 000 records, 172 buffers per append instead of
3 (bench/RESULTS.md, issue #18, session 9). ``patient_id`` is a function of ``chain`` (the
patient whose national id the chain is, 0020); functional-dependency statistics tell the planner
so, and it keeps to the backward index scan. The statistics are gathered by ``ANALYZE``
(autovacuum's, or this migration's for the rows already there). SQLite's planner already reads
the tail from the primary key: nothing changes there. Downgrading drops the statistics.
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

STATISTICS = "audit_event_chain_patient"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} (dependencies) "
        "ON chain, patient_id FROM audit_event"
    )
    op.execute("ANALYZE audit_event")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")
