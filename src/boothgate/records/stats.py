"""Statistics: per provider and per slot, today and all time, from the job summaries (records/tallies.py).

Only booth posts count in the providers and slots (the admin's Try it runs are jobs too, but not guests'
photos); the client API's jobs count under their key's name in `clients`.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from boothgate.records import operator_spend, tallies
from boothgate.storage.db import Database
from boothgate.storage.models import ApiKey, JobTally, JobTimes

# "moderated": the content check caught the photo or the result (the booth got the mask or 422).
STATUSES = ("succeeded", "failed", "timed_out", "rejected", "moderated")


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (p95 of 20 values is the 19th smallest)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class _Bucket:
    """The figures of one provider, slot or client over one period, added from summary rows and jobs."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(("received", *STATUSES), 0)
        self.seconds_n = 0
        self.seconds_sum = 0.0
        self.bins: Counter[int] = Counter()  # answer times in tenths of a second (records/tallies.py)
        self.cost = 0.0
        self.served_by_fallback = 0  # answers another slot (the fallback) produced for this one
        # Of those (or of the guest's own photo): the slot's AI result reached the guest's page later.
        self.delivered_late = 0
        self.deleted_by_guest = 0

    def add(self, status: str, jobs: int, by_fallback: bool, figures: _Figures) -> None:
        self.counts["received"] += jobs
        self.served_by_fallback += jobs if status == "succeeded" and by_fallback else 0
        self.delivered_late += figures.late
        self.deleted_by_guest += figures.deleted
        if status in self.counts:
            self.counts[status] += jobs
        self.seconds_n += figures.seconds_n
        self.seconds_sum += figures.seconds_sum
        self.cost += figures.cost

    def public(self) -> dict[str, Any]:
        average = self.seconds_sum / self.seconds_n if self.seconds_n else None
        p95 = tallies.bins_quantile(self.bins, 0.95)
        return {
            **self.counts,
            "in_progress": self.counts["received"] - sum(self.counts[s] for s in STATUSES),
            "avg_seconds": round(average, 3) if average is not None else None,
            "p95_seconds": p95,
            "cost_usd": round(self.cost, 4),
            "served_by_fallback": self.served_by_fallback,
            "delivered_late": self.delivered_late,
            "deleted_by_guest": self.deleted_by_guest,
        }


@dataclass
class _Figures:
    seconds_n: int = 0
    seconds_sum: float = 0.0
    cost: float = 0.0
    late: int = 0
    deleted: int = 0


def _of_job(job: Any) -> _Figures:
    timed = tallies.has_time(job)
    return _Figures(int(timed), job.total_seconds if timed else 0.0, job.cost_usd or 0.0,
                    int(tallies.is_delivered_late(job.late)), int(job.deleted_at is not None))  # fmt: skip


_SUMS = (
    func.sum(JobTally.jobs),
    func.sum(JobTally.seconds_n),
    func.sum(JobTally.seconds_sum),
    func.sum(JobTally.cost_usd),
    func.sum(JobTally.delivered_late),
    func.sum(JobTally.deleted_by_guest),
)


def _split(row: Any, keys: int) -> tuple[tuple[Any, ...], int, _Figures]:
    """A GROUP BY row: its keys, its job count and the rest of its sums."""
    jobs, n, total, cost, late, deleted = row[keys:]
    return tuple(row[:keys]), int(jobs), _Figures(int(n), float(total), float(cost), int(late), int(deleted))


def start_of_today() -> datetime:
    """Midnight in the server's local time zone: an event's "today" is the venue's day."""
    now = datetime.now().astimezone()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


async def compute(db: Database, tabs: list[str]) -> dict[str, Any]:
    """Per provider and slot, today and all time: SQL sums over the job summaries (a few rows per slot),
    the p95 from each slot's two histogram rows, plus the jobs not tallied yet (issue 31, class 9)."""
    today = start_of_today()
    is_today = JobTally.bucket_start >= today
    dims = (JobTally.provider, JobTally.slot_number, JobTally.status, JobTally.served_by, is_today)
    grouped = select(*dims, *_SUMS).where(JobTally.source == "booth").group_by(*dims)
    periods = (tallies.day_period(today), "all")
    histograms = select(JobTimes.provider, JobTimes.slot_number, JobTimes.period, JobTimes.bins).where(
        JobTimes.source == "booth", JobTimes.period.in_(periods)
    )
    async with db.read() as session:
        rows = (await session.execute(grouped)).all()
        stored_bins = (await session.execute(histograms)).all()
        tail, partial = await tallies.untallied(session, source="booth")
    # Adding up a festival's histograms is ~50 ms of Python: in a thread, so the loop keeps answering.
    providers, slots = await asyncio.to_thread(_add_up, tabs, today, rows, stored_bins, tail)
    return {
        "generated_at": datetime.now().astimezone().isoformat(),
        "clients": await _clients(db, today),
        # The operator's own paid calls (references made from a prompt): costs, never photos (issue 28).
        "operator_spend": await operator_spend.totals(db, today, tabs),
        "providers": {name: {k: b.public() for k, b in periods.items()} for name, periods in providers.items()},
        "slots": [
            {"provider": p, "number": n, **{k: b.public() for k, b in periods.items()}}
            for (p, n), periods in sorted(slots.items())
        ],
        "partial": partial,
    }


