"""The event-loop stall watch: it sees a blocked loop, and /health shows it when switched on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from boothgate.web.loopwatch import LoopWatch


async def test_a_blocked_loop_is_measured() -> None:
    watch = LoopWatch(interval_seconds=0.005, warn_seconds=0.05)
    watch.start()
    await asyncio.sleep(0.03)
    time.sleep(0.12)  # noqa: ASYNC251 — blocking the loop on purpose, as synchronous work in a handler would
    await asyncio.sleep(0.03)
    await watch.stop()
    # Lower bounds only: the 0.12 s block must be seen; how quiet the rest of a shared machine is, and so
    # how many other stalls there were, is not this test's business (the loop's own stalls: `make bench`).
    assert watch.max_stall_seconds >= 0.1
    assert watch.stalls_over_warn >= 1
    assert watch.snapshot()["max_stall_ms"] >= 100


async def test_health_shows_the_watch_only_when_switched_on(booth_factory: Any, tmp_path: Path) -> None:
    watched = booth_factory(loop_watch=True)
    plain = booth_factory(data_dir=tmp_path / "other")
    async with httpx.AsyncClient() as client:
        until = time.monotonic() + 10
        while not (with_watch := (await client.get(f"{watched.url}/health")).json())["loop_watch"]["ticks"]:
            assert time.monotonic() < until, "the watch never ticked"
            await asyncio.sleep(0.05)
        without = (await client.get(f"{plain.url}/health")).json()
    assert with_watch["loop_watch"]["ticks"] > 0 and with_watch["loop_watch"]["max_stall_ms"] >= 0
    assert "loop_watch" not in without
