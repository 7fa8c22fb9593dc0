"""The job summaries (records/tallies.py) answer what a scan of every job row answers (issue 31, class 9).

A few thousand random jobs (sources, slots, events, API keys, statuses, fallbacks, costs, late results,
deletions, over several days), part of them rolled up and part still in the tail, some changed after the
roll-up through the paths the server uses; then the statistics, an event's statistics and the live view are
compared with a straightforward scan of the same rows. Percentiles are compared at the summaries' stated
precision: the nearest-rank value rounded up to the next tenth of a second. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from boothgate.records import stats, tallies
from boothgate.records.live import live_view
from boothgate.records.stats import STATUSES, percentile, start_of_today
from boothgate.storage.db import Database
from boothgate.storage.models import ApiKey, Job, utcnow

TABS = ["gemini", "openai", "local"]


def _random_jobs(rng: random.Random, count: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    jobs = []
    for i in range(count):
        provider = rng.choice(TABS)
        slot = rng.choice([1, 2, 3, None])
        status = rng.choices([*STATUSES, "received", "running"], [70, 8, 4, 4, 3, 6, 5])[0]
        served = rng.choice([None, None, f"{provider}/{slot}", "local/1"])
        late = rng.choice([None, None, {"status": "delivered"}, {"status": "running"}])
        # most in the live window, the rest over the last days (and "today" either side of midnight)
        ago = timedelta(minutes=rng.uniform(0, 170)) if rng.random() < 0.6 else timedelta(hours=rng.uniform(0, 96))
        jobs.append(
            {
                "id": f"t{i:031d}",
                "created_at": now - ago,
                "provider": provider,
                "slot_number": slot,
                "source": rng.choices(["booth", "api", "try"], [80, 15, 5])[0],
                "status": status,
                "error_code": rng.choice(["provider_error", "deadline", None]) if status != "succeeded" else None,
                "fallback_reason": rng.choice([None, None, None, "slow", "provider_error"]),
                "served_by": served,
                "total_seconds": round(rng.uniform(0.5, 45), 4) if rng.random() < 0.95 else None,
                "cost_usd": rng.choice([None, 0.0, 0.039, 0.25]),
                "late": late,
                "deleted_at": now if rng.random() < 0.05 else None,
                "event_id": rng.choice([None, 1, 2]),
                "api_key_id": rng.choice(["k1", "k2", None]),
                "timings": {},
                "meta": {},
                "provider_notes": {},
            }
        )
    return jobs


def _tenth(value: float | None) -> float | None:
    return None if value is None else tallies.tenth_bin(value) / 10


class _Scan:
    """The reference: every figure from every row, as the statistics computed it before the summaries."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(("received", *STATUSES), 0)
        self.seconds: list[float] = []
        self.cost = 0.0
        self.fallback = self.late = self.deleted = 0

    def add(self, job: Job, by_fallback: bool = False) -> None:
        self.counts["received"] += 1
        if job.status in self.counts:
            self.counts[job.status] += 1
        if job.status == "succeeded" and job.total_seconds is not None:
            self.seconds.append(job.total_seconds)
        self.cost += job.cost_usd or 0.0
        self.fallback += job.status == "succeeded" and by_fallback
        self.late += (job.late or {}).get("status") == "delivered"
        self.deleted += job.deleted_at is not None

    def check(self, got: dict[str, Any]) -> None:
        assert {k: got[k] for k in self.counts} == self.counts
        assert got["in_progress"] == self.counts["received"] - sum(self.counts[s] for s in STATUSES)
        assert got["cost_usd"] == pytest.approx(round(self.cost, 4), abs=1e-4)
        average = sum(self.seconds) / len(self.seconds) if self.seconds else None
        assert got["avg_seconds"] == (pytest.approx(average, abs=1e-3) if average is not None else None)
        assert got["p95_seconds"] == _tenth(percentile(self.seconds, 0.95))
        assert (got["served_by_fallback"], got["delivered_late"], got["deleted_by_guest"]) == (
            self.fallback,
            self.late,
            self.deleted,
        )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _fill_and_roll_up(db: Database) -> None:
    rng = random.Random(9031)
    first, second = _random_jobs(rng, 2500), _random_jobs(random.Random(31), 700)
    for job in second:
        job["id"] = "u" + job["id"][1:]
    async with db.write() as session:
        key = {"id": "k1", "name": "kiosk", "prefix": "bg_k1", "key_hash": "1" * 64, "created_at": utcnow()}
        await session.execute(insert(ApiKey), [key])
        await session.execute(insert(Job), first)
    while await tallies.rollup(db, batch=600):  # several batches, as the server's loop does
        pass
    # after the roll-up: a late result delivered and guests' deletions, through the summaries' amend
    async with db.write() as session:
        changed = (await session.scalars(select(Job).where(Job.status == "succeeded").limit(40))).all()
        for i, job in enumerate(changed):
            if i % 2 and job.deleted_at is None:
                job.deleted_at = utcnow()
                await tallies.amend(session, job, deleted=1)
            elif (job.late or {}).get("status") != "delivered":
                job.late = {"status": "delivered"}
                job.cost_usd = (job.cost_usd or 0.0) + 0.5
                await tallies.amend(session, job, delivered_late=1, cost=0.5)
        await session.execute(insert(Job), second)  # the tail: not rolled up yet


