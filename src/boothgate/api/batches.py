"""Client API batches: many photos (files, or one ZIP of them) for one slot; each photo an ordinary job.

Intake is checked before anything is written (`batch_intake.py`: entries, sizes, ratio, unsafe names,
nested archives → 422 with nothing left on disk).

Running is durable work (`work/`, kind `api.batch`): the batch and its items are rows, so a restart goes
on where it stopped (an item whose job had already succeeded is not run again).

**Booths come first.** A batch photo starts only on spare capacity: no booth photo on its way to a
provider (`booth/traffic.py`), no image work waiting and a free image worker — and at most
`BatchLimits.concurrency` batch photos at a time, so a batch never takes a provider's capacity from the
booths. A batch photo the spine refuses as busy (503) waits and is tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import queue
import shutil
import threading
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from boothgate.api.batch_intake import BatchLimits, Incoming, store_inputs, unique_names
from boothgate.api.jobs import JobDesk
from boothgate.api.live import LiveJob
from boothgate.booth.traffic import Traffic
from boothgate.imaging.workers import ImageWorkers
from boothgate.operator.api_keys import Caller
from boothgate.storage.db import Database
from boothgate.storage.media import MediaStore
from boothgate.storage.models import ApiKey, Batch, BatchItem, Job, utcnow
from boothgate.work import Context, Runner, TaskQueue

log = logging.getLogger("boothgate.api")

KIND = "api.batch"
SPARE_POLL_SECONDS = 0.05
BUSY_RETRY_SECONDS = 1.0
BUSY_TRIES = 30
MIME_SUFFIX = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}


def public_batch(batch: Batch) -> dict[str, Any]:
    base = f"/api/v1/batches/{batch.id}"
    return {
        "id": batch.id,
        "slot": f"{batch.provider}/{batch.number}",
        "status": batch.status,
        "total": batch.total,
        "done": batch.done,
        "failed": batch.failed,
        "pending": batch.total - batch.done - batch.failed,
        "created_at": batch.created_at.isoformat() if batch.created_at else None,
        "finished_at": batch.finished_at.isoformat() if batch.finished_at else None,
        "status_url": base,
        "zip_url": f"{base}/zip",
    }


@dataclass
class Batches:
    db: Database
    media: MediaStore
    desk: JobDesk
    traffic: Traffic
    workers: ImageWorkers
    limits: BatchLimits = field(default_factory=BatchLimits)
    notify: Callable[[str, dict[str, Any]], Awaitable[object]] | None = None
    # Raises when `n` more photos would pass the key's photos per day (operator/api_keys.count_photos).
    quota: Callable[[Caller, int], Awaitable[None]] | None = None
    runner: Runner = field(init=False)
    _running: dict[str, set[LiveJob]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A runner of its own: a long batch never holds up the shared queue's short work (webhooks).
        self.runner = Runner(TaskQueue(self.db), concurrency=1, poll_seconds=1.0)
        self.runner.register(KIND, self._handle)

    def folder(self, batch_id: str) -> Path:
        return self.media.root / "api" / "batches" / batch_id

    # --- intake -----------------------------------------------------------------------------
    async def create(
        self, caller: Caller, provider: str, number: int, incoming: list[Incoming], fields: dict[str, str]
    ) -> Batch:
        await self.desk.check_slot(caller, provider, number)
        batch_id = uuid.uuid4().hex
        folder = self.folder(batch_id)
        stored = await asyncio.to_thread(store_inputs, folder, incoming, self.limits)
        try:
            if self.quota is not None:
                await self.quota(caller, len(stored))
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, folder, True)
            raise
        names = unique_names(name for name, _ in stored)
        batch = Batch(
            id=batch_id, api_key_id=caller.id, provider=provider, number=number, fields=fields,
            status="queued", total=len(stored), created_at=utcnow(),
        )  # fmt: skip
        try:
            async with self.db.write() as session:
                session.add(batch)
                for position, (name, (_, path)) in enumerate(zip(names, stored, strict=True)):
                    session.add(
                        BatchItem(batch_id=batch_id, position=position, name=name, path=self.media.relative(path))
                    )
                await self.runner.queue.enqueue(
                    KIND, f"batch:{batch_id}", {"batch": batch_id}, session=session, max_attempts=20
                )
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, folder, True)
            raise
        self.runner.queue.wake()
        return batch

    # --- read -------------------------------------------------------------------------------
    async def get(self, batch_id: str, caller: Caller) -> Batch | None:
        async with self.db.read() as session:
            batch = await session.get(Batch, batch_id)
        return batch if batch is not None and batch.api_key_id == caller.id else None

    async def items(self, batch_id: str) -> list[BatchItem]:
        async with self.db.read() as session:
            query = select(BatchItem).where(BatchItem.batch_id == batch_id).order_by(BatchItem.position)
            return list((await session.scalars(query)).all())

    async def cancel(self, batch: Batch) -> Batch:
        async with self.db.write() as session:
            row = await session.get(Batch, batch.id)
            assert row is not None
            if row.status in ("queued", "running"):
                row.status = "cancelled"
                row.finished_at = utcnow()
                for item in (await session.scalars(select(BatchItem).where(BatchItem.batch_id == batch.id))).all():
                    if item.status == "queued":
                        item.status, item.error_code = "cancelled", "cancelled"
        for live in list(self._running.get(batch.id, ())):
            await self.desk.cancel(live)
        return row

    # --- run --------------------------------------------------------------------------------
    async def _handle(self, context: Context) -> None:
        batch_id = str(context.payload["batch"])
        async with self.db.read() as session:
            batch = await session.get(Batch, batch_id)
            key = await session.get(ApiKey, batch.api_key_id) if batch is not None else None
        if batch is None or batch.status in ("completed", "cancelled"):
            return
        caller = Caller(key.id, key.name, key.prefix, (), 0, 0) if key is not None else None
        await self._set_status(batch_id, "running")
        gate = asyncio.Semaphore(self.limits.concurrency)
        running: set[asyncio.Task[None]] = set()
        for item in await self.items(batch_id):
            if item.status != "queued":
                continue
            if await self._already_done(item):
                continue
            await gate.acquire()
            if await self._cancelled(batch_id):
                gate.release()
                break
            task = asyncio.create_task(self._one(batch, caller, item, gate))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        await self._finish(batch_id)
        # The inputs are not needed any more: each photo's own copy and result live on with its job.
        await asyncio.to_thread(shutil.rmtree, self.folder(batch_id), True)

    async def _spare(self) -> None:
        """Wait for spare capacity: no booth photo on its way to a provider, no image work waiting."""
        workers = self.workers
        while self.traffic.coming or workers.queued or workers.busy >= workers.workers:  # noqa: ASYNC110
            await asyncio.sleep(SPARE_POLL_SECONDS)  # (counters of the spine and the workers, not an event)

    async def _one(self, batch: Batch, caller: Caller | None, item: BatchItem, gate: asyncio.Semaphore) -> None:
        try:
            if caller is None:
                await self._item_done(item, "failed", None, "key_deleted", "The key that sent the batch is gone.")
                return
            path = self.media.resolve(item.path)
            for _ in range(BUSY_TRIES):
                job_id = uuid.uuid4().hex
                await self._item_job(item, job_id)
                await self._spare()  # right before the spine: nothing slow between the check and the start
                live = self.desk.start_item(
                    caller, batch.provider, batch.number, path, item.name, dict(batch.fields or {}), batch.id, job_id
                )
                holder = self._running.setdefault(batch.id, set())
                holder.add(live)
                try:
                    assert live.task is not None
                    answer = await asyncio.shield(live.task)
                finally:
                    holder.discard(live)
                if answer.error == "busy" and not await self._cancelled(batch.id):
                    await asyncio.sleep(BUSY_RETRY_SECONDS)
                    continue
                break
            if answer.error == "cancelled":
                await self._item_done(item, "cancelled", job_id, "cancelled", "Cancelled.")
            elif answer.status == 200 and answer.error is None:
                await self._item_done(item, "succeeded", job_id, None, None)
            else:
                job = await self.desk.jobs.get(job_id)
                await self._item_done(
                    item,
                    "failed",
                    job_id,
                    answer.error or (job.error_code if job else None),
                    job.message if job else None,
                )
        except Exception as exc:
            log.exception("batch=%s item=%s failed", batch.id, item.position)
            await self._item_done(
                item, "failed", item.job_id, "internal_error", f"Internal error: {type(exc).__name__}."
            )
        finally:
            gate.release()

    async def _already_done(self, item: BatchItem) -> bool:
        """After a restart: an item whose job succeeded is counted, not run again."""
        if item.job_id is None:
            return False
        job = await self.desk.jobs.get(item.job_id)
        if job is None or job.status != "succeeded":
            return False
        await self._item_done(item, "succeeded", job.id, None, None)
        return True

    async def _item_job(self, item: BatchItem, job_id: str) -> None:
        async with self.db.write() as session:
            row = await session.get(BatchItem, item.id)
            if row is not None:
                row.job_id = job_id
        item.job_id = job_id

    async def _item_done(
        self, item: BatchItem, status: str, job_id: str | None, code: str | None, message: str | None
    ) -> None:
        async with self.db.write() as session:
            row = await session.get(BatchItem, item.id)
            batch = await session.get(Batch, item.batch_id)
            if row is None or batch is None or row.status not in ("queued",):
                return
            row.status, row.job_id, row.error_code, row.message = status, job_id, code, message
            if status == "succeeded":
                batch.done += 1
            elif status == "failed":
                batch.failed += 1

    async def _set_status(self, batch_id: str, status: str) -> None:
        async with self.db.write() as session:
            row = await session.get(Batch, batch_id)
            if row is not None and row.status in ("queued", "running"):
                row.status = status

    async def _cancelled(self, batch_id: str) -> bool:
        async with self.db.read() as session:
            row = await session.get(Batch, batch_id)
        return row is None or row.status == "cancelled"

    async def _finish(self, batch_id: str) -> None:
        async with self.db.write() as session:
            row = await session.get(Batch, batch_id)
            if row is None or row.status not in ("queued", "running"):
                return
            row.status, row.finished_at = "completed", utcnow()
        self._running.pop(batch_id, None)
        log.info("batch=%s completed total=%d done=%d failed=%d", batch_id, row.total, row.done, row.failed)
        if self.notify is not None:
            with contextlib.suppress(Exception):
                await self.notify("batch.completed", public_batch(row))

    # --- the results as one ZIP -----------------------------------------------------------
    async def zip_stream(self, batch: Batch) -> AsyncIterator[bytes]:
        """The results and `manifest.json`, streamed: written by a thread into a small bounded queue."""
        items = await self.items(batch.id)
        jobs: dict[str, Job] = {}
        for item in items:
            if item.job_id:
                job = await self.desk.jobs.get(item.job_id)
                if job is not None:
                    jobs[item.job_id] = job
        plan: list[tuple[str, Path]] = []
        manifest: list[dict[str, Any]] = []
        used: set[str] = set()
        for item in items:
            job = jobs.get(item.job_id or "")
            result_name = None
            if item.status == "succeeded" and job is not None and job.result_path:
                stem = item.name.rsplit(".", 1)[0] if "." in item.name else item.name
                result_name = f"results/{stem}{MIME_SUFFIX.get(job.result_mime or '', '.bin')}"
                n = 1
                while result_name in used:
                    n += 1
                    result_name = f"results/{stem}-{n}{MIME_SUFFIX.get(job.result_mime or '', '.bin')}"
                used.add(result_name)
                await self.media.fetch(job.result_path)  # another node's result (shared bucket)
                plan.append((result_name, self.media.resolve(job.result_path)))
            manifest.append(
                {
                    "input": item.name,
                    "status": item.status,
                    "result": result_name,
                    "job_id": item.job_id,
                    "error": item.error_code,
                    "message": item.message,
                }
            )
        document = json.dumps({"batch": public_batch(batch), "items": manifest}, ensure_ascii=False, indent=2)
        chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
        stop = threading.Event()
        thread = threading.Thread(target=_write_zip, args=(plan, document, chunks, stop), daemon=True)
        thread.start()
        try:
            while True:
                chunk = await asyncio.to_thread(chunks.get)
                if chunk is None:
                    return
                if isinstance(chunk, BaseException):
                    raise chunk
                yield chunk
        finally:
            stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    chunks.get_nowait()


class _QueueWriter(io.RawIOBase):
    def __init__(self, chunks: queue.Queue[bytes | BaseException | None], stop: threading.Event) -> None:
        self.chunks, self.stop = chunks, stop
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.stop.is_set():
            raise OSError("the download was closed")
        self.buffer.extend(data)
        if len(self.buffer) >= 256 * 1024:
            self.flush_out()
        return len(data)

    def flush_out(self) -> None:
        if self.buffer:
            while not self.stop.is_set():
                try:
                    self.chunks.put(bytes(self.buffer), timeout=0.5)
                    break
                except queue.Full:
                    continue
            self.buffer.clear()


def _write_zip(
    plan: list[tuple[str, Path]],
    manifest: str,
    chunks: queue.Queue[bytes | BaseException | None],
    stop: threading.Event,
) -> None:
    writer = _QueueWriter(chunks, stop)
    try:
        with zipfile.ZipFile(writer, "w", zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
            for name, path in plan:
                with (
                    contextlib.suppress(FileNotFoundError),
                    path.open("rb") as source,
                    archive.open(name, "w", force_zip64=False) as target,
                ):
                    shutil.copyfileobj(source, target, 256 * 1024)
            archive.writestr("manifest.json", manifest, zipfile.ZIP_DEFLATED)
        writer.flush_out()
        chunks.put(None)
    except BaseException as exc:
        if not stop.is_set():
            chunks.put(exc)
