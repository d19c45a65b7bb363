"""audit_event: one hash chain per patient instead of one for the whole log

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22

With one chain every audited transaction of every patient queued for one lock held to its
commit, so commits could not be grouped and throughput was bounded by one fsync at a time.
Now each patient has its own chain (``chain`` = national id; events about no patient share
the chain ``-``) and ``(chain, seq)`` is the key.

The existing records are re-chained: the old single chain is verified first (the migration
refuses to run on a broken log, so it cannot launder tampering), then every record is
re-numbered within its chain and re-hashed in the old order. The table is re-created rather
than updated, because the append-only triggers refuse updates; they are re-installed.
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

from medloop.store import append_only

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64
NO_PATIENT = "-"
OLD_FIELDS = (
    "seq",
    "occurred_at",
    "actor",
    "actor_role",
    "organisation",
    "patient",
    "action",
    "outcome",
    "request_id",
    "reason",
    "detail",
    "prev_hash",
)
OLD_TABLE = sa.table(
    "audit_event",
    sa.column("seq", sa.BigInteger()),
    sa.column("occurred_at", sa.DateTime(timezone=True)),
    *(
        sa.column(name, sa.String())
        for name in (
            "actor",
            "actor_role",
            "organisation",
            "patient",
            "action",
            "outcome",
            "request_id",
            "reason",
            "prev_hash",
            "hash",
        )
    ),
    sa.column("detail", sa.JSON()),
)


def _hash(values: dict, fields: tuple[str, ...]) -> str:
    # The canonical serialisation of medloop.store.audit as it stood at each revision.
    canonical = {name: values[name] for name in fields}
    moment = canonical["occurred_at"]
    if moment.tzinfo is not None:
        moment = moment.astimezone(__import__("datetime").UTC).replace(tzinfo=None)
    canonical["occurred_at"] = moment.isoformat(timespec="microseconds") + "Z"
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def upgrade() -> None:
    bind = op.get_bind()
    rows = [
        dict(row) for row in bind.execute(sa.select(OLD_TABLE).order_by(OLD_TABLE.c.seq)).mappings()
    ]
    last = GENESIS_HASH
    for expected, row in enumerate(rows, start=1):
        if (
            row["seq"] != expected
            or row["prev_hash"] != last
            or _hash(row, OLD_FIELDS) != row["hash"]
        ):
            raise RuntimeError(
                f"the audit log is broken at event {row['seq']}: run `medloop audit verify` on "
                "the previous release and investigate before migrating"
            )
        last = row["hash"]

    op.drop_table("audit_event")  # and, with it, its triggers
    table = op.create_table(
        "audit_event",
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("actor_role", sa.String(length=32), nullable=False),
        sa.Column("organisation", sa.String(length=64), nullable=True),
        sa.Column("patient", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('ok', 'refused', 'conflict', 'error')", name="ck_audit_event_outcome"
        ),
        sa.PrimaryKeyConstraint("chain", "seq"),
    )
    tails: dict[str, tuple[int, str]] = {}
    rechained = []
    for row in rows:
        chain = row["patient"] or NO_PATIENT
        seq, prev = tails.get(chain, (0, GENESIS_HASH))
        values = {**row, "chain": chain, "seq": seq + 1, "prev_hash": prev}
        values["hash"] = _hash(values, ("chain", *OLD_FIELDS))
        tails[chain] = (seq + 1, values["hash"])
        rechained.append(values)
    if rechained:
        op.bulk_insert(table, rechained)
    # The trigger function audit_event_refuse_change() is created by 0002 (and survives the
    # table); row triggers do not fire on TRUNCATE, so PostgreSQL gets one for that too.
    dialect = bind.dialect.name
    statements = append_only.install(
        dialect, ["audit_event"], "audit_event_refuse_change", create_function=False
    )
    if dialect == "postgresql":
        statements.append(
            "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse_change()"
        )
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError(
        "per-patient audit chains cannot be folded back into one chain without re-hashing "
        "every record; restore a backup taken before 0008 instead"
    )
