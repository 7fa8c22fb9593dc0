"""What the overview list and the live event view show: per-slot activity today, the latest results,
answer times per provider over the last hours, and counts of failures and fallbacks.

Read-only queries over the job table; booth posts only (Try it and rehearsals are the operator's own).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from boothgate.records.jobs import public_job
from boothgate.records.stats import percentile, start_of_today
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
    with `event_id`, only that event's photos."""
    now = datetime.now(UTC)
    since = now - timedelta(hours=hours)
    window = select(Job).where(Job.source == "booth", Job.created_at >= since).order_by(Job.created_at.desc())
    newest = select(Job).where(Job.source == "booth").order_by(Job.created_at.desc()).limit(latest)
    if event_id is not None:
        window, newest = window.where(Job.event_id == event_id), newest.where(Job.event_id == event_id)
    async with db.read() as session:
        jobs = (await session.scalars(window)).all()
        recent = (await session.scalars(newest)).all()
    buckets: dict[str, dict[int, list[float]]] = {}
    counts = {"received": 0, "succeeded": 0, "failed": 0, "timed_out": 0, "rejected": 0, "fallbacks": 0}
    per_provider: dict[str, dict[str, int]] = {}
    for job in jobs:
        counts["received"] += 1
        if job.status in counts:
            counts[job.status] += 1
        if job.fallback_reason:
            counts["fallbacks"] += 1
        mine = per_provider.setdefault(job.provider, {"received": 0, "failed": 0, "fallbacks": 0})
        mine["received"] += 1
        mine["failed"] += job.status in FAILED
        mine["fallbacks"] += bool(job.fallback_reason)
        if job.status == "succeeded" and job.total_seconds is not None:
            minutes = int((_aware(job.created_at) - since).total_seconds() // 60)
            index = minutes // BUCKET_MINUTES
            buckets.setdefault(job.provider, {}).setdefault(index, []).append(job.total_seconds)
    series = []
    for provider in [t for t in tabs if t in buckets] + sorted(set(buckets) - set(tabs)):
        points = []
        for index, values in sorted(buckets[provider].items()):
            middle = since + timedelta(minutes=(index + 0.5) * BUCKET_MINUTES)
            points.append(
                {
                    "at": middle.isoformat(),
                    "avg_seconds": round(sum(values) / len(values), 3),
                    "p95_seconds": percentile(values, 0.95),
                    "count": len(values),
                }
            )
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
