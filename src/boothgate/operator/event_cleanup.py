"""Clean-up per event: an event's photos, results and trashed originals are deleted `retention_days`
after it ends (the event's own value, else the server's `retention_days`).

The job rows stay — with their paths cleared — so the event's statistics outlive its photos. A file
another job outside the event also points at (a reused result) is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from boothgate.operator.events import stored
from boothgate.settings import Settings
from boothgate.storage.db import Database
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Event, Job, utcnow

log = logging.getLogger("boothgate.events")

CHUNK = 200


def clean_up_at(event: Event, settings: Settings) -> datetime | None:
    ends = stored(event.ends_at)
    if ends is None:
        return None
    days = event.retention_days if event.retention_days is not None else settings.retention_days
    return ends + timedelta(days=days)


async def sweep(settings: Settings, media: MediaStore, db: Database, now: datetime | None = None) -> int:
    """Clean every event that is due. Returns the number of files deleted."""
    now = now or utcnow()
    async with db.read() as session:
        events = (await session.scalars(select(Event).where(Event.cleaned_at.is_(None)))).all()
    deleted = 0
    for event in events:
        due = clean_up_at(event, settings)
        if due is None or due > now:
            continue
        deleted += await clean(event.id, media, db)
    return deleted


async def clean(event_id: int, media: MediaStore, db: Database) -> int:
    async with db.read() as session:
        rows = (
            await session.execute(
                select(Job.photo_path, Job.result_path, Job.trash_path).where(Job.event_id == event_id)
            )
        ).all()
    paths = sorted({p for row in rows for p in row if p})
    shared: set[str] = set()
    for start in range(0, len(paths), CHUNK):
        part = paths[start : start + CHUNK]
        query = select(Job.photo_path, Job.result_path).where(
            or_(Job.event_id.is_(None), Job.event_id != event_id),
            or_(Job.photo_path.in_(part), Job.result_path.in_(part)),
        )
        async with db.read() as session:
            for row in (await session.execute(query)).all():
                shared.update(p for p in row if p)
    doomed = [p for p in paths if p not in shared]
    await asyncio.to_thread(_delete_files, media, doomed)
    async with db.write() as session:
        await session.execute(
            update(Job).where(Job.event_id == event_id).values(photo_path=None, result_path=None, trash_path=None)
        )
        await session.execute(update(Event).where(Event.id == event_id).values(cleaned_at=utcnow()))
    log.info("event %s cleaned up: %d file(s) deleted", event_id, len(doomed))
    return len(doomed)


def _delete_files(media: MediaStore, relatives: list[str]) -> None:
    for relative in relatives:
        media.delete(relative)  # here and, with a shared bucket, there


async def run_forever(
    get_settings: Callable[[], Settings], media: MediaStore, db: Database, every_seconds: float = 3600
) -> None:
    while True:
        try:
            await sweep(get_settings(), media, db)
        except Exception:
            log.exception("event clean-up failed")
        await asyncio.sleep(every_seconds)
