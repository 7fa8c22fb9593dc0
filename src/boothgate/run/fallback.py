"""Fall back: hand the photo to the slot's fallback slot when its provider fails, is offline, cannot be
reached, or will not answer in time — inside the same deadline (design.md, step 7).

One hop of the chain runs like this:

- the slot's provider is marked offline (run/offline.py) → straight to the next hop ("offline");
- otherwise the slot runs; if its traffic shows the service cannot be reached (name not resolved,
  connection refused) the run is cancelled and the next hop starts at once ("unreachable");
- if it fails with a provider-side error (429, 502, 503, 504) the next hop gets the time left (the
  error's code is the reason);
- if it has not answered by `deadline − p95 of the next hop − margin` the next hop starts in parallel
  (the hedge): the first image wins and the other run is cancelled, so a slow provider is not polled
  again and a paid call that lost is not waited for.

The next hop is itself a hop (A → B → C). A hop that cannot run (provider missing or not configured,
slot lacking its reference, provider offline) is skipped. When every hop fails, the primary's error
ends the job, and the primary slot's `on_failure` decides the answer.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from boothgate import errors
from boothgate.deadline import Deadline
from boothgate.providers.base import KINDS_NEEDING_REFERENCE, Kind, Provider
from boothgate.providers.registry import Registry, UnknownProvider
from boothgate.run import fallback_rules
from boothgate.run.latency import LatencyBook, slot_key
from boothgate.run.offline import Breaker, Probe, context_with
from boothgate.storage.config import RuntimeConfig
from boothgate.storage.db import Database
from boothgate.storage.models import Slot

log = logging.getLogger("boothgate.fallback")

T = TypeVar("T")

# Failures of the provider's side: worth handing the photo to another slot. Bad input (4xx), our own
# bugs (500) and a full disk (507) would fail the same way there.
HANDOFF_STATUSES = frozenset({429, 502, 503, 504})
# With less than this left, a hand-off cannot produce an image: the primary's error answers instead.
MIN_HOP_SECONDS = 0.3

Lookup = Callable[[str, int], Awaitable[Slot | None]]


@dataclass
class Served(Generic[T]):
    """Who produced the result and why the primary did not (reason None when it did)."""

    outcome: T
    by: str
    reason: str | None = None
    route: list[str] = field(default_factory=list)


@dataclass
class _Hop:
    slot: Slot
    provider: Provider
    skipped: list[str] = field(default_factory=list)  # slots passed over on the way to this one

    @property
    def key(self) -> str:
        return slot_key(self.slot.provider, self.slot.number)


@dataclass
class _Chain(Generic[T]):
    """One photo's way along the chain: its deadline, the slots already used, what happened."""

    deadline: Deadline
    visited: set[str]
    hop: Callable[[Slot, Provider], Awaitable[T]]
    route: list[str] = field(default_factory=list)


class _Failed(Exception):
    """A hop (and everything after it) failed; carries the error that answers for it."""

    def __init__(self, error: errors.BoothError) -> None:
        super().__init__(error.message)
        self.error = error


def hands_off(exc: BaseException) -> bool:
    return isinstance(exc, errors.BoothError) and exc.status in HANDOFF_STATUSES


