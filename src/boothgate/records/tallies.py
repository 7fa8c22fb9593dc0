"""Job summaries (issue 31, class 9): what the live view and the statistics read instead of every job row.

Once a job has its final status, a background roll-up adds it to two summary tables and marks the row
`tallied` (in the same transaction, so a job is counted once):

- `job_tallies`: per 10-minute bucket and every dimension the pages group by (source, provider, slot,
  event, API key, status, error code, fallback reason, who served it): jobs, answer-time sum, cost, late
  deliveries, guests' deletions. The pages aggregate these rows in SQL (GROUP BY), a few dozen come back.
- `job_times`: answer times of succeeded jobs as a histogram in tenths of a second, kept per period the
  pages need (each 10-minute bucket per provider and event, each local day and all time per slot, each
  event per slot), so a p95 reads one small row per slot instead of every answer time.

A request also reads the jobs not tallied yet (the tail: photos in flight and those finished since the last
roll-up) through a partial index, at most `TAIL_ROWS` of them. What changes on a tallied job later (a late
result delivered, a guest's deletion) is added to its tally by `amend` in the caller's transaction.
Percentiles from the histogram are the nearest-rank value rounded *up* to the next tenth of a second.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, Select, column, select, table, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from boothgate.storage.db import Database
from boothgate.storage.models import TALLY_KEY, TIMES_KEY, Job, JobTally, JobTimes

log = logging.getLogger(__name__)

BUCKET_MINUTES = 10
OPEN_STATUSES = ("received", "running", "queued")
ROLLUP_BATCH = 2000  # jobs per roll-up transaction: a short write, the event loop keeps turning
ROLLUP_INTERVAL_SECONDS = 5.0
TAIL_ROWS = 20_000  # the most untallied job rows one request reads (the rest waits for the roll-up)
_ADVISORY_LOCK = 310009  # PostgreSQL: one node rolls up at a time

# `jobs.tallied` is not mapped on Job (a whole-row save must not reset it): Core handles for it.
TALLIED = column("tallied", Boolean)
_JOBS = table("jobs", column("id"), column("tallied", Boolean))

JOB_COLUMNS = (
    Job.id,
    Job.created_at,
    Job.source,
    Job.provider,
    Job.slot_number,
    Job.event_id,
    Job.api_key_id,
    Job.status,
    Job.error_code,
    Job.fallback_reason,
    Job.served_by,
    Job.total_seconds,
    Job.cost_usd,
    Job.late,
    Job.deleted_at,
)


def aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def bucket_of(moment: datetime) -> datetime:
    """The start of the 10-minute bucket (UTC, from the epoch) a moment falls in."""
    moment = aware(moment).astimezone(UTC)
    return moment.replace(minute=moment.minute - moment.minute % BUCKET_MINUTES, second=0, microsecond=0)


def minute_period(bucket: datetime) -> str:
    return "m" + bucket.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def day_period(moment: datetime) -> str:
    """The local day (the venue's day, as "today" in the statistics) of a moment."""
    return "d" + aware(moment).astimezone().strftime("%Y-%m-%d")


def tenth_bin(seconds: float) -> int:
    """The histogram bin of an answer time: (b-1)/10 < seconds <= b/10 (rounded first: 12.3 is bin 123)."""
    return max(0, math.ceil(round(seconds * 10, 6)))


def bins_quantile(bins: Counter[int], fraction: float) -> float | None:
    """Nearest-rank percentile over a histogram, as the upper edge of its bin."""
    total = sum(bins.values())
    if not total:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for index in sorted(bins):
        seen += bins[index]
        if seen >= rank:
            return index / 10
    return None  # unreachable: the ranks add up to the total


def merge_bins(into: Counter[int], stored: dict[str, Any] | None) -> None:
    """Add a stored histogram (JSON: tenth of a second as a string → count) into `into`."""
    get = into.get  # plain dict reads: Counter's `+=` goes through __missing__ for every new bin
    for key, count in (stored or {}).items():
        index = int(key)
        into[index] = get(index, 0) + int(count)


def is_delivered_late(late: dict[str, Any] | None) -> bool:
    return (late or {}).get("status") == "delivered"


def tally_key(row: Any) -> tuple[Any, ...]:
    """A job's tally dimensions (see TALLY_KEY), "None" stored as 0 / ""."""
    return (
        bucket_of(row.created_at),
        row.source,
        row.provider,
        row.slot_number or 0,
        row.event_id or 0,
        row.api_key_id or "",
        row.status,
        row.error_code or "",
        row.fallback_reason or "",
        row.served_by or "",
    )


def times_keys(row: Any) -> list[tuple[Any, ...]]:
    """The histogram rows (see TIMES_KEY) a succeeded job's answer time goes into."""
    slot, event, key = row.slot_number or 0, row.event_id or 0, row.api_key_id or ""
    keys = [
        (minute_period(bucket_of(row.created_at)), row.source, row.provider, 0, event, ""),
        (day_period(row.created_at), row.source, row.provider, slot, 0, key),
        ("all", row.source, row.provider, slot, 0, key),
    ]
    if event:
        keys.append(("e", row.source, row.provider, slot, event, ""))
    return keys


def has_time(row: Any) -> bool:
    return row.status == "succeeded" and row.total_seconds is not None


async def untallied(
    session: AsyncSession, *, since: datetime | None = None, limit: int = TAIL_ROWS, **equal: Any
) -> tuple[Sequence[Any], bool]:
    """The jobs not in the summaries yet (at most `limit`; True when there were more), created at or after
    `since`, whose columns named in `equal` hold those values (`source="booth"`, `event_id=3`)."""
    rows = (await session.execute(untallied_query(since=since, limit=limit + 1, **equal))).all()
    return rows[:limit], len(rows) > limit


def untallied_query(*, since: datetime | None = None, limit: int, **equal: Any) -> Select[Any]:
    """The query behind `untallied`. The filter's columns are compared as expressions (`source || ''`,
    `event_id + 0`), so no index on them competes with the partial index `ix_jobs_untallied`: SQLite
    otherwise walks every job of the source by `(source, created_at)` to find the few untallied ones
    (100 ms at 100,000 jobs, against 0.3 ms; `bench.live_view`)."""
    where: list[Any] = [TALLIED.is_(None)]
    if since is not None:
        where.append(Job.created_at >= since)
    for name, value in equal.items():
        column = getattr(Job, name)
        where.append((column + 0 if isinstance(value, int) else column.concat("")) == value)
    return select(*JOB_COLUMNS).where(*where).order_by(Job.created_at.desc()).limit(limit)


async def rollup(db: Database, batch: int = ROLLUP_BATCH) -> int:
    """Add one batch of finished, untallied jobs to the summaries; how many were added."""
    async with db.write() as session:
        if not db.is_sqlite:
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        query = (
            select(*JOB_COLUMNS)
            .where(TALLIED.is_(None), Job.status.not_in(OPEN_STATUSES))
            .order_by(Job.created_at)
            .limit(batch)
        )
        if not db.is_sqlite:
            query = query.with_for_update(of=Job)
        rows = (await session.execute(query)).all()
        if not rows:
            return 0
        await _add(session, rows)
        ids = [row.id for row in rows]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            await session.execute(update(_JOBS).where(_JOBS.c.id.in_(chunk)).values(tallied=True))
    return len(rows)


_ZERO = {"jobs": 0, "seconds_n": 0, "seconds_sum": 0.0, "cost_usd": 0.0, "delivered_late": 0, "deleted_by_guest": 0}


async def _add(session: AsyncSession, rows: Iterable[Any]) -> None:
    counts: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0, 0])
    times: dict[tuple[Any, ...], Counter[int]] = defaultdict(Counter)
    for row in rows:
        entry = counts[tally_key(row)]
        entry[0] += 1
        if has_time(row):
            entry[1] += 1
            entry[2] += row.total_seconds
            for key in times_keys(row):
                times[key][tenth_bin(row.total_seconds)] += 1
        entry[3] += row.cost_usd or 0.0
        entry[4] += is_delivered_late(row.late)
        entry[5] += row.deleted_at is not None
    existing = await _existing(session, JobTally, TALLY_KEY, list(counts))
    for key, (jobs, n, total, cost, late, deleted) in counts.items():
        tally = existing.get(key) or JobTally(**dict(zip(TALLY_KEY, key, strict=True)), **_ZERO)
        tally.jobs += int(jobs)
        tally.seconds_n += int(n)
        tally.seconds_sum += total
        tally.cost_usd += cost
        tally.delivered_late += int(late)
        tally.deleted_by_guest += int(deleted)
        session.add(tally)
    stored = await _existing(session, JobTimes, TIMES_KEY, list(times))
    for key, added in times.items():
        row = stored.get(key) or JobTimes(**dict(zip(TIMES_KEY, key, strict=True)), bins={})
        merged: Counter[int] = Counter()
        merge_bins(merged, row.bins)
        merged.update(added)
        row.bins = {str(index): count for index, count in sorted(merged.items())}
        session.add(row)


