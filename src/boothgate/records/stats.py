"""Statistics: per provider and per slot, today and all time, computed from the job table.

Only booth posts count in the providers and slots (the admin's Try it runs are jobs too, but not guests'
photos); the client API's jobs count under their key's name in `clients`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from boothgate.records import operator_spend
from boothgate.storage.db import Database
from boothgate.storage.models import ApiKey, Job

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
    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(("received", *STATUSES), 0)
        self.seconds: list[float] = []
        self.cost = 0.0
        self.served_by_fallback = 0  # answers another slot (the fallback) produced for this one
        # Of those (or of the guest's own photo): the slot's AI result reached the guest's page later.
        self.delivered_late = 0
        self.deleted_by_guest = 0

    def add(
        self,
        status: str,
        seconds: float | None,
        cost: float | None,
        by_fallback: bool = False,
        late: bool = False,
        deleted: bool = False,
    ) -> None:
        self.counts["received"] += 1
        self.served_by_fallback += status == "succeeded" and by_fallback
        self.delivered_late += late
        self.deleted_by_guest += deleted
        if status in self.counts:
            self.counts[status] += 1
        if status == "succeeded" and seconds is not None:
            self.seconds.append(seconds)
        self.cost += cost or 0.0

    def public(self) -> dict[str, Any]:
        average = sum(self.seconds) / len(self.seconds) if self.seconds else None
        p95 = percentile(self.seconds, 0.95)
        return {
            **self.counts,
            "in_progress": self.counts["received"] - sum(self.counts[s] for s in STATUSES),
            "avg_seconds": round(average, 3) if average is not None else None,
            "p95_seconds": round(p95, 3) if p95 is not None else None,
            "cost_usd": round(self.cost, 4),
            "served_by_fallback": self.served_by_fallback,
            "delivered_late": self.delivered_late,
            "deleted_by_guest": self.deleted_by_guest,
        }


def start_of_today() -> datetime:
    """Midnight in the server's local time zone: an event's "today" is the venue's day."""
    now = datetime.now().astimezone()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


async def compute(db: Database, tabs: list[str]) -> dict[str, Any]:
    query = select(
        Job.provider,
        Job.slot_number,
        Job.status,
        Job.total_seconds,
        Job.cost_usd,
        Job.created_at,
        Job.served_by,
        Job.late,
        Job.deleted_at,
    ).where(Job.source == "booth")
    async with db.read() as session:
        rows = (await session.execute(query)).all()
    today = start_of_today()
    providers: dict[str, dict[str, _Bucket]] = {t: {"today": _Bucket(), "all_time": _Bucket()} for t in tabs}
    slots: dict[tuple[str, int], dict[str, _Bucket]] = defaultdict(lambda: {"today": _Bucket(), "all_time": _Bucket()})
    for provider, number, status, seconds, cost, created_at, served_by, late, deleted_at in rows:
        if provider not in providers:
            continue
        by_fallback = served_by is not None and served_by != f"{provider}/{number}"
        extra = {"late": (late or {}).get("status") == "delivered", "deleted": deleted_at is not None}
        is_today = _aware(created_at) >= today
        targets = [providers[provider]]
        if number is not None:
            targets.append(slots[(provider, number)])
        for target in targets:
            target["all_time"].add(status, seconds, cost, by_fallback, **extra)
            if is_today:
                target["today"].add(status, seconds, cost, by_fallback, **extra)
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
    }


async def _clients(db: Database, today: datetime) -> dict[str, Any]:
    """The client API's jobs by key name (a key's id when the key is gone)."""
    query = select(Job.api_key_id, Job.status, Job.total_seconds, Job.cost_usd, Job.created_at).where(
        Job.source == "api"
    )
    async with db.read() as session:
        rows = (await session.execute(query)).all()
        names = {k: n for k, n in (await session.execute(select(ApiKey.id, ApiKey.name))).all()}
    clients: dict[str, dict[str, _Bucket]] = defaultdict(lambda: {"today": _Bucket(), "all_time": _Bucket()})
    for key_id, status, seconds, cost, created_at in rows:
        target = clients[names.get(key_id or "", key_id or "unknown")]
        target["all_time"].add(status, seconds, cost)
        if _aware(created_at) >= today:
            target["today"].add(status, seconds, cost)
    return {name: {k: b.public() for k, b in periods.items()} for name, periods in sorted(clients.items())}


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored as UTC.

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


FAILED = ("failed", "timed_out", "rejected")


async def for_event(db: Database, event_id: int) -> dict[str, Any]:
    """One event's statistics: what a day shows (received, succeeded, failed by reason, fallbacks,
    p50/p95, cost per provider, moderation), per slot, plus photos per hour. Booth posts only."""
    query = select(
        Job.provider,
        Job.slot_number,
        Job.status,
        Job.total_seconds,
        Job.cost_usd,
        Job.created_at,
        Job.served_by,
        Job.error_code,
        Job.fallback_reason,
    ).where(Job.source == "booth", Job.event_id == event_id)
    async with db.read() as session:
        rows = (await session.execute(query)).all()
    total = _Bucket()
    slots: dict[tuple[str, int], _Bucket] = defaultdict(_Bucket)
    cost_by_provider: dict[str, float] = defaultdict(float)
    failed_by_reason: dict[str, int] = defaultdict(int)
    fallback_reasons: dict[str, int] = defaultdict(int)
    per_hour: dict[str, int] = defaultdict(int)
    for provider, number, status, seconds, cost, created_at, served_by, error_code, reason in rows:
        by_fallback = served_by is not None and served_by != f"{provider}/{number}"
        total.add(status, seconds, cost, by_fallback)
        if number is not None:
            slots[(provider, number)].add(status, seconds, cost, by_fallback)
        serving = (served_by or provider).split("/")[0]
        cost_by_provider[serving] += cost or 0.0
        if status in FAILED:
            failed_by_reason[error_code or status] += 1
        if reason:
            fallback_reasons[reason] += 1
        hour = _aware(created_at).astimezone().replace(minute=0, second=0, microsecond=0)
        per_hour[hour.isoformat()] += 1
    summary = total.public()
    p50 = percentile(total.seconds, 0.5)
    return {
        "generated_at": datetime.now().astimezone().isoformat(),
        **summary,
        "failed": sum(summary[s] for s in FAILED),
        "failed_by_status": {s: summary[s] for s in FAILED},
        "failed_by_reason": dict(sorted(failed_by_reason.items())),
        "fallback_reasons": dict(sorted(fallback_reasons.items())),
        "p50_seconds": round(p50, 3) if p50 is not None else None,
        "cost_usd_by_provider": {k: round(v, 4) for k, v in sorted(cost_by_provider.items())},
        "moderation": {"moderated": summary["moderated"]},
        "photos_per_hour": [{"hour": hour, "count": count} for hour, count in sorted(per_hour.items())],
        "by_slot": [
            {"slot": f"{p}/{n}", "provider": p, "number": n, **bucket.public()}
            for (p, n), bucket in sorted(slots.items())
        ],
    }
