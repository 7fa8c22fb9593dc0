"""The job journal: job rows the database could not take in time, kept durably until it can.

The booth's answer never waits for the database longer than a short budget. A row that cannot be
written within it (another process holds the SQLite write lock, the disk is slow or full, the database
file is gone) is appended to `journal/jobs.jsonl` next to trash — one JSON line, fsynced — and written
to the database by `JobRecorder.drain()` once it answers again, so statistics stay exact.

A few megabytes are set aside at start (`journal/reserve`). When the disk is full, the reserve is
given up so that the rows of the failures the full disk causes can still be written; it is taken back
once the journal has been drained and there is room again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table
from sqlalchemy import inspect as orm_inspect
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from boothgate.records.jobs import FINAL_STATUSES, OPEN_STATUSES, JobStore
from boothgate.storage.db import is_disk_full
from boothgate.storage.models import Job

log = logging.getLogger("boothgate.journal")

RESERVE_BYTES = 4 * 1024 * 1024
DRAIN_EVERY_SECONDS = 1.0
DRAIN_BUDGET_SECONDS = 5.0
DRAIN_BATCH = 500
_DATETIMES = ("created_at", "finished_at")


def job_row(job: Job) -> dict[str, Any]:
    """The job's columns as JSON-ready values (a snapshot: later changes to `job` do not touch it)."""
    row: dict[str, Any] = {}
    for key in _column_keys():
        value = getattr(job, key)
        if value is None or type(value) in _PLAIN:
            row[key] = value  # immutable and JSON already: the round trip below would return it unchanged
        elif isinstance(value, datetime):
            row[key] = value.isoformat()
        else:
            row[key] = json.loads(json.dumps(value, default=str))
    return row


_PLAIN = (str, int, float, bool)


@functools.cache
def _column_keys() -> tuple[str, ...]:
    return tuple(column.key for column in orm_inspect(Job).columns)


