"""What a guest's page shows, and the guest's "Delete my photo".

A page is in one of these states (the route turns them into a status code and a template):
`unknown` (404: no such token, or sharing is off), `gone` (410: expired with `retention_days`, or deleted
by the guest), `making` (the job is still running, or the AI version is still on its way with nothing to
show yet), `ready` (a photo to show; `late_running` says a better one is coming).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from boothgate.records import tallies
from boothgate.records.jobs import OPEN_STATUSES
from boothgate.storage.db import Database
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Job, utcnow

log = logging.getLogger("boothgate.sharing")


@dataclass
class PageView:
    state: str  # unknown | gone | making | ready
    job: Job | None = None
    image: Path | None = None  # the photo the page shows (the late AI result when it came)
    mime: str = "image/jpeg"
    late_running: bool = False  # a fallback served; the AI version may still arrive
    late_delivered: bool = False
    reason: str = ""  # gone: "expired" | "deleted"


def history_entry(event: str, **details: Any) -> dict[str, Any]:
    return {"at": utcnow().isoformat(), "event": event, **details}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class GuestPages:
    def __init__(self, db: Database, media: MediaStore) -> None:
        self.db, self.media = db, media

    async def find(self, token: str, retention_days: int) -> PageView:
        async with self.db.read() as session:
            job = await session.scalar(select(Job).where(Job.share_token == token))
        if job is None:
            return PageView("unknown")
        if job.deleted_at is not None:
            return PageView("gone", job, reason="deleted")
        if job.created_at and _aware(job.created_at) < datetime.now(UTC) - timedelta(days=retention_days):
            return PageView("gone", job, reason="expired")
        late = job.late or {}
        running = late.get("status") == "running"
        for relative in (job.late_result_path, job.result_path):
            await self.media.fetch(relative)  # another node's result (shared bucket, issue 27)
        if job.status in OPEN_STATUSES:
            return PageView("making", job, late_running=running)
        if job.late_result_path and late.get("status") == "delivered":
            path = self._existing(job.late_result_path)
            if path is not None:
                return PageView("ready", job, path, _mime(path), late_delivered=True)
        if job.status == "succeeded" and job.result_path:
            path = self._existing(job.result_path)
            if path is not None:
                return PageView("ready", job, path, job.result_mime or _mime(path), late_running=running)
            return PageView("gone", job, reason="expired")  # retention removed the files
        if running:
            return PageView("making", job, late_running=True)
        return PageView("gone", job, reason="failed")

    def _existing(self, relative: str) -> Path | None:
        try:
            path = self.media.resolve(relative)
        except ValueError:
            return None
        return path if path.is_file() else None

    async def delete(self, token: str) -> bool:
        """The guest's "Delete my photo": the photo, the result, the late result and the trashed original
        go for good; the row stays (statistics keep counting it), with the deletion in its history."""
        async with self.db.write() as session:
            job = await session.scalar(select(Job).where(Job.share_token == token))
            if job is None or job.deleted_at is not None:
                return False
            files = [p for p in (job.photo_path, job.result_path, job.late_result_path, job.trash_path) if p]
            job.photo_path = job.result_path = job.late_result_path = job.trash_path = None
            job.deleted_at = utcnow()
            await tallies.amend(session, job, deleted=1)
            job.gallery_hidden = True
            job.history = [*(job.history or []), history_entry("deleted_by_guest", files=len(files))]
            if job.late and job.late.get("status") == "running":
                job.late = {**job.late, "status": "expired", "reason": "deleted_by_guest"}
        await asyncio.to_thread(self._remove, files)
        return True

    def _remove(self, files: list[str]) -> None:
        for relative in files:
            self.media.delete(relative)
            if relative.startswith("trash/"):  # a trashed original has a sidecar beside it
                self.media.delete(str(Path(relative).with_suffix(".json")))


def _mime(path: Path) -> str:
    return {".png": "image/png", ".webp": "image/webp"}.get(path.suffix.lower(), "image/jpeg")
