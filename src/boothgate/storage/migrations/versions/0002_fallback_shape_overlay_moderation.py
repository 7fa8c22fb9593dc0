"""slot fallback, result shape, overlay, moderation; job served_by, filled prompt, moderation

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 20:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fallback", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("result_shape", sa.String(length=16), nullable=False, server_default="match_photo")
        )
        batch_op.add_column(sa.Column("result_size", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("overlay_path", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("overlay_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("moderation", sa.JSON(), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("served_by", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("fallback_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("prompt", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("moderation", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name in ("moderation", "prompt", "fallback_reason", "served_by"):
            batch_op.drop_column(name)
    with op.batch_alter_table("slots", schema=None) as batch_op:
        for name in ("moderation", "overlay_sha256", "overlay_path", "result_size", "result_shape", "fallback"):
            batch_op.drop_column(name)
