"""Image workers: a few low-priority threads, handed out earliest deadline first.

Why not `asyncio.to_thread` behind a plain semaphore:
- Order. A burst of booths queues many decodes at once. First-come-first-served would put a job that
  is back from the provider (and only needs its result finished) behind every photo that arrived
  after it, so the oldest jobs would miss their deadline while the newest wait anyway. Earliest
  deadline first serves the job closest to its deadline.
- A hard bound. When a waiting request is cancelled (deadline reached), a decode already running in
  its thread cannot be stopped; its worker is counted busy until the thread really finishes, so at
  most `workers` images are ever decoded at once (memory stays bounded).
- Priority. Decoding is the only heavy CPU work; the event loop receives and answers every booth.
  Worker threads lower their own scheduling priority (Linux), so on a busy machine the loop is
  served first and a decode never stalls everyone's uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

# Niceness of worker threads: the loop (nice 0) gets ~3× their CPU share when both want a core.
WORKER_NICENESS = 5
# Work without a deadline (admin thumbnails, reference checks) queues as if due this far ahead.
UNDATED_SECONDS = 60.0


def _lower_priority() -> None:
    if not sys.platform.startswith("linux"):
        return
    # On Linux, PRIO_PROCESS with a thread id changes only that thread.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)


class ImageWorkers:
    """Runs blocking image functions on `workers` threads, earliest deadline first."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._free = workers
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="image", initializer=_lower_priority)

    @property
    def busy(self) -> int:
        return self.workers - self._free

    @property
    def queued(self) -> int:
        return sum(1 for *_, waiter in self._waiting if not waiter.done())

    async def run(self, deadline: float | None, func: Callable[..., T], *args: object) -> T:
        """`func(*args)` on a worker thread once one is free and no earlier deadline is waiting."""
        await self._acquire(time.monotonic() + UNDATED_SECONDS if deadline is None else deadline)
        loop = asyncio.get_running_loop()
        try:
            work = self._pool.submit(func, *args)
        except BaseException:
            self._release()
            raise

        def done(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed at shutdown
                loop.call_soon_threadsafe(self._release)

        # The worker is freed when the thread is done, not when the awaiting request gives up.
        work.add_done_callback(done)
        return await asyncio.wrap_future(work)

    async def _acquire(self, deadline: float) -> None:
        if self._free > 0 and not self.queued:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (deadline, next(self._order), waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # a worker was handed over just as we were cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._waiting:
            *_, waiter = heapq.heappop(self._waiting)
            if not waiter.done():
                waiter.set_result(None)  # the worker passes straight to the next in line
                return
        self._free += 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
