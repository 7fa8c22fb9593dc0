"""The database handle: async engine, sessions, one writer at a time on SQLite, migrations at start.

A write may carry a time budget (`write(timeout=...)`): waiting for our own writer queue is bounded
by it, and on SQLite so is waiting for *another process's* write lock (a DB browser, a backup script):
the connection's busy timeout is set to what is left of the budget (rounded down to 100 ms), so SQLite
itself gives up in time instead of a thread we could not stop. PostgreSQL gets the same through
`lock_timeout` and `statement_timeout`. `check()` is the real query behind `/health`.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"
# The busy timeout a connection has now (in its pool record's `info`), so a write sets it only when it changes.
BUSY_TIMEOUT = "boothgate_busy_timeout_ms"
# SQLite's wait for another connection's lock when a write has no budget of its own (admin edits).
DEFAULT_BUSY_MILLISECONDS = 10_000
CHECK_SECONDS = 2.0
# The advisory-lock key the schema upgrade runs under on PostgreSQL (any fixed 64-bit number of ours).
MIGRATION_LOCK = 0x626F6F7468_01


def is_disk_full(exc: BaseException) -> bool:
    """Whether a database error (or anything it wraps) means the disk is full."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        text = str(seen).lower()
        if "database or disk is full" in text or "no space left on device" in text:
            return True
        if getattr(seen, "sqlstate", None) == "53100" or getattr(seen, "pgcode", None) == "53100":
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return False


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    record.info[BUSY_TIMEOUT] = DEFAULT_BUSY_MILLISECONDS
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={DEFAULT_BUSY_MILLISECONDS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _rollback_when_open(rollback: Any, dbapi_connection: Any) -> None:
    """SQLite's `do_rollback`: only when a transaction is open on the connection. The driver opens one only
    for a write, so after a read (or a committed write) there is nothing to undo, and each rollback is a
    round trip to the driver's thread: a session's end and the pool's reset made about ten of them per booth
    photo, for nothing (counted over `python -m bench --only loop16`)."""
    try:
        open_ = dbapi_connection.driver_connection.in_transaction
    except Exception:  # closed or broken: let the driver's own rollback say so
        open_ = True
    if open_:
        rollback(dbapi_connection)


def _connect_or_operational_error(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """Connect like SQLAlchemy would, but a server that cannot be reached (PostgreSQL stopped: connection
    refused, reset, timed out) raises the driver's OperationalError, which SQLAlchemy turns into its own
    `OperationalError`. asyncpg raises the bare OSError, which no caller knew as a database failure: a booth
    arriving while PostgreSQL was down was answered 500 "internal_error" instead of 503
    "database_unavailable" (tests/reliability/test_postgres_stopped.py)."""
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:
        raise dialect.loaded_dbapi.OperationalError(f"cannot reach the database: {type(exc).__name__}: {exc}") from exc


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


class Database:
    """Owns the engine. `read()` for queries; `write()` serialises writers on SQLite (one writer, as
    SQLite wants) and is a plain transaction elsewhere."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            dialect = self.engine.sync_engine.dialect  # sessions' ends and the pool's resets both come here
            setattr(dialect, "do_rollback", functools.partial(_rollback_when_open, dialect.do_rollback))  # noqa: B010
        else:
            event.listen(self.engine.sync_engine, "do_connect", _connect_or_operational_error)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # One writers' queue per event loop. A server has one loop; a test that reaches a server's database
        # from its own loop gets a queue of its own (an asyncio.Lock woken from another loop's thread never
        # wakes its waiter), and SQLite's busy_timeout then orders the two loops' writers.
        self._write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] | None = (
            weakref.WeakKeyDictionary() if self.is_sqlite else None
        )
        self._file: tuple[int, int] | None = None  # (device, inode) of the SQLite file, taken at start

    async def migrate(self) -> tuple[str | None, str | None]:
        """Bring the schema to the newest revision (Alembic), on the engine's own connection; (before, after).

        On PostgreSQL the upgrade runs under a transaction-scoped advisory lock: when several nodes start at
        once (or `boothgate migrate` runs beside a starting node) one migrates and the others wait, then find
        the schema at head and do nothing. SQLite needs no lock: its write lock already serialises them.
        """

        from alembic.runtime.migration import MigrationContext

        def upgrade(connection: Connection) -> tuple[str | None, str | None]:
            before = MigrationContext.configure(connection).get_current_revision()
            cfg = alembic_config(self.url)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
            return before, MigrationContext.configure(connection).get_current_revision()

        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            changed = await conn.run_sync(upgrade)
        self._file = self._identity()
        return changed

    async def revisions(self) -> tuple[str | None, str]:
        """(the database's schema revision, the newest one this version knows)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config(self.url)).get_current_head() or ""
        async with self.engine.connect() as conn:
            current = await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
        self._file = self._identity()
        return current, head

    def _identity(self) -> tuple[int, int] | None:
        path = self.sqlite_path
        if path is None:
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        return (stat.st_dev, stat.st_ino)

    def file_gone(self) -> bool:
        """SQLite only: the file opened at start is no longer at its path. Writes would still "succeed"
        into the open, unlinked file and be lost with it."""
        return self._file is not None and self._identity() != self._file

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite or ":memory:" in self.url:
            return None
        return Path(self.engine.url.database or "")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self, timeout: float | None = None) -> AsyncIterator[AsyncSession]:
        """A session that commits on success. On SQLite, writers queue here instead of on file locks.

        With `timeout`, the write gives up (TimeoutError, or the driver's "database is locked") once the
        budget is spent: waiting in our queue, for another process's lock, or for a PostgreSQL lock.
        """
        until = None if timeout is None else time.monotonic() + timeout
        if self._write_locks is None:
            async with self.sessions() as session, session.begin():
                if until is not None:
                    ms = _milliseconds(until)
                    await session.execute(text(f"SET LOCAL lock_timeout = {ms}"))
                    await session.execute(text(f"SET LOCAL statement_timeout = {ms}"))
                yield session
            return
        lock = self._write_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        if until is None:
            await lock.acquire()
        else:
            await asyncio.wait_for(lock.acquire(), max(0.0, until - time.monotonic()))
        try:
            async with self.sessions() as session, session.begin():
                await _set_busy_timeout(session, until)
                yield session
        finally:
            lock.release()

    async def check(self) -> str | None:
        """A real query on a real table, bounded in time; None when fine, else what is wrong.

        On SQLite the file must still be the one opened at start: a deleted (or replaced) database file
        keeps answering reads from the open handle while every write is lost.
        """
        if self.file_gone():
            return "the database file was deleted or replaced while the server was running"
        try:
            async with asyncio.timeout(CHECK_SECONDS), self.sessions() as session:
                await session.execute(text("SELECT count(*) FROM jobs WHERE id = ''"))
                await session.execute(text("SELECT count(*) FROM slots"))
        except TimeoutError:
            return f"the database did not answer a query within {CHECK_SECONDS:g} s"
        except Exception as exc:
            return f"the database failed a query: {type(exc).__name__}: {str(exc)[:200]}"
        return None

    async def ping(self) -> bool:
        try:
            async with self.sessions() as session:
                await session.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()


def _milliseconds(until: float) -> int:
    return max(1, int((until - time.monotonic()) * 1000))


def _busy_step(ms: int) -> int:
    """What is left of a write's budget, rounded down to 100 ms from 200 ms up: the booth's writes, whose
    budgets are alike, then mostly find their connection's busy timeout already set (`_set_busy_timeout`).
    SQLite gives up at most 100 ms before the budget is spent, never after."""
    return ms if ms < 200 else ms - ms % 100


async def _set_busy_timeout(session: AsyncSession, until: float | None) -> None:
    """The connection's busy timeout: what is left of the budget once the connection is checked out (a
    checkout may wait for the pool, or connect), set only when it differs from what this connection has:
    each PRAGMA is three round trips to the driver's thread (cursor, execute, close)."""
    raw = await (await session.connection()).get_raw_connection()
    busy = DEFAULT_BUSY_MILLISECONDS if until is None else _busy_step(_milliseconds(until))
    if raw.info.get(BUSY_TIMEOUT) != busy:
        await session.execute(text(f"PRAGMA busy_timeout={busy}"))
        raw.info[BUSY_TIMEOUT] = busy
