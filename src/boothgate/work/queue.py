"""The `tasks` table as a queue: idempotent enqueue, leased claims, renew, finish, retry (see __init__)."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from boothgate.storage.db import Database
from boothgate.storage.models import Task, utcnow

ERROR_CHARS = 2000


def node_id() -> str:
    """This process's name as a lease owner: host, pid and a random part (a restarted pid is a new node)."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Claimed:
    """A task this node holds the lease of."""

    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    attempts: int  # including this one
    max_attempts: int


class TaskQueue:
    def __init__(self, db: Database, node: str | None = None) -> None:
        self.db = db
        self.node = node or node_id()
        self._wake = asyncio.Event()

    # --- enqueue ------------------------------------------------------------------------------
    async def enqueue(
        self,
        kind: str,
        key: str,
        payload: dict[str, Any] | None = None,
        run_after: float | None = None,
        *,
        priority: int = 100,
        max_attempts: int = 5,
        session: AsyncSession | None = None,
    ) -> bool:
        """Add a task unless one with `key` exists (then nothing changes). True when it was added.

        `run_after` is Unix seconds (None: now). With `session`, the row is written in the caller's
        transaction (it exists exactly when the caller's other rows do)."""
        values = {
            "kind": kind,
            "key": key,
            "payload": payload or {},
            "state": "queued",
            "priority": priority,
            "run_after": time.time() if run_after is None else run_after,
            "attempts": 0,
            "max_attempts": max(1, max_attempts),
            "created_at": utcnow(),
        }
        dialect = postgresql if not self.db.is_sqlite else sqlite
        statement = dialect.insert(Task).values(**values).on_conflict_do_nothing(index_elements=["key"])
        if session is not None:
            result = await session.execute(statement)
        else:
            async with self.db.write() as own:
                result = await own.execute(statement)
        added = bool(getattr(result, "rowcount", 0))
        if added:
            self._wake.set()
        return added

    async def enqueue_held(
        self,
        kind: str,
        key: str,
        payload: dict[str, Any],
        lease_seconds: float,
        *,
        priority: int = 100,
        max_attempts: int = 5,
    ) -> Claimed | None:
        """Add a task already claimed by this node (None when one with `key` exists).

        For work whose first attempt is under way in this process (a late result's provider call): no
        other node may take it while this one renews the lease, and one that dies leaves a lease that
        expires, after which any node takes it over as usual."""
        now = time.time()
        values = {
            "kind": kind,
            "key": key,
            "payload": payload,
            "state": "running",
            "priority": priority,
            "run_after": now,
            "attempts": 1,
            "max_attempts": max(1, max_attempts),
            "created_at": utcnow(),
            "owner": self.node,
            "lease_until": now + lease_seconds,
        }
        dialect = postgresql if not self.db.is_sqlite else sqlite
        statement = (
            dialect.insert(Task)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(Task.id, Task.kind, Task.key, Task.payload, Task.attempts, Task.max_attempts)
        )
        async with self.db.write() as session:
            row = (await session.execute(statement)).first()
        if row is None:
            return None
        return Claimed(row[0], row[1], row[2], dict(row[3] or {}), row[4], row[5])

    async def drop(self, key: str, reason: str) -> bool:
        """A queued task that is no longer wanted ends as failed with `reason` (a running one is left alone)."""
        async with self.db.write() as session:
            result = await session.execute(
                update(Task)
                .where(Task.key == key, Task.state == "queued")
                .values(state="failed", last_error=reason[:ERROR_CHARS], finished_at=utcnow())
            )
        return bool(getattr(result, "rowcount", 0))

    async def get(self, key: str) -> Task | None:
        async with self.db.read() as session:
            return await session.scalar(select(Task).where(Task.key == key))

    # --- claim --------------------------------------------------------------------------------
    def _due(self, now: float) -> Any:
        return or_(
            and_(Task.state == "queued", Task.run_after <= now),
            and_(Task.state == "running", Task.lease_until < now, Task.attempts < Task.max_attempts),
        )

    async def anything_due(self, kinds: list[str] | None = None, exclude: list[int] | None = None) -> bool:
        """A read (no write lock): whether a claim could find something, or a dead lease needs ending."""
        now = time.time()
        exhausted = and_(Task.state == "running", Task.lease_until < now, Task.attempts >= Task.max_attempts)
        condition = or_(self._due(now), exhausted)
        if kinds is not None:
            condition = and_(condition, Task.kind.in_(kinds))
        if exclude:
            condition = and_(condition, Task.id.not_in(exclude))
        async with self.db.read() as session:
            return await session.scalar(select(Task.id).where(condition).limit(1)) is not None

    async def claim(
        self, lease_seconds: float, kinds: list[str] | None = None, exclude: list[int] | None = None
    ) -> Claimed | None:
        """Take one due task (queued and due, or running with an expired lease) under a lease.

        `exclude`: tasks this node is running already (a lease it failed to renew is not a second run)."""
        now = time.time()
        due = self._due(now)
        if kinds is not None:
            due = and_(due, Task.kind.in_(kinds))
        if exclude:
            due = and_(due, Task.id.not_in(exclude))
        order = (Task.priority, Task.run_after, Task.id)
        changes = {
            "state": "running",
            "lease_until": now + lease_seconds,
            "owner": self.node,
            "attempts": Task.attempts + 1,
        }
        async with self.db.write() as session:
            if self.db.is_sqlite:
                chosen = select(Task.id).where(due).order_by(*order).limit(1).scalar_subquery()
                statement = (
                    update(Task)
                    .where(Task.id == chosen)
                    .values(**changes)
                    .returning(Task.id, Task.kind, Task.key, Task.payload, Task.attempts, Task.max_attempts)
                )
                row = (await session.execute(statement)).first()
            else:
                locked = await session.scalar(
                    select(Task.id).where(due).order_by(*order).limit(1).with_for_update(skip_locked=True)
                )
                row = None
                if locked is not None:
                    statement = (
                        update(Task)
                        .where(Task.id == locked)
                        .values(**changes)
                        .returning(Task.id, Task.kind, Task.key, Task.payload, Task.attempts, Task.max_attempts)
                    )
                    row = (await session.execute(statement)).first()
        if row is None:
            return None
        return Claimed(row[0], row[1], row[2], dict(row[3] or {}), row[4], row[5])

    def _mine(self, task_id: int) -> Any:
        return and_(Task.id == task_id, Task.owner == self.node, Task.state == "running")

    async def renew(self, task_id: int, lease_seconds: float) -> bool:
        """Extend the lease; False when this node no longer holds it (another node took the task over)."""
        async with self.db.write() as session:
            result = await session.execute(
                update(Task).where(self._mine(task_id)).values(lease_until=time.time() + lease_seconds)
            )
        return bool(getattr(result, "rowcount", 0))

    async def finish(self, task_id: int) -> bool:
        async with self.db.write() as session:
            result = await session.execute(
                update(Task)
                .where(self._mine(task_id))
                .values(state="done", lease_until=None, finished_at=utcnow(), last_error=None)
            )
        return bool(getattr(result, "rowcount", 0))

    async def retry(self, task: Claimed, error: str, after_seconds: float | None) -> str:
        """After a failure: queued again in `after_seconds`, or failed for good (None, or attempts spent)."""
        final = after_seconds is None or task.attempts >= task.max_attempts
        values: dict[str, Any] = {"last_error": error[:ERROR_CHARS], "lease_until": None}
        if final:
            values.update(state="failed", finished_at=utcnow())
        else:
            values.update(state="queued", run_after=time.time() + (after_seconds or 0.0), owner=None)
        async with self.db.write() as session:
            await session.execute(update(Task).where(self._mine(task.id)).values(**values))
        return "failed" if final else "queued"

    async def release(self, task_id: int) -> None:
        """Give a running task back at once (graceful stop): due now, this attempt not counted."""
        async with self.db.write() as session:
            await session.execute(
                update(Task)
                .where(self._mine(task_id))
                .values(state="queued", lease_until=None, owner=None, run_after=time.time(), attempts=Task.attempts - 1)
            )

    async def give_up_exhausted(self) -> int:
        """Tasks whose leases expired more often than `max_attempts` (they kill their node?) fail for good."""
        now = time.time()
        async with self.db.write() as session:
            result = await session.execute(
                update(Task)
                .where(Task.state == "running", Task.lease_until < now, Task.attempts >= Task.max_attempts)
                .values(state="failed", lease_until=None, finished_at=utcnow(), last_error="lease expired")
            )
        return int(getattr(result, "rowcount", 0) or 0)

    # --- wake-up ------------------------------------------------------------------------------
    async def wait(self, seconds: float) -> None:
        """Until a local enqueue or `seconds` pass."""
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    def wake(self) -> None:
        self._wake.set()
