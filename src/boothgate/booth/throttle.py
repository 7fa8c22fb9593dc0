"""Slow down and then lock out an address that keeps sending wrong passwords.

An IPv6 client is counted by its prefix (a /64 by default, `ipv6_throttle_prefix`): one ordinary IPv6
connection is 2^64 addresses, and a stranger rotating through them is one client (issue 31, class 11).

Several nodes on one PostgreSQL (issue 27) also count each failure in the database (`share`,
storage/counts.py; the booth's upload password, the admin sign-in and the guest pages' codes each under
a name of their own): a failure that takes the address to `max_failures` there locks it out on the node that
saw it, and one beyond it is answered 429 instead of 401 (`failed_everywhere`). So an address gets its
allowance once, not once per node: each node that has not yet seen the lockout evaluates one more guess
at most. The decision before the body (`retry_after`) stays the node's own, so a booth with the right
password never waits for the database.
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass
from functools import lru_cache

from boothgate.storage.counts import SharedCounts

MAX_TRACKED = 10_000
DEFAULT_IPV6_PREFIX = 64


@lru_cache(maxsize=4096)
def client_key(address: str, ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> str:
    """The unit a client is counted by: an IPv4 address, an IPv6 prefix, or the text as given."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))
    return str(ip)


@dataclass
class _Record:
    failures: int
    last: float
    locked_until: float = 0.0


class Throttle:
    """After a few failures each further attempt waits a little longer; after `max_failures` within
    `lockout_seconds` the address is answered 429 until the lockout ends."""

    def __init__(self, max_failures: int, lockout_seconds: float, ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> None:
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.ipv6_prefix = ipv6_prefix
        self._records: dict[str, _Record] = {}
        self._shared: tuple[SharedCounts, str] | None = None

    def share(self, counts: SharedCounts | None, name: str) -> None:
        """Count failures on every node together too (PostgreSQL), under keys that begin with `name` (one
        name per throttle: "booth", "admin", "guest", so their counts never mix). The counts keep their
        rows for this throttle's lockout window too, whatever the other throttles' windows."""
        self._shared = None if counts is None else (counts, name)
        if counts is not None:
            counts.cover(self.lockout_seconds)

    def key(self, address: str) -> str:
        return client_key(address, self.ipv6_prefix)

    def retry_after(self, address: str) -> float | None:
        """Seconds until the address may try again, or None when it is not locked out."""
        address = self.key(address)
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
        address = self.key(address)
        record = self._records.get(address)
        if record is None or record.failures < 3:
            return 0.0
        return min(2.0, 0.1 * 2 ** (record.failures - 3))

    def failed(self, address: str) -> None:
        address = self.key(address)
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

    async def failed_everywhere(self, address: str) -> bool:
        """After `failed`: the failure counted on every node together. True when the address was already
        past its allowance there (answer 429); reaching it locks the address out here as well. Without a
        shared count, or when it did not answer in time, the node's own count stands (False)."""
        if self._shared is None:
            return False
        counts, name = self._shared
        address = self.key(address)
        # This minute and the whole ones before it within lockout_seconds: a lockout that ended here is not
        # renewed by the failures that caused it.
        hits = await counts.count(f"{name}:{address}", minutes=max(0, math.ceil(self.lockout_seconds / 60) - 1))
        if hits is None or hits < self.max_failures:
            return False
        now = time.monotonic()
        record = self._records.get(address)
        if record is None:
            record = self._records[address] = _Record(hits, now)
        record.failures, record.last = max(record.failures, hits), now
        record.locked_until = max(record.locked_until, now + self.lockout_seconds)
        return hits > self.max_failures

    def succeeded(self, address: str) -> None:
        address = self.key(address)
        if self._records.pop(address, None) is not None and self._shared is not None:
            counts, name = self._shared  # it failed here before: its shared count starts again too
            counts.forget(f"{name}:{address}")  # in the background: the booth does not wait for it
