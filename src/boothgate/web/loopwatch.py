"""Event-loop stall watch: how late the loop wakes a task that only sleeps.

Everything the server does for every booth shares one event loop. Work that blocks it — decoding an
image in the loop thread, a synchronous database call, a long garbage collection — delays every other
booth's upload and answer. A task that sleeps `interval_seconds` and measures how late it wakes sees
those stalls directly. Opt-in (`BOOTHGATE_LOOP_WATCH=1`): `/health` then shows the figures and each
stall above `warn_seconds` is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)


class LoopWatch:
    """Measures the worst lateness of the running event loop since `start()`."""

    def __init__(self, interval_seconds: float = 0.01, warn_seconds: float = 0.05) -> None:
        self.interval_seconds = interval_seconds
        self.warn_seconds = warn_seconds
        self.max_stall_seconds = 0.0
        self.stalls_over_warn = 0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching the running loop (call from inside it, e.g. in the app's lifespan)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loopwatch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval_seconds)
            self.record(loop.time() - before - self.interval_seconds)

    def record(self, stall: float) -> None:
        """Account one wake-up that came `stall` seconds late."""
        self.ticks += 1
        self.max_stall_seconds = max(self.max_stall_seconds, stall)
        if stall > self.warn_seconds:
            self.stalls_over_warn += 1
            log.warning("event loop stalled for %.0f ms", stall * 1000)

    def snapshot(self) -> dict[str, Any]:
        """Figures for /health."""
        return {
            "max_stall_ms": round(self.max_stall_seconds * 1000, 1),
            "stalls_over_warn": self.stalls_over_warn,
            "warn_ms": round(self.warn_seconds * 1000),
            "ticks": self.ticks,
        }
