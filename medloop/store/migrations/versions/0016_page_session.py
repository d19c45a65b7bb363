"""page_session: the web pages' server-side sessions (medloop.store.sessions)

Revision ID: 0016
Revises: 0011
Create Date: 2026-12-05

A signed-in browser holds a random id in a cookie; this table keeps the id's SHA-256 digest,
the session's claims (those of an API bearer token), its CSRF token and its expiry. Sign-out
deletes the row. No patient data: not append-only, not attested.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "page_session",
        sa.Column("id_digest", sa.String(length=64), nullable=False),
        sa.Column("claims", sa.Text(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id_digest"),
    )
    op.create_index("ix_page_session_expires_at", "page_session", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_page_session_expires_at", table_name="page_session")
    op.drop_table("page_session")
