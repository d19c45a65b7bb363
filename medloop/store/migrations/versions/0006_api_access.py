"""API access: CDS Hooks cards issued and the feedback on them (append-only)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

Triggers refuse UPDATE and DELETE on both tables, as in 0003.
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

APPEND_ONLY = ("cds_card", "cds_feedback")

POSTGRES_FUNCTION = """
    CREATE FUNCTION cds_record_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
    END
    $$
"""


def upgrade() -> None:
    op.create_table('cds_card',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('service', sa.String(length=64), nullable=False),
    sa.Column('hook_instance', sa.String(length=100), nullable=False),
    sa.Column('patient_id', sa.String(length=36), nullable=False),
    sa.Column('alert_key', sa.String(length=500), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issued_to', sa.String(length=64), nullable=False),
    sa.Column('record', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('cds_card', schema=None) as batch_op:
        batch_op.create_index('ix_cds_card_patient', ['patient_id', 'issued_at'], unique=False)

    op.create_table('cds_feedback',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('card_id', sa.String(length=36), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('outcome_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.Column('override_reason', sa.JSON(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['card_id'], ['cds_card.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('cds_feedback', schema=None) as batch_op:
        batch_op.create_index('ix_cds_feedback_card', ['card_id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION cds_record_refuse_change()"
            )
    else:
        for table in APPEND_ONLY:
            for operation in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_refuse_{operation.lower()} BEFORE {operation} "
                    f"ON {table} BEGIN SELECT RAISE(ABORT, "
                    f"'{table} is append-only: {operation} refused'); END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS cds_record_refuse_change()")
    with op.batch_alter_table('cds_feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_cds_feedback_card')
    op.drop_table('cds_feedback')
    with op.batch_alter_table('cds_card', schema=None) as batch_op:
        batch_op.drop_index('ix_cds_card_patient')
    op.drop_table('cds_card')
