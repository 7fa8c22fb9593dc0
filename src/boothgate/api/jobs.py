"""Client API jobs: a photo accepted at once (202), run by the booth's spine in the background, its
progress kept for polling and pushed to listeners (Server-Sent Events in `web/v1.py`).

Stages, in order: `queued` → `preparing` (received, admitted, decoded) → `at_provider` → `shaping` (result
fitted, checked, stored) → `succeeded` | `failed` | `cancelled`. A cancelled job's provider call is stopped
and never made again (nothing is billed twice). The job row is the spine's own (source "api", the key's
id); this module keeps the live progress of recent jobs in memory.

A single job is durable from its 202 on, like a batch: `start` enqueues a task (`work/`, kind `api.job`,
key `api-job:<id>`) that names the stored upload, and the desk's own runner hands it to the spine. A
job still queued when the server stops is run after the restart (its status answers `queued` meanwhile);
one the spine had begun (a stop or a kill) is run again after it under the same id, its provider's answer
reused when it had come (`job_queue.py`: never a second call for a call that answered). A job cancelled
while queued has its task dropped, so no restart runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boothgate import errors
from boothgate.api import feed, job_queue
from boothgate.api.live import SPINE_STAGES, ApiError, LiveJob, live_view, public_job
from boothgate.booth.booth_job import Answer, BoothRequest
from boothgate.booth.multipart import Limits, Upload, read_upload
from boothgate.booth.spine import Ingest
from boothgate.operator.api_keys import Caller
from boothgate.operator.slots import SlotService, parse_number
from boothgate.providers.registry import Registry
from boothgate.records.jobs import OPEN_STATUSES, JobStore
from boothgate.settings import Settings
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Job, Slot
from boothgate.work import Context, Runner, TaskQueue

log = logging.getLogger("boothgate.api")

# Finished jobs whose live progress stays in memory (older ones are answered from the job table).
KEEP_FINISHED = 500
MAX_WAIT_SECONDS = 50.0
KIND = "api.job"
# Single jobs run at once: the spine's own admission (busy, deadlines) bounds them, not this runner.
RUNNER_CONCURRENCY = 64
# Text fields of a job (prompt variables) other than these reach the slot's prompt placeholders.
RESERVED_FIELDS = frozenset({"slot", "file", "filetoupload"})


@dataclass
class Received:
    """An accepted upload: the photo on disk and the form's text fields."""

    path: Path
    filename: str
    fields: dict[str, str]
    slot: Slot


def parse_slot(text: str | None, registry: Registry) -> tuple[str, int]:
    tab, _, number = (text or "").strip().partition("/")
    parsed = parse_number(number)
    if not registry.knows(tab) or parsed is None:
        raise ApiError(422, "bad_slot", "Name the slot as tab/number, e.g. gemini/3, in the field 'slot'.")
    return tab, parsed


