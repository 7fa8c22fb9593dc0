"""The SQLite connection pool's two round-trip savings keep their promises (issue 25: each round trip to the
driver's thread costs the event loop ~0.1 ms, and a booth photo made ~40 of them).

- A connection is rolled back (at a session's end, and back in the pool) only when a transaction is open
  on it — but then it is: a write left uncommitted (a bug, or an error on the way) is never committed by
  the next user of the connection.
- A write sets the busy timeout only when it changes, and it follows the write's budget down as well as up.
"""

from __future__ import annotations

from typing import Any

import aiosqlite
import pytest
from sqlalchemy import event, select, text

from boothgate.storage.db import DEFAULT_BUSY_MILLISECONDS, Database
from boothgate.storage.models import Job


def _job(name: str) -> Job:
    return Job(id=name * 32, provider="gemini", slot_number=1, source="booth", status="received")


async def _jobs(sqlite_db: Database) -> set[str]:
    async with sqlite_db.read() as session:
        return set((await session.scalars(select(Job.id))).all())


async def test_a_write_left_open_is_rolled_back_not_committed_by_the_next_user(sqlite_db: Database) -> None:
    async with sqlite_db.write() as session:
        await session.execute(text("CREATE TABLE scratch (name TEXT)"))
    # Beside SQLAlchemy's back, on the driver itself (as a library or an error on the way might leave it):
    # SQLAlchemy does not know of it, and only the pool's reset catches it.
    async with sqlite_db.engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        await driver.execute("INSERT INTO scratch VALUES ('left open')")
        assert driver.in_transaction
    async with sqlite_db.write(timeout=2.0) as session:  # the same pooled connection: SQLite's pool keeps one
        await session.execute(text("INSERT INTO scratch VALUES ('committed')"))
    async with sqlite_db.read() as session:
        assert (await session.scalars(text("SELECT name FROM scratch"))).all() == ["committed"]


async def test_a_session_left_uncommitted_is_rolled_back(sqlite_db: Database) -> None:
    async with sqlite_db.read() as session:  # a write in a read session, never committed
        session.add(_job("a"))
        await session.flush()  # the INSERT ran: the driver opened a transaction
    async with sqlite_db.write(timeout=2.0) as session:
        session.add(_job("b"))
    assert await _jobs(sqlite_db) == {"b" * 32}


async def test_the_busy_timeout_follows_each_write_budget_down_and_up(sqlite_db: Database) -> None:
    async def busy(timeout: float | None) -> int:
        async with sqlite_db.write(timeout=timeout) as session:
            return int((await session.execute(text("PRAGMA busy_timeout"))).scalar_one())

    first = await busy(5.0)
    assert 4800 <= first <= 5000
    assert await busy(5.0) in (first, first - 100)  # the same step: set once, not again
    assert await busy(0.3) <= 300  # a smaller budget is never answered by a larger wait
    assert await busy(0.15) <= 150
    assert 4800 <= await busy(5.0) <= 5000
    assert await busy(None) == DEFAULT_BUSY_MILLISECONDS


async def test_reads_and_committed_writes_make_no_driver_rollback_and_one_pragma(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the two savings are for, counted: a read session and a committed write end without a rollback
    sent to the driver's thread, and writes with budgets alike set the busy timeout once."""
    rollbacks: list[bool] = []
    real_rollback = aiosqlite.Connection.rollback

    async def counted(self: aiosqlite.Connection) -> None:
        rollbacks.append(self.in_transaction)
        await real_rollback(self)

    monkeypatch.setattr(aiosqlite.Connection, "rollback", counted)
    pragmas: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("PRAGMA busy_timeout"):
            pragmas.append(statement)

    event.listen(sqlite_db.engine.sync_engine, "before_cursor_execute", seen)
    await _jobs(sqlite_db)
    for name in "ab":
        async with sqlite_db.write(timeout=5.0) as session:
            session.add(_job(name))
    await _jobs(sqlite_db)
    assert rollbacks == [] and len(pragmas) == 1, (rollbacks, pragmas)
    async with sqlite_db.read() as session:  # left open: now the rollback is sent
        session.add(_job("c"))
        await session.flush()
    assert rollbacks == [True]
    assert await _jobs(sqlite_db) == {"a" * 32, "b" * 32}