def _add_up(
    tabs: list[str], today: datetime, rows: Sequence[Any], stored_bins: Sequence[Any], tail: Sequence[Any]
) -> tuple[dict[str, dict[str, _Bucket]], dict[tuple[str, int], dict[str, _Bucket]]]:
    """`compute`'s sums per provider and slot from the summaries' rows, their histograms and the tail."""
    providers: dict[str, dict[str, _Bucket]] = {t: {"today": _Bucket(), "all_time": _Bucket()} for t in tabs}
    slots: dict[tuple[str, int], dict[str, _Bucket]] = defaultdict(lambda: {"today": _Bucket(), "all_time": _Bucket()})

    def targets(provider: str, number: int | None) -> list[dict[str, _Bucket]]:
        if provider not in providers:
            return []
        return [providers[provider], *([slots[(provider, number)]] if number else [])]

    def add(provider: str, number: int | None, status: str, served_by: str | None, today_: bool,
            jobs: int, figures: _Figures) -> None:  # fmt: skip
        by_fallback = bool(served_by) and served_by != f"{provider}/{number}"
        for target in targets(provider, number):
            target["all_time"].add(status, jobs, by_fallback, figures)
            if today_:
                target["today"].add(status, jobs, by_fallback, figures)

    for row in rows:
        (provider, number, status, served_by, today_), jobs, figures = _split(row, 5)
        add(provider, number or None, status, served_by, bool(today_), jobs, figures)
    for job in tail:
        add(job.provider, job.slot_number, job.status, job.served_by, _aware(job.created_at) >= today, 1, _of_job(job))
        if tallies.has_time(job):
            for target in targets(job.provider, job.slot_number):
                for period in ("all_time", "today") if _aware(job.created_at) >= today else ("all_time",):
                    target[period].bins[tallies.tenth_bin(job.total_seconds)] += 1
    for provider, number, period, bins in stored_bins:
        for target in targets(provider, number or None):
            tallies.merge_bins(target["all_time" if period == "all" else "today"].bins, bins)
    return providers, slots


async def _clients(db: Database, today: datetime) -> dict[str, Any]:
    """The client API's jobs by key name (a key's id when the key is gone)."""
    is_today = JobTally.bucket_start >= today
    dims = (JobTally.api_key_id, JobTally.status, is_today)
    grouped = select(*dims, *_SUMS).where(JobTally.source == "api").group_by(*dims)
    histograms = select(JobTimes.api_key_id, JobTimes.period, JobTimes.bins).where(
        JobTimes.source == "api", JobTimes.period.in_((tallies.day_period(today), "all"))
    )
    async with db.read() as session:
        rows = (await session.execute(grouped)).all()
        stored_bins = (await session.execute(histograms)).all()
        tail, _ = await tallies.untallied(session, source="api")
        names = {k: n for k, n in (await session.execute(select(ApiKey.id, ApiKey.name))).all()}
    clients: dict[str, dict[str, _Bucket]] = defaultdict(lambda: {"today": _Bucket(), "all_time": _Bucket()})

    def target(key_id: str | None) -> dict[str, _Bucket]:
        return clients[names.get(key_id or "", key_id or "unknown")]

    for row in rows:
        (key_id, status, today_), jobs, figures = _split(row, 3)
        target(key_id)["all_time"].add(status, jobs, False, figures)
        if today_:
            target(key_id)["today"].add(status, jobs, False, figures)
    for job in tail:
        figures, mine, recent = _of_job(job), target(job.api_key_id), _aware(job.created_at) >= today
        for period in ("all_time", "today") if recent else ("all_time",):
            mine[period].add(job.status, 1, False, figures)
            if tallies.has_time(job):
                mine[period].bins[tallies.tenth_bin(job.total_seconds)] += 1
    for key_id, period, bins in stored_bins:
        tallies.merge_bins(target(key_id)["all_time" if period == "all" else "today"].bins, bins)
    return {name: {k: b.public() for k, b in periods.items()} for name, periods in sorted(clients.items())}