async def _check_everything(db: Database) -> None:
    await _fill_and_roll_up(db)
    async with db.read() as session:
        jobs = (await session.scalars(select(Job))).all()
    today = start_of_today()
    got = await stats.compute(db, TABS)
    expected: dict[tuple[str, Any], dict[str, _Scan]] = defaultdict(lambda: {"today": _Scan(), "all_time": _Scan()})
    clients: dict[str, dict[str, _Scan]] = defaultdict(lambda: {"today": _Scan(), "all_time": _Scan()})
    event: dict[Any, _Scan] = defaultdict(_Scan)
    per_hour: dict[str, int] = defaultdict(int)
    for job in jobs:
        periods = ("all_time", "today") if _aware(job.created_at) >= today else ("all_time",)
        if job.source == "api":
            for period in periods:
                clients["kiosk" if job.api_key_id == "k1" else job.api_key_id or "unknown"][period].add(job)
        if job.source != "booth":
            continue
        by_fallback = job.served_by is not None and job.served_by != f"{job.provider}/{job.slot_number}"
        for key in [(job.provider, None)] + ([(job.provider, job.slot_number)] if job.slot_number else []):
            for period in periods:
                expected[key][period].add(job, by_fallback)
        if job.event_id == 1:
            event["total"].add(job, by_fallback)
            if job.slot_number:
                event[(job.provider, job.slot_number)].add(job, by_fallback)
            hour = _aware(job.created_at).astimezone().replace(minute=0, second=0, microsecond=0)
            per_hour[hour.isoformat()] += 1
    for provider in TABS:
        for period in ("today", "all_time"):
            expected[(provider, None)][period].check(got["providers"][provider][period])
    assert len(got["slots"]) == len([k for k in expected if k[1] is not None])
    for row in got["slots"]:
        for period in ("today", "all_time"):
            expected[(row["provider"], row["number"])][period].check(row[period])
    assert set(got["clients"]) == set(clients)
    for name, periods in clients.items():
        for period, scan in periods.items():
            scan.check(got["clients"][name][period])

    one = await stats.for_event(db, 1)
    # an event's "failed" is every failure; the status of that name is in failed_by_status
    event["total"].check({**one, "failed": one["failed_by_status"]["failed"]})
    assert one["failed"] == sum(event["total"].counts[s] for s in ("failed", "timed_out", "rejected"))
    assert one["p50_seconds"] == _tenth(percentile(event["total"].seconds, 0.5))
    assert {row["slot"]: row["received"] for row in one["by_slot"]} == {
        f"{p}/{n}": scan.counts["received"] for (p, n), scan in ((k, v) for k, v in event.items() if k != "total")
    }
    # photos per hour: the summaries keep 10-minute buckets, so hours are whole
    assert {row["hour"]: row["count"] for row in one["photos_per_hour"]} == per_hour

    view = await live_view(db, TABS, hours=3)
    since = datetime.fromisoformat(view["since"])
    window = [j for j in jobs if j.source == "booth" and _aware(j.created_at) >= since]
    assert view["counts"]["received"] == len(window)
    assert view["counts"]["fallbacks"] == sum(j.fallback_reason is not None for j in window)
    for status in ("succeeded", "failed", "timed_out", "rejected"):
        assert view["counts"][status] == sum(j.status == status for j in window)
    points: dict[tuple[str, str], list[float]] = defaultdict(list)
    for j in window:
        if j.status == "succeeded" and j.total_seconds is not None:
            middle = tallies.bucket_of(j.created_at) + timedelta(minutes=tallies.BUCKET_MINUTES / 2)
            points[(j.provider, middle.isoformat())].append(j.total_seconds)
    shown = {(s["provider"], p["at"]): p for s in view["series"] for p in s["points"]}
    assert set(shown) == set(points)
    for key, values in points.items():
        assert shown[key]["count"] == len(values)
        assert shown[key]["avg_seconds"] == pytest.approx(sum(values) / len(values), abs=1e-3)
        assert shown[key]["p95_seconds"] == _tenth(percentile(values, 0.95))
    assert not view["partial"]