@dataclass
class JobDesk:
    ingest: Ingest
    registry: Registry
    slots: SlotService
    jobs: JobStore
    media: MediaStore
    settings: Callable[[], Settings]
    # Told of every finished API job (the webhooks): (event, payload).
    notify: Callable[[str, dict[str, Any]], Awaitable[object]] | None = None
    # The key of a job a restarted server runs (runtime.py: the API keys' lookup by id).
    key_of: Callable[[str], Awaitable[Caller | None]] | None = None
    runner: Runner | None = None  # durable single jobs (see above); None: in this process only
    # Which event holds a slot now (operator/events.py), for keys scoped to an event.
    event_of: Callable[[str, int], Awaitable[int | None]] | None = None
    _live: OrderedDict[str, LiveJob] = field(default_factory=OrderedDict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _stopping: bool = False  # the server stops: a durable job cut off now runs again after the restart

    def durable(self, queue: TaskQueue) -> Runner:
        """Single jobs go through `queue` from now on, on a runner of their own (returned: start it)."""
        self.runner = Runner(queue, concurrency=RUNNER_CONCURRENCY, poll_seconds=1.0)
        self.runner.register(KIND, self._handle)
        return self.runner

    @property
    def inbox(self) -> Path:
        return self.media.root / "api" / "incoming"

    # --- accept -----------------------------------------------------------------------------
    async def receive(
        self, content_type: str | None, content_length: int | None, body: AsyncIterator[bytes], caller: Caller
    ) -> Received:
        """Read the upload (bounded like a booth's) and check its slot against the key; ApiError if not."""
        settings = self.settings()
        if content_length is not None and content_length > settings.max_upload_bytes:
            raise ApiError(413, "too_large", f"At most {settings.max_upload_bytes:,} bytes are accepted.")
        await asyncio.to_thread(self.inbox.mkdir, parents=True, exist_ok=True)
        path = self.inbox / f"{uuid.uuid4().hex}.upload"
        upload = Upload()
        try:
            await read_upload(
                content_type,
                body,
                path,
                Limits(settings.max_upload_bytes, settings.upload_idle_timeout_seconds),
                upload=upload,
            )
            if upload.path is None or upload.size == 0:
                raise ApiError(422, "no_file", "Send the photo in the form field 'file'.")
            provider, number = parse_slot(upload.fields.get("slot"), self.registry)
            slot = await self.check_slot(caller, provider, number)
        except errors.BoothError as exc:
            await asyncio.to_thread(path.unlink, True)
            raise ApiError(exc.status, exc.code, exc.message) from None
        except BaseException:
            await asyncio.to_thread(path.unlink, True)
            raise
        fields = {k: v for k, v in upload.fields.items() if k.lower() not in RESERVED_FIELDS}
        return Received(path, upload.filename or "photo", fields, slot)

    async def check_slot(self, caller: Caller, provider: str, number: int) -> Slot:
        event_id = await self.event_of(provider, number) if caller.by_event and self.event_of else None
        if not caller.may_use(provider, number, event_id):
            raise ApiError(403, "out_of_scope", f"This key may not use slot {provider}/{number}.")
        slot = await self.slots.get(provider, number)
        if slot is None:
            raise ApiError(404, "slot_not_found", f"There is no slot {provider}/{number}.")
        if not slot.enabled:
            raise ApiError(403, "slot_disabled", f"Slot {provider}/{number} is switched off.")
        return slot

    async def start(self, received: Received, caller: Caller) -> LiveJob:
        """The job exists from now on (202); the spine runs it in the background."""
        live = self._new(caller, received.slot.provider, received.slot.number, None)
        if self.runner is None:
            live.task = self._spawn(self._run(live, received.path, received.filename, received.fields, remove=True))
            return live
        payload = {
            "job": live.id, "key": caller.id, "provider": live.provider, "number": live.number,
            "path": self.media.relative(received.path), "filename": received.filename, "fields": received.fields,
        }  # fmt: skip
        try:  # with a shared bucket: in it before the task exists, so any node can take the task over
            await self.media.publish(str(payload["path"]))
        except errors.StorageUnavailable as exc:
            await asyncio.to_thread(received.path.unlink, True)
            live.enter("failed")
            raise ApiError(exc.status, exc.code, exc.message) from None
        await self.runner.queue.enqueue(KIND, f"api-job:{live.id}", payload, priority=60, max_attempts=3)
        return live

    async def _handle(self, context: Context) -> None:
        """The durable task of one single job: run it once (a job the spine has recorded is not run again)."""
        payload = context.payload
        job_id = str(payload.get("job") or "")
        await self.media.fetch(str(payload.get("path") or ""))  # queued by another node (shared bucket)
        path = self.media.resolve(str(payload.get("path") or ""))
        live = await self._adopt(job_id, payload)
        answers = job_queue.ProviderAnswers(self.media.root, job_id)
        row = await self.jobs.get(job_id)  # open: a run a stop cut off, run again (its answers reused)
        if live is None or live.cancel_requested or live.done or (row is not None and row.status not in OPEN_STATUSES):
            await asyncio.to_thread(self._discard, path)
            await answers.forget()
            return
        fields = {str(k): str(v) for k, v in dict(payload.get("fields") or {}).items()}  # type: ignore[call-overload]
        filename = str(payload.get("filename") or "photo")
        live.task = self._spawn(self._run(live, path, filename, fields, remove=True, answers=answers))
        with contextlib.suppress(asyncio.CancelledError):  # a client's cancel ends the task, done
            await asyncio.shield(live.task)
        if asyncio.current_task() is not None and asyncio.current_task().cancelling():  # type: ignore[union-attr]
            raise asyncio.CancelledError  # the runner is stopping: the task is given back
        await answers.forget()

    async def _adopt(self, job_id: str, payload: dict[str, Any]) -> LiveJob | None:
        """The job's live progress: this process's, or a fresh one for a job queued before a restart."""
        live = self._live.get(job_id)
        if live is not None:
            return live
        caller = await self.key_of(str(payload.get("key") or "")) if self.key_of is not None else None
        if caller is None:  # the key is gone: nobody may read the job
            return None
        return self._new(caller, str(payload.get("provider")), int(payload.get("number") or 0), None, job_id)

    async def find_live(self, job_id: str, caller: Caller) -> LiveJob | None:
        """`live`, or the progress of a job still queued from before a restart (read from its task)."""
        live = self.live(job_id, caller)
        if live is not None or self.runner is None:
            return live
        task = await self.runner.queue.get(f"api-job:{job_id}")
        if task is None or task.state not in ("queued", "running") or (task.payload or {}).get("key") != caller.id:
            return None
        adopted = await self._adopt(job_id, dict(task.payload or {}))
        return adopted if adopted is not None and adopted.caller.id == caller.id else None

    def _new(
        self, caller: Caller, provider: str, number: int, batch_id: str | None, job_id: str | None = None
    ) -> LiveJob:
        live = LiveJob(job_id or uuid.uuid4().hex, caller, provider, number, datetime.now(UTC), batch_id)
        live.events.append({"stage": "queued", "progress": 0, "at": live.created_at.isoformat(), "seq": 0})
        self._live[live.id] = live
        self._forget_old()
        return live

    def _spawn(self, work: Awaitable[Answer]) -> asyncio.Task[Answer]:
        task: asyncio.Task[Answer] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _forget_old(self) -> None:
        finished = [k for k, v in self._live.items() if v.done]
        for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._live[key]

    # --- run (also used by batches) ---------------------------------------------------------
    def start_item(
        self,
        caller: Caller,
        provider: str,
        number: int,
        path: Path,
        filename: str,
        fields: dict[str, str],
        batch_id: str,
        job_id: str,
    ) -> LiveJob:
        """A batch's photo as a job (its input stays: the batch owns it)."""
        live = self._new(caller, provider, number, batch_id, job_id)
        live.task = self._spawn(self._run(live, path, filename, fields, remove=False))
        return live

    async def _run(
        self,
        live: LiveJob,
        path: Path,
        filename: str,
        fields: dict[str, str],
        remove: bool,
        answers: job_queue.ProviderAnswers | None = None,
    ) -> Answer:
        content_type, length, body = feed.multipart(path, filename, fields)
        try:
            answer = await self.ingest.handle(
                BoothRequest(
                    provider=live.provider,
                    number=str(live.number),
                    content_type=content_type,
                    content_length=length,
                    header_password=None,
                    body=body,
                    received_at=time.monotonic(),
                    client=f"api:{live.caller.prefix}",
                    source="api",
                    job_id=live.id,
                    api_key_id=live.caller.id,
                    batch_id=live.batch_id,
                    on_stage=lambda stage: live.enter(SPINE_STAGES.get(stage, live.stage)),
                    replay=answers,
                    stopping=lambda: self._stopping and not live.cancel_requested,  # a stop: not cancelled
                )
            )
        except BaseException:
            if self._stopping and not live.cancel_requested:
                raise  # cut off by a stop: run again after the restart (a batch's photo too)
            live.enter("cancelled" if live.cancel_requested else "failed")
            raise
        finally:
            if remove and not (answers is not None and self._stopping):  # a stop: the upload stays for the rerun
                await asyncio.to_thread(self._discard, path)
        live.answer = answer
        if answer.error == "cancelled":
            live.enter("cancelled")
        elif answer.status == 200 and answer.error is None:
            live.enter("succeeded")
        else:
            live.enter("failed")
        if self.notify is not None and live.stage in ("succeeded", "failed"):
            job = await self.jobs.get(live.id)
            with contextlib.suppress(Exception):
                await self.notify(f"job.{live.stage}", public_job(job, live) if job else {"id": live.id})
        return answer

    # --- read -------------------------------------------------------------------------------
    def live(self, job_id: str, caller: Caller) -> LiveJob | None:
        live = self._live.get(job_id)
        return live if live is not None and live.caller.id == caller.id else None

    async def row(self, job_id: str, caller: Caller) -> Job | None:
        job = await self.jobs.get(job_id)
        return job if job is not None and job.api_key_id == caller.id else None

    async def view(self, job_id: str, caller: Caller) -> dict[str, Any] | None:
        live = await self.find_live(job_id, caller)
        job = await self.row(job_id, caller)
        if live is None and job is None:
            return None
        if job is None:
            assert live is not None
            return live_view(live)
        return public_job(job, live)

    async def wait(self, live: LiveJob, seconds: float) -> bool:
        """Whether the job finished within `seconds` (≤ MAX_WAIT_SECONDS)."""
        if live.done:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(seconds, MAX_WAIT_SECONDS)):
                async for _ in live.changes(len(live.events)):
                    pass
                if live.task is not None:  # its answer is set before its last stage: nothing more to wait for
                    await asyncio.wait([live.task])
        return live.done

    def _discard(self, upload: Path) -> None:
        """An API upload done with: here and, with a shared bucket, there (worker thread)."""
        try:
            relative = self.media.relative(upload)
        except ValueError:
            upload.unlink(missing_ok=True)
            return
        self.media.delete(relative)

    async def cancel(self, live: LiveJob) -> None:
        if live.done:
            return
        live.cancel_requested = True
        if live.task is None:  # still queued: its task is dropped, so no restart runs it either
            if self.runner is not None:
                key = f"api-job:{live.id}"
                task = await self.runner.queue.get(key)
                if await self.runner.queue.drop(key, "cancelled while queued") and task is not None:
                    upload = self.media.resolve(str((task.payload or {}).get("path") or ""))
                    await asyncio.to_thread(self._discard, upload)
            live.enter("cancelled")
            return
        live.task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.shield(live.task)
        if not live.done:  # cancelled before the spine began: nothing ran, nothing is recorded
            live.enter("cancelled")

    async def aclose(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
