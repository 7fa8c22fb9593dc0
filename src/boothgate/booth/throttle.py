"""Slow down and then lock out an address that keeps sending wrong passwords."""

from __future__ import annotations

import time
from dataclasses import dataclass

MAX_TRACKED = 10_000


@dataclass
class _Record:
    failures: int
    last: float
    locked_until: float = 0.0


class Throttle:
    """After a few failures each further attempt waits a little longer; after `max_failures` within
    `lockout_seconds` the address is answered 429 until the lockout ends."""

    def __init__(self, max_failures: int, lockout_seconds: float) -> None:
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self._records: dict[str, _Record] = {}

    def retry_after(self, address: str) -> float | None:
        """Seconds until the address may try again, or None when it is not locked out."""
        record = self._records.get(address)
        if record is None:
            return None
        now = time.monotonic()
        if record.locked_until > now:
            return record.locked_until - now
        if now - record.last > self.lockout_seconds:
            del self._records[address]
        return None

    def delay(self, address: str) -> float:
        """How long to hold a failing answer: nothing for the first slips, then growing to 2 s."""
        record = self._records.get(address)
        if record is None or record.failures < 3:
            return 0.0
        return min(2.0, 0.1 * 2 ** (record.failures - 3))

    def failed(self, address: str) -> None:
        now = time.monotonic()
        record = self._records.get(address)
        if record is None or now - record.last > self.lockout_seconds:
            record = self._records[address] = _Record(0, now)
        record.failures += 1
        record.last = now
        if record.failures >= self.max_failures:
            record.locked_until = now + self.lockout_seconds
        if len(self._records) > MAX_TRACKED:
            oldest = min(self._records, key=lambda a: self._records[a].last)
            del self._records[oldest]

    def succeeded(self, address: str) -> None:
        self._records.pop(address, None)
