"""The spine: one photo from the booth's POST to the answer.

    receive → admit → prepare → run → answer        (or, at any step, fail well)

Every request is bounded by its deadline (monotonic, from when the request arrived). Whatever
happens, the booth gets an answer before the deadline, the job is recorded, and a failed original
lands in trash with a sidecar that says why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boothgate import errors
from boothgate.deadline import Deadline
from boothgate.images import MIME, sniff
from boothgate.providers import transport
from boothgate.providers.base import Kind, Provider, ProviderRequest, ProviderResult
from boothgate.providers.registry import Registry, UnknownProvider
from boothgate.services.capacity import Capacity
from boothgate.services.config import RuntimeConfig
from boothgate.services.credentials import Credentials
from boothgate.services.early import EarlyDecode, watch_upload
from boothgate.services.imaging import Imaging
from boothgate.services.jobs import JobStore
from boothgate.services.media_links import MediaLinks
from boothgate.services.multipart import PARSE_CONCURRENCY, Limits, Upload, read_upload
from boothgate.services.slots import SlotService, parse_number
from boothgate.services.throttle import Throttle
from boothgate.services.workers import JOB
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Job, Slot, utcnow

log = logging.getLogger("boothgate.jobs")

# Work stops this long before the deadline, leaving time to trash the original and answer.
ANSWER_MARGIN_SECONDS = 0.25
# Errors after which a slot set to on_failure="original" answers with the guest's own photo.
FALLBACK_STATUSES = frozenset({429, 500, 502, 503, 504, 507})
SECRET_FIELDS = frozenset({"password", "api_key", "apikey", "token", "key"})


@dataclass
class BoothRequest:
    """What the web layer hands over: path, headers that matter, and the body stream."""

    provider: str
    number: str
    content_type: str | None
    content_length: int | None
    header_password: str | None
    body: AsyncIterator[bytes]
    received_at: float
    client: str
    source: str = "booth"  # "try" = the admin UI's Try it: no password, disabled slots allowed


@dataclass
class Answer:
    status: int
    body: bytes
    media_type: str
    job_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass
class _Outcome:
    """What one provider run produced; shared by identical requests that joined it."""

    result: ProviderResult
    provider_seconds: float
    job_id: str


@dataclass
class _Job:
    """The request's state as it moves along the spine."""

    record: Job
    request: BoothRequest
    deadline: Deadline
    incoming: Path
    stage: str = "receive"
    slot: Slot | None = None
    photo: Path | None = None
    upload: Upload | None = None
    marks: dict[str, float] = field(default_factory=dict)
    early: EarlyDecode | None = None  # the photo decoded while it arrived (services/early.py)

    def mark(self, name: str, since: float) -> float:
        now = time.monotonic()
        self.marks[name] = round(now - since, 4)
        return now


