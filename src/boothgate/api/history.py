"""A key's job history: newest first, paginated by an opaque cursor (the created time and id of the last row)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from sqlalchemy import and_, or_, select

from boothgate.api.live import ApiError
from boothgate.operator.api_keys import Caller
from boothgate.records.jobs import JobStore
from boothgate.storage.models import Job

ROW_STATUSES = {
    "succeeded": ("succeeded",),
    "failed": ("failed", "timed_out", "rejected", "moderated"),
    "cancelled": ("cancelled",),
    "running": ("received", "running"),
}


def encode_cursor(job: Job) -> str:
    stamp = _utc(job.created_at).isoformat() if job.created_at else ""
    return base64.urlsafe_b64encode(f"{stamp}|{job.id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, job_id = text.partition("|")
        return _utc(datetime.fromisoformat(stamp)), job_id
    except (ValueError, UnicodeDecodeError):
        raise ApiError(422, "bad_cursor", "The cursor is not one this server gave.") from None


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def history(
    jobs: JobStore,
    caller: Caller,
    slot: tuple[str, int] | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Job], str | None]:
    """The key's jobs, newest first, `limit` at a time; the cursor of the next page (None at the end)."""
    query = select(Job).where(Job.api_key_id == caller.id).order_by(Job.created_at.desc(), Job.id.desc())
    if slot is not None:
        query = query.where(Job.provider == slot[0], Job.slot_number == slot[1])
    if status is not None:
        if status not in ROW_STATUSES:
            raise ApiError(422, "bad_status", f"status is one of {', '.join(ROW_STATUSES)}.")
        query = query.where(Job.status.in_(ROW_STATUSES[status]))
    if since is not None:
        query = query.where(Job.created_at >= _utc(since))
    if until is not None:
        query = query.where(Job.created_at < _utc(until))
    if cursor:
        stamp, job_id = decode_cursor(cursor)
        query = query.where(or_(Job.created_at < stamp, and_(Job.created_at == stamp, Job.id < job_id)))
    async with jobs.db.read() as session:
        rows = list((await session.scalars(query.limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1]) if more and rows else None
