"""Several API keys per provider (issue 28): calls spread over the keys, a rate-limited key rests, a
refused key is taken out.

Busy events hit per-key rate limits (Gemini counts requests per minute per key). A provider's keys come
from `BOOTHGATE_<PROVIDER>_API_KEYS` (comma-separated) and the single-key setting, both editable on the
settings page. Each call asks its pool for a key: the usable key with the fewest calls in flight, then
the fewest calls so far (so a burst spreads evenly). A key answering 429 rests for the time the service
names (Retry-After / retryDelay) while the others carry on; a key refused for authentication or billing is
taken out until the keys change or the operator checks them again, and is flagged on the settings page.
Keys are never shown or logged: everything outside this module sees `masked` (first 4 … last 4).
The pools live on the runtime (`ProviderContext.keys`) and keep their state across settings changes for
keys that stay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr


def mask(key: str) -> str:
    """A key's name for people: enough to tell keys apart, never enough to use one."""
    key = key.strip()
    if len(key) >= 16:
        return f"{key[:4]}…{key[-4:]}"
    if len(key) >= 8:
        return f"…{key[-3:]}"
    return "…"


def key_list(many: SecretStr | None, single: SecretStr | None) -> list[str]:
    """The keys in order: the list setting first, then the single key; blanks and repeats dropped."""
    keys: list[str] = []
    for secret in (many, single):
        text = secret.get_secret_value() if secret is not None else ""
        for part in text.replace("\n", ",").split(","):
            part = part.strip()
            if part and part not in keys:
                keys.append(part)
    return keys


@dataclass
class KeyState:
    key: str = field(repr=False)
    masked: str
    calls: int = 0
    failures: int = 0
    in_flight: int = 0
    resting_until: float = 0.0
    flagged: str | None = None  # why the key was taken out (operator-facing, never the key)
    # The part of `calls`/`failures` already in the database (key_figures.py); the rest is written next.
    saved_calls: int = 0
    saved_failures: int = 0

    def public(self, now: float) -> dict[str, Any]:
        rest = max(0.0, self.resting_until - now)
        return {
            "key": self.masked,
            "calls": self.calls,
            "failures": self.failures,
            "resting_seconds": round(rest, 1),
            "flagged": self.flagged,
        }


class KeyPool:
    """One provider's keys and what each has been through."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, stored: Callable[[str], tuple[int, int]] | None = None
    ) -> None:
        self.clock = clock
        self.states: list[KeyState] = []
        # The figures the database holds for a masked key (calls, failures): a new key state starts from them.
        self.stored = stored or (lambda masked: (0, 0))

    def sync(self, keys: list[str]) -> None:
        """Take the current keys; a key that stays keeps its counters, rest and flag."""
        known = {s.key: s for s in self.states}
        self.states = [known.get(k) or self._new(k) for k in keys]

    def _new(self, key: str) -> KeyState:
        masked = mask(key)
        calls, failures = self.stored(masked)
        return KeyState(key, masked, calls, failures, saved_calls=calls, saved_failures=failures)

    def pick(self, exclude: frozenset[str] = frozenset()) -> KeyState | None:
        """The key for the next call, or None when every key is resting, flagged or excluded."""
        now = self.clock()
        usable = [s for s in self.states if s.flagged is None and s.resting_until <= now and s.key not in exclude]
        if not usable:
            return None
        # Stable for ties: the first listed key wins, so one key behaves exactly as before.
        return min(usable, key=lambda s: (s.in_flight, s.calls))

    def next_free_in(self) -> float | None:
        """Seconds until a resting key can be used again (None: none is resting, all flagged or none)."""
        now = self.clock()
        rests = [s.resting_until - now for s in self.states if s.flagged is None and s.resting_until > now]
        return max(0.0, min(rests)) if rests else None

    def usable_count(self) -> int:
        return sum(1 for s in self.states if s.flagged is None)

    def started(self, state: KeyState) -> None:
        state.calls += 1
        state.in_flight += 1

    def finished(self, state: KeyState, ok: bool) -> None:
        state.in_flight = max(0, state.in_flight - 1)
        if not ok:
            state.failures += 1

    def rest(self, state: KeyState, seconds: float) -> None:
        state.resting_until = max(state.resting_until, self.clock() + max(0.0, seconds))

    def flag(self, state: KeyState, reason: str) -> None:
        state.flagged = reason[:200]

    def unflag_all(self) -> None:
        for state in self.states:
            state.flagged = None
            state.resting_until = 0.0

    def public(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [s.public(now) for s in self.states]


class KeyPools:
    """Every provider's pool, by provider name."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._pools: dict[str, KeyPool] = {}
        # (provider, masked key) → (calls, failures) read from the database at start (key_figures.py).
        self.stored: dict[tuple[str, str], tuple[int, int]] = {}

    def pool(self, provider: str, keys: list[str]) -> KeyPool:
        pool = self._pools.get(provider)
        if pool is None:
            pool = self._pools[provider] = KeyPool(
                self.clock, lambda masked: self.stored.get((provider, masked), (0, 0))
            )
        if [s.key for s in pool.states] != keys:
            pool.sync(keys)
        return pool

    def states(self) -> list[tuple[str, KeyState]]:
        """Every key state with its provider's name."""
        return [(name, state) for name, pool in self._pools.items() for state in pool.states]
