"""Fail well: every failure answers before the deadline with a status code and a small JSON body (or the
mask image, or the guest's own photo when the slot says so), the original goes to trash with a sidecar,
and the job is recorded — bounded by the deadline, a locked database only sends the row to the journal.

The fail-well half of the spine (`booth/spine.py`), kept in a module of its own so the spine reads
as one page.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boothgate import errors
from boothgate.booth.booth_job import Answer, BoothJob
from boothgate.booth.late import LateResults
from boothgate.booth.strangers import Strangers
from boothgate.booth.throttle import Throttle
from boothgate.imaging.images import MIME, sniff
from boothgate.records.journal import JobRecorder
from boothgate.records.media_links import MediaLinks
from boothgate.redaction import escape_field
from boothgate.run.moderation import Moderation, PhotoHeld, ResultHeld, options_for
from boothgate.storage.media import MediaStore
from boothgate.storage.models import utcnow

log = logging.getLogger("boothgate.jobs")

# Work stops this long before the deadline, leaving time to trash the original and answer.
ANSWER_MARGIN_SECONDS = 0.25
# Errors after which a slot set to on_failure="original" answers with the guest's own photo.
FALLBACK_STATUSES = frozenset({429, 500, 502, 503, 504, 507})
SECRET_FIELDS = frozenset({"password", "api_key", "apikey", "token", "key"})
# Answers decided by the content check (the mask image or a refusal): never answered with the original.
MODERATED = frozenset({PhotoHeld.code, ResultHeld.code})
# Longest the answer waits for one database write; a write that does not fit goes to the journal.
DB_WRITE_SECONDS = 1.0
# Booth-side errors that, without a proved password, count as a wrong password (malformed, too large).
STRANGER_COUNTED = frozenset({400, 413})


class FailWell:
    """The spine's answers to failures and its job records (mixed into `Ingest`)."""

    media: MediaStore
    links: MediaLinks
    late: LateResults
    throttle: Throttle
    strangers: Strangers
    recorder: JobRecorder
    moderation: Moderation | None

    async def _fail(self, job: BoothJob, exc: errors.BoothError) -> Answer:
        record = job.record
        record.error_code, record.message = exc.code, exc.message
        admission = job.stage in ("receive", "admit")
        masked = await self._mask_answer(job, exc) if self._answers_with_mask(job, exc) else None
        if isinstance(exc, errors.DeadlineReached):
            status = "timed_out"
        elif isinstance(exc, errors.Cancelled):
            status = "cancelled"
        elif exc.code in MODERATED or masked is not None:
            status = "moderated"  # the content check (or the provider's own) decided the answer
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
        if job.request.source == "booth" and not job.proof.proven:
            return await self._fail_stranger(job, exc, status, answer)
        original = job.photo or (job.incoming if job.incoming.exists() else None)
        fallback = (
            job.slot is not None
            and job.slot.on_failure == "original"
            and job.photo is not None
            and exc.status in FALLBACK_STATUSES
        )
        if masked is not None:
            answer = masked
        elif fallback and job.photo is not None:
            answer = await self._original_answer(job, exc)
        record.trash_path = await self._to_trash(job, original, exc, status)
        if record.trash_path:
            record.photo_path = None
        await self._close(job, status, answer.status)
        return answer

    async def _fail_stranger(self, job: BoothJob, exc: errors.BoothError, status: str, answer: Answer) -> Answer:
        """A failure before the upload password was proved: no body kept, at most a metadata record."""
        client = job.request.client
        if exc.status in STRANGER_COUNTED:
            self.throttle.failed(client)  # a malformed request without a password counts as a wrong one
            await self.throttle.failed_everywhere(client)
        await asyncio.to_thread(job.incoming.unlink, True)  # nothing of it was written; to be sure
        fields = len(job.upload.fields) if job.upload else 0
        job.upload = None
        job.record.meta = {"unauthenticated": True, "fields": fields}  # a stranger's text is not kept
        settings = job.settings
        if not await self.strangers.may_record_everywhere(
            client,
            settings.unauthenticated_records_per_minute,
            settings.unauthenticated_records_total_per_minute,
            settings.ipv6_throttle_prefix,
        ):
            self._let_go(job)  # over this address's budget: answered and counted, nothing written
            return answer
        job.record.photo_bytes = None
        job.record.trash_path = await self._to_trash(job, None, exc, status)
        await self._close(job, status, answer.status)
        return answer

    async def _original_answer(self, job: BoothJob, exc: errors.BoothError) -> Answer:
        assert job.photo is not None
        data = await asyncio.to_thread(job.photo.read_bytes)
        mime = MIME.get(sniff(data[:16]) or "jpeg", "image/jpeg")
        headers = {"X-Job-Id": job.record.id, "X-Boothgate-Fallback": exc.code}
        return Answer(200, data, mime, job.record.id, headers, exc.code)

    async def _to_trash(self, job: BoothJob, original: Path | None, exc: errors.BoothError, status: str) -> str | None:
        record = job.record
        sidecar = {
            "job_id": record.id,
            "slot": f"{record.provider}/{shown(job.request.number, 8)}",
            "status": status,
            "error": exc.code,
            "reason": exc.message,
            "http_status": exc.status,
            "received_at": record.created_at.isoformat() if record.created_at else None,
            "failed_at": datetime.now(UTC).isoformat(),
            "timings": job.marks,
            "metadata": record.meta,
            "filename": job.upload.filename if job.upload else None,
            "provider_notes": clean_notes(record.provider_notes),
        }
        try:
            path = await asyncio.to_thread(self.media.to_trash, original, record.id, sidecar)
        except OSError:
            log.exception("job=%s could not write to trash", record.id)
            return None
        return self.media.relative(path)

    async def _record_running(self, job: BoothJob) -> None:
        """The first row of the job (crash recovery finds it), bounded like every write on this path.
        A full disk stops the job here (507); a slow or locked database only sends the row to the journal."""
        try:
            problem = await self.recorder.save(job.record, min(DB_WRITE_SECONDS, job.deadline.remaining() / 4))
        except OSError as exc:
            raise errors.StorageFailed(f"Could not record the job: {exc.strerror or exc}.") from exc
        if problem == "disk full" or (problem and self.recorder.disk_full):
            raise errors.StorageFailed("The disk is full: the job cannot be recorded.")

    def _let_go(self, job: BoothJob) -> None:
        """The booth is being answered: its media links end now (or with its provider call, when that goes
        on as a late run: booth/late.py), its held files are let go."""
        if not self.late.keeps(job.record.id):
            self.links.revoke(job.record.id)
        for relative in job.held:
            self.media.holds.release(relative)
        job.held.clear()

    async def _close(self, job: BoothJob, status: str, http_status: int) -> None:
        self._let_go(job)
        record = job.record
        total = time.monotonic() - job.request.received_at
        record.status, record.http_status = status, http_status
        record.total_seconds = round(total, 4)
        record.finished_at = utcnow()
        record.timings = {**job.marks, "total": round(total, 4)}
        record.provider_notes = clean_notes(dict(record.provider_notes))
        # Bounded by the deadline (and a short budget): a locked database sends the row to the journal.
        budget = min(DB_WRITE_SECONDS, job.deadline.remaining() - 0.05)
        try:
            await self.recorder.save(record, budget)
        except Exception:
            log.exception("job=%s could not be recorded (database and journal failed)", record.id)
        log.info(
            "job=%s slot=%s/%s source=%s status=%s http=%s reason=%s total=%.3fs provider=%s bytes=%s",
            record.id,
            record.provider,
            shown(job.request.number, 8),
            record.source,
            status,
            http_status,
            record.error_code or "-",
            total,
            f"{record.provider_seconds:.3f}s" if record.provider_seconds is not None else "-",
            record.photo_bytes if record.photo_bytes is not None else "-",
        )

    def _answers_with_mask(self, job: BoothJob, exc: errors.BoothError) -> bool:
        if self.moderation is None or job.slot is None:
            return False
        options = options_for(job.slot)
        if exc.code in MODERATED:
            return options.on_hit == "mask"
        return exc.code == "provider_refused" and options.provider_refusal == "mask"

    async def _mask_answer(self, job: BoothJob, exc: errors.BoothError) -> Answer | None:
        """The mask image shaped like the photo, or None when it cannot be made before the deadline."""
        assert self.moderation is not None
        width, height = job.photo_shape()
        if job.slot is not None and job.slot.result_shape == "fixed" and job.slot.result_size:
            width, height = (int(side) for side in job.slot.result_size.split("x"))  # stored as "1800x1200"
        try:
            async with asyncio.timeout_at(job.deadline.at - ANSWER_MARGIN_SECONDS / 2):
                data = await self.moderation.mask(job.slot, width, height, job.deadline.at)
        except (TimeoutError, errors.BoothError, OSError):
            log.warning("job=%s the mask image could not be made in time", job.record.id, exc_info=True)
            return None
        headers = {"X-Job-Id": job.record.id, "X-Boothgate-Moderation": exc.code}
        return Answer(200, data, "image/jpeg", job.record.id, headers, exc.code)


def shown(text: str, limit: int = 32) -> str:
    """Text from the URL as it may appear in a message or log: escaped and short."""
    return escape_field(text[:limit])


def clean_notes(notes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in notes.items() if k.lower() not in SECRET_FIELDS}


def _error_body(exc: errors.BoothError, job_id: str) -> bytes:
    return json.dumps({"error": exc.code, "message": exc.message, "job_id": job_id}, ensure_ascii=False).encode()
