"""A stuck image worker turns `/health` to `degraded`, and it recovers once the work is stopped
(docs/reliability.md, "is anything stuck?"; docs/speed.md).

`stuck` counts work still running 2 s past its deadline. Through the booth path it cannot be produced: every
task runs under its deadline (`ImageWorkers.run`), is cancelled there and its process killed, and Linux
always carries out the kill. What the report is for is that stopper failing; so this test leaves the
stopper out and nothing else: a task that hangs (`tests/worker_tasks.py::hang`) runs in one of the server's
own worker processes through `ImageWorkers._call` — the call `run` wraps in its deadline — with a deadline
half a second away. `/health` is read over HTTP from the running server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from boothgate.imaging.workers import STUCK_GRACE_SECONDS
from tests import worker_tasks
from tests.conftest import Booth


async def _health_until(booth: Booth, want: str, timeout: float) -> dict[str, Any]:
    limit = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=booth.url, timeout=10) as client:
        while True:
            health: dict[str, Any] = (await client.get("/health")).json()
            if health["status"] == want:
                return health
            assert time.monotonic() < limit, f"/health never said {want}: {health}"
            await asyncio.sleep(0.1)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (its parent, the server, reaps it in its own time)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return state.split()[1] not in ("Z", "X")


async def test_a_worker_past_its_deadline_makes_health_degraded_until_it_is_stopped(
    booth_factory: Any, tmp_path: Path
) -> None:
    booth: Booth = booth_factory(image_workers=1)
    before = await _health_until(booth, "ok", 30)
    assert before["image_workers"]["stuck"] == 0
    workers = booth.services.imaging.workers
    pid_file = tmp_path / "hang.pid"
    due = time.monotonic() + 0.5
    hung = asyncio.create_task(workers._call(due, worker_tasks.hang, (str(pid_file),)))
    try:
        limit = time.monotonic() + 30
        while not pid_file.exists():  # the worker process has started the task
            assert time.monotonic() < limit and not hung.done(), "the hanging task never started"
            await asyncio.sleep(0.05)
        pid = int(pid_file.read_text())
        degraded = await _health_until(booth, "degraded", due - time.monotonic() + STUCK_GRACE_SECONDS + 15)
        assert time.monotonic() > due + STUCK_GRACE_SECONDS, "only work past its deadline and grace is stuck"
        assert degraded["image_workers"]["stuck"] == 1, degraded["image_workers"]
        assert _alive(pid), "the work is really still running in its worker process"
    finally:
        hung.cancel()  # what `run` does at the deadline: the work is no longer wanted, its process is killed
        with contextlib.suppress(asyncio.CancelledError):
            await hung
    try:
        recovered = await _health_until(booth, "ok", 30)
        assert recovered["image_workers"]["stuck"] == 0
        assert recovered["image_workers"]["replaced"] == before["image_workers"]["replaced"] + 1
        limit = time.monotonic() + 10
        while _alive(pid):
            assert time.monotonic() < limit, f"worker {pid} still running after it was stopped"
            await asyncio.sleep(0.05)
    finally:  # a server that failed to stop it must not leave the hanging process behind the test
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