class Ingest:
    def __init__(
        self,
        config: RuntimeConfig,
        registry: Registry,
        slots: SlotService,
        jobs: JobStore,
        media: MediaStore,
        imaging: Imaging,
        credentials: Credentials,
        throttle: Throttle,
        links: MediaLinks,
    ) -> None:
        self.config, self.registry, self.slots, self.jobs = config, registry, slots, jobs
        self.media, self.imaging, self.credentials, self.throttle, self.links = (
            media,
            imaging,
            credentials,
            throttle,
            links,
        )
        self._inflight: dict[tuple[str, int, int, str], asyncio.Task[_Outcome]] = {}
        self._parsing = asyncio.Semaphore(PARSE_CONCURRENCY)
        self.capacity = Capacity(imaging.workers)

    # --- the whole path ---------------------------------------------------------------------
    async def handle(self, request: BoothRequest) -> Answer:
        settings = self.config.settings
        deadline = Deadline(request.received_at + settings.deadline_seconds)
        job_id = uuid.uuid4().hex
        record = Job(
            id=job_id,
            created_at=utcnow(),
            provider=request.provider[:32],
            slot_number=parse_number(request.number),
            source=request.source,
            status="received",
            timings={},
            meta={},
            provider_notes={},
        )
        job = _Job(record, request, deadline, self.media.incoming_path(job_id))
        JOB.set(job_id)  # image work started for this request is tagged with its job
        try:
            async with asyncio.timeout_at(deadline.at - ANSWER_MARGIN_SECONDS):
                return await self._process(job)
        except errors.BoothError as exc:
            return await self._fail(job, exc)
        except TimeoutError:
            if job.stage == "receive":  # the booth's side was too slow: not a processing timeout
                return await self._fail(job, _too_slow(settings.deadline_seconds))
            return await self._fail(
                job,
                errors.DeadlineReached(
                    f"No result within {settings.deadline_seconds:g} s (stopped during {job.stage})."
                ),
            )
        except Exception as exc:
            log.exception("job=%s unexpected failure", job_id)
            return await self._fail(job, errors.BoothError(f"Internal error: {type(exc).__name__}."))
        finally:
            if job.early is not None:
                job.early.close()  # no image work of this job outlives its answer

    async def _process(self, job: _Job) -> Answer:
        start = job.request.received_at
        upload = await self._receive(job)
        t = job.mark("receive", start)
        job.stage = "admit"
        slot, provider = await self._admit(job, upload)
        t = job.mark("admit", t)
        reused = await self.jobs.recent_success(
            slot.provider,
            slot.number,
            slot.revision,
            upload.sha256,
            self.config.settings.duplicate_window_seconds,
        )
        if reused is not None and reused.result_path:
            return await self._answer_reused(job, reused)
        self.capacity.check(slot, job.deadline, job.early)
        job.record.status = "running"
        await self.jobs.add(job.record)
        job.stage = "provider"
        outcome = await self._run_once(job, slot, provider, upload.sha256)
        t = job.mark("prepare_and_provider", t)
        job.stage = "finish"
        data, mime = await self.imaging.finish(outcome.result.data, slot.output_format, job.deadline.at)
        t = job.mark("finish", t)
        await self._succeed(job, data, mime, outcome)
        return Answer(200, data, mime, job.record.id, {"X-Job-Id": job.record.id})

    # --- receive ----------------------------------------------------------------------------
    async def _receive(self, job: _Job) -> Upload:
        settings = self.config.settings
        request = job.request
        if self.throttle.retry_after(request.client) is not None and request.source == "booth":
            job.stage = "admit"
            raise errors.RateLimited("Too many wrong passwords from this address; wait and try again.")
        if request.content_length is not None and request.content_length > settings.max_upload_bytes:
            raise errors.TooLarge(
                f"The upload is {request.content_length:,} bytes; at most {settings.max_upload_bytes:,} are accepted."
            )
        limits = Limits(settings.max_upload_bytes, settings.upload_idle_timeout_seconds)
        job.early = watch_upload(self.imaging, self.registry, self.credentials, request, job.incoming, job.deadline.at)
        upload = await read_upload(
            request.content_type, request.body, job.incoming, limits, self._parsing, job.early.progress
        )
        await job.early.complete(upload.size)
        job.upload = upload
        job.record.meta = _metadata(upload)
        job.record.photo_bytes = upload.size
        job.record.photo_sha256 = upload.sha256 or None
        return upload

    # --- admit ------------------------------------------------------------------------------
    async def _admit(self, job: _Job, upload: Upload) -> tuple[Slot, Provider]:
        request = job.request
        if request.source == "booth":
            await self._check_password(request, upload)
        number = parse_number(request.number)
        if not self.registry.knows(request.provider) or number is None:
            raise errors.SlotNotFound(f"There is no slot {request.provider}/{request.number}.")
        slot = await self.slots.get(request.provider, number)
        if slot is None:
            raise errors.SlotNotFound(f"There is no slot {request.provider}/{number}.")
        job.slot = slot
        job.record.slot_revision = slot.revision
        if not slot.enabled and request.source == "booth":
            raise errors.SlotDisabled(f"Slot {slot.provider}/{slot.number} is switched off in the admin UI.")
        if upload.path is None:
            raise errors.MalformedRequest("No photo: send the file in the form field 'fileToUpload'.", code="no_file")
        if upload.size == 0:
            raise errors.MalformedRequest("The photo file is empty (0 bytes).", code="empty_file")
        image_type = sniff(upload.head)
        if image_type is None:
            raise errors.UnsupportedImage("The file is not a JPEG, PNG or WEBP image.")
        job.photo = await asyncio.to_thread(self.media.keep_photo, upload.path, job.record.id, image_type)
        job.record.photo_path = self.media.relative(job.photo)
        await self.imaging.inspect(job.photo)  # type from bytes, dimensions before any decode
        provider = self._provider(slot)
        missing = self.slots.problems(slot)
        if "reference_required" in missing:
            raise errors.ProviderNotConfigured(
                f"Slot {slot.provider}/{slot.number} needs a reference image for {slot.kind}.",
                code="slot_incomplete",
            )
        return slot, provider

    async def _check_password(self, request: BoothRequest, upload: Upload) -> None:
        candidate = upload.fields.get("password") or request.header_password
        if self.credentials.check_upload(candidate):
            self.throttle.succeeded(request.client)
            return
        delay = self.throttle.delay(request.client)
        self.throttle.failed(request.client)
        if delay:
            await asyncio.sleep(delay)
        message = "Wrong upload password." if candidate else "The upload password is missing (form field 'password')."
        raise errors.Unauthorized(message)

    def _provider(self, slot: Slot) -> Provider:
        try:
            provider = self.registry.get(slot.provider)
        except UnknownProvider as exc:
            raise errors.SlotNotFound(f"There is no provider {slot.provider}.") from exc
        if provider is None:
            raise errors.ProviderNotConfigured(f"The {slot.provider} provider is not available in this version.")
        problem = provider.problem()
        if problem:
            raise errors.ProviderNotConfigured(problem)
        return provider

    # --- run (once per identical photo in flight) -------------------------------------------
    async def _run_once(self, job: _Job, slot: Slot, provider: Provider, sha256: str) -> _Outcome:
        key = (slot.provider, slot.number, slot.revision, sha256)
        running = self._inflight.get(key)
        if running is not None:
            try:
                outcome = await asyncio.shield(running)
            except asyncio.CancelledError:
                if running.cancelled():  # the run we joined hit its own deadline
                    raise errors.DeadlineReached("The identical photo sent earlier ran out of time.") from None
                raise
            job.record.reused_from = outcome.job_id
            return outcome
        task = asyncio.create_task(self._run_provider(job, slot, provider))
        self._inflight[key] = task
        task.add_done_callback(lambda _: self._inflight.pop(key, None))
        # Awaited directly (not shielded): when this request's deadline cancels us, the provider call
        # is cancelled too, so nothing talks to the provider after the booth has its answer.
        return await task

    async def _run_provider(self, job: _Job, slot: Slot, provider: Provider) -> _Outcome:
        assert job.photo is not None
        pixels = provider.input_pixels()
        started = time.monotonic()
        photo = (job.early and await job.early.take(pixels)) or await self.capacity.prepare(
            self.imaging, slot, job.deadline, job.photo, pixels
        )
        reference = None
        reference_path = self.slots.reference_path(slot)
        if reference_path is not None and slot.reference_sha256:
            reference = await self.imaging.prepare_reference(
                reference_path, slot.reference_sha256, pixels, job.deadline.at
            )
        job.marks["prepare"] = round(time.monotonic() - started, 4)
        job.record.provider_notes["input_bytes"] = len(photo.data) + (len(reference.data) if reference else 0)
        job.record.provider_notes["input_size"] = f"{photo.width}x{photo.height}"
        request = ProviderRequest(
            job_id=job.record.id,
            kind=Kind(slot.kind),
            photo=photo,
            reference=reference,
            prompt=slot.prompt,
            options=provider.Options.model_validate(slot.options or {}),
            deadline=job.deadline.earlier(ANSWER_MARGIN_SECONDS),
            publish=self.links.publish if self.config.settings.public_base_url else None,
            notes=job.record.provider_notes,
        )
        provider_start = time.monotonic()
        try:
            result = await provider.run(request)
        except Exception as exc:
            # A provider that lets a connection reset or an unreadable body escape still gives the
            # booth a provider error (502), not an internal error (500).
            mapped = transport.booth_error(exc, provider.label, request.deadline)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            job.record.provider_seconds = round(time.monotonic() - provider_start, 4)
            self.capacity.record(slot, job.record.provider_seconds)
        return _Outcome(result, job.record.provider_seconds, job.record.id)

    # --- answer -----------------------------------------------------------------------------
    async def _succeed(self, job: _Job, data: bytes, mime: str, outcome: _Outcome) -> None:
        record = job.record
        try:
            path = await asyncio.to_thread(self.media.write_result, record.id, data, mime)
        except OSError as exc:
            raise errors.StorageFailed(f"Could not save the result: {exc.strerror or exc}.") from exc
        notes = {**record.provider_notes, **outcome.result.notes}
        record.provider_notes = _clean(notes)
        record.cost_usd = notes.get("cost_usd") if record.reused_from is None else 0.0
        record.provider_seconds = outcome.provider_seconds
        record.result_path = self.media.relative(path)
        record.result_mime = mime
        await self._close(job, "succeeded", 200)

    async def _answer_reused(self, job: _Job, reused: Job) -> Answer:
        assert reused.result_path is not None
        try:
            data = await asyncio.to_thread(self.media.resolve(reused.result_path).read_bytes)
        except (OSError, ValueError):
            data = b""
        if not data:
            raise errors.StorageFailed("The stored result of the identical photo is gone.")
        record = job.record
        record.reused_from = reused.id
        record.result_path = reused.result_path
        record.result_mime = reused.result_mime
        record.provider_notes = {"reused": True}
        record.cost_usd = 0.0
        await self._close(job, "succeeded", 200)
        mime = reused.result_mime or "image/jpeg"
        return Answer(200, data, mime, record.id, {"X-Job-Id": record.id, "X-Reused-From": reused.id})

    async def _fail(self, job: _Job, exc: errors.BoothError) -> Answer:
        record = job.record
        record.error_code, record.message = exc.code, exc.message
        admission = job.stage in ("receive", "admit")
        if isinstance(exc, errors.DeadlineReached):
            status = "timed_out"
        elif exc.status < 429 or (exc.status == 429 and admission):
            status = "rejected"  # bad input or access: the booth's side, not a processing failure
        else:
            status = "failed"
        answer = Answer(
            exc.status,
            _error_body(exc, record.id),
            "application/json",
            record.id,
            {"X-Job-Id": record.id, **getattr(exc, "headers", {})},  # Retry-After of a busy answer
            exc.code,
        )
        original = job.photo or (job.incoming if job.incoming.exists() else None)
        fallback = (
            job.slot is not None
            and job.slot.on_failure == "original"
            and job.photo is not None
            and exc.status in FALLBACK_STATUSES
        )
        if fallback and job.photo is not None:
            answer = await self._original_answer(job, exc)
        record.trash_path = await self._to_trash(job, original, exc, status)
        if record.trash_path:
            record.photo_path = None
        await self._close(job, status, answer.status)
        return answer

    async def _original_answer(self, job: _Job, exc: errors.BoothError) -> Answer:
        assert job.photo is not None
        data = await asyncio.to_thread(job.photo.read_bytes)
        mime = MIME.get(sniff(data[:16]) or "jpeg", "image/jpeg")
        headers = {"X-Job-Id": job.record.id, "X-Boothgate-Fallback": exc.code}
        return Answer(200, data, mime, job.record.id, headers, exc.code)

    async def _to_trash(self, job: _Job, original: Path | None, exc: errors.BoothError, status: str) -> str | None:
        record = job.record
        sidecar = {
            "job_id": record.id,
            "slot": f"{job.request.provider}/{job.request.number}",
            "status": status,
            "error": exc.code,
            "reason": exc.message,
            "http_status": exc.status,
            "received_at": record.created_at.isoformat() if record.created_at else None,
            "failed_at": datetime.now(UTC).isoformat(),
            "timings": job.marks,
            "metadata": record.meta,
            "filename": job.upload.filename if job.upload else None,
            "provider_notes": _clean(record.provider_notes),
        }
        try:
            path = await asyncio.to_thread(self.media.to_trash, original, record.id, sidecar)
        except OSError:
            log.exception("job=%s could not write to trash", record.id)
            return None
        return self.media.relative(path)

    async def _close(self, job: _Job, status: str, http_status: int) -> None:
        record = job.record
        total = time.monotonic() - job.request.received_at
        record.status, record.http_status = status, http_status
        record.total_seconds = round(total, 4)
        record.finished_at = utcnow()
        record.timings = {**job.marks, "total": round(total, 4)}
        record.provider_notes = _clean(dict(record.provider_notes))
        try:
            await self.jobs.save(record)
        except Exception:
            log.exception("job=%s could not be recorded", record.id)
        log.info(
            "job=%s slot=%s/%s source=%s status=%s http=%s reason=%s total=%.3fs provider=%s bytes=%s",
            record.id,
            record.provider,
            job.request.number[:8],
            record.source,
            status,
            http_status,
            record.error_code or "-",
            total,
            f"{record.provider_seconds:.3f}s" if record.provider_seconds is not None else "-",
            record.photo_bytes if record.photo_bytes is not None else "-",
        )


def _too_slow(deadline_seconds: float) -> errors.BoothError:
    return errors.MalformedRequest(
        f"The upload did not arrive within {deadline_seconds:g} s: the connection is too slow.",
        code="upload_too_slow",
    )


def _metadata(upload: Upload) -> dict[str, Any]:
    """The booth's text fields, kept as job metadata — never a password or key."""
    meta: dict[str, Any] = {k: v for k, v in upload.fields.items() if k.lower() not in SECRET_FIELDS}
    if upload.filename:
        meta["filename"] = upload.filename
    return meta


def _clean(notes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in notes.items() if k.lower() not in SECRET_FIELDS}


def _error_body(exc: errors.BoothError, job_id: str) -> bytes:
    return json.dumps({"error": exc.code, "message": exc.message, "job_id": job_id}, ensure_ascii=False).encode()
