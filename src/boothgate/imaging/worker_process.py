"""One image worker process and the pipes to it: what runs inside the worker (`python -m
boothgate.imaging.worker_process`), and the server's handle on it (`WorkerProcess`). The scheduling —
which work runs when, and stopping it — is `workers.py`.

A plain child process (not `multiprocessing`) speaking framed pickles over its stdin/stdout: it starts the
same way on Linux and Windows, inherits nothing from the server (threads, locks, sockets, its main module),
does not re-import the server's main module (FastAPI, the database, the SDKs: ~60 MB per worker), costs
~25 MB with Pillow loaded, and is killed with one call.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

# Niceness of worker processes: the loop (nice 0) gets ~1.6× their CPU share when both want a core. Milder
# than the threads' 5 used to be: the loop no longer shares a GIL with decodes, and the kernel already
# favours a task that wakes from sleep (the loop) over ones that run flat out (decodes).
WORKER_NICENESS = 2
_FRAME = struct.Struct(">Q")  # every message on a worker's pipes: its length, then the pickle


# --- inside a worker process ---------------------------------------------------------------
def lower_thread_priority() -> None:
    """The calling thread at the workers' niceness (Linux sets niceness per thread): the early decoders'
    threads (`pool.py`) yield to the event loop as the worker processes do. Elsewhere: nothing."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICENESS)


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


def limit_memory(ceiling: int) -> str | None:
    """Cap this process's memory at `ceiling` bytes (0: no cap), so an allocation past it fails with
    `MemoryError` inside the work instead of taking the machine's memory (issue 31, class 2). Linux:
    RLIMIT_DATA (the private writable memory malloc and numpy take; shared libraries do not count);
    other POSIX systems: RLIMIT_AS. The name of the limit set, or None (Windows, or refused)."""
    if not ceiling or sys.platform == "win32":
        return None
    try:
        import resource

        name = "RLIMIT_DATA" if sys.platform.startswith("linux") else "RLIMIT_AS"
        kind = getattr(resource, name)
        _, hard = resource.getrlimit(kind)
        soft = ceiling if hard == resource.RLIM_INFINITY else min(ceiling, hard)
        resource.setrlimit(kind, (soft, hard))
    except (ImportError, AttributeError, ValueError, OSError):
        return None
    return name


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
    """A worker process (`python -m boothgate.imaging.worker_process`): run each (func, args) it is sent on stdin,
    answer ("ok", result) or an error on stdout. Anything the work prints goes to stderr."""
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr
    _shield_from_group_signals()
    sys.path[:], ceiling = _receive(requests)  # the server's import path (tests, the bench, plugins)
    limit_memory(ceiling)
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
        except MemoryError:  # over the ceiling: the server replaces this process (its heap stays large)
            reply = ("memory", None)
        except BaseException as exc:
            reply = _portable(exc)
        try:
            _send(replies, reply)
        except (EOFError, OSError):
            return
        except Exception as exc:  # the result itself cannot be pickled
            _send(replies, ("error", RuntimeError(f"the result cannot be sent back: {exc}")))


# --- in the server process --------------------------------------------------------------------
class WorkerProcess:
    """One worker process and the pipes to it. Talked to from one executor thread at a time."""

    def __init__(self, memory_ceiling: int = 0) -> None:
        # In a session (POSIX) / process group (Windows) of its own: a signal to the server's group does
        # not reach it (issue 31, class 6); it still ends when the server does (its stdin closes).
        self.process = subprocess.Popen(
            [sys.executable, "-m", "boothgate.imaging.worker_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0)
            | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),
            start_new_session=sys.platform != "win32",
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests, self.replies = self.process.stdin, self.process.stdout
        _send(self.requests, (list(sys.path), memory_ceiling))

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


if __name__ == "__main__":
    _serve()
