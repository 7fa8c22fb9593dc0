"""Job records: one row per booth request, written when the photo is in and when the answer goes out."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, text, update

from boothgate.storage.db import Database
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Job, utcnow

OPEN_STATUSES = ("received", "running")
FINAL_STATUSES = ("succeeded", "failed", "timed_out", "rejected")
PAGE_ROWS = 500  # the most job rows one list request reads


@functools.cache
def _recent_success_query(with_prompt: bool) -> Any:
    """`JobStore.recent_success`'s query, built once (every booth photo asks it: building the expression and
    its cache key each time cost about as much as running it); the values are bound at execution."""
    return (
        select(Job)
        .where(
            Job.photo_sha256 == bindparam("sha256"),
            Job.provider == bindparam("provider"),
            Job.slot_number == bindparam("number"),
            Job.slot_revision == bindparam("revision"),
            Job.status == "succeeded",
            Job.result_path.is_not(None),
            Job.created_at >= bindparam("since"),
            # The job that ran the provider, not one answered from it (a stored result or a joined run):
            # otherwise a booth resending within the window would keep the window open for ever.
            Job.reused_from.is_(None),
            # An answer a fallback served is not this slot's: the next try goes to the slot again.
            or_(Job.served_by.is_(None), Job.served_by == bindparam("slot")),
            *([Job.prompt == bindparam("prompt")] if with_prompt else []),
        )
        .order_by(Job.created_at.desc())
        .limit(1)
    )


class JobStore:
    def __init__(self, db: Database, media: MediaStore) -> None:
        self.db, self.media = db, media

    async def add(self, job: Job) -> None:
        async with self.db.write() as session:
            session.add(job)

    async def save(self, job: Job) -> None:
        """Insert or update the whole row (the spine keeps the Job object and saves it when done)."""
        async with self.db.write() as session:
            await session.merge(job)

    async def get(self, job_id: str) -> Job | None:
        async with self.db.read() as session:
            return await session.get(Job, job_id)

    async def find(
        self,
        provider: str | None = None,
        slot: int | None = None,
        status: str | None = None,
        limit: int = 50,
        source: str | None = None,
        event_id: int | None = None,
        before: str | None = None,
    ) -> list[Job]:
        """Newest first, at most PAGE_ROWS; `before` (a job id, the last of the previous page) pages on by
        (created_at, id), which the created_at index answers without counting what came before."""
        order = (Job.created_at.desc(), Job.id.desc())
        query = select(Job).order_by(*order).limit(max(1, min(limit, PAGE_ROWS)))
        if before:
            mark = select(Job.created_at).where(Job.id == before).scalar_subquery()
            query = query.where(or_(Job.created_at < mark, and_(Job.created_at == mark, Job.id < before)))
        if event_id is not None:  # the jobs admitted while the slot was in that event
            query = query.where(Job.event_id == event_id)
        if source:  # "booth": guests' photos only (not the operator's Try it and rehearsals)
            query = query.where(Job.source == source)
        if provider:
            query = query.where(Job.provider == provider)
        if slot is not None:
            query = query.where(Job.slot_number == slot)
        if status:
            query = query.where(Job.status == status)
        async with self.db.read() as session:
            return list((await session.scalars(query)).all())

    async def recent_success(
        self, provider: str, number: int, revision: int, sha256: str, window_seconds: float, prompt: str | None = None
    ) -> Job | None:
        """A job that processed the same bytes for the same slot revision a short while ago (with the same
        filled prompt when given: the same photo sent with `?style=noir` and `?style=pop` are two jobs)."""
        since = datetime.now(UTC) - timedelta(seconds=window_seconds)
        values = {"sha256": sha256, "provider": provider, "number": number, "revision": revision, "since": since,
                  "slot": f"{provider}/{number}"}  # fmt: skip
        if prompt is not None:
            values["prompt"] = prompt
        async with self.db.read() as session:
            return await session.scalar(_recent_success_query(prompt is not None), values)

    async def join_twin(self, record: Job, window: timedelta) -> Job | None:
        """Several nodes' single-flight (booth/other_nodes.py), PostgreSQL only. Under a transaction-level
        advisory lock of the photo's key (so two nodes decide one after the other): another running job of
        the same photo for the same slot revision and filled prompt that waits for nobody is the one this
        job waits for — this row is marked as waiting on it (`reused_from`) in the same transaction; none:
        this job runs (and is the one later twins wait for). Exactly one of any twins runs."""
        digest = hashlib.sha256(
            f"{record.photo_sha256}|{record.provider}|{record.slot_number}|{record.slot_revision}|{record.prompt}".encode()
        ).digest()
        lock = int.from_bytes(digest[:8], "big", signed=True)
        query = (
            select(Job)
            .where(
                Job.photo_sha256 == record.photo_sha256,
                Job.provider == record.provider,
                Job.slot_number == record.slot_number,
                Job.slot_revision == record.slot_revision,
                Job.prompt == record.prompt,
                Job.source == "booth",
                Job.status == "running",
                Job.reused_from.is_(None),
                Job.id != record.id,
                Job.created_at >= record.created_at - window,
            )
            .order_by(Job.created_at, Job.id)
            .limit(1)
        )
        async with self.db.write() as session:
            await session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": lock})
            twin = await session.scalar(query)
            if twin is not None:
                await session.execute(update(Job).where(Job.id == record.id).values(reused_from=twin.id))
            return twin

    async def stop_waiting(self, job_id: str) -> None:
        """The twin this job waited for failed: this job runs itself, and later twins may wait for it."""
        async with self.db.write() as session:
            await session.execute(update(Job).where(Job.id == job_id).values(reused_from=None))

    async def known_ids(self, ids: list[str]) -> set[str]:
        """Which of these job ids have a row (in chunks, to stay under SQL parameter limits)."""
        known: set[str] = set()
        async with self.db.read() as session:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                known.update((await session.scalars(select(Job.id).where(Job.id.in_(chunk)))).all())
        return known

    async def interrupted(self) -> list[Job]:
        async with self.db.read() as session:
            return list((await session.scalars(select(Job).where(Job.status.in_(OPEN_STATUSES)))).all())


def public_job(job: Job, public_base_url: str = "") -> dict[str, Any]:
    """A job as the API shows it (metadata never holds the password; keys never reach a job).

    `share_url`: the guest's page, absolute from BOOTHGATE_PUBLIC_BASE_URL (a path when it is unset)."""
    base = f"/api/jobs/{job.id}"
    # a refused stranger's post keeps a .json note in the trash, not a photo: no thumbnail to ask for
    kept = job.photo_path or job.trash_path
    has_photo = bool(kept) and not str(kept).endswith(".json")
    late = job.late or None
    return {
        "id": job.id,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "provider": job.provider,
        "slot": job.slot_number,
        "source": job.source,
        "status": job.status,
        "http_status": job.http_status,
        "error": job.error_code,
        "message": job.message,
        "reused_from": job.reused_from,
        "total_seconds": job.total_seconds,
        "provider_seconds": job.provider_seconds,
        "cost_usd": job.cost_usd,
        "timings": job.timings or {},
        "meta": job.meta or {},
        "provider_notes": job.provider_notes or {},
        "photo_bytes": job.photo_bytes,
        "served_by": job.served_by,
        "fallback_reason": job.fallback_reason,
        "prompt": job.prompt,
        "moderation": job.moderation,
        "photo_url": f"{base}/photo" if has_photo else None,
        "result_url": f"{base}/result" if job.result_path else None,
        "photo_thumbnail_url": f"{base}/photo/thumbnail" if has_photo else None,
        "result_thumbnail_url": f"{base}/result/thumbnail" if job.result_path else None,
        "in_trash": bool(job.trash_path),
        "share_url": f"{public_base_url.rstrip('/')}/p/{job.share_token}" if job.share_token else None,
        "late": {"status": late.get("status"), "served_by": late.get("served_by"), "reason": late.get("reason")}
        if late
        else None,
        "late_result_url": f"{base}/late" if job.late_result_path else None,
        "deleted_by_guest": job.deleted_at is not None,
        "gallery_hidden": bool(job.gallery_hidden),
        "history": job.history or [],
        "event_id": job.event_id,
    }


def finished_now() -> datetime:
    return utcnow()
