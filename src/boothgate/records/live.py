"""What the overview list and the live event view show: per-slot activity today, the latest results,
answer times per provider over the last hours, and counts of failures and fallbacks.

Read-only queries over the job table; booth posts only (Try it and rehearsals are the operator's own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select

from boothgate.records.jobs import public_job
from boothgate.records.stats import start_of_today
from boothgate.storage.db import Database
from boothgate.storage.models import Job

FAILED = ("failed", "timed_out", "rejected")
# One point of the answer-time chart covers this many minutes (a few hours → a few dozen points).
BUCKET_MINUTES = 10
RECENT_SCAN = 400  # the overview looks this many latest jobs back for each slot's last result


@dataclass
class SlotActivity:
    today: int = 0
    last: dict[str, Any] | None = None


async def slot_activity(db: Database, provider: str) -> dict[int, SlotActivity]:
    """Each slot's count of booth photos today and its latest job (any source) among recent ones."""
    today = start_of_today()
    counted = (
        select(Job.slot_number, func.count())
        .where(Job.provider == provider, Job.source == "booth", Job.created_at >= today)
        .group_by(Job.slot_number)
    )
    recent = select(Job).where(Job.provider == provider).order_by(Job.created_at.desc()).limit(RECENT_SCAN)
    async with db.read() as session:
        counts = (await session.execute(counted)).all()
        jobs = (await session.scalars(recent)).all()
    activity: dict[int, SlotActivity] = {}
    for number, count in counts:
        if number is not None:
            activity.setdefault(number, SlotActivity()).today = int(count)
    for job in jobs:
        if job.slot_number is None:
            continue
        entry = activity.setdefault(job.slot_number, SlotActivity())
        if entry.last is None:
            entry.last = public_job(job)
    return activity


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def live_view(
    db: Database, tabs: list[str], hours: float = 3.0, latest: int = 24, event_id: int | None = None
) -> dict[str, Any]:
    """The live page's data: latest booth results, per-provider answer times, failure/fallback counts;
    with `event_id`, only that event's photos.

    Counts and answer times are aggregated in SQL over the `source, created_at` index (GROUP BY, window
    functions): a few dozen rows come back, never the window's jobs as ORM objects — a festival day does not
    hold the event loop (issue 31, class 9)."""
    now = datetime.now(UTC)
    since = now - timedelta(hours=hours)
    in_window: tuple[Any, ...] = (Job.source == "booth", Job.created_at >= since)
    if event_id is not None:
        in_window += (Job.event_id == event_id,)
    has_fallback = Job.fallback_reason.is_not(None)
    grouped = select(Job.provider, Job.status, has_fallback, func.count()).where(*in_window)
    grouped = grouped.group_by(Job.provider, Job.status, has_fallback)
    # Answer times per provider and 10-minute bucket: mean, count and the nearest-rank p95, all in SQL
    # (window functions; the bucket from bound edges, so any database): a few dozen rows come back.
    edges = [since + timedelta(minutes=BUCKET_MINUTES * (i + 1)) for i in range(math.ceil(hours * 60 / BUCKET_MINUTES))]
    bucket = case(*[(Job.created_at < edge, i) for i, edge in enumerate(edges)], else_=len(edges))
    part = (Job.provider, bucket)
    ranked = (
        select(
            Job.provider.label("provider"),
            bucket.label("bucket"),
            Job.total_seconds.label("seconds"),
            func.row_number().over(partition_by=part, order_by=Job.total_seconds).label("rank"),
            func.count().over(partition_by=part).label("n"),
            func.avg(Job.total_seconds).over(partition_by=part).label("mean"),
        )
        .where(*in_window, Job.status == "succeeded", Job.total_seconds.is_not(None))
        .subquery()
    )
    c = ranked.c
    times = select(c.provider, c.bucket, c.n, c.mean, c.seconds).where(c.rank >= 0.95 * c.n, c.rank - 1 < 0.95 * c.n)
    newest = select(Job).where(Job.source == "booth").order_by(Job.created_at.desc()).limit(latest)
    if event_id is not None:
        newest = newest.where(Job.event_id == event_id)
    async with db.read() as session:
        rows = (await session.execute(grouped)).all()
        answer_times = (await session.execute(times)).all()
        recent = (await session.scalars(newest)).all()
    counts = {"received": 0, "succeeded": 0, "failed": 0, "timed_out": 0, "rejected": 0, "fallbacks": 0}
    per_provider: dict[str, dict[str, int]] = {}
    for provider, status, fell_back, count in rows:
        count = int(count)
        counts["received"] += count
        if status in counts:
            counts[status] += count
        mine = per_provider.setdefault(provider, {"received": 0, "failed": 0, "fallbacks": 0})
        mine["received"] += count
        mine["failed"] += count if status in FAILED else 0
        if fell_back:
            counts["fallbacks"] += count
            mine["fallbacks"] += count
    points_of: dict[str, list[tuple[int, int, float, float]]] = {}
    for provider, index, n, mean, p95 in answer_times:
        points_of.setdefault(provider, []).append((int(index), int(n), float(mean), float(p95)))
    series = []
    for provider in [t for t in tabs if t in points_of] + sorted(set(points_of) - set(tabs)):
        points = []
        for index, n, mean, p95 in sorted(points_of[provider]):
            middle = since + timedelta(minutes=(index + 0.5) * BUCKET_MINUTES)
            points.append({"at": middle.isoformat(), "avg_seconds": round(mean, 3), "p95_seconds": p95, "count": n})
        series.append({"provider": provider, "points": points})
    return {
        "generated_at": now.isoformat(),
        "since": since.isoformat(),
        "hours": hours,
        "event_id": event_id,
        "bucket_minutes": BUCKET_MINUTES,
        "counts": counts,
        "providers": per_provider,
        "series": series,
        "latest": [public_job(job) for job in recent],
    }
