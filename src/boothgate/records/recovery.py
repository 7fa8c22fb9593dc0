"""After a crash: jobs that were in flight are failed as `interrupted`, their originals go to trash,
and uploads that never finished arriving are trashed too. Runs once at start, before serving.

A photo is moved into photos/ a moment before its job row is first written; a stop in between leaves
a photo no row knows. Those are found by name (the file is named after its job id) and trashed too.

`resumed`: jobs some durable task will run again (a client API job, api/job_queue.py) — left as they are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from datetime import UTC, datetime

from boothgate.records.jobs import JobStore
from boothgate.storage.media import MediaStore
from boothgate.storage.models import utcnow

log = logging.getLogger("boothgate.recovery")


async def recover(jobs: JobStore, media: MediaStore, resumed: Collection[str] = ()) -> int:
    count = 0
    for job in await jobs.interrupted():
        if job.id in resumed:
            continue
        original = None
        if job.photo_path:
            try:
                original = media.resolve(job.photo_path)
            except ValueError:
                original = None
        sidecar = {
            "job_id": job.id,
            "slot": f"{job.provider}/{job.slot_number}",
            "status": "failed",
            "error": "interrupted",
            "reason": "The server stopped while this photo was being processed.",
            "received_at": job.created_at.isoformat() if job.created_at else None,
            "failed_at": datetime.now(UTC).isoformat(),
            "metadata": job.meta,
        }
        trash = await asyncio.to_thread(media.to_trash, original, job.id, sidecar)
        job.status, job.error_code = "failed", "interrupted"
        job.message = "The server stopped while this photo was being processed."
        job.trash_path, job.photo_path = media.relative(trash), None
        job.finished_at = utcnow()
        await jobs.save(job)
        count += 1
    for part in sorted((media.root / "incoming").glob("*.part")):
        job_id = part.stem
        sidecar = {
            "job_id": job_id,
            "error": "interrupted",
            "reason": "The upload was cut off by a server stop.",
        }
        await asyncio.to_thread(media.to_trash, part, job_id, sidecar)
        count += 1
    count += await _trash_unrecorded_photos(jobs, media)
    if count:
        log.warning("recovered %d interrupted job(s) into trash", count)
    return count


async def _trash_unrecorded_photos(jobs: JobStore, media: MediaStore) -> int:
    photos = await asyncio.to_thread(lambda: [p for p in (media.root / "photos").glob("*/*") if p.is_file()])
    if not photos:
        return 0
    known = await jobs.known_ids([p.stem for p in photos])
    count = 0
    for photo in photos:
        if photo.stem in known:
            continue
        sidecar = {
            "job_id": photo.stem,
            "error": "interrupted",
            "reason": "The server stopped before this photo's job was recorded.",
        }
        await asyncio.to_thread(media.to_trash, photo, photo.stem, sidecar)
        count += 1
    return count
