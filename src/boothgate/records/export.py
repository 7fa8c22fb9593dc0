"""An event's photos as one ZIP, written while it streams: originals, results, `jobs.csv`, `jobs.json`.

Nothing is built in memory or copied to a temporary file: the ZIP is written through the one streaming
writer (records/zip_stream.py), whose buffer is handed to the response whenever it holds `CHUNK` bytes.
Files are read `CHUNK` at a time in a thread; jobs are read `PAGE` at a time. The server's memory
therefore stays flat whatever the size of the event (measured: docs/events.md).

`jobs.csv` / `jobs.json` hold what the operator needs (time, slot, status, served_by, cost, filled
prompt, the booth's fields); the booth's fields never hold a password (the spine drops them at intake)
and anything that looks like a secret is dropped again here.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select

from boothgate.records.zip_stream import CHUNK, ZipStream
from boothgate.storage.db import Database
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Job

PAGE = 200
SECRETISH = ("password", "passwd", "secret", "token", "key", "auth")
CSV_COLUMNS = (
    "id",
    "created_at",
    "finished_at",
    "slot",
    "source",
    "status",
    "http_status",
    "error",
    "served_by",
    "fallback_reason",
    "total_seconds",
    "cost_usd",
    "prompt",
    "original",
    "result",
    "fields",
)


@dataclass
class Progress:
    event_id: int
    files_total: int = 0
    files_done: int = 0
    bytes_sent: int = 0
    started_at: float = field(default_factory=time.time)
    finished: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "files_total": self.files_total,
            "files_done": self.files_done,
            "bytes_sent": self.bytes_sent,
            "seconds": round(time.time() - self.started_at, 1),
            "finished": self.finished,
        }


class Exports:
    """Streams exports and remembers how far each one got (the Events page shows it)."""

    def __init__(self, db: Database, media: MediaStore) -> None:
        self.db, self.media = db, media
        self.running: dict[int, list[Progress]] = {}

    def progress(self, event_id: int) -> list[dict[str, Any]]:
        return [p.public() for p in self.running.get(event_id, [])]

    async def plan(self, event_id: int) -> tuple[list[str], int]:
        """The event's job ids (oldest first) and how many files the ZIP will hold."""
        query = (
            select(Job.id, Job.photo_path, Job.trash_path, Job.result_path)
            .where(Job.event_id == event_id)
            .order_by(Job.created_at, Job.id)
        )
        async with self.db.read() as session:
            rows = (await session.execute(query)).all()
        files = sum(bool(photo or trash) + bool(result) for _, photo, trash, result in rows)
        return [row[0] for row in rows], files

    async def stream(self, event_id: int, ids: list[str], files: int) -> AsyncIterator[bytes]:
        progress = Progress(event_id, files_total=files)
        self.running.setdefault(event_id, []).append(progress)
        out = ZipStream()
        try:
            for page in _pages(ids):
                for job in await self._jobs(page):
                    files_of_job = (("originals", job.photo_path or job.trash_path), ("results", job.result_path))
                    for folder, relative in files_of_job:
                        if not relative:
                            continue
                        await self.media.fetch(relative)  # another node's file (shared bucket)
                        path = self._path(relative)
                        if path is None:
                            continue
                        name = f"{folder}/{_stem(job)}{path.suffix.lower()}"
                        async for piece in _entry_from_file(out, name, path, job):
                            progress.bytes_sent += len(piece)
                            yield piece
                        progress.files_done += 1
            for name, rows in (("jobs.csv", self._csv(ids)), ("jobs.json", self._json(ids))):
                with out.open(name) as entry:
                    async for text in rows:
                        entry.write(text.encode("utf-8"))
                        if piece := out.take():
                            progress.bytes_sent += len(piece)
                            yield piece
            piece = out.close()
            progress.bytes_sent += len(piece)
            yield piece
        finally:
            progress.finished = True
            mine = self.running.get(event_id, [])
            if progress in mine:
                mine.remove(progress)
            if not mine:
                self.running.pop(event_id, None)

    def _path(self, relative: str) -> Path | None:
        try:
            path = self.media.resolve(relative)
        except ValueError:
            return None
        return path if path.is_file() else None

    async def _jobs(self, ids: list[str]) -> list[Job]:
        async with self.db.read() as session:
            jobs = {j.id: j for j in (await session.scalars(select(Job).where(Job.id.in_(ids)))).all()}
        return [jobs[i] for i in ids if i in jobs]

    async def _csv(self, ids: list[str]) -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for page in _pages(ids):
            for job in await self._jobs(page):
                row = job_row(job, self._path)
                row["fields"] = json.dumps(row["fields"], ensure_ascii=False)
                writer.writerow([row[c] if row[c] is not None else "" for c in CSV_COLUMNS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    async def _json(self, ids: list[str]) -> AsyncIterator[str]:
        yield "[\n"
        first = True
        for page in _pages(ids):
            parts = []
            for job in await self._jobs(page):
                parts.append(("" if first else ",\n") + json.dumps(job_row(job, self._path), ensure_ascii=False))
                first = False
            yield "".join(parts)
        yield "\n]\n"


def job_row(job: Job, exists: Any) -> dict[str, Any]:
    original = job.photo_path or job.trash_path
    original_path = exists(original) if original else None
    result_path = exists(job.result_path) if job.result_path else None
    return {
        "id": job.id,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "slot": f"{job.provider}/{job.slot_number}" if job.slot_number is not None else job.provider,
        "source": job.source,
        "status": job.status,
        "http_status": job.http_status,
        "error": job.error_code,
        "served_by": job.served_by,
        "fallback_reason": job.fallback_reason,
        "total_seconds": job.total_seconds,
        "cost_usd": job.cost_usd,
        "prompt": job.prompt,
        "original": f"originals/{_stem(job)}{original_path.suffix.lower()}" if original_path else None,
        "result": f"results/{_stem(job)}{result_path.suffix.lower()}" if result_path else None,
        "fields": _public_fields(job.meta or {}),
    }


def _public_fields(meta: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in meta.items():
        if any(word in key.lower() for word in SECRETISH):
            continue
        clean[key] = _public_fields(value) if isinstance(value, dict) else value
    return clean


def _stem(job: Job) -> str:
    when = job.created_at.strftime("%Y%m%d-%H%M%S") if job.created_at else "unknown"
    slot = f"{job.provider}-{job.slot_number}" if job.slot_number is not None else job.provider
    return f"{when}_{slot}_{job.id}"


async def _entry_from_file(out: ZipStream, name: str, path: Path, job: Job) -> AsyncIterator[bytes]:
    try:
        handle: IO[bytes] = await asyncio.to_thread(path.open, "rb")
    except OSError:
        return
    try:
        size = await asyncio.to_thread(lambda: path.stat().st_size)
        stamp = job.created_at.timetuple()[:6] if job.created_at else None
        with out.open(name, stamp, size) as entry:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                entry.write(chunk)
                if piece := out.take():
                    yield piece
    finally:
        await asyncio.to_thread(handle.close)


def _pages(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + PAGE] for i in range(0, len(ids), PAGE)]
