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

Two lanes share the processes: `queue` (ordinary image work, at most `workers` at once — the CPU bound) and
`stream` (a photo decoded while its upload is still arriving: mostly waiting for bytes, at most `workers`
at once — the memory bound; see `booth/early.py`).

The contract for callers (other branches rely on it): `run(deadline, func, *args)` with `func` a
module-level function and picklable arguments (paths, bytes, ints, dicts). The worker imports `func`'s
module on first use; anything a function loads (a model) belongs in a module-level cache, kept for the life
of the worker process. A worker is a plain `python -m boothgate.imaging.workers` child speaking pickles
over its stdin/stdout: the same on Linux and Windows, nothing inherited from the server (threads, locks,
sockets, its main module), ~25 MB each with Pillow loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("boothgate.workers")

# Niceness of worker processes: the loop (nice 0) gets ~1.6× their CPU share when both want a core. Milder
# than the threads' 5 used to be: the loop no longer shares a GIL with decodes, and the kernel already
# favours a task that wakes from sleep (the loop) over ones that run flat out (decodes).
WORKER_NICENESS = 2
# Work without a deadline (admin thumbnails, reference checks) queues as if due this far ahead, and is
# stopped when that time has passed.
UNDATED_SECONDS = 60.0
# A task still running this long after its deadline was not stopped: `/health` reports it as stuck.
STUCK_GRACE_SECONDS = 2.0
LANES = ("queue", "stream")
_FRAME = struct.Struct(">Q")  # every message on a worker's pipes: its length, then the pickle

# The job the current task works for; ingest sets it, so `running_jobs()` can say what is still running.
JOB: contextvars.ContextVar[str | None] = contextvars.ContextVar("boothgate_job", default=None)


class WorkerLost(RuntimeError):
    """The worker process ended before it answered (it crashed, or was killed from outside)."""


# --- inside a worker process ------------------------------------------------------------------
def _lower_priority() -> None:
    if sys.platform == "win32":
        with contextlib.suppress(Exception):
            import ctypes

            below_normal = 0x4000
            ctypes.windll.kernel32.SetPriorityClass(ctypes.windll.kernel32.GetCurrentProcess(), below_normal)  # type: ignore[attr-defined]
        return
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)


def _shield_from_group_signals() -> None:
    """Ctrl+C in a terminal and `systemctl stop` signal the whole process group (or cgroup); a worker must
    finish its work and be stopped last, by the server (issue 31, class 6). The server ends a worker with
    a kill, or by closing its pipe — never with SIGINT/SIGTERM — so both are ignored here."""
    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        number = getattr(signal, name, None)
        if number is not None:
            with contextlib.suppress(OSError, ValueError):
                signal.signal(number, signal.SIG_IGN)


def _portable(exc: BaseException) -> tuple[str, Any]:
    """An exception in a form that survives pickling. Booth errors keep their status and code (their
    `__init__` takes keyword arguments that plain exception pickling would drop)."""
    from boothgate.errors import BoothError

    if isinstance(exc, BoothError):
        return "booth", (type(exc), exc.message, exc.code, exc.status)
    try:
        pickle.dumps(exc)
    except Exception:
        return "error", RuntimeError(f"{type(exc).__name__}: {exc}")
    return "error", exc