_aware = tallies.aware


FAILED = ("failed", "timed_out", "rejected")


async def for_event(db: Database, event_id: int) -> dict[str, Any]:
    """One event's statistics: what a day shows (received, succeeded, failed by reason, fallbacks,
    p50/p95, cost per provider, moderation), per slot, plus photos per hour. Booth posts only; from the
    event's summary rows and its jobs not tallied yet."""
    mine = (JobTally.source == "booth", JobTally.event_id == event_id)
    dims = (JobTally.provider, JobTally.slot_number, JobTally.status, JobTally.served_by, JobTally.error_code,
            JobTally.fallback_reason)  # fmt: skip
    grouped = select(*dims, *_SUMS).where(*mine).group_by(*dims)
    hourly = select(JobTally.bucket_start, func.sum(JobTally.jobs)).where(*mine).group_by(JobTally.bucket_start)
    histograms = select(JobTimes.provider, JobTimes.slot_number, JobTimes.bins).where(
        JobTimes.source == "booth", JobTimes.period == "e", JobTimes.event_id == event_id
    )
    async with db.read() as session:
        rows = (await session.execute(grouped)).all()
        buckets = (await session.execute(hourly)).all()
        stored_bins = (await session.execute(histograms)).all()
        tail, partial = await tallies.untallied(session, source="booth", event_id=event_id)
    total = _Bucket()
    slots: dict[tuple[str, int], _Bucket] = defaultdict(_Bucket)
    cost_by_provider: dict[str, float] = defaultdict(float)
    failed_by_reason: dict[str, int] = defaultdict(int)
    fallback_reasons: dict[str, int] = defaultdict(int)
    per_hour: dict[str, int] = defaultdict(int)
    parts = [_split(row, 6) for row in rows]
    parts += [((j.provider, j.slot_number, j.status, j.served_by, j.error_code, j.fallback_reason), 1, _of_job(j))
              for j in tail]  # fmt: skip
    for (provider, number, status, served_by, error_code, reason), jobs, figures in parts:
        number = number or None
        by_fallback = bool(served_by) and served_by != f"{provider}/{number}"
        total.add(status, jobs, by_fallback, figures)
        if number is not None:
            slots[(provider, number)].add(status, jobs, by_fallback, figures)
        serving = (served_by or provider).split("/")[0]
        cost_by_provider[serving] += figures.cost
        if status in FAILED:
            failed_by_reason[error_code or status] += jobs
        if reason:
            fallback_reasons[reason] += jobs
    hours = [(bucket, int(count)) for bucket, count in buckets] + [(job.created_at, 1) for job in tail]
    for moment, count in hours:
        hour = _aware(moment).astimezone().replace(minute=0, second=0, microsecond=0)
        per_hour[hour.isoformat()] += count
    for provider, number, bins in stored_bins:
        tallies.merge_bins(total.bins, bins)
        if number:
            tallies.merge_bins(slots[(provider, number)].bins, bins)
    for job in tail:
        if tallies.has_time(job):
            index = tallies.tenth_bin(job.total_seconds)
            total.bins[index] += 1
            if job.slot_number is not None:
                slots[(job.provider, job.slot_number)].bins[index] += 1
    summary = total.public()
    return {
        "generated_at": datetime.now().astimezone().isoformat(),
        **summary,
        "failed": sum(summary[s] for s in FAILED),
        "failed_by_status": {s: summary[s] for s in FAILED},
        "failed_by_reason": dict(sorted(failed_by_reason.items())),
        "fallback_reasons": dict(sorted(fallback_reasons.items())),
        "p50_seconds": tallies.bins_quantile(total.bins, 0.5),
        "cost_usd_by_provider": {k: round(v, 4) for k, v in sorted(cost_by_provider.items())},
        "moderation": {"moderated": summary["moderated"]},
        "photos_per_hour": [{"hour": hour, "count": count} for hour, count in sorted(per_hour.items())],
        "by_slot": [
            {"slot": f"{p}/{n}", "provider": p, "number": n, **bucket.public()}
            for (p, n), bucket in sorted(slots.items())
        ],
        "partial": partial,
    }
