"""Image workers: earliest deadline first, and never more decodes at once than workers."""

from __future__ import annotations

import asyncio
import threading

from boothgate.services.workers import ImageWorkers


async def _blocked(workers: ImageWorkers, release: threading.Event, started: threading.Event) -> None:
    def work() -> None:
        started.set()
        release.wait(5)

    await workers.run(0.0, work)


async def test_waiting_work_runs_earliest_deadline_first() -> None:
    workers = ImageWorkers(1)
    release, started = threading.Event(), threading.Event()
    order: list[str] = []
    first = asyncio.create_task(_blocked(workers, release, started))
    await asyncio.to_thread(started.wait, 5)
    # queued in arrival order 30, 10, 20: served 10, 20, 30
    waiting = [asyncio.create_task(workers.run(float(d), order.append, name)) for d, name in
               [(30, "late"), (10, "soon"), (20, "middle")]]  # fmt: skip
    await asyncio.sleep(0.05)
    assert order == [] and workers.queued == 3
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == ["soon", "middle", "late"]
    workers.shutdown()


async def test_a_cancelled_request_keeps_its_worker_busy_until_the_thread_ends() -> None:
    workers = ImageWorkers(1)
    release, started = threading.Event(), threading.Event()
    first = asyncio.create_task(_blocked(workers, release, started))
    await asyncio.to_thread(started.wait, 5)
    first.cancel()  # the booth's deadline passed; the decode in the thread cannot be stopped
    ran = threading.Event()
    second = asyncio.create_task(workers.run(1.0, ran.set))
    await asyncio.sleep(0.1)
    assert not ran.is_set(), "a second decode started while the first was still running"
    assert workers.busy == 1
    release.set()
    await second
    assert ran.is_set() and workers.busy == 0
    workers.shutdown()


async def test_a_cancelled_waiter_does_not_take_a_worker() -> None:
    workers = ImageWorkers(1)
    release, started = threading.Event(), threading.Event()
    first = asyncio.create_task(_blocked(workers, release, started))
    await asyncio.to_thread(started.wait, 5)
    gone = asyncio.create_task(workers.run(1.0, lambda: "gone"))
    kept = asyncio.create_task(workers.run(2.0, lambda: "kept"))
    await asyncio.sleep(0.02)
    gone.cancel()
    release.set()
    assert await kept == "kept"
    await first
    assert gone.cancelled() and workers.busy == 0 and workers.queued == 0
    workers.shutdown()
