"""The deadline: one monotonic instant by which the booth must have its answer."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Deadline:
    """An instant on the monotonic clock (the same clock as the event loop's `loop.time()`)."""

    at: float

    @classmethod
    def after(cls, seconds: float, start: float | None = None) -> Deadline:
        return cls((time.monotonic() if start is None else start) + seconds)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def fits(self, seconds: float) -> bool:
        """Whether something taking `seconds` can still finish in time."""
        return self.remaining() > seconds

    def earlier(self, seconds: float) -> Deadline:
        """A deadline `seconds` before this one (for a stage that must leave time for the rest)."""
        return Deadline(self.at - seconds)

    def capped(self, seconds: float) -> Deadline:
        """This deadline or `seconds` from now, whichever comes first (a stage budget)."""
        return Deadline(min(self.at, time.monotonic() + seconds))

    def timeout(self) -> asyncio.Timeout:
        """`async with deadline.timeout():` cancels the block when the deadline is reached."""
        return asyncio.timeout_at(self.at)

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless that would pass the deadline; True when it slept."""
        if not self.fits(seconds):
            return False
        await asyncio.sleep(seconds)
        return True
