"""What the overview list and the live event view show: per-slot activity today, the latest results,
answer times per provider over the last hours, and counts of failures and fallbacks.

Read-only queries over the job table; booth posts only (Try it and rehearsals are the operator's own).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from boothgate.records import tallies
from boothgate.records.jobs import public_job
from boothgate.records.stats import start_of_today
from boothgate.storage.db import Database
from boothgate.storage.models import Job, JobTally, JobTimes

FAILED = ("failed", "timed_out", "rejected")
# One point of the answer-time chart is one summary bucket (a few hours → a few dozen points).
BUCKET_MINUTES = tallies.BUCKET_MINUTES
RECENT_SCAN = 400  # the overview looks this many latest jobs back for each slot's last result


@dataclass
class SlotActivity:
    today: int = 0
    last: dict[str, Any] | None = None


async def slot_activity(db: Database, provider: str) -> dict[int, SlotActivity]:
    """Each slot's count of booth photos today and its latest job (any source) among recent ones."""
    today = start_of_today()
    counted = (
        select(JobTally.slot_number, func.sum(JobTally.jobs))
        .where(JobTally.provider == provider, JobTally.source == "booth", JobTally.bucket_start >= today)
        .group_by(JobTally.slot_number)
    )
    recent = select(Job).where(Job.provider == provider).order_by(Job.created_at.desc()).limit(RECENT_SCAN)
    async with db.read() as session:
        counts = [(n or None, int(c)) for n, c in (await session.execute(counted)).all()]
        tail, _ = await tallies.untallied(session, since=today, provider=provider, source="booth")
        jobs = (await session.scalars(recent)).all()
    counts += [(job.slot_number, 1) for job in tail]
    activity: dict[int, SlotActivity] = {}
    for number, count in counts:
        if number is not None:
            activity.setdefault(number, SlotActivity()).today += count
    for job in jobs:
        if job.slot_number is None:
            continue
        entry = activity.setdefault(job.slot_number, SlotActivity())
        if entry.last is None:
            entry.last = public_job(job)
    return activity


async def live_view(
    db: Database, tabs: list[str], hours: float = 3.0, latest: int = 24, event_id: int | None = None
) -> dict[str, Any]:
    """The live page's data: latest booth results, per-provider answer times, failure/fallback counts;
    with `event_id`, only that event's photos.

    Read from the job summaries (records/tallies.py): counts and answer-time sums by GROUP BY over the
    10-minute tallies of the window, p95 from one histogram row per provider and bucket, plus the few
    jobs not tallied yet — never the window's job rows (issue 31, class 9). The window starts at the
    10-minute boundary at or before `hours` ago."""
    now = datetime.now(UTC)
    since = tallies.bucket_of(now - timedelta(hours=hours))
    booth: tuple[Any, ...] = (JobTally.source == "booth", JobTally.bucket_start >= since)
    times_where: tuple[Any, ...] = (JobTimes.source == "booth", JobTimes.period.in_(tallies.window_periods(since, now)))
    tail_where: dict[str, Any] = {"source": "booth"}
    if event_id is not None:
        booth += (JobTally.event_id == event_id,)
        times_where += (JobTimes.event_id == event_id,)
        tail_where["event_id"] = event_id
    fell_back = JobTally.fallback_reason != ""
    grouped = (
        select(JobTally.provider, JobTally.status, fell_back, func.sum(JobTally.jobs))
        .where(*booth)
        .group_by(JobTally.provider, JobTally.status, fell_back)
    )
    sums = (
        select(JobTally.provider, JobTally.bucket_start, func.sum(JobTally.seconds_n), func.sum(JobTally.seconds_sum))
        .where(*booth, JobTally.seconds_n > 0)
        .group_by(JobTally.provider, JobTally.bucket_start)
    )
    histograms = select(JobTimes.provider, JobTimes.period, JobTimes.bins).where(*times_where)
    newest = select(Job).where(Job.source == "booth").order_by(Job.created_at.desc()).limit(latest)
    if event_id is not None:
        newest = newest.where(Job.event_id == event_id)
    async with db.read() as session:
        rows = [(p, s, bool(f), int(c)) for p, s, f, c in (await session.execute(grouped)).all()]
        time_sums = (await session.execute(sums)).all()
        stored_bins = (await session.execute(histograms)).all()
        tail, partial = await tallies.untallied(session, since=since, **tail_where)
        recent = (await session.scalars(newest)).all()
    counts = {"received": 0, "succeeded": 0, "failed": 0, "timed_out": 0, "rejected": 0, "fallbacks": 0}
    per_provider: dict[str, dict[str, int]] = {}
    for job in tail:
        rows.append((job.provider, job.status, job.fallback_reason is not None, 1))
    for provider, status, with_fallback, count in rows:
        counts["received"] += count
        if status in counts and status != "received":  # a photo still in flight counts once
            counts[status] += count
        mine = per_provider.setdefault(provider, {"received": 0, "failed": 0, "fallbacks": 0})
        mine["received"] += count
        mine["failed"] += count if status in FAILED else 0
        if with_fallback:
            counts["fallbacks"] += count
            mine["fallbacks"] += count
    # per (provider, bucket): [answers, seconds sum, histogram]
    points_of: dict[tuple[str, datetime], tuple[list[float], Counter[int]]] = {}

    def point(provider: str, bucket: datetime) -> tuple[list[float], Counter[int]]:
        return points_of.setdefault((provider, tallies.bucket_of(bucket)), ([0, 0.0], Counter()))

    for provider, bucket, n, total in time_sums:
        sums_, _ = point(provider, bucket)
        sums_[0] += int(n)
        sums_[1] += float(total)
    for provider, period, bins in stored_bins:
        tallies.merge_bins(point(provider, datetime.fromisoformat(period[1:]).replace(tzinfo=UTC))[1], bins)
    for job in tail:
        if tallies.has_time(job):
            sums_, bins_ = point(job.provider, job.created_at)
            sums_[0] += 1
            sums_[1] += job.total_seconds
            bins_[tallies.tenth_bin(job.total_seconds)] += 1
    providers_seen = {provider for provider, _ in points_of}
    series = []
    for provider in [t for t in tabs if t in providers_seen] + sorted(providers_seen - set(tabs)):
        points = []
        for (name, bucket), ((answers, seconds), bins_) in sorted(points_of.items()):
            if name != provider or not answers:
                continue
            middle = bucket + timedelta(minutes=BUCKET_MINUTES / 2)
            points.append({"at": middle.isoformat(), "avg_seconds": round(seconds / answers, 3),
                           "p95_seconds": tallies.bins_quantile(bins_, 0.95), "count": int(answers)})  # fmt: skip
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
        # More jobs wait for the roll-up than one refresh reads: the counts are short by the rest for now.
        "partial": partial,
    }
