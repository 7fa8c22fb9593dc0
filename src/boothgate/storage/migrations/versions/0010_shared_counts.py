"""refused booth requests counted by every node together (issue 27): one row per key and minute

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 17:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_counts",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("minute", sa.Integer(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "minute"),
    )


def downgrade() -> None:
    op.drop_table("shared_counts")
