"""One job's turn with a provider's keys: take a key, hand over to another when the service rests or
refuses this one, and account for every call (issue 28; the pool itself is `keys.py`).

With one key nothing changes from before: the key is never rested or flagged by a job (the provider's
own 429 wait and `last_error` apply). With several keys a 429 rests the key for the time the service
names and the job carries on at once with another key; an authentication or billing refusal takes the
key out and flags it. The job's notes carry only masked key names.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from boothgate.deadline import Deadline
from boothgate.errors import BoothError, ProviderFailed, RateLimited
from boothgate.providers.base import CheckResult
from boothgate.providers.keys import KeyPool, KeyState

# A 429 that names no wait rests the key this long.
DEFAULT_REST_SECONDS = 60.0


class KeyTurn:
    def __init__(self, pool: KeyPool, deadline: Deadline, notes: dict[str, object], label: str = "") -> None:
        self.pool = pool
        self.deadline = deadline
        self.notes = notes
        self.label = label
        self.state: KeyState | None = None

    @property
    def several(self) -> bool:
        return len(self.pool.states) > 1

    async def take(self) -> KeyState:
        state = self.pool.pick()
        if state is None and self.several:
            wait = self.pool.next_free_in()
            if wait is not None and self.deadline.fits(wait + 1.0):
                await asyncio.sleep(wait)
                state = self.pool.pick()
        if state is None:
            if not self.several and self.pool.states:
                state = self.pool.states[0]
            elif self.pool.usable_count() == 0:
                raise ProviderFailed(
                    f"Every {self.label or 'provider'} API key was refused ("
                    + "; ".join(f"{s.masked}: {s.flagged}" for s in self.pool.states)
                    + "). Fix or replace them on the settings page.",
                    code="provider_auth",
                )
            else:
                raise RateLimited(
                    f"Every {self.label or 'provider'} API key is resting after a rate limit (429); the first is "
                    f"free again in {self.pool.next_free_in() or 0:.0f} s, after this photo's deadline."
                )
        self._start(state)
        return state

    def _start(self, state: KeyState) -> None:
        self.pool.started(state)
        self.state = state
        self.notes["key"] = state.masked
        tried = self.notes.setdefault("keys_tried", [])
        if isinstance(tried, list) and state.masked not in tried:
            tried.append(state.masked)

    def _switch(self) -> KeyState | None:
        assert self.state is not None
        self.pool.finished(self.state, ok=False)
        self.state = None
        other = self.pool.pick()
        if other is not None:
            self._start(other)
        return other

    def rest_and_switch(self, seconds: float | None) -> KeyState | None:
        """This key answered 429: it rests; another key takes the call now (None: no other key free)."""
        if not self.several or self.state is None:
            return None
        self.pool.rest(self.state, seconds if seconds is not None else DEFAULT_REST_SECONDS)
        return self._switch()

    def flag_and_switch(self, reason: str | BoothError) -> KeyState | None:
        """This key was refused (authentication, billing): it is taken out; another key takes the call."""
        if not self.several or self.state is None:
            return None
        text = reason.message if isinstance(reason, BoothError) else reason
        self.pool.flag(self.state, text)
        return self._switch()

    def succeeded(self) -> None:
        if self.state is not None:
            self.pool.finished(self.state, ok=True)
            self.state = None

    def release(self) -> None:
        """The job ended without success (or was cancelled): the call counts as a failure of its key."""
        if self.state is not None:
            self.pool.finished(self.state, ok=False)
            self.state = None


async def check_every_key(pool: KeyPool, one: Callable[[str], Awaitable[CheckResult]]) -> CheckResult:
    """A provider's connection check with each of its keys in turn (issue 28). With one key its verdict is
    returned as it is. With several, a key the service refused is flagged (taken out) and a key that passed
    is put back in; the verdict names the keys only by their masked names and is OK only when all passed."""
    started = time.monotonic()
    states = list(pool.states)
    if len(states) <= 1:
        return await one(states[0].key) if states else CheckResult(False, "No API key is set.")
    lines, all_ok = [], True
    for state in states:
        verdict = await one(state.key)
        if verdict.ok:
            state.flagged = None
            state.resting_until = 0.0
        elif verdict.key_refused:
            pool.flag(state, verdict.message)
        all_ok = all_ok and verdict.ok
        lines.append(f"{state.masked}: {verdict.message}")
    seconds = round(time.monotonic() - started, 3)
    return CheckResult(all_ok, f"{len(states)} keys checked. " + "; ".join(lines), seconds)
