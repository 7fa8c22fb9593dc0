"""Offline detection: which provider's service cannot be reached right now.

Two parts:

- `ReachTransport` wraps the shared HTTP client's transport. Every request a provider makes while a
  `Probe` is set in the running task's context reports to that probe: a connection that could not be
  made (name not resolved, refused, connect timeout) marks the probe *unreachable*; any answer at all
  (even a 503) marks it *reached*. Providers need no change: the probe sees their traffic, so a provider
  that retries connection errors on its own (Gemini does, with back-off) is not waited for.
- `Breaker` counts runs that ended unreachable per provider. After `breaker_failures` of them within
  `breaker_window_seconds` the provider is *offline*: jobs skip it for `breaker_open_seconds`, then it
  is tried again; one reached run closes the breaker, one more unreachable run opens it again.

Several nodes on PostgreSQL (issue 27): a node that opens a tab's breaker marks it in the database, and one
whose reached run closes a breaker that was open clears the mark (storage/breakers.py); the other nodes,
told through LISTEN/NOTIFY, take the mark over for the time the database says is left (`sync`). Every
decision still reads this node's memory only: a booth never waits for the database here.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from boothgate.settings import Settings
from boothgate.storage.breakers import SharedBreakers


@dataclass
class Probe:
    """What one provider run's HTTP traffic showed about the service's reachability."""

    provider: str  # the tab (breaker and /health are per tab)
    unreachable: asyncio.Event = field(default_factory=asyncio.Event)
    reached: bool = False
    failure: str = ""


_probe: contextvars.ContextVar[Probe | None] = contextvars.ContextVar("boothgate_probe", default=None)


def context_with(probe: Probe) -> contextvars.Context:
    """A copy of the current context in which HTTP calls report to `probe` (for `create_task`)."""
    context = contextvars.copy_context()
    context.run(_probe.set, probe)
    return context


class ReachTransport(httpx.AsyncBaseTransport):
    """The shared client's transport, reporting reachability to the current task's probe."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        probe = _probe.get()
        try:
            response = await self.inner.handle_async_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # DNS failures surface as ConnectError too. Only the exception type is kept: its text
            # holds the URL, and some services take their key in the query string.
            if probe is not None:
                probe.failure = type(exc).__name__
                probe.unreachable.set()
            raise
        if probe is not None:
            probe.reached = True
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class _State:
    failures: deque[float] = field(default_factory=deque)
    open_until: float = 0.0
    trial: bool = False  # the open period has passed: the next run decides
    last_failure: str = ""


class Breaker:
    """Per provider: closed (used), open (skipped until a time), then tried again."""

    def __init__(self, settings: Callable[[], Settings], clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._shared: SharedBreakers | None = None

    def share(self, shared: SharedBreakers | None) -> None:
        """Mark and clear offline tabs for every node too (PostgreSQL)."""
        self._shared = shared

    async def sync(self) -> None:
        """Take over the marks of every node (another node opened or closed a tab; start; a reconnect).
        A database that does not answer in time leaves this node's own state as it is."""
        if self._shared is None:
            return
        marks = await self._shared.read()
        for mark in marks or []:
            if mark.tab in self._shared.writing:
                continue  # our own newer mark is on its way: the row read is older than what we know
            state = self._state(mark.tab)
            if mark.open_seconds is not None and mark.open_seconds > 0:
                state.open_until = self._clock() + mark.open_seconds
                state.trial, state.last_failure = False, mark.failure
                state.failures.clear()
            elif mark.open_seconds is None and state.open_until:
                state.failures.clear()  # a reached run on another node closed it
                state.open_until, state.trial = 0.0, False

    def _state(self, provider: str) -> _State:
        return self._states.setdefault(provider, _State())

    def allows(self, provider: str) -> bool:
        """Whether a job may use this provider now (False while it is marked offline)."""
        state = self._states.get(provider)
        if state is None or not state.open_until:
            return True
        if self._clock() < state.open_until:
            return False
        state.trial = True
        return True

    def offline(self, provider: str) -> bool:
        state = self._states.get(provider)
        return state is not None and self._clock() < state.open_until

    def retry_in(self, provider: str) -> float:
        """Seconds until an offline provider is tried again (0 when it is not offline)."""
        state = self._states.get(provider)
        return max(0.0, state.open_until - self._clock()) if state is not None else 0.0

    def record(self, probe: Probe) -> None:
        """Count a finished (or cancelled) run by what its traffic showed."""
        if probe.reached:
            self.reached(probe.provider)
        elif probe.unreachable.is_set():
            self.unreachable(probe.provider, probe.failure)

    def reached(self, provider: str) -> None:
        state = self._states.get(provider)
        if state is not None:
            if state.open_until and self._shared is not None:
                self._shared.closed(provider)  # it was open here (maybe marked by another node): close it there
            state.failures.clear()
            state.open_until, state.trial = 0.0, False

    def unreachable(self, provider: str, failure: str = "") -> None:
        settings = self._settings()
        now = self._clock()
        state = self._state(provider)
        state.last_failure = failure
        state.failures.append(now)
        while state.failures and state.failures[0] < now - settings.breaker_window_seconds:
            state.failures.popleft()
        if state.trial or len(state.failures) >= settings.breaker_failures:
            state.open_until = now + settings.breaker_open_seconds
            state.trial = False
            state.failures.clear()
            if self._shared is not None:
                self._shared.opened(provider, settings.breaker_open_seconds, failure)

    def describe(self, provider: str) -> dict[str, Any]:
        """For /health and the tab: whether the provider is offline and when it is tried again."""
        offline = self.offline(provider)
        described: dict[str, Any] = {"offline": offline}
        if offline:
            described["retry_in_seconds"] = round(self.retry_in(provider), 1)
            described["failure"] = self._states[provider].last_failure
        return described
