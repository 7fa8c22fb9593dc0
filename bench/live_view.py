"""`python -m bench.live_view`: the live view's refresh over a festival's job table (issue 31, class 9).

Fills a fresh SQLite database with N booth jobs of the last three hours (default 100 000, four providers,
a mix of statuses and fallbacks), then times `records.live.live_view` a few times while a ticker measures
the longest stall of the event loop during the refresh. Figures are printed, never asserted.
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

from boothgate.records.live import live_view
from boothgate.storage.db import Database
from boothgate.storage.models import Job

TABS = ["gemini", "openai", "fal", "turbotext"]


async def fill(db: Database, count: int) -> None:
    now = datetime.now(UTC)
    rng = random.Random(31)
    batch = []
    for i in range(count):
        status = rng.choices(["succeeded", "failed", "timed_out", "rejected"], [90, 5, 3, 2])[0]
        batch.append(
            {
                "id": f"{i:032x}",
                "created_at": now - timedelta(seconds=rng.uniform(0, 3 * 3600 - 60)),
                "provider": rng.choice(TABS),
                "slot_number": rng.randint(1, 20),
                "source": "booth",
                "status": status,
                "total_seconds": rng.uniform(5, 40) if status == "succeeded" else None,
                "fallback_reason": "slow" if rng.random() < 0.05 else None,
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


async def main(count: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        await db.migrate()
        started = time.perf_counter()
        await fill(db, count)
        print(f"{count:,} jobs written in {time.perf_counter() - started:.1f} s")
        for round_ in range(rounds):
            elapsed, stall, result = await stall_during(live_view(db, TABS))
            received = result["counts"]["received"]  # type: ignore[index]
            print(f"refresh {round_ + 1}: {elapsed * 1000:.0f} ms, longest loop stall {stall * 1000:.0f} ms, "
                  f"{received:,} jobs counted")  # fmt: skip
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.rounds))