class Journal:
    """Append-only JSON lines with fsync; drained by renaming the file aside first (crash-safe)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "jobs.jsonl"
        self.reserve = folder / "reserve"
        self._lock = threading.Lock()
        self.appended = 0

    def keep_reserve(self) -> None:
        """Set the reserve aside (again) when there is room; quietly not when there is none."""
        if self.reserve.exists():
            return
        try:
            with self.reserve.open("wb") as fh:
                fh.truncate(RESERVE_BYTES)  # sparse on most filesystems: make the blocks real
                fh.seek(0)
                fh.write(b"\0" * RESERVE_BYTES)
                os.fsync(fh.fileno())
        except OSError:
            self.reserve.unlink(missing_ok=True)

    def append(self, rows: list[dict[str, Any]]) -> None:
        """In a thread: append rows durably. On a full disk the reserve is given up and it tries again."""
        data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
        with self._lock:
            try:
                self._append(data)
            except OSError as exc:
                if exc.errno != errno.ENOSPC or not self.reserve.exists():
                    raise
                log.warning("disk full: the journal uses its reserve")
                self.reserve.unlink(missing_ok=True)
                self._append(data)
            self.appended += len(rows)

    def _append(self, data: bytes) -> None:
        with self.path.open("ab") as fh:
            start = fh.tell()
            try:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            except OSError:
                fh.truncate(start)  # no half line for the drain to trip over
                raise

    def pending_files(self) -> list[Path]:
        """Files waiting to be written to the database, oldest first (the live file last)."""
        with self._lock:
            if self.path.exists() and self.path.stat().st_size:
                os.replace(self.path, self.folder / f"jobs-{time.time_ns()}.draining")
        return sorted(self.folder.glob("jobs-*.draining"))

    def pending_rows(self) -> int:
        count = 0
        for path in [*self.folder.glob("jobs-*.draining"), self.path]:
            with contextlib.suppress(OSError), path.open("rb") as fh:
                count += sum(1 for _ in fh)
        return count


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_bytes().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            log.error("journal %s: unreadable line skipped", path.name)
    return rows


class JobRecorder:
    """Every job write of the booth path: to the database within a budget, else to the journal."""

    def __init__(self, jobs: JobStore, journal: Journal) -> None:
        self.jobs, self.journal = jobs, journal
        self._writes: dict[str, asyncio.Task[None]] = {}  # the latest write of each job, to keep order
        self.last_error: str | None = None  # the latest database write failure (cleared by a success)
        self.journaled = 0
        # Set when a row had to go to the journal, cleared when the journal has been drained: meanwhile
        # rows go straight to the journal, so only the first booth after the database stopped answering
        # waits for it (one budget), and journaled rows are never overtaken by direct writes.
        self.backlog = False
        self.disk_full = False  # the latest database failure (a write or a drain) was a full disk

    async def save(self, job: Job, budget_seconds: float) -> str | None:
        """Write the job's row now. None when the database has it, else why it went to the journal
        ("timeout", "disk full", or the error's name).

        Raises OSError only when neither the database nor the journal could keep it.
        The database write is shielded: if it finishes after the budget, the journaled copy that is
        written later is the same row (writes are idempotent upserts, in order per job).
        """
        row = job_row(job)
        if self.jobs.db.file_gone():  # a write would land in a deleted file: straight to the journal
            self.last_error = "the database file is gone"
            await self._journal(row, job.id, "database file gone")
            return "database file gone"
        if self.backlog and self.disk_full:
            # The disk was full: it may have room again (the operator freed some). Try the journal's rows
            # first, within this write's budget, so the first job after that is not refused for nothing.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(max(0.0, budget_seconds)):
                    await self.drain()
        if self.backlog:
            await self._journal(row, job.id, "backlog")
            return "backlog"
        task = asyncio.create_task(self._write(row, self._writes.get(job.id), budget_seconds))
        self._writes[job.id] = task
        task.add_done_callback(lambda done: self._forget(job.id, done))
        try:
            async with asyncio.timeout(max(0.0, budget_seconds)):
                await asyncio.shield(task)
            self.last_error, self.disk_full = None, False
            return None
        except TimeoutError:
            reason = "timeout"
        except Exception as exc:
            self.disk_full = is_disk_full(exc)
            reason = "disk full" if self.disk_full else type(exc).__name__
            self.last_error = f"{reason}: {str(exc)[:200]}"
        await self._journal(row, job.id, reason)
        return reason

    async def _journal(self, row: dict[str, Any], job_id: str, reason: str) -> None:
        self.backlog = True
        await asyncio.to_thread(self.journal.append, [row])
        self.journaled += 1
        log.warning("job=%s kept in the journal (database: %s)", job_id, reason)

    def _forget(self, job_id: str, done: asyncio.Task[None]) -> None:
        if self._writes.get(job_id) is done:
            del self._writes[job_id]
        if not done.cancelled():
            done.exception()  # retrieved: a failed write is journaled, not an unhandled task error

    async def _write(self, row: dict[str, Any], previous: asyncio.Task[None] | None, budget: float) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await upsert(self.jobs, [row], budget)

    async def drain(self) -> int:
        """Write journaled rows to the database; True progress only when a whole file went in."""
        written = 0
        if self.jobs.db.file_gone():
            return 0  # keep the rows for the next start rather than write them into a deleted file
        for path in await asyncio.to_thread(self.journal.pending_files):
            rows = await asyncio.to_thread(read_rows, path)
            for start in range(0, len(rows), DRAIN_BATCH):
                await upsert(self.jobs, rows[start : start + DRAIN_BATCH], DRAIN_BUDGET_SECONDS)
            await asyncio.to_thread(path.unlink)
            written += len(rows)
        if self.backlog and not await asyncio.to_thread(self.journal.pending_rows):
            self.backlog = False  # a row appended just now is picked up by the next round
        if written:
            log.info("journal: %d job row(s) written to the database", written)
            self.last_error, self.disk_full = None, False
            await asyncio.to_thread(self.journal.keep_reserve)
        return written

    async def run_forever(self) -> None:
        await asyncio.to_thread(self.journal.keep_reserve)  # in the background: start-up does not wait
        while True:
            await asyncio.sleep(DRAIN_EVERY_SECONDS)
            try:
                await self.drain()
            except Exception as exc:  # still locked or broken: try again later
                self.disk_full = is_disk_full(exc)
                self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"

    def public(self) -> dict[str, Any]:
        return {"pending": self.journal.pending_rows(), "journaled": self.journaled, "last_error": self.last_error}


async def upsert(jobs: JobStore, rows: list[dict[str, Any]], budget: float) -> None:
    """Insert or update rows in one transaction, one statement a row (`INSERT … ON CONFLICT DO UPDATE`,
    on SQLite and PostgreSQL alike). A row never takes a finished job back to an open state (a late write
    of "running" after the final row must not undo it)."""
    statement = _upsert_statement("sqlite" if jobs.db.is_sqlite else "postgresql")
    async with jobs.db.write(timeout=budget) as session:
        connection = await session.connection()
        for row in rows:
            await connection.execute(statement, _values(row))


def _values(row: dict[str, Any]) -> dict[str, Any]:
    """Every column (a row from an older version lacks the newer ones: their defaults)."""
    values = {key: row[key] if key in row else default() for key, default in _DEFAULTS.items()}
    for key in _DATETIMES:
        if isinstance(values.get(key), str):
            values[key] = datetime.fromisoformat(values[key])
    return values


@functools.cache
def _upsert_statement(dialect: str) -> Any:
    """Built once per dialect (and compiled once): the values are bound at execution."""
    table = Job.__table__
    assert isinstance(table, Table)
    statement = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={column.key: statement.excluded[column.key] for column in table.columns if column.key != "id"},
        where=~(table.c.status.in_(FINAL_STATUSES) & statement.excluded.status.in_(OPEN_STATUSES)),
    )


def _column_default(column: Any) -> Callable[[], Any]:
    """The column's default as the ORM would fill it (a value, or a callable such as `dict` or `utcnow`)."""
    default = column.default
    if default is None:
        return lambda: None
    if default.is_callable:
        return lambda: default.arg(None)  # SQLAlchemy wraps it to take an execution context
    return lambda: default.arg


_DEFAULTS = {column.key: _column_default(column) for column in Job.__table__.columns}
