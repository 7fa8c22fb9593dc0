"""Image workers: a few low-priority worker *processes*, handed out earliest deadline first, stopped when
their job no longer needs them.

Why processes, not threads:
- Stopping. A hostile photo (thousands of progressive scans, millions of PNG chunks) can cost minutes of
  CPU inside a C decoder, and a thread cannot be killed. A process can: when the work's deadline passes,
  or the request that wanted it is answered or gives up (its task is cancelled), its process is killed
  and a fresh one takes its place. After every answer, no image work of that job is still running.
- The event loop keeps its core. Decoding in threads of the server process competes for the GIL with the
  loop that receives and answers every booth; in worker processes it only competes for the CPU, and the
  workers lower their own priority so the loop is served first.
- Memory comes back. A decode's peak lives in the worker; the server process does not keep the high-water
  mark of every big image it ever decoded.

Why earliest deadline first (not first come, first served): a burst queues many decodes at once; serving
the job closest to its deadline first keeps the oldest jobs in time while the newest wait anyway.

A photo decoded while its upload is still arriving does not take a worker: it mostly waits for bytes and
costs only its scaled image (`incremental.py`, `booth/early.py`).

The contract for callers (other branches rely on it): `run(deadline, func, *args)` with `func` a
module-level function and picklable arguments (paths, bytes, ints, dicts). The worker imports `func`'s
module on first use; anything a function loads (a model) belongs in a module-level cache, kept for the life
of the worker process. The process itself and its pipes: `worker_process.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from boothgate.imaging.worker_process import WorkerProcess

T = TypeVar("T")
log = logging.getLogger("boothgate.workers")

# Work without a deadline (admin thumbnails, reference checks) queues as if due this far ahead, and is
# stopped when that time has passed.
UNDATED_SECONDS = 60.0
# A task still running this long after its deadline was not stopped: `/health` reports it as stuck.
STUCK_GRACE_SECONDS = 2.0
# Memory a worker process may hold: a 100 MP photo (the default pixel cap) takes ~400 MB while it is decoded.
DEFAULT_MEMORY_CEILING = 1536 * 1024 * 1024

# The job the current task works for; ingest sets it, so `running_jobs()` can say what is still running.
JOB: contextvars.ContextVar[str | None] = contextvars.ContextVar("boothgate_job", default=None)


class WorkerLost(RuntimeError):
    """The worker process ended before it answered (it crashed, or was killed from outside)."""


class WorkerOverMemory(WorkerLost):
    """The work needed more memory than a worker process may use; the process was replaced."""


@dataclass
class Running:
    """A task on a worker process, for `/health` and for the no-work-left-behind checks."""

    pid: int
    job: str | None
    due: float
    started: float = field(default_factory=time.monotonic)


class ImageWorkers:
    """Runs blocking image functions in `workers` processes, earliest deadline first, stoppable."""

    def __init__(self, workers: int, memory_ceiling: int = DEFAULT_MEMORY_CEILING) -> None:
        self.workers = workers
        # Bytes each worker process may hold (0: no ceiling): past it the work fails with MemoryError in the
        # worker, which is replaced, and its caller gets `WorkerOverMemory` at once (issue 31, class 2).
        self.memory_ceiling = memory_ceiling
        self.over_memory = 0  # tasks that went over the ceiling
        self._free = workers
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._idle: list[WorkerProcess] = []
        self._lock = threading.Lock()  # `_idle` is also filled from executor threads
        # One thread per task in flight waits on its pipe; plus a few for starting and stopping processes.
        self._io = ThreadPoolExecutor(workers + 2, thread_name_prefix="image-io")
        self.running: dict[int, Running] = {}
        self._busy: dict[int, WorkerProcess] = {}  # processes running a task, by pid (stopped at shutdown)
        self.replaced = 0  # processes stopped because their work was no longer wanted (or they died)
        self.started = 0  # tasks started
        # Moving average of a queue task's run time; None until one has been measured (a guess would be wrong
        # by 20× between a 2 MP and a 24 MP photo, and would refuse the first photos of a burst for nothing).
        self._service: float | None = None
        self._closed = False
        # Photos still arriving (or being admitted), by token: their deadline. They will queue for a worker
        # soon, and those that arrived earlier go first (earliest deadline first) — so they count as ahead.
        self._announced: dict[object, float] = {}

    # --- figures ------------------------------------------------------------------------
    @property
    def busy(self) -> int:
        return self.workers - self._free

    @property
    def queued(self) -> int:
        return sum(1 for *_, waiter in self._waiting if not waiter.done())

    def running_jobs(self) -> list[str]:
        return [r.job for r in self.running.values() if r.job]

    def stuck(self) -> list[Running]:
        now = time.monotonic()
        return [r for r in self.running.values() if now > r.due + STUCK_GRACE_SECONDS]

    def snapshot(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "busy": self.busy,
            "queued": self.queued,
            "stuck": len(self.stuck()),
            "replaced": self.replaced,
            "over_memory": self.over_memory,
            "started": self.started,
            "service_seconds": None if self._service is None else round(self._service, 3),
        }

    def expected_wait(self, due: float) -> float:
        """Seconds until queue work due at `due` would be finished: the work with an earlier deadline — queued,
        or announced (a photo still arriving) — runs first (earliest deadline first), then this one,
        `workers` at a time."""
        if self._service is None:
            return 0.0
        ahead = sum(1 for d, _, w in self._waiting if d <= due and not w.done())
        ahead += sum(1 for d in self._announced.values() if d < due)
        return (ahead + self.busy / 2 + 1) * self._service / self.workers

    def waiting_ahead(self, due: float) -> int:
        """How many photos wait for a worker ahead of work due at `due` (queued or still arriving)."""
        ahead = sum(1 for d, _, w in self._waiting if d <= due and not w.done())
        return ahead + sum(1 for d in self._announced.values() if d < due)

    def announce(self, token: object, due: float) -> None:
        """A photo due at `due` is arriving and will need a worker (see `expected_wait`)."""
        self._announced[token] = due

    def withdraw(self, token: object) -> None:
        self._announced.pop(token, None)

    # --- running work -------------------------------------------------------------------
    async def start(self) -> None:
        """Start the worker processes ahead of the first photo (otherwise they start on first use)."""
        loop = asyncio.get_running_loop()
        missing = self.workers - len(self._idle)
        spawned = await asyncio.gather(*(loop.run_in_executor(self._io, self._spawn) for _ in range(missing)))
        with self._lock:
            self._idle.extend(spawned)

    async def run(self, deadline: float | None, func: Callable[..., T], *args: object) -> T:
        """`func(*args)` in a worker process once one is free and no earlier deadline waits. Stopped (its
        process killed and replaced) when `deadline` passes or the caller is cancelled."""
        due = time.monotonic() + UNDATED_SECONDS if deadline is None else deadline
        _check_picklable(func)
        async with asyncio.timeout_at(due):  # waiting counts too: work past its deadline is not started
            await self._acquire(due)
            try:
                return await self._call(due, func, args)
            finally:
                self._release()

    async def _call(self, due: float, func: Callable[..., T], args: tuple[Any, ...]) -> T:
        loop = asyncio.get_running_loop()
        worker = await self._take()
        self.running[worker.pid] = Running(worker.pid, JOB.get(), due)
        self._busy[worker.pid] = worker
        self.started += 1
        started = time.monotonic()
        exchange = loop.run_in_executor(self._io, worker.exchange, func, args)
        try:
            kind, value = await asyncio.shield(exchange)
        except BaseException:
            # Deadline passed, or the booth was answered: the work is no longer wanted. Stop it now.
            self.running.pop(worker.pid, None)
            self._busy.pop(worker.pid, None)
            self._replace(worker)
            raise
        self.running.pop(worker.pid, None)
        self._busy.pop(worker.pid, None)
        if kind == "lost":
            self._replace(worker)
            raise WorkerLost("The image worker stopped before it finished (the image may be hostile or too big).")
        if kind == "memory":
            self.over_memory += 1
            self._replace(worker)
            raise WorkerOverMemory(
                f"The image needs more memory than an image worker may use ({self.memory_ceiling >> 20} MB, "
                "BOOTHGATE_IMAGE_WORKER_MEMORY_BYTES)."
            )
        with self._lock:
            self._idle.append(worker)
        took = time.monotonic() - started
        self._service = took if self._service is None else 0.8 * self._service + 0.2 * took
        if kind == "booth":
            cls, message, code, status = value
            raise cls(message, code=code, status=status)
        if kind == "error":
            raise value
        return value  # type: ignore[no-any-return]

    async def _take(self) -> WorkerProcess:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
        return await asyncio.get_running_loop().run_in_executor(self._io, self._spawn)

    def _spawn(self) -> WorkerProcess:
        return WorkerProcess(self.memory_ceiling)

    def _replace(self, worker: WorkerProcess) -> None:
        """Kill a worker whose work is no longer wanted, and start its successor (both off the loop)."""
        self.replaced += 1

        def replace() -> None:
            worker.kill()
            if self._closed:
                return
            fresh = self._spawn()
            with self._lock:
                if self._closed:
                    fresh.stop()
                else:
                    self._idle.append(fresh)

        # Killing first, synchronously: from here on, nothing of this work is running.
        with contextlib.suppress(Exception):
            worker.process.kill()
        with contextlib.suppress(RuntimeError):
            self._io.submit(replace)

    async def _acquire(self, due: float) -> None:
        if self._free > 0 and not any(not w.done() for *_, w in self._waiting):
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (due, next(self._order), waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # a worker was handed over just as we were cancelled: pass it on
            raise

    def _release(self) -> None:
        waiting = self._waiting
        while waiting:
            *_, waiter = heapq.heappop(waiting)
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next in line
                return
        self._free += 1

    def shutdown(self) -> None:
        self._closed = True
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()
        for worker in list(self._busy.values()):
            worker.kill()
        self._io.shutdown(wait=False, cancel_futures=True)


def _check_picklable(func: Callable[..., Any]) -> None:
    """Work goes to another process by reference: a lambda or a nested function cannot."""
    qualname = getattr(func, "__qualname__", "")
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise TypeError(f"image work must be a module-level function, not {qualname}")
