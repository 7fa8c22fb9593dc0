"""The runner: claims due tasks, runs their handlers as asyncio tasks, renews leases, retries, stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from boothgate.work.queue import Claimed, TaskQueue

log = logging.getLogger("boothgate.work")


class RetryLater(Exception):
    """Raise from a handler to be run again after `seconds` (counts as an attempt)."""

    def __init__(self, message: str, seconds: float | None = None) -> None:
        super().__init__(message)
        self.seconds = seconds


class Permanent(Exception):
    """Raise from a handler when trying again cannot help: the task fails at once."""


@dataclass
class Context:
    """What a handler gets: the claimed task and the queue (to enqueue follow-up work)."""

    task: Claimed
    queue: TaskQueue

    @property
    def payload(self) -> dict[str, object]:
        return self.task.payload


Handler = Callable[[Context], Coroutine[Any, Any, None]]


@dataclass
class Runner:
    queue: TaskQueue
    concurrency: int = 2
    poll_seconds: float = 1.0
    lease_seconds: float = 30.0
    backoff_seconds: float = 2.0
    backoff_cap_seconds: float = 300.0
    handlers: dict[str, Handler] = field(default_factory=dict)
    renewing: bool = True  # tests switch it off to play a node that hangs
    _loop: asyncio.Task[None] | None = None
    _running: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    _stopping: bool = False

    def register(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    def start(self) -> None:
        if self._loop is None:
            self._stopping = False
            self._loop = asyncio.create_task(self._run_forever(), name="work-runner")

    @property
    def busy(self) -> int:
        return len(self._running)

    def backoff(self, attempts: int) -> float:
        """Exponential, capped, with ±20 % jitter so retries of many tasks do not arrive together."""
        base = min(self.backoff_cap_seconds, self.backoff_seconds * 2 ** max(0, attempts - 1))
        return base * random.uniform(0.8, 1.2)

    async def _run_forever(self) -> None:
        kinds = sorted(self.handlers)
        while not self._stopping:
            try:
                await self._fill(kinds)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away for a moment: try again at the next poll
                log.exception("work: claiming failed")
            await self.queue.wait(self.poll_seconds)

    async def _fill(self, kinds: list[str]) -> None:
        while len(self._running) < self.concurrency and not self._stopping:
            if not await self.queue.anything_due(kinds, exclude=list(self._running)):
                return
            await self.queue.give_up_exhausted()
            task = await self.queue.claim(self.lease_seconds, kinds, exclude=list(self._running))
            if task is None:
                return
            self._running[task.id] = asyncio.create_task(self._execute(task), name=f"work-{task.kind}-{task.id}")

    async def adopt(self, kind: str, key: str, payload: dict[str, Any], *, priority: int, max_attempts: int) -> bool:
        """Queue a task and run it here at once, under this node's lease (`TaskQueue.enqueue_held`).

        Beyond `concurrency`: the handler only awaits work this process has already started. False when
        the task exists already, or the runner is stopping (then nothing is written)."""
        if self._stopping or kind not in self.handlers:
            return False
        task = await self.queue.enqueue_held(
            kind, key, payload, self.lease_seconds, priority=priority, max_attempts=max_attempts
        )
        if task is None:
            return False
        self._running[task.id] = asyncio.create_task(self._execute(task), name=f"work-{task.kind}-{task.id}")
        return True

    async def _execute(self, task: Claimed) -> None:
        handler = self.handlers[task.kind]
        work = asyncio.create_task(handler(Context(task, self.queue)))
        renew = asyncio.create_task(self._renew(task, work))
        try:
            try:
                await asyncio.shield(work)
            except asyncio.CancelledError:
                if not work.done():  # the runner is stopping: _stop gives the task back
                    work.cancel()
                    with contextlib.suppress(BaseException):
                        await work
                    raise
                if renew.done() and renew.result() is False:
                    log.warning("work: %s %s lost its lease to another node; dropped here", task.kind, task.key)
                    return
                raise
            await self.queue.finish(task.id)
        except asyncio.CancelledError:
            raise
        except Permanent as exc:
            await self.queue.retry(task, f"{type(exc).__name__}: {exc}", None)
            log.warning("work: %s %s failed for good: %s", task.kind, task.key, exc)
        except RetryLater as exc:
            after = exc.seconds if exc.seconds is not None else self.backoff(task.attempts)
            state = await self.queue.retry(task, f"RetryLater: {exc}", after)
            log.info("work: %s %s %s (%s)", task.kind, task.key, state, exc)
        except Exception as exc:
            state = await self.queue.retry(task, f"{type(exc).__name__}: {exc}", self.backoff(task.attempts))
            log.warning("work: %s %s attempt %d failed (%s): %s", task.kind, task.key, task.attempts, state, exc)
        finally:
            renew.cancel()
            with contextlib.suppress(BaseException):
                await renew
            self._running.pop(task.id, None)
            self.queue.wake()  # a slot is free: look for more work now

    async def _renew(self, task: Claimed, work: asyncio.Task[None]) -> bool:
        while not work.done():
            await asyncio.sleep(self.lease_seconds / 3)
            if not self.renewing or work.done():
                continue
            try:
                mine = await self.queue.renew(task.id, self.lease_seconds)
            except Exception:
                log.exception("work: renewing the lease of %s failed", task.key)
                continue
            if not mine:
                work.cancel()
                return False
        return True

    def hold(self) -> None:
        """Claim nothing more (a draining node); what runs goes on until `stop`."""
        self._stopping = True
        self.queue.wake()

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop claiming; give running handlers `grace_seconds`, then cancel them and give their tasks back."""
        self._stopping = True
        self.queue.wake()
        if self._loop is not None:
            # Let a claim in flight finish (a claim cut off mid-write only leaves a lease to expire).
            await asyncio.wait([self._loop], timeout=grace_seconds)
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        running = dict(self._running)
        if running:
            await asyncio.wait(running.values(), timeout=grace_seconds)
        for task_id, job in running.items():
            if not job.done():
                job.cancel()
                with contextlib.suppress(BaseException):
                    await job
                with contextlib.suppress(Exception):
                    await self.queue.release(task_id)

    async def abandon(self) -> None:
        """Stop as a killed node does (tests): handlers cancelled, nothing written; leases expire by themselves."""
        self._stopping = True
        self.renewing = False
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        for job in list(self._running.values()):
            job.cancel()
        for job in list(self._running.values()):
            with contextlib.suppress(BaseException):
                await job
