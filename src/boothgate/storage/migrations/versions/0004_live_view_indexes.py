"""indexes for the live view and statistics (issue 31, class 9): booth jobs of a time window, per provider

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-02 14:40:00
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_source_created_at", "jobs", ["source", "created_at"])
    op.create_index("ix_jobs_provider_created_at", "jobs", ["provider", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_provider_created_at", table_name="jobs")
    op.drop_index("ix_jobs_source_created_at", table_name="jobs")