async def _existing(session: AsyncSession, model: Any, names: Sequence[str], keys: list[tuple[Any, ...]]) -> dict:
    """The stored summary rows of these keys, by key (looked up in chunks by their first dimension)."""
    found: dict[tuple[Any, ...], Any] = {}
    firsts = sorted({key[0] for key in keys})
    first = getattr(model, names[0])
    wanted = set(keys)
    for start in range(0, len(firsts), 200):
        query = select(model).where(first.in_(firsts[start : start + 200]))
        for row in (await session.scalars(query.with_for_update())).all():
            key = tuple(_normal(getattr(row, name)) for name in names)
            if key in wanted:
                found[key] = row
    return found


def _normal(value: Any) -> Any:
    return bucket_of(value) if isinstance(value, datetime) else value


async def amend(
    session: AsyncSession, job: Job, *, delivered_late: int = 0, deleted: int = 0, cost: float = 0.0
) -> None:
    """A tallied job changed after its answer (a late result, a guest's deletion): its tally follows, in the
    caller's transaction. An untallied job needs nothing: the roll-up reads the row as it is then."""
    lock = select(_JOBS.c.tallied).where(_JOBS.c.id == job.id)
    if not (await session.execute(lock.with_for_update())).scalar():
        return
    found = await _existing(session, JobTally, TALLY_KEY, [tally_key(job)])
    tally = found.get(tally_key(job))
    if tally is None:  # cannot happen while the roll-up and this share the row's lock; never fail the caller
        log.warning("job=%s is tallied but its tally row is missing", job.id)
        return
    tally.delivered_late += delivered_late
    tally.deleted_by_guest += deleted
    tally.cost_usd += cost


async def run_forever(db: Database, interval: float = ROLLUP_INTERVAL_SECONDS) -> None:
    """Roll up every few seconds; a backlog (the first start after the upgrade) in back-to-back batches."""
    while True:
        try:
            added = await rollup(db)
        except asyncio.CancelledError:
            raise
        except Exception:  # a busy or full database: the next round tries again, the tail still counts
            log.warning("the job summaries could not be brought up to date; trying again", exc_info=True)
            added = 0
        await asyncio.sleep(0 if added >= ROLLUP_BATCH else interval)


def window_periods(start: datetime, end: datetime) -> list[str]:
    """The live chart's minute periods from the bucket of `start` to that of `end`."""
    periods, bucket = [], bucket_of(start)
    while bucket <= end:
        periods.append(minute_period(bucket))
        bucket += timedelta(minutes=BUCKET_MINUTES)
    return periods