async def test_summaries_equal_a_full_scan_on_sqlite(sqlite_db: Database) -> None:
    await _check_everything(sqlite_db)


async def test_summaries_equal_a_full_scan_on_postgresql(postgres_url: str) -> None:
    database = Database(postgres_url)
    await database.migrate()
    try:
        await _check_everything(database)
    finally:
        await database.engine.dispose()


async def test_a_job_is_tallied_once_and_a_whole_row_save_does_not_reset_it(sqlite_db: Database) -> None:
    job = Job(id="a" * 32, provider="gemini", slot_number=1, source="booth", status="succeeded", total_seconds=3.0)
    async with sqlite_db.write() as session:
        session.add(job)
    assert await tallies.rollup(sqlite_db) == 1
    job.message = "saved again by the spine"
    async with sqlite_db.write() as session:
        await session.merge(job)
    assert await tallies.rollup(sqlite_db) == 0
    got = await stats.compute(sqlite_db, ["gemini"])
    assert got["providers"]["gemini"]["all_time"]["received"] == 1


def test_the_histogram_percentile_is_the_nearest_rank_rounded_up_to_a_tenth() -> None:
    rng = random.Random(5)
    for _ in range(50):
        values = [round(rng.uniform(0, 60), 4) for _ in range(rng.randint(1, 300))]
        bins: Any = defaultdict(int)
        for value in values:
            bins[tallies.tenth_bin(value)] += 1
        from collections import Counter

        for fraction in (0.5, 0.95):
            exact = percentile(values, fraction)
            assert exact is not None
            assert tallies.bins_quantile(Counter(bins), fraction) == math.ceil(round(exact * 10, 6)) / 10


@pytest.mark.parametrize(
    "filters",
    [
        {"source": "booth"},  # the statistics
        {"source": "api"},  # the client-API statistics
        {"source": "booth", "event_id": 3},  # an event's statistics
        {"since": True, "source": "booth"},  # the live view
        {"since": True, "source": "booth", "event_id": 3},  # an event's live view
        {"since": True, "provider": "gemini", "source": "booth"},  # a tab's slot activity
    ],
)
async def test_the_untallied_tail_is_read_by_its_partial_index(sqlite_db: Database, filters: dict[str, Any]) -> None:
    """Every refresh reads the tail of untallied jobs; read through an index on `source` or `provider`
    instead, it walks every job of the window (100 ms at 100,000 jobs; `python -m bench.live_view`)."""
    if filters.pop("since", None):
        filters["since"] = datetime.now(UTC) - timedelta(hours=3)
    query = tallies.untallied_query(limit=tallies.TAIL_ROWS + 1, **filters)
    compiled = query.compile(sqlite_db.engine, compile_kwargs={"literal_binds": True})
    async with sqlite_db.read() as session:
        plan = (await session.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))).all()
    details = " / ".join(str(row[-1]) for row in plan)
    assert "USING INDEX ix_jobs_untallied" in details, details
    assert "TEMP B-TREE" not in details, details  # the index's order, no sort of the rows
