"""Retention: delete photos and results past `retention_days`, trash past `trash_retention_days`.

Media folders are split by day (YYYY-MM-DD), so a whole day goes at once without reading files.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from boothgate.settings import Settings
from boothgate.storage.db import Database
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Job

log = logging.getLogger("boothgate.retention")


def _expired_days(folder: Path, keep_days: int, today: date) -> list[Path]:
    cutoff = today - timedelta(days=keep_days)
    expired = []
    for child in folder.iterdir() if folder.exists() else []:
        try:
            day = date.fromisoformat(child.name)
        except ValueError:
            continue
        if child.is_dir() and day < cutoff:
            expired.append(child)
    return expired


async def sweep(settings: Settings, media: MediaStore, db: Database, today: date | None = None) -> int:
    """Delete expired day folders and forget their paths in the job table. Returns folders removed."""
    today = today or datetime.now(UTC).date()
    removed = 0
    plan = (
        ("photos", settings.retention_days, Job.photo_path),
        ("results", settings.retention_days, Job.result_path),
        ("late", settings.retention_days, Job.late_result_path),
        ("trash", settings.trash_retention_days, Job.trash_path),
    )
    for folder, keep, column in plan:
        for day_dir in _expired_days(media.root / folder, keep, today):
            prefix = f"{folder}/{day_dir.name}/"
            await asyncio.to_thread(shutil.rmtree, day_dir, True)
            async with db.write() as session:
                await session.execute(update(Job).where(column.like(prefix + "%")).values({column.key: None}))
            removed += 1
    if removed:
        log.info("retention removed %d day folder(s)", removed)
    return removed


async def run_forever(
    get_settings: Callable[[], Settings], media: MediaStore, db: Database, every_seconds: float = 3600
) -> None:
    while True:
        try:
            await sweep(get_settings(), media, db)
        except Exception:
            log.exception("retention sweep failed")
        await asyncio.sleep(every_seconds)
