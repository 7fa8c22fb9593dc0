"""Slow down and then lock out an address that keeps sending wrong passwords.

An IPv6 client is counted by its prefix (a /64 by default, `ipv6_throttle_prefix`): one ordinary IPv6
connection is 2^64 addresses, and a stranger rotating through them is one client (issue 31, class 11).
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from functools import lru_cache

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

    def succeeded(self, address: str) -> None:
        address = self.key(address)
        self._records.pop(address, None)
