"""offline marks and model lists every node sees (issue 27): one row per provider tab each

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 20:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "shared_breakers",
        sa.Column("tab", sa.String(length=32), nullable=False),
        sa.Column("open_until", TZ, nullable=True),  # the database's clock; NULL: closed
        sa.Column("failure", sa.String(length=80), nullable=False),
        sa.Column("changed_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("tab"),
    )
    op.create_table(
        "shared_model_lists",
        sa.Column("tab", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),  # sha256 of key and base URL
        sa.Column("models", sa.Text(), nullable=False),  # JSON: [{"id": ..., "label": ...}]
        sa.Column("checked_at", TZ, nullable=False),
        # A node reading the list for this fingerprint now (the others wait for it) until a time.
        sa.Column("claimed", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", TZ, nullable=True),
        sa.PrimaryKeyConstraint("tab"),
    )


def downgrade() -> None:
    op.drop_table("shared_model_lists")
    op.drop_table("shared_breakers")
