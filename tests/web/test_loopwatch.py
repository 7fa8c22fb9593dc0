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
    quiet = watch.max_stall_seconds
    time.sleep(0.12)  # noqa: ASYNC251 — blocking the loop on purpose, as synchronous work in a handler would
    await asyncio.sleep(0.03)
    await watch.stop()
    assert quiet < 0.05
    assert watch.max_stall_seconds >= 0.1
    assert watch.stalls_over_warn == 1
    assert watch.snapshot()["max_stall_ms"] >= 100


async def test_health_shows_the_watch_only_when_switched_on(booth_factory: Any, tmp_path: Path) -> None:
    watched = booth_factory(loop_watch=True)
    plain = booth_factory(data_dir=tmp_path / "other")
    async with httpx.AsyncClient() as client:
        with_watch = (await client.get(f"{watched.url}/health")).json()
        without = (await client.get(f"{plain.url}/health")).json()
    assert with_watch["loop_watch"]["ticks"] >= 0 and "max_stall_ms" in with_watch["loop_watch"]
    assert "loop_watch" not in without
