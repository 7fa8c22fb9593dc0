"""`python -m bench.live_view`: the live view and statistics over a festival's job table (issue 31, class 9).

Fills a fresh SQLite database with N booth jobs of the last three hours (default 100 000, four providers,
20 slots each, a mix of statuses and fallbacks), rolls them into the job summaries (records/tallies.py) as
the server does while they finish, adds a tail of jobs not rolled up yet, then times the live view's
refresh and the statistics a few times while a ticker measures the longest stall of the event loop and a
prober makes `/health`'s database check back to back. Part of `make bench`; figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from boothgate.records import stats, tallies
from boothgate.records.live import live_view
from boothgate.storage.db import Database
from boothgate.storage.models import Job

TABS = ["gemini", "openai", "fal", "turbotext"]


async def fill(db: Database, count: int, prefix: str = "") -> None:
    now = datetime.now(UTC)
    rng = random.Random(31 + len(prefix))
    batch = []
    for i in range(count):
        status = rng.choices(["succeeded", "failed", "timed_out", "rejected"], [90, 5, 3, 2])[0]
        batch.append(
            {
                "id": prefix + f"{i:032x}"[len(prefix) :],
                "created_at": now - timedelta(seconds=rng.uniform(0, 60 if prefix else 3 * 3600 - 60)),
                "provider": rng.choice(TABS),
                "slot_number": rng.randint(1, 20),
                "source": "booth",
                "status": status,
                "total_seconds": rng.uniform(5, 40) if status == "succeeded" else None,
                "fallback_reason": "slow" if rng.random() < 0.05 else None,
                "cost_usd": 0.039 if status == "succeeded" else None,
                "timings": {},
                "meta": {},
                "provider_notes": {},
            }
        )
        if len(batch) == 5000:
            async with db.write() as session:
                await session.execute(insert(Job), batch)
            batch = []
    if batch:
        async with db.write() as session:
            await session.execute(insert(Job), batch)


async def stall_during(coro: object) -> tuple[float, float, object]:
    stalls = [0.0]
    done = asyncio.Event()

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.005)
            stalls.append(loop.time() - before - 0.005)

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    result = await coro  # type: ignore[misc]
    elapsed = time.perf_counter() - started
    done.set()
    await ticker
    return elapsed, max(stalls), result


async def timed(coro: object) -> float:
    started = time.perf_counter()
    await coro  # type: ignore[misc]
    return time.perf_counter() - started


async def health_during(db: Database, work: object) -> tuple[float, float, float, object]:
    """The refresh's time and longest loop stall, and the slowest `/health` database check made
    back to back while it ran."""
    checks: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            checks.append(await timed(db.check()))

    prober = asyncio.create_task(probe())
    try:
        elapsed, stall, result = await stall_during(work)
    finally:
        done.set()
        await prober
    return elapsed, stall, max(checks, default=0.0), result


async def measure(count: int, rounds: int, tail: int = 500) -> list[str]:
    """The figures as lines: roll-up throughput, then each refresh of the live view and the statistics."""
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        await db.migrate()
        started = time.perf_counter()
        await fill(db, count)
        say(f"- {count:,} booth jobs of the last 3 hours written in {time.perf_counter() - started:.1f} s")
        # What the server's roll-up did as the jobs finished, here all at once: its rate and longest stall.
        started, added = time.perf_counter(), 0
        worst = 0.0
        while True:
            _, stall, batch = await stall_during(tallies.rollup(db))
            worst = max(worst, stall)
            if not batch:
                break
            added += int(batch)  # type: ignore[call-overload]
        spent = time.perf_counter() - started
        say(f"- roll-up into the summaries: {added:,} jobs in {spent:.1f} s ({added / spent:,.0f} jobs/s, "
            f"batches of {tallies.ROLLUP_BATCH}, longest loop stall {worst * 1000:.0f} ms)")  # fmt: skip
        await fill(db, tail, prefix="t")  # finished since the last roll-up: read row by row
        say(f"- plus {tail} jobs not rolled up yet (the tail every refresh reads)")
        for round_ in range(rounds):
            elapsed, stall, health, result = await health_during(db, live_view(db, TABS))
            received = result["counts"]["received"]  # type: ignore[index]
            say(f"- live view refresh {round_ + 1}: {elapsed * 1000:.0f} ms, longest loop stall {stall * 1000:.0f} ms, "
                f"slowest /health database check {health * 1000:.0f} ms, {received:,} jobs counted")  # fmt: skip
        for round_ in range(rounds):
            elapsed, stall, health, figures = await health_during(db, stats.compute(db, TABS))
            total = sum(p["all_time"]["received"] for p in figures["providers"].values())  # type: ignore[index]
            say(f"- statistics {round_ + 1}: {elapsed * 1000:.0f} ms, longest loop stall {stall * 1000:.0f} ms, "
                f"slowest /health database check {health * 1000:.0f} ms, {total:,} jobs counted")  # fmt: skip
        await db.dispose()
    return lines


async def main(count: int, rounds: int) -> None:
    await measure(count, rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.rounds))
