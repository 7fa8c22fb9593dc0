"""Retention: delete photos and results past `retention_days`, trash past `trash_retention_days`.

Media folders are split by day (YYYY-MM-DD), so a whole day goes at once without reading files.

A day folder's name comes from the wall clock when it was written, and a booth PC or Raspberry Pi may
have had the wrong date at the venue (issue 31, class 8). So a name alone never deletes anything: each
folder's *kept-age* — the monotonic time this server has been running with the folder here — is kept in
a ledger (`retention-ledger.json` in the data folder), and a folder goes only when both its name and its
kept-age are past the retention. Time while the server is stopped is not counted (it cannot be measured
safely), so photos may be kept longer than the setting, never shorter. A jump of the wall clock against
the monotonic clock (or a clock earlier than when the server last ran) is logged and shown in /health.

Rows that only record finished work go by the same `retention_days`, by their own finish time (a database
timestamp, not a folder name): a client API batch that completed or was cancelled (its row, its items and
any inputs left under `api/batches/<id>/`; each photo's job stays, with its own retention), a webhook
delivery answered or given up, and a background task done or failed. Pending work is never pruned.
Job rows (one per photo) are kept longer, `job_rows_days` (400 by default), and go only once the
statistics' summaries count them (records/tallies.py), so the figures survive them (issue 31, class 9).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select, update

from boothgate.records.tallies import TALLIED
from boothgate.settings import Settings
from boothgate.storage.db import Database
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Batch, BatchItem, Event, Job, Task, WebhookDelivery

log = logging.getLogger("boothgate.retention")

LEDGER_NAME = "retention-ledger.json"
# A wall clock that moved this much more (or less) than the monotonic clock has jumped.
CLOCK_JUMP_SECONDS = 300.0
FOLDERS = ("photos", "results", "trash")
DAY = 86400.0


class Ledger:
    """Kept-age of each day folder (seconds of monotonic time this server ran with it), and clock jumps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kept: dict[str, float] = {}
        self.last_wall: float | None = None  # wall clock of the last observation (saved: across restarts)
        self._last_mono: float | None = None  # monotonic clock of the last observation in this run
        self._run_wall: float | None = None
        self.jumps: list[dict[str, Any]] = []

    @classmethod
    def load(cls, path: Path) -> Ledger:
        ledger = cls(path)
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            ledger.kept = {str(k): float(v) for k, v in dict(stored.get("kept", {})).items()}
            wall = stored.get("last_wall")
            ledger.last_wall = float(wall) if wall is not None else None
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, AttributeError):
            log.warning("retention ledger unreadable; kept-ages start again from zero (nothing is deleted early)")
        return ledger

    def observe(self, folders: list[str], wall: float, mono: float) -> None:
        """Add the monotonic time since the last observation to every folder still here."""
        elapsed = 0.0 if self._last_mono is None else max(0.0, mono - self._last_mono)
        if self._last_mono is not None and self._run_wall is not None:
            drift = (wall - self._run_wall) - elapsed
            if abs(drift) > CLOCK_JUMP_SECONDS:
                self._jump(drift, "the wall clock moved differently from the monotonic clock")
        elif self.last_wall is not None and wall < self.last_wall - CLOCK_JUMP_SECONDS:
            self._jump(wall - self.last_wall, "the clock is earlier than when this server last ran")
        self.kept = {name: self.kept.get(name, 0.0) + elapsed for name in folders}
        self._last_mono, self._run_wall, self.last_wall = mono, wall, wall

    def _jump(self, seconds: float, why: str) -> None:
        jump = {"seconds": round(seconds), "why": why, "at": datetime.now(UTC).isoformat()}
        self.jumps = [*self.jumps[-9:], jump]
        log.warning("clock jump of %+.0f s detected (%s); retention goes by kept-age, nothing is deleted early",
                    seconds, why)  # fmt: skip

    def save(self) -> None:
        data = json.dumps({"kept": self.kept, "last_wall": self.last_wall}).encode()
        # A temporary file of this save's own: two sweeps saving at once (the hourly one and an operator's)
        # must not rename each other's file away.
        handle, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(name, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise

    def public(self) -> dict[str, Any]:
        return {"clock_jumps": len(self.jumps), "last_clock_jump": self.jumps[-1] if self.jumps else None}


def _day_folders(root: Path) -> list[str]:
    names = []
    for folder in FOLDERS:
        base = root / folder
        for child in base.iterdir() if base.exists() else []:
            try:
                date.fromisoformat(child.name)
            except ValueError:
                continue
            if child.is_dir():
                names.append(f"{folder}/{child.name}")
    return names


def _expired_days(folder: Path, keep_days: int, today: date, kept: dict[str, float] | None = None) -> list[Path]:
    """Day folders of `folder` past `keep_days` by name *and* by kept-age (when a ledger is given)."""
    cutoff = today - timedelta(days=keep_days)
    expired = []
    for child in folder.iterdir() if folder.exists() else []:
        try:
            day = date.fromisoformat(child.name)
        except ValueError:
            continue
        if not child.is_dir() or day >= cutoff:
            continue
        if kept is not None and kept.get(f"{folder.name}/{child.name}", 0.0) < keep_days * DAY:
            continue  # younger than its retention by the time it has been kept here
        expired.append(child)
    return expired


async def sweep(
    settings: Settings, media: MediaStore, db: Database, today: date | None = None, ledger: Ledger | None = None
) -> int:
    """Delete expired day folders and forget their paths in the job table. Returns folders removed."""
    today = today or datetime.now(UTC).date()
    if ledger is None:
        ledger = await asyncio.to_thread(Ledger.load, media.root / LEDGER_NAME)
    folders = await asyncio.to_thread(_day_folders, media.root)
    ledger.observe(folders, time.time(), time.monotonic())
    removed = 0
    plan = (
        ("photos", settings.retention_days, Job.photo_path),
        ("results", settings.retention_days, Job.result_path),
        ("late", settings.retention_days, Job.late_result_path),
        ("trash", settings.trash_retention_days, Job.trash_path),
    )
    for folder, keep, column in plan:
        for day_dir in _expired_days(media.root / folder, keep, today, ledger.kept):
            prefix = f"{folder}/{day_dir.name}/"
            await asyncio.to_thread(shutil.rmtree, day_dir, True)
            media.forget_prefix(prefix)  # the shared bucket's copies of that day (issue 27), in the background
            ledger.kept.pop(f"{folder}/{day_dir.name}", None)
            async with db.write() as session:
                await session.execute(update(Job).where(column.like(prefix + "%")).values({column.key: None}))
            removed += 1
    await asyncio.to_thread(ledger.save)
    if removed:
        log.info("retention removed %d day folder(s)", removed)
    await prune_rows(settings, media, db)
    return removed


PRUNE_CHUNK = 500  # rows per transaction: a long backlog never holds the writer for long


async def prune_rows(
    settings: Settings, media: MediaStore, db: Database, now: datetime | None = None
) -> dict[str, int]:
    """Delete finished batches, webhook deliveries and tasks older than `retention_days`, and job rows
    older than `job_rows_days` (see above)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.retention_days)
    pruned = {"batches": 0, "webhook_deliveries": 0, "tasks": 0, "jobs": 0}
    while True:
        async with db.read() as session:
            finished = Batch.status.in_(("completed", "cancelled"))
            query = select(Batch.id).where(finished, Batch.finished_at < cutoff).limit(PRUNE_CHUNK)
            batch_ids = list((await session.scalars(query)).all())
        if not batch_ids:
            break
        for batch_id in batch_ids:  # inputs a stop left behind (a finished batch removes its own)
            await asyncio.to_thread(shutil.rmtree, media.root / "api" / "batches" / batch_id, True)
        async with db.write() as session:
            await session.execute(delete(BatchItem).where(BatchItem.batch_id.in_(batch_ids)))
            await session.execute(delete(Batch).where(Batch.id.in_(batch_ids)))
        pruned["batches"] += len(batch_ids)
    ended = WebhookDelivery.status.in_(("delivered", "failed"))
    answered = or_(WebhookDelivery.delivered_at < cutoff, WebhookDelivery.delivered_at.is_(None))
    deliveries = select(WebhookDelivery.id).where(ended, WebhookDelivery.created_at < cutoff, answered)
    tasks = select(Task.id).where(Task.state.in_(("done", "failed")), Task.finished_at < cutoff)
    # Job rows: only those the summaries count (statistics survive them), and an event's only once the
    # event's own files are gone (its retention may be longer than the server's).
    rows_cutoff = (now or datetime.now(UTC)) - timedelta(days=max(settings.job_rows_days, settings.retention_days))
    cleaned = select(Event.id).where(Event.cleaned_at.is_not(None))
    outside_events = or_(Job.event_id.is_(None), Job.event_id.in_(cleaned))
    jobs = select(Job.id).where(Job.created_at < rows_cutoff, TALLIED.is_(True), outside_events)
    plan: tuple[tuple[str, Any, Any], ...] = (
        ("webhook_deliveries", deliveries, WebhookDelivery),
        ("tasks", tasks, Task),
        ("jobs", jobs, Job),
    )
    for name, query, table in plan:
        while True:
            async with db.read() as session:
                ids = list((await session.scalars(query.limit(PRUNE_CHUNK))).all())
            if not ids:
                break
            async with db.write() as session:
                await session.execute(delete(table).where(table.id.in_(ids)))
            pruned[name] += len(ids)
    if any(pruned.values()):
        log.info("retention pruned %s", ", ".join(f"{n} {k}" for k, n in pruned.items() if n))
    return pruned


class Retention:
    """The hourly sweep with its ledger (kept across sweeps in this run, and saved across restarts)."""

    def __init__(self, get_settings: Callable[[], Settings], media: MediaStore, db: Database) -> None:
        self.get_settings, self.media, self.db = get_settings, media, db
        self.ledger: Ledger | None = None

    async def run_forever(self, every_seconds: float = 3600) -> None:
        while True:
            try:
                if self.ledger is None:
                    self.ledger = await asyncio.to_thread(Ledger.load, self.media.root / LEDGER_NAME)
                await sweep(self.get_settings(), self.media, self.db, ledger=self.ledger)
            except Exception:
                log.exception("retention sweep failed")
            await asyncio.sleep(every_seconds)

    def public(self) -> dict[str, Any]:
        return self.ledger.public() if self.ledger is not None else {"clock_jumps": 0, "last_clock_jump": None}


async def run_forever(
    get_settings: Callable[[], Settings], media: MediaStore, db: Database, every_seconds: float = 3600
) -> None:
    await Retention(get_settings, media, db).run_forever(every_seconds)
