"""Image workers are processes: earliest deadline first, never more at once than workers, and work that
is no longer wanted (deadline passed, request answered or cancelled) is stopped with its process."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from boothgate.errors import TooLarge
from boothgate.imaging.workers import JOB, ImageWorkers, WorkerLost
from tests import worker_tasks
from tests.waits import eventually


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a killed child not yet reaped is a zombie: gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _read_pid(path: Path) -> int | None:
    text = path.read_text() if path.exists() else ""
    return int(text) if text else None


async def _pid_from(path: Path) -> int:
    for _ in range(500):
        pid = _read_pid(path)
        if pid is not None:
            return pid
        await asyncio.sleep(0.02)
    raise AssertionError("the worker never started the work")


async def _gone(pid: int) -> bool:
    for _ in range(250):
        if not _alive(pid):
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.fixture
async def workers() -> object:
    pool = ImageWorkers(1)
    await pool.start()
    yield pool
    pool.shutdown()


async def test_waiting_work_runs_earliest_deadline_first(workers: ImageWorkers, tmp_path: Path) -> None:
    flag, order = tmp_path / "go", tmp_path / "order"
    now = time.monotonic()
    first = asyncio.create_task(workers.run(now + 60, worker_tasks.wait_for, str(flag), str(tmp_path / "pid")))
    await _pid_from(tmp_path / "pid")
    # queued in arrival order 30, 10, 20: served 10, 20, 30
    waiting = [asyncio.create_task(workers.run(now + d, worker_tasks.append, str(order), name)) for d, name in
               [(30, "late"), (10, "soon"), (20, "middle")]]  # fmt: skip
    await eventually(lambda: workers.queued >= 3, "the three tasks to be queued")  # the pool has no event for it
    assert not order.exists() and workers.queued == 3 and workers.busy == 1
    flag.touch()
    await asyncio.gather(first, *waiting)
    assert order.read_text().split() == ["soon", "middle", "late"]
    assert workers.busy == 0


async def test_cancelled_work_is_stopped_and_its_process_replaced(workers: ImageWorkers, tmp_path: Path) -> None:
    JOB.set("job-1")
    task = asyncio.create_task(workers.run(time.monotonic() + 60, worker_tasks.hang, str(tmp_path / "pid")))
    pid = await _pid_from(tmp_path / "pid")
    assert workers.running_jobs() == ["job-1"]
    task.cancel()  # the booth was answered (or gave up): the work is no longer wanted
    with pytest.raises(asyncio.CancelledError):
        await task
    assert workers.running_jobs() == [] and workers.busy == 0
    assert await _gone(pid), "the worker process still runs the cancelled work"
    # a fresh process takes the next work
    other = await workers.run(time.monotonic() + 60, worker_tasks.append, str(tmp_path / "x"), "next")
    assert other != pid and _alive(other)
    assert workers.snapshot()["replaced"] == 1


async def test_work_past_its_deadline_is_stopped(workers: ImageWorkers, tmp_path: Path) -> None:
    with pytest.raises(TimeoutError):
        await workers.run(time.monotonic() + 1.0, worker_tasks.hang, str(tmp_path / "pid"))
    pid = _read_pid(tmp_path / "pid")
    assert pid is not None and await _gone(pid)
    assert workers.running_jobs() == [] and workers.snapshot()["stuck"] == 0


async def test_booth_errors_keep_their_code_across_the_process_boundary(workers: ImageWorkers) -> None:
    with pytest.raises(TooLarge) as caught:
        await workers.run(None, worker_tasks.refuse)
    assert caught.value.code == "image_too_large" and caught.value.status == 413


async def test_a_crashed_worker_is_reported_and_replaced(workers: ImageWorkers, tmp_path: Path) -> None:
    with pytest.raises(WorkerLost):
        await workers.run(None, worker_tasks.crash)
    pid = await workers.run(None, worker_tasks.append, str(tmp_path / "x"), "after")
    assert _alive(pid)


async def test_work_must_be_a_module_level_function(workers: ImageWorkers) -> None:
    with pytest.raises(TypeError, match="module-level"):
        await workers.run(None, lambda: 1)


async def test_a_waiter_cancelled_in_the_queue_never_runs(workers: ImageWorkers, tmp_path: Path) -> None:
    flag, order = tmp_path / "go", tmp_path / "order"
    first = asyncio.create_task(workers.run(None, worker_tasks.wait_for, str(flag), str(tmp_path / "pid")))
    await _pid_from(tmp_path / "pid")
    gone = asyncio.create_task(workers.run(1.0e9, worker_tasks.append, str(order), "gone"))
    kept = asyncio.create_task(workers.run(2.0e9, worker_tasks.append, str(order), "kept"))
    await eventually(lambda: workers.queued == 2, "both waiters to be queued")  # cancelled in the queue, not before
    gone.cancel()
    flag.touch()
    await asyncio.gather(first, kept)
    assert gone.cancelled() and order.read_text().split() == ["kept"]
    assert workers.busy == 0 and workers.queued == 0
