"""Durable background work (boothgate/work/): idempotent enqueue, leases, takeover, retries, restarts.

Two `Database` objects on one file play two nodes (SQLite), and the same on a throw-away PostgreSQL
cluster (SKIP LOCKED). Waits poll the table with a timeout; no assertion depends on the machine's speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from boothgate.storage.db import Database
from boothgate.storage.models import Task
from boothgate.work import Context, Permanent, Runner, TaskQueue
from tests.records.test_postgres import postgres_url  # noqa: F401  (the fixture)


async def _database(url: str) -> Database:
    db = Database(url)
    await db.migrate()
    return db


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> AsyncIterator[str]:
    yield f"sqlite+aiosqlite:///{tmp_path / 'work.db'}"


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def _task(db: Database, key: str) -> Task:
    async with db.read() as session:
        task = await session.scalar(select(Task).where(Task.key == key))
    assert task is not None
    return task


async def test_enqueue_is_idempotent_by_key(sqlite_url: str) -> None:
    db = await _database(sqlite_url)
    queue = TaskQueue(db, "node-a")
    assert await queue.enqueue("late_result", "late:1", {"job": "1"}) is True
    assert await queue.enqueue("late_result", "late:1", {"job": "other"}) is False
    async with db.read() as session:
        rows = (await session.scalars(select(Task))).all()
    assert len(rows) == 1 and rows[0].payload == {"job": "1"}
    ran: list[str] = []
    runner = Runner(queue, poll_seconds=0.1)

    async def handler(ctx: Context) -> None:
        ran.append(ctx.task.key)

    runner.register("late_result", handler)
    runner.start()
    await _until(lambda: _state(db, "late:1", "done"))
    await queue.enqueue("late_result", "late:1", {})  # done stays done: no second run
    await asyncio.sleep(0.3)
    await runner.stop()
    assert ran == ["late:1"]
    await db.dispose()


async def _state(db: Database, key: str, state: str) -> bool:
    return (await _task(db, key)).state == state


async def _takeover(url: str) -> None:
    node_a, node_b = await _database(url), await _database(url)
    queue_a, queue_b = TaskQueue(node_a, "node-a"), TaskQueue(node_b, "node-b")
    started: list[str] = []
    release = asyncio.Event()

    async def slow(ctx: Context) -> None:
        started.append(ctx.queue.node)
        await release.wait()

    runner_a = Runner(queue_a, poll_seconds=0.1, lease_seconds=1.5)
    runner_a.register("slow", slow)
    await queue_a.enqueue("slow", "slow:1")
    runner_a.start()
    await _until(lambda: _state(node_a, "slow:1", "running"))
    runner_a.renewing = False  # node A hangs: its lease is no longer renewed
    runner_b = Runner(queue_b, poll_seconds=0.1, lease_seconds=1.5)
    runner_b.register("slow", slow)
    runner_b.start()
    # While A's lease is valid B must not take it; once it expires B does.
    assert (await _task(node_b, "slow:1")).owner == "node-a"
    await _until(lambda: _owner(node_b, "slow:1", "node-b"))
    task = await _task(node_b, "slow:1")
    assert task.attempts == 2 and started == ["node-a", "node-b"]
    release.set()
    await _until(lambda: _state(node_b, "slow:1", "done"))
    # A's handler learns at its next renewal that it lost the task; it never marks it done itself.
    runner_a.renewing = True
    await runner_a.stop(grace_seconds=3)
    await runner_b.stop()
    assert (await _task(node_b, "slow:1")).owner == "node-b"
    await node_a.dispose()
    await node_b.dispose()


async def _owner(db: Database, key: str, owner: str) -> bool:
    return (await _task(db, key)).owner == owner


async def test_expired_lease_is_taken_over_sqlite(sqlite_url: str) -> None:
    await _takeover(sqlite_url)


async def test_expired_lease_is_taken_over_postgresql(postgres_url: str) -> None:  # noqa: F811
    await _takeover(postgres_url)


async def test_two_nodes_never_run_one_task_twice_postgresql(postgres_url: str) -> None:  # noqa: F811
    await _no_double_runs(postgres_url)


async def test_two_nodes_never_run_one_task_twice_sqlite(sqlite_url: str) -> None:
    await _no_double_runs(sqlite_url)


async def _no_double_runs(url: str) -> None:
    dbs = [await _database(url), await _database(url)]
    ran: list[str] = []

    async def handler(ctx: Context) -> None:
        ran.append(ctx.task.key)
        await asyncio.sleep(0.01)

    runners = []
    for n, db in enumerate(dbs):
        runner = Runner(TaskQueue(db, f"node-{n}"), concurrency=4, poll_seconds=0.05)
        runner.register("k", handler)
        runners.append(runner)
    for i in range(40):
        await runners[i % 2].queue.enqueue("k", f"k:{i}")
    for runner in runners:
        runner.start()

    async def all_done() -> bool:
        async with dbs[0].read() as session:
            states = (await session.scalars(select(Task.state))).all()
        return all(s == "done" for s in states)

    await _until(all_done)
    for runner in runners:
        await runner.stop()
    assert sorted(ran) == sorted(f"k:{i}" for i in range(40))  # each exactly once
    for db in dbs:
        await db.dispose()


async def test_retries_back_off_then_fail_for_good(sqlite_url: str) -> None:
    db = await _database(sqlite_url)
    queue = TaskQueue(db, "node-a")
    seen: list[float] = []

    async def flaky(ctx: Context) -> None:
        seen.append(time.time())
        if ctx.task.attempts < 3:
            raise RuntimeError(f"provider unreachable (attempt {ctx.task.attempts})")

    runner = Runner(queue, poll_seconds=0.05, backoff_seconds=0.4)
    runner.register("flaky", flaky)
    await queue.enqueue("flaky", "flaky:1", max_attempts=5)
    runner.start()
    await _until(lambda: _state(db, "flaky:1", "done"))
    task = await _task(db, "flaky:1")
    assert task.attempts == 3 and len(seen) == 3
    # Backoff 0.4 s then 0.8 s (±20 %): the recorded gaps are at least those floors.
    assert seen[1] - seen[0] >= 0.4 * 0.8 and seen[2] - seen[1] >= 0.8 * 0.8
    assert runner.backoff(10) <= runner.backoff_cap_seconds * 1.2

    async def always(ctx: Context) -> None:
        raise RuntimeError("always")

    async def hopeless(ctx: Context) -> None:
        raise Permanent("no such job")

    runner.register("always", always)
    runner.register("hopeless", hopeless)
    await runner.stop()
    runner.start()
    await queue.enqueue("always", "always:1", max_attempts=2)
    await queue.enqueue("hopeless", "hopeless:1", max_attempts=5)
    await _until(lambda: _state(db, "always:1", "failed"))
    await _until(lambda: _state(db, "hopeless:1", "failed"))
    await runner.stop()
    always_task, hopeless_task = await _task(db, "always:1"), await _task(db, "hopeless:1")
    assert always_task.attempts == 2 and "always" in (always_task.last_error or "")
    assert hopeless_task.attempts == 1 and "no such job" in (hopeless_task.last_error or "")
    await db.dispose()


async def test_restart_resumes_given_back_and_abandoned_tasks(sqlite_url: str) -> None:
    db = await _database(sqlite_url)
    hold = asyncio.Event()
    ran: list[str] = []

    async def handler(ctx: Context) -> None:
        ran.append(f"{ctx.queue.node}:{ctx.task.key}")
        if ctx.queue.node.startswith("first"):
            await hold.wait()  # never set: the first node stops or dies mid-work

    first = Runner(TaskQueue(db, "first"), concurrency=2, poll_seconds=0.05, lease_seconds=1.0)
    first.register("k", handler)
    await first.queue.enqueue("k", "graceful")
    first.start()
    await _until(lambda: _state(db, "graceful", "running"))
    await first.stop(grace_seconds=0.2)  # graceful: given back at once, attempt not counted
    given_back = await _task(db, "graceful")
    assert given_back.state == "queued" and given_back.attempts == 0 and given_back.owner is None

    dying = Runner(TaskQueue(db, "first-dying"), poll_seconds=0.05, lease_seconds=1.0)
    dying.register("k", handler)
    await dying.queue.enqueue("k", "killed")
    dying.start()
    await _until(lambda: _owner(db, "killed", "first-dying"))
    await dying.abandon()  # like SIGKILL: nothing written, the lease just runs out
    assert (await _task(db, "killed")).state == "running"
    await db.dispose()

    db2 = await _database(sqlite_url)  # "restart": a new process on the same file
    second = Runner(TaskQueue(db2, "second"), poll_seconds=0.05, lease_seconds=1.0)
    second.register("k", handler)
    second.start()
    await _until(lambda: _state(db2, "graceful", "done"))
    await _until(lambda: _state(db2, "killed", "done"))
    await second.stop()
    assert "second:graceful" in ran and "second:killed" in ran
    assert (await _task(db2, "killed")).attempts == 2
    await db2.dispose()


async def test_local_enqueue_wakes_the_runner(sqlite_url: str) -> None:
    db = await _database(sqlite_url)
    queue = TaskQueue(db, "node-a")
    done = asyncio.Event()

    async def handler(ctx: Context) -> None:
        done.set()

    runner = Runner(queue, poll_seconds=3600)  # it would never poll again by itself
    runner.register("k", handler)
    idle = asyncio.Event()
    real_wait = queue.wait

    async def wait(seconds: float) -> None:  # the real wait, seen from the test
        idle.set()
        await real_wait(seconds)

    queue.wait = wait  # type: ignore[method-assign]
    runner.start()
    await asyncio.wait_for(idle.wait(), 20)  # it found nothing and sleeps: only the enqueue can wake it
    await queue.enqueue("k", "k:1")
    await asyncio.wait_for(done.wait(), 20)
    await runner.stop()
    await db.dispose()


async def test_an_adopted_task_runs_here_beyond_the_bound_and_another_node_takes_it_only_when_its_lease_ends(
    sqlite_url: str,
) -> None:
    """`Runner.adopt` (a late result awaiting its own booth-time call): run at once on this node even with
    every slot busy; node B, polling all the while, does not take it while A renews; once A stops renewing
    (a node that died), B takes it over."""
    node_a, node_b = await _database(sqlite_url), await _database(sqlite_url)
    runner_a = Runner(TaskQueue(node_a, "node-a"), concurrency=1, poll_seconds=0.05, lease_seconds=0.6)
    runner_b = Runner(TaskQueue(node_b, "node-b"), concurrency=4, poll_seconds=0.05, lease_seconds=0.6)
    release = asyncio.Event()
    ran: list[tuple[str, str]] = []

    def handler(node: str) -> Callable[[Context], Awaitable[None]]:
        async def run(ctx: Context) -> None:
            ran.append((node, ctx.task.key))
            await release.wait()

        return run

    runner_a.register("late_result", handler("a"))
    runner_b.register("late_result", handler("b"))
    runner_a.start()
    runner_b.start()
    assert await runner_a.adopt("late_result", "late:1", {"job": "1"}, priority=50, max_attempts=4)
    assert await runner_a.adopt("late_result", "late:2", {"job": "2"}, priority=50, max_attempts=4)  # past 1
    assert not await runner_a.adopt("late_result", "late:1", {"job": "1"}, priority=50, max_attempts=4)
    await _until(lambda: asyncio.sleep(0, len(ran) == 2))
    assert sorted(ran) == [("a", "late:1"), ("a", "late:2")]
    await asyncio.sleep(2.0)  # over three leases of B polling: A renews, so B takes nothing
    assert sorted(ran) == [("a", "late:1"), ("a", "late:2")]
    await runner_a.abandon()  # A dies: no renewal, no release
    await _until(lambda: asyncio.sleep(0, sum(node == "b" for node, _ in ran) == 2))
    release.set()
    await _until(lambda: _state(node_a, "late:1", "done"))
    await _until(lambda: _state(node_a, "late:2", "done"))
    await runner_b.stop()
    await node_a.dispose()
    await node_b.dispose()