def _send(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """One framed message; EOFError when the other side is gone."""
    head = _read_exactly(stream, _FRAME.size)
    return pickle.loads(_read_exactly(stream, _FRAME.unpack(head)[0]))


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    parts, left = [], size
    while left:
        part = stream.read(left)
        if not part:
            raise EOFError
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _serve() -> None:
    """A worker process (`python -m boothgate.imaging.workers`): run each (func, args) it is sent on stdin,
    answer ("ok", result) or an error on stdout. Anything the work prints goes to stderr."""
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr
    _shield_from_group_signals()
    sys.path[:] = _receive(requests)  # the server's import path (tests, the bench, plugins)
    _lower_priority()
    import boothgate.imaging.images  # noqa: F401  (most work needs it: loaded before the first task, not during it)

    while True:
        try:
            message = _receive(requests)
        except (EOFError, OSError):
            return
        if message is None:
            return
        func, args = message
        try:
            reply: tuple[str, Any] = ("ok", func(*args))
        except BaseException as exc:
            reply = _portable(exc)
        try:
            _send(replies, reply)
        except (EOFError, OSError):
            return
        except Exception as exc:  # the result itself cannot be pickled
            _send(replies, ("error", RuntimeError(f"the result cannot be sent back: {exc}")))


# --- in the server process --------------------------------------------------------------------
class _Process:
    """One worker process and the pipes to it. Talked to from one executor thread at a time.

    A plain child process (not `multiprocessing`): it starts the same way on Linux and Windows, does not
    re-import the server's main module (FastAPI, the database, the SDKs: ~60 MB per worker), and is killed
    with one call."""

    def __init__(self) -> None:
        # In a session (POSIX) / process group (Windows) of its own: a signal to the server's group does
        # not reach it (issue 31, class 6); it still ends when the server does (its stdin closes).
        self.process = subprocess.Popen(
            [sys.executable, "-m", "boothgate.imaging.workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0)
            | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),
            start_new_session=sys.platform != "win32",
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests, self.replies = self.process.stdin, self.process.stdout
        _send(self.requests, list(sys.path))

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def exchange(self, func: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
        try:
            _send(self.requests, (func, args))
            return _receive(self.replies)  # type: ignore[no-any-return]
        except (EOFError, OSError, ValueError):
            return "lost", None

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.wait(5)
        self._close_pipes()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            _send(self.requests, None)
        try:
            self.process.wait(1)
        except Exception:
            self.kill()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for stream in (self.requests, self.replies):
            with contextlib.suppress(Exception):
                stream.close()


@dataclass
class Running:
    """A task on a worker process, for `/health` and for the no-work-left-behind checks."""

    pid: int
    lane: str
    job: str | None
    due: float
    started: float = field(default_factory=time.monotonic)


class ImageWorkers:
    """Runs blocking image functions in `workers` processes, earliest deadline first, stoppable."""

    def __init__(self, workers: int, streams: int | None = None) -> None:
        self.workers = workers
        self.capacity = {"queue": workers, "stream": workers if streams is None else streams}
        self._free = dict(self.capacity)
        self._waiting: dict[str, list[tuple[float, int, asyncio.Future[None]]]] = {lane: [] for lane in LANES}
        self._order = itertools.count()
        self._idle: list[_Process] = []
        self._lock = threading.Lock()  # `_idle` is also filled from executor threads
        # One thread per task in flight waits on its pipe; plus a few for starting and stopping processes.
        self._io = ThreadPoolExecutor(sum(self.capacity.values()) + 2, thread_name_prefix="image-io")
        self.running: dict[int, Running] = {}
        self._busy: dict[int, _Process] = {}  # processes running a task, by pid (stopped at shutdown)
        self.replaced = 0  # processes stopped because their work was no longer wanted (or they died)
        self.started = dict.fromkeys(LANES, 0)  # tasks started per lane
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
        return self.capacity["queue"] - self._free["queue"]

    @property
    def streams(self) -> int:
        return self.capacity["stream"] - self._free["stream"]

    @property
    def queued(self) -> int:
        return sum(1 for *_, waiter in self._waiting["queue"] if not waiter.done())

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
            "streams": self.streams,
            "stuck": len(self.stuck()),
            "replaced": self.replaced,
            "early_decodes": self.started["stream"],
            "service_seconds": None if self._service is None else round(self._service, 3),
        }

    def expected_wait(self, due: float) -> float:
        """Seconds until queue work due at `due` would be finished: the work with an earlier deadline — queued,
        or announced (a photo still arriving) — runs first (earliest deadline first), then this one,
        `workers` at a time."""
        if self._service is None:
            return 0.0
        ahead = sum(1 for d, _, w in self._waiting["queue"] if d <= due and not w.done())
        ahead += sum(1 for d in self._announced.values() if d < due)
        return (ahead + self.busy / 2 + 1) * self._service / self.workers

    def waiting_ahead(self, due: float) -> int:
        """How many photos wait for a worker ahead of work due at `due` (queued or still arriving)."""
        ahead = sum(1 for d, _, w in self._waiting["queue"] if d <= due and not w.done())
        return ahead + sum(1 for d in self._announced.values() if d < due)

    def announce(self, token: object, due: float) -> None:
        """A photo due at `due` is arriving and will need a worker (see `expected_wait`)."""
        self._announced[token] = due

    def withdraw(self, token: object) -> None:
        self._announced.pop(token, None)

    def has_free(self, lane: str) -> bool:
        return self._free[lane] > 0 and not any(not w.done() for *_, w in self._waiting[lane])

    # --- running work -------------------------------------------------------------------
    async def start(self) -> None:
        """Start the worker processes ahead of the first photo (otherwise they start on first use)."""
        loop = asyncio.get_running_loop()
        missing = self.capacity["queue"] - len(self._idle)
        spawned = await asyncio.gather(*(loop.run_in_executor(self._io, self._spawn) for _ in range(missing)))
        with self._lock:
            self._idle.extend(spawned)

    async def run(self, deadline: float | None, func: Callable[..., T], *args: object) -> T:
        """`func(*args)` in a worker process once one is free and no earlier deadline waits. Stopped (its
        process killed and replaced) when `deadline` passes or the caller is cancelled."""
        return await self.run_in("queue", deadline, func, *args)

    async def run_in(self, lane: str, deadline: float | None, func: Callable[..., T], *args: object) -> T:
        due = time.monotonic() + UNDATED_SECONDS if deadline is None else deadline
        _check_picklable(func)
        async with asyncio.timeout_at(due):  # waiting counts too: work past its deadline is not started
            await self._acquire(lane, due)
            try:
                return await self._call(lane, due, func, args)
            finally:
                self._release(lane)

    async def _call(self, lane: str, due: float, func: Callable[..., T], args: tuple[Any, ...]) -> T:
        loop = asyncio.get_running_loop()
        worker = await self._take()
        self.running[worker.pid] = Running(worker.pid, lane, JOB.get(), due)
        self._busy[worker.pid] = worker
        self.started[lane] += 1
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
        with self._lock:
            self._idle.append(worker)
        if lane == "queue":
            took = time.monotonic() - started
            self._service = took if self._service is None else 0.8 * self._service + 0.2 * took
        if kind == "booth":
            cls, message, code, status = value
            raise cls(message, code=code, status=status)
        if kind == "error":
            raise value
        return value  # type: ignore[no-any-return]

    async def _take(self) -> _Process:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
        return await asyncio.get_running_loop().run_in_executor(self._io, self._spawn)

    def _spawn(self) -> _Process:
        return _Process()

    def _replace(self, worker: _Process) -> None:
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

    async def _acquire(self, lane: str, due: float) -> None:
        if self._free[lane] > 0 and not any(not w.done() for *_, w in self._waiting[lane]):
            self._free[lane] -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting[lane], (due, next(self._order), waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(lane)  # a worker was handed over just as we were cancelled: pass it on
            raise

    def _release(self, lane: str) -> None:
        waiting = self._waiting[lane]
        while waiting:
            *_, waiter = heapq.heappop(waiting)
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next in line
                return
        self._free[lane] += 1

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


if __name__ == "__main__":
    _serve()