class FallbackChain:
    def __init__(self, config: RuntimeConfig, registry: Registry, lookup: Lookup, db: Database) -> None:
        self.config, self.registry, self.lookup, self.db = config, registry, lookup, db
        self.breaker = Breaker(lambda: config.settings)
        self.latency = LatencyBook()
        self._seeded: asyncio.Task[None] | None = None

    # --- budgets ------------------------------------------------------------------------------
    def budget(self, key: str, provider: str) -> float:
        """Seconds the hop needs: the p95 of its recent successful runs, else the setting for its kind
        of tab (the local engine runs here and is quick; a cloud slot is given more)."""
        settings = self.config.settings
        p95 = self.latency.p95(key)
        if p95 is not None:
            return p95
        return settings.local_budget_seconds if provider == "local" else settings.fallback_default_seconds

    async def _seed(self) -> None:
        if self._seeded is None:
            self._seeded = asyncio.create_task(self.latency.seed(self.db))
        try:
            await asyncio.shield(self._seeded)
        except Exception:  # statistics are a nicety: a job never fails for them
            log.warning("could not read run times from the job table", exc_info=True)

    # --- the step -----------------------------------------------------------------------------
    async def serve(
        self,
        slot: Slot,
        provider: Provider,
        deadline: Deadline,
        primary: Callable[[], Awaitable[T]],
        hop: Callable[[Slot, Provider], Awaitable[T]],
        fallback_only: bool = False,
    ) -> Served[T]:
        """Run `primary` for `slot`, falling back along the slot's chain; `hop` runs another slot."""
        first = _Hop(slot, provider)
        if not slot.fallback:
            if fallback_only:
                raise errors.MalformedRequest(f"Slot {first.key} has no fallback slot to try.", code="no_fallback")
            if not self.breaker.allows(slot.provider):
                raise self._offline_error(first)
            return Served(await self._run(first, primary), first.key)
        await self._seed()
        chain = _Chain(deadline, {first.key}, hop)
        try:
            if fallback_only:
                chain.route.append(f"{first.key}: skipped (fallback only)")
                return await self._after(first, chain, "fallback_only", None)
            if not self.breaker.allows(slot.provider):
                chain.route.append(f"{first.key}: offline")
                return await self._after(first, chain, "offline", self._offline_error(first))
            problem = provider.problem()
            if problem is not None:  # no key, no public address: the fallback can still serve
                error = errors.ProviderNotConfigured(problem)
                chain.route.append(f"{first.key}: {error.code}")
                return await self._after(first, chain, error.code, error)
            return await self._hop(first, primary, chain)
        except _Failed as failed:
            raise _combined(failed, chain.route) from None

    async def _hop(self, current: _Hop, start: Callable[[], Awaitable[T]], chain: _Chain[T]) -> Served[T]:
        following = await self._next(current.slot, chain)
        if following is None:
            try:
                return Served(await self._run(current, start), current.key, route=chain.route)
            except errors.BoothError as exc:
                chain.route.append(f"{current.key}: {exc.code}")
                raise _Failed(exc) from exc
        probe = Probe(current.slot.provider)
        task = asyncio.create_task(self._timed(current, start, probe), context=context_with(probe))
        unreachable = asyncio.create_task(probe.unreachable.wait())
        later: asyncio.Task[Served[T]] | None = None
        try:
            hedge_at = chain.deadline.at - self.budget(following.key, following.slot.provider) - self._margin()
            await asyncio.wait(
                {task, unreachable}, timeout=max(0.0, hedge_at - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
            )
            if task.done():
                failure = _error_of(task)
                if failure is None:
                    return Served(task.result(), current.key, route=chain.route)
                chain.route.append(f"{current.key}: {_code(failure)}")
                if not hands_off(failure) or chain.deadline.remaining() < MIN_HOP_SECONDS:
                    raise _Failed(_booth(failure)) from failure
                return await self._continue(following, chain, _code(failure), failure)
            if unreachable.done():
                task.cancel()
                chain.route.append(f"{current.key}: unreachable ({probe.failure})")
                error = _unreachable(current, probe)
                return await self._continue(following, chain, error.code, error)
            # The hedge: the next hop starts now, in parallel; the first image wins.
            chain.route.append(f"{current.key}: slow, {following.key} started alongside")
            later = asyncio.create_task(self._continue(following, chain, "slow", None))
            return await self._race(current, task, later, unreachable, probe)
        finally:
            for waiting in (task, unreachable, later):
                if waiting is not None:
                    waiting.cancel()

    async def _race(
        self,
        current: _Hop,
        task: asyncio.Task[T],
        later: asyncio.Task[Served[T]],
        unreachable: asyncio.Task[bool],
        probe: Probe,
    ) -> Served[T]:
        """The primary and the hedged fallback run together: the first image wins."""
        primary_error: errors.BoothError | None = None
        while True:
            watch: set[asyncio.Future[Any]] = set()
            if primary_error is None:
                watch |= {task, unreachable}
            if not later.done():
                watch.add(later)
            await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
            if primary_error is None and task.done():
                exc = _error_of(task)
                if exc is None:
                    return Served(task.result(), current.key)  # the primary was first: nothing fell back
                if not hands_off(exc):
                    raise _Failed(_booth(exc)) from exc
                primary_error = _booth(exc)
            elif primary_error is None and unreachable.done():
                task.cancel()  # retrying a service that cannot be reached only holds the photo up
                primary_error = _unreachable(current, probe)
            if later.done():
                failure = later.exception()
                if failure is None:
                    served = later.result()
                    if primary_error is not None:
                        served.reason = primary_error.code  # it failed as well: that is the reason
                    return served
                if primary_error is not None:
                    raise _Failed(primary_error) from failure
                # The fallback failed but the primary is still at it: its answer may still come in time.

    async def _after(self, current: _Hop, chain: _Chain[T], reason: str, error: errors.BoothError | None) -> Served[T]:
        following = await self._next(current.slot, chain)
        if following is None:
            raise _Failed(error or _no_fallback(current))
        return await self._continue(following, chain, reason, error)

    async def _continue(self, following: _Hop, chain: _Chain[T], reason: str, error: BaseException | None) -> Served[T]:
        """Hand the photo to `following` (and on along the chain); `error` is what made us, if anything."""
        chain.route.extend(following.skipped)
        try:
            served = await self._hop(following, lambda: chain.hop(following.slot, following.provider), chain)
        except _Failed as failed:
            if error is not None:  # the primary's error answers; the route tells the rest
                raise _Failed(_booth(error)) from failed
            raise
        served.reason = reason
        return served

    # --- pieces -------------------------------------------------------------------------------
    async def _run(self, current: _Hop, start: Callable[[], Awaitable[T]]) -> T:
        probe = Probe(current.slot.provider)
        task = asyncio.create_task(self._timed(current, start, probe), context=context_with(probe))
        try:
            return await task
        finally:
            task.cancel()

    async def _timed(self, current: _Hop, start: Callable[[], Awaitable[T]], probe: Probe) -> T:
        started = time.monotonic()
        try:
            result = await start()
        finally:
            self.breaker.record(probe)
        self.latency.add(current.key, time.monotonic() - started)
        return result

    async def _next(self, slot: Slot, chain: _Chain[T]) -> _Hop | None:
        """The next slot of the chain that can run now, skipping (and noting) those that cannot."""
        value = slot.fallback
        skipped: list[str] = []
        while value:
            target = fallback_rules.parse(value)
            if target is None:
                break
            key = slot_key(*target)
            if key in chain.visited or len(chain.visited) > fallback_rules.MAX_HOPS:
                break  # a loop stored behind the UI's back: stop here
            chain.visited.add(key)
            candidate = await self.lookup(*target)
            if candidate is None:
                break
            problem = self._problem(candidate)
            if problem is None:
                provider = self.registry.get(candidate.provider)
                assert provider is not None
                return _Hop(candidate, provider, skipped)
            skipped.append(f"{key}: skipped ({problem})")
            value = candidate.fallback
        chain.route.extend(skipped)
        return None

    def _problem(self, slot: Slot) -> str | None:
        try:
            provider = self.registry.get(slot.provider)
        except UnknownProvider:
            return "no such tab"
        if provider is None:
            return "not available in this version"
        if provider.problem() is not None:
            return "not configured"
        if Kind(slot.kind) not in provider.kinds:
            return f"{slot.kind} not offered"
        if slot.kind in KINDS_NEEDING_REFERENCE and not slot.reference_path:
            return "no reference image"
        if not self.breaker.allows(slot.provider):
            return "offline"
        return None

    def _margin(self) -> float:
        return self.config.settings.fallback_margin_seconds

    def _offline_error(self, current: _Hop) -> errors.BoothError:
        seconds = self.breaker.retry_in(current.slot.provider)
        return errors.ProviderNotConfigured(
            f"{current.provider.label} is offline (its service could not be reached several times); "
            f"it is tried again in {seconds:.0f} s.",
            code="provider_offline",
        )


def _error_of(task: asyncio.Task[Any]) -> BaseException | None:
    if task.cancelled():  # not by us: whatever ran inside gave up
        return errors.DeadlineReached("The run was cancelled before it answered.")
    return task.exception()


def _code(exc: BaseException) -> str:
    return exc.code if isinstance(exc, errors.BoothError) else type(exc).__name__


def _booth(exc: BaseException) -> errors.BoothError:
    """The booth error of a failed run; anything else is a bug and keeps propagating as itself."""
    if isinstance(exc, errors.BoothError):
        return exc
    raise exc


def _unreachable(current: _Hop, probe: Probe) -> errors.BoothError:
    return errors.ProviderFailed(
        f"{current.provider.label} could not be reached ({probe.failure or 'connection failed'}).",
        code="provider_unreachable",
    )


def _no_fallback(current: _Hop) -> errors.BoothError:
    return errors.ProviderNotConfigured(
        f"No fallback slot of {current.key} can run now (missing, not configured, or offline).",
        code="fallback_unavailable",
    )


def _combined(failed: _Failed, route: list[str]) -> errors.BoothError:
    """The primary's error (same class, status and code), its message extended by the chain's story."""
    error = failed.error
    if not route:
        return error
    message = f"{error.message} Fallback: {'; '.join(route)}."
    # A copy keeps every attribute a subclass carries (a rate limit's wait) whatever its constructor takes.
    combined = copy.copy(error)
    combined.message = message
    combined.args = (message,)
    return combined
