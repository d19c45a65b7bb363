"""patient_id on every table of patient data that lacked it: each statement can route by patient

Revision ID: 0020
Revises: 0014
Create Date: 2026-12-05

The design for sharding by patient on Citus (docs/scaling.md) distributes every table of a
patient's data by ``patient_id``. The child rows that named their patient only through their
parent row get the parent's ``patient_id`` (backfilled here, NOT NULL, indexed); the store writes
it with the row from now on. It is left out of the rows' attested digests
(``medloop.store.attestation``), so every row written before keeps its digest.

``audit_event`` gets ``patient_id`` too (the patient whose national id the chain is; NULL for
the system chain and for a chain of no kept list), outside the hashed fields: every chain
verifies as before, with the same heads digest. ``idempotency_key`` gets the patient of the
command that claimed the key: from the stored response of a command (which names it); a key
whose response names no patient keeps NULL (``run_once`` still finds it).

The append-only triggers refuse the backfill's UPDATE, so they are set aside for it: on
PostgreSQL disabled and enabled again, on SQLite dropped and created again as they were (SQLite
also rebuilds each child table to make the new column NOT NULL, which drops its triggers).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None

#: child table: (parent table, the child's column naming the parent row)
CHILDREN = {
    "prescription_version": ("prescription", "prescription_id"),
    "dispense_annulment": ("dispense", "dispense_id"),
    "discharge": ("admission", "admission_id"),
    "administration_error": ("administration", "administration_id"),
    "multidose_urgent_pack": ("multidose_period", "period_id"),
    "multidose_plan_taken": ("multidose_period", "period_id"),
    "multidose_deadline_flag": ("multidose_period", "period_id"),
    "multidose_task_resolution": ("multidose_task", "task_id"),
    "multidose_proposal_decision": ("multidose_proposal", "proposal_id"),
    "cds_feedback": ("cds_card", "card_id"),
}


def _column(nullable: bool = True) -> sa.Column:
    return sa.Column("patient_id", sa.String(36), nullable=nullable)


@contextmanager
def _triggers_set_aside(table: str) -> Iterator[None]:
    """The table's append-only triggers out of the way of the body's statements, then back."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        yield
        op.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        return
    saved = bind.execute(
        sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
        {"t": table},
    ).all()
    for name, _sql in saved:
        op.execute(f"DROP TRIGGER {name}")
    yield
    for _name, sql in saved:
        op.execute(sql)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for child, (parent, parent_column) in CHILDREN.items():
        op.add_column(child, _column())
        with _triggers_set_aside(child):
            op.execute(
                f"UPDATE {child} SET patient_id = (SELECT {parent}.patient_id FROM {parent} "
                f"WHERE {parent}.id = {child}.{parent_column})"
            )
            if sqlite:  # a rebuild of the table, which drops its triggers (re-created above)
                with op.batch_alter_table(child, recreate="always") as batch:
                    batch.alter_column("patient_id", existing_type=sa.String(36), nullable=False)
        if not sqlite:
            op.alter_column(child, "patient_id", existing_type=sa.String(36), nullable=False)
        op.create_index(f"ix_{child}_patient", child, ["patient_id"])

    op.add_column("audit_event", _column())
    with _triggers_set_aside("audit_event"):
        op.execute(
            "UPDATE audit_event SET patient_id = (SELECT patient.id FROM patient "
            "WHERE patient.national_id = audit_event.chain)"
        )

    op.add_column("idempotency_key", _column())
    named = "response ->> 'patient_id'" if not sqlite else "json_extract(response, '$.patient_id')"
    op.execute(
        f"UPDATE idempotency_key SET patient_id = (SELECT patient.id FROM patient "
        f"WHERE patient.id = {named})"
    )


def downgrade() -> None:
    # SQLite (3.35+) drops a column that no index, key or constraint uses in place.
    op.execute("ALTER TABLE idempotency_key DROP COLUMN patient_id")
    with _triggers_set_aside("audit_event"):
        op.execute("ALTER TABLE audit_event DROP COLUMN patient_id")
    for child in reversed(CHILDREN):
        op.drop_index(f"ix_{child}_patient", table_name=child)
        with _triggers_set_aside(child):
            op.execute(f"ALTER TABLE {child} DROP COLUMN patient_id")
