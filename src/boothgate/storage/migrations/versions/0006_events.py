"""events: time window, slots, gallery token, budget counters, retention; jobs.event_id

Revision ID: 0006
Revises: 0002
Create Date: 2026-12-02 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("slots", sa.JSON(), nullable=False),
        sa.Column("gallery_token", sa.String(length=64), nullable=False),
        sa.Column("max_paid_calls", sa.Integer(), nullable=True),
        sa.Column("max_cost", sa.Float(), nullable=True),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("spent_calls", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("spent_cost_usd", sa.Float(), nullable=False, server_default="0"),
        sa.Column("reserved_calls", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reserved_cost_usd", sa.Float(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleaned_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("gallery_token", name="uq_event_gallery_token"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_jobs_event_id", ["event_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_event_id")
        batch_op.drop_column("event_id")
    op.drop_table("events")
