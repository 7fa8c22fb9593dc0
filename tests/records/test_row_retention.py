"""Retention of rows that record finished work: client API batches (with their items and leftover inputs),
webhook deliveries and background tasks go `retention_days` after they finished; pending work and
anything younger stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from boothgate.records import retention
from boothgate.storage.db import Database
from boothgate.storage.models import Batch, BatchItem, Task, WebhookDelivery
from tests.conftest import Booth


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
        "batches": 0, "webhook_deliveries": 0, "tasks": 0,
    }  # fmt: skip
    await db.dispose()
