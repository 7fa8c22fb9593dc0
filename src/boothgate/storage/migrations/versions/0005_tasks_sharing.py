"""durable background work (tasks); the guest's copy (share tokens, late results, galleries)

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-02 13:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("owner", sa.String(length=100), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("key", name="uq_task_key"),
    )
    op.create_index("ix_tasks_kind", "tasks", ["kind"])
    op.create_index("ix_tasks_state", "tasks", ["state"])
    op.create_index("ix_tasks_run_after", "tasks", ["run_after"])
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("share", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("late_result_seconds", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("share_token", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("late", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("late_result_path", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("history", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("gallery_hidden", sa.Boolean(), nullable=True))
        batch_op.create_index("ix_jobs_share_token", ["share_token"], unique=True)
    op.create_table(
        "galleries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slots", sa.JSON(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("pin_hash", sa.String(length=200), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_galleries_token", "galleries", ["token"], unique=True)
    op.create_index("ix_galleries_event_id", "galleries", ["event_id"])


def downgrade() -> None:
    op.drop_index("ix_galleries_event_id", table_name="galleries")
    op.drop_index("ix_galleries_token", table_name="galleries")
    op.drop_table("galleries")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_share_token")
        for name in ("gallery_hidden", "deleted_at", "history", "late_result_path", "late", "share_token"):
            batch_op.drop_column(name)
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.drop_column("late_result_seconds")
        batch_op.drop_column("share")
    op.drop_index("ix_tasks_run_after", table_name="tasks")
    op.drop_index("ix_tasks_state", table_name="tasks")
    op.drop_index("ix_tasks_kind", table_name="tasks")
    op.drop_table("tasks")
