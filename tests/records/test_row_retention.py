"""Retention of rows that record finished work: client API batches (with their items and leftover inputs),
webhook deliveries and background tasks go `retention_days` after they finished; pending work and
anything younger stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from boothgate.records import retention, stats, tallies
from boothgate.storage.db import Database
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Batch, BatchItem, Event, Job, Task, WebhookDelivery
from tests.conftest import Booth, booth_settings


async def _rows(db: Database, table: Any) -> set[str]:
    async with db.read() as session:
        column = table.key if table is Task else table.id
        return {str(v) for v in (await session.scalars(select(column))).all()}


async def test_finished_batches_deliveries_and_tasks_past_retention_are_pruned(booth_factory: Any) -> None:
    booth: Booth = booth_factory(retention_days=30)
    services = booth.services
    db = Database(booth.settings.sqlalchemy_url)  # our own connection: the server's lives on its own loop
    now = datetime.now(UTC)
    old, young = now - timedelta(days=31), now - timedelta(days=29)
    batches = {  # id: (status, finished_at)
        "old-done": ("completed", old), "old-cancelled": ("cancelled", old), "young-done": ("completed", young),
        "old-running": ("running", None),
    }  # fmt: skip
    async with db.write() as session:
        for batch_id, (status, finished) in batches.items():
            session.add(
                Batch(id=batch_id, api_key_id="k", provider="gemini", number=1, status=status, total=1,
                      created_at=old, finished_at=finished)
            )  # fmt: skip
            session.add(BatchItem(batch_id=batch_id, position=0, name="a.jpg", path=f"api/batches/{batch_id}/a.jpg"))
        for delivery_id, status, created in (
            ("old-delivered", "delivered", old), ("old-failed", "failed", old),
            ("old-pending", "pending", old), ("young-delivered", "delivered", young),
        ):  # fmt: skip
            delivered = created if status == "delivered" else None
            session.add(
                WebhookDelivery(id=delivery_id, endpoint_id="e", event="job.succeeded", payload={}, status=status,
                                attempts=[], created_at=created, delivered_at=delivered)
            )  # fmt: skip
        for key, state, finished in (
            ("old-done", "done", old), ("old-failed", "failed", old), ("old-queued", "queued", None),
            ("young-done", "done", young),
        ):  # fmt: skip
            session.add(
                Task(kind="test.kind", key=key, payload={}, state=state, priority=100, run_after=0.0, attempts=1,
                     max_attempts=1, created_at=old, finished_at=finished)
            )  # fmt: skip
    leftover = services.media.root / "api" / "batches" / "old-done"
    leftover.mkdir(parents=True)
    (leftover / "a.jpg").write_bytes(b"x")

    await retention.sweep(services.settings, services.media, db)

    assert await _rows(db, Batch) == {"young-done", "old-running"}
    async with db.read() as session:
        items = set((await session.scalars(select(BatchItem.batch_id))).all())
        count = await session.scalar(select(func.count()).select_from(BatchItem))
    assert items == {"young-done", "old-running"} and count == 2
    assert not leftover.exists()
    assert await _rows(db, WebhookDelivery) == {"old-pending", "young-delivered"}
    tasks = await _rows(db, Task)
    assert {"old-queued", "young-done"} <= tasks and not {"old-done", "old-failed"} & tasks
    # A second sweep finds nothing more to prune.
    assert await retention.prune_rows(services.settings, services.media, db) == {
        "batches": 0, "webhook_deliveries": 0, "tasks": 0, "jobs": 0,
    }  # fmt: skip
    await db.dispose()


async def test_job_rows_past_their_days_go_once_counted_and_the_statistics_keep_them(tmp_path: Path) -> None:
    """A festival's job rows do not grow without end (issue 31, class 9): past `job_rows_days` a row the
    summaries count is deleted, and the statistics read the same figures before and after."""
    # No server here: its own roll-up would race this test's on the same rows.
    settings = booth_settings(tmp_path, retention_days=30, job_rows_days=100)
    media = MediaStore(settings.data_dir)
    db = Database(settings.sqlalchemy_url)
    await db.migrate()
    now = datetime.now(UTC)
    old, young = now - timedelta(days=101), now - timedelta(days=99)
    async with db.write() as session:
        session.add(Event(id=7, name="kept", starts_at=old, slots=[], gallery_token="g7"))
        session.add(Event(id=8, name="cleaned", starts_at=old, slots=[], gallery_token="g8", cleaned_at=young))
        for job_id, created, event in (
            ("old-1", old, None), ("old-2", old, None), ("old-kept-event", old, 7), ("old-cleaned-event", old, 8),
            ("young", young, None),
        ):  # fmt: skip
            session.add(Job(id=job_id, provider="gemini", slot_number=1, source="booth", status="succeeded",
                            total_seconds=4.0, created_at=created, event_id=event))  # fmt: skip
    while await tallies.rollup(db):
        pass
    async with db.write() as session:  # finished after the last roll-up: not counted yet, so kept
        session.add(Job(id="old-untallied", provider="gemini", slot_number=1, source="booth", status="succeeded",
                        total_seconds=4.0, created_at=old))  # fmt: skip
    before = await stats.compute(db, ["gemini"])

    pruned = await retention.prune_rows(settings, media, db)

    assert pruned["jobs"] == 3
    assert await _rows(db, Job) == {"old-kept-event", "young", "old-untallied"}
    after = await stats.compute(db, ["gemini"])
    assert after["providers"] == before["providers"] and after["slots"] == before["slots"]
    assert after["providers"]["gemini"]["all_time"]["received"] == 6
    await db.dispose()
