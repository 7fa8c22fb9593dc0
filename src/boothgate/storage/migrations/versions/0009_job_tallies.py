"""job summaries for the live view and statistics (issue 31, class 9): tallies per 10 minutes, answer-time
histograms, and which jobs they already hold

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 18:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
TALLY_KEY = ["bucket_start", "source", "provider", "slot_number", "event_id", "api_key_id", "status",
             "error_code", "fallback_reason", "served_by"]  # fmt: skip
TIMES_KEY = ["period", "source", "provider", "slot_number", "event_id", "api_key_id"]


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tallied", sa.Boolean(), nullable=True))
    # The jobs not yet in the summaries, by age: the small tail every refresh still reads row by row.
    untallied = sa.text("tallied IS NULL")
    op.create_index("ix_jobs_untallied", "jobs", ["created_at"], sqlite_where=untallied, postgresql_where=untallied)
    op.create_table(
        "job_tallies",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("bucket_start", TZ, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("slot_number", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("api_key_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=False),
        sa.Column("fallback_reason", sa.String(length=200), nullable=False),
        sa.Column("served_by", sa.String(length=40), nullable=False),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.Column("seconds_n", sa.Integer(), nullable=False),
        sa.Column("seconds_sum", sa.Float(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("delivered_late", sa.Integer(), nullable=False),
        sa.Column("deleted_by_guest", sa.Integer(), nullable=False),
        sa.UniqueConstraint(*TALLY_KEY, name="uq_job_tallies_key"),
    )
    op.create_index("ix_job_tallies_bucket_start", "job_tallies", ["bucket_start"])
    op.create_table(
        "job_times",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("period", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("slot_number", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("api_key_id", sa.String(length=32), nullable=False),
        sa.Column("bins", sa.JSON(), nullable=False),
        sa.UniqueConstraint(*TIMES_KEY, name="uq_job_times_key"),
    )
    op.create_index("ix_job_times_period", "job_times", ["period"])


def downgrade() -> None:
    op.drop_index("ix_job_times_period", table_name="job_times")
    op.drop_table("job_times")
    op.drop_index("ix_job_tallies_bucket_start", table_name="job_tallies")
    op.drop_table("job_tallies")
    op.drop_index("ix_jobs_untallied", table_name="jobs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("tallied")
