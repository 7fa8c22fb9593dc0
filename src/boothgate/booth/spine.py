"""The spine: one photo from the booth's POST to the answer.

    receive → admit → share token → fill prompt → budget → run or fall back → shape → check result → answer
                                             (prepare → check photo → provider)    (or, at any step, fail well)
                                                                                   → the guest's copy (late AI result)

Every request is bounded by its deadline (monotonic, from when the request arrived). Whatever happens,
the booth gets an answer before the deadline, the job is recorded, and a failed original lands in trash
with a sidecar that says why. Each step is one named call here; its mechanics live in a module of its own:
receiving `multipart.py` + `turns.py` (oldest uploads parsed first) + `early.py` (decoded while it
arrives) + `strangers.py` (nothing kept before the password), admission `capacity.py` (busy answers),
prompts `placeholders.py`, the event and its budget `operator/events.py` + `operator/budget.py`, fallback
and hedge `fallback.py`, result shape and overlay `shaping.py`, the content check `moderation.py`, the
guest's page and the late AI result `sharing/` + `late.py`, and the fail-well half (error answers, mask,
trash, bounded job records) `failwell.py`. A job uses the slot,
settings and reference file as they were at admission.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from boothgate import errors
from boothgate.booth import other_nodes
from boothgate.booth.booth_job import Answer, BoothJob, BoothRequest
from boothgate.booth.capacity import Capacity
from boothgate.booth.failwell import (
    ANSWER_MARGIN_SECONDS,
    SECRET_FIELDS,
    FailWell,
    clean_notes,
    shown,
)
from boothgate.booth.late import LateResults
from boothgate.booth.multipart import Upload, no_file_message
from boothgate.booth.provider_call import Outcome, ProviderCalls
from boothgate.booth.receive import Receiving
from boothgate.booth.references import References
from boothgate.booth.strangers import PasswordProof, Strangers
from boothgate.booth.throttle import Throttle
from boothgate.booth.traffic import Traffic
from boothgate.deadline import Deadline
from boothgate.imaging.images import sniff
from boothgate.imaging.pool import Imaging
from boothgate.imaging.workers import JOB
from boothgate.link_secrets import query_password
from boothgate.operator.budget import Budget
from boothgate.operator.credentials import Credentials
from boothgate.operator.events import EventService
from boothgate.operator.slots import SlotService, parse_number
from boothgate.providers.base import KINDS_NEEDING_REFERENCE, Provider
from boothgate.providers.registry import Registry, UnknownProvider
from boothgate.records.jobs import JobStore
from boothgate.records.journal import JobRecorder, Journal
from boothgate.records.media_links import MediaLinks
from boothgate.run import placeholders, shaping
from boothgate.run.fallback import FallbackChain
from boothgate.run.moderation import Moderation, PhotoHeld, ResultHeld, options_for
from boothgate.sharing.tokens import new_token, page_url
from boothgate.storage.config import RuntimeConfig
from boothgate.storage.db import is_disk_full
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Job, Slot, utcnow

log = logging.getLogger("boothgate.jobs")

__all__ = ["Answer", "BoothRequest", "Ingest"]


class Ingest(FailWell):
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
        moderation: Moderation | None = None,
        events: EventService | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.config, self.registry, self.slots, self.jobs = config, registry, slots, jobs
        self.media, self.imaging, self.credentials, self.throttle, self.links = (
            media,
            imaging,
            credentials,
            throttle,
            links,
        )
        self.moderation = moderation
        self.events = events or EventService(slots.db, registry)
        self.budget = budget or Budget(slots.db)
        self.receiving = Receiving(imaging, registry, credentials, throttle)
        self.references = References(slots, media, imaging)
        self.strangers = Strangers()
        self.recorder = JobRecorder(jobs, Journal(media.root / "journal"))
        self.fallbacks = FallbackChain(config, registry, slots.get, slots.db)
        self.capacity = Capacity(imaging.workers)
        self.late = LateResults(config, registry, slots, jobs, media, imaging, links, self.budget)
        self.traffic = Traffic()  # booths on their way to a provider: the client API's batches wait for them
        self.calls = ProviderCalls(
            self.budget, self.capacity, imaging, self.references, self.late, links, self.traffic, self._moderate_photo
        )
        self._admitting = asyncio.Lock()  # the admission lane (`_admission_lane`)

    # --- the whole path ---------------------------------------------------------------------
    async def handle(self, request: BoothRequest) -> Answer:
        settings = self.config.settings
        deadline = Deadline(request.received_at + settings.deadline_seconds)
        job_id = request.job_id or uuid.uuid4().hex
        record = Job(
            id=job_id,
            created_at=utcnow(),
            # A name from the URL is stored only when it is a tab: never raw text a stranger typed.
            provider=request.provider if self.registry.knows(request.provider) else "unknown",
            slot_number=parse_number(request.number),
            source=request.source,
            status="received",
            timings={},
            meta={},
            provider_notes={},
            api_key_id=request.api_key_id,
            batch_id=request.batch_id,
        )
        known = request.header_password or query_password(request.query)  # before the body: header or link
        proven = request.source != "booth" or self.credentials.check_upload(known)
        proof = PasswordProof(self.strangers, self.credentials, self.throttle, request.client, proven)
        job = BoothJob(record, request, deadline, self.media.incoming_path(job_id), settings, proof)
        JOB.set(job_id)  # image work started for this request is tagged with its job
        self.traffic.arrived(job)
        try:
            # The providers this job uses stay open until it ends, whatever settings are saved meanwhile.
            async with (
                self.registry.in_use() as job.generation,
                asyncio.timeout_at(deadline.at - ANSWER_MARGIN_SECONDS),
            ):
                answer = await self._process(job)
        except asyncio.CancelledError:
            if request.source != "api" or (request.stopping is not None and request.stopping()):
                raise  # a booth's request, or a durable API job cut off by a stop (run again after it)
            answer = await self._cancelled(job)
        except errors.BoothError as exc:
            answer = await self._fail(job, exc)
        except TimeoutError:
            if job.stage == "receive":  # the booth's side was too slow: not a processing timeout
                answer = await self._fail(job, _too_slow(settings.deadline_seconds))
            else:
                answer = await self._fail(
                    job,
                    errors.DeadlineReached(
                        f"No result within {settings.deadline_seconds:g} s (stopped during {job.stage})."
                    ),
                )
        except SQLAlchemyError as exc:
            log.exception("job=%s database failure", job_id)
            answer = await self._fail(job, _database_error(exc))
        except Exception as exc:
            log.exception("job=%s unexpected failure", job_id)
            answer = await self._fail(job, errors.BoothError(f"Internal error: {type(exc).__name__}."))
        finally:
            self.traffic.left(job)
            if job.early is not None:
                await job.early.aclose()  # no image work of this job outlives its answer
            if job.spend is not None:
                self.budget.settle_soon(job.spend)  # reservations back, real costs counted
        return self._guest_copy(job, answer)

    async def _process(self, job: BoothJob) -> Answer:
        start = job.request.received_at
        upload = await self._receive(job)
        t = job.mark("receive", start)
        job.stage = "admit"
        await self._prove(job, upload)
        async with self._admission_lane():
            slot, provider = await self._admit(job, upload)
            t = job.mark("admit", t)
            self._give_share_token(job)
            self._fill_prompt(job, slot, upload)
            reused = await self.jobs.recent_success(
                slot.provider,
                slot.number,
                slot.revision,
                upload.sha256,
                job.settings.duplicate_window_seconds,
                prompt=job.prompt,
            )
            # A rehearsal must meet the real service, never a stored answer.
            if reused is not None and reused.result_path and job.request.source != "rehearsal":
                return await self._answer_reused(job, reused)
            self.capacity.check(slot, job.deadline, job.early)
            await self._check_budget(job, slot, provider)
            job.record.status = "running"
            await self._record_running(job)
        twin = await self._join_another_node(job, slot, upload.sha256)
        if twin is not None:
            return await self._answer_reused(job, twin)
        job.stage = "prepare"
        outcome = await self._run_or_fall_back(job, slot, provider, upload.sha256)
        t = job.mark("prepare_and_provider", t)
        job.stage = "finish"
        data, mime = await self._shape(job, slot, outcome.result.data)
        t = job.mark("finish", t)
        job.stage = "moderate"
        await self._moderate_result(job, slot, data, mime)
        await self._succeed(job, data, mime, outcome)
        return Answer(200, data, mime, job.record.id, {"X-Job-Id": job.record.id})

    # --- receive ----------------------------------------------------------------------------
    async def _receive(self, job: BoothJob) -> Upload:
        """Receive: the upload to disk, decoded early when it pays. Mechanics: booth/receive.py."""
        return await self.receiving.receive(job)

    # --- admit ------------------------------------------------------------------------------
    async def _prove(self, job: BoothJob, upload: Upload) -> None:
        """The upload password (a wrong one is held back by the throttle: before the admission lane)."""
        request = job.request
        if request.source == "booth":
            await job.proof.offer(upload.form_password or request.header_password or query_password(request.query))

    def _admission_lane(self) -> contextlib.AbstractAsyncContextManager[object]:
        """From admission to the job's running row, one photo at a time, in the order they asked (their
        last bytes came) — on SQLite with the media on this disk, where these steps are a few short
        database calls and file checks, each a hop to a thread. Eight booths whose last bytes come
        together otherwise interleave ~40 such hops, every thread waiting for the GIL and the two cores,
        and all eight reach their provider together at the end; one at a time, the same work takes less
        time in all and the first photos go on at once (`python -m bench --only together`). With a
        shared bucket or PostgreSQL (several nodes) the steps may wait on the network: side by side. The
        password comes before (a wrong one is held back by the throttle)."""
        if self.jobs.db.is_sqlite and self.media.bucket is None:
            return self._admitting
        return contextlib.nullcontext()

    async def _admit(self, job: BoothJob, upload: Upload) -> tuple[Slot, Provider]:
        request = job.request
        number = parse_number(request.number)
        if not self.registry.knows(request.provider) or number is None:
            raise errors.SlotNotFound(f"There is no slot {shown(request.provider)}/{shown(request.number)}.")
        # The slot and the event it belongs to now: two independent reads, side by side (every booth of a
        # burst reaches this at once after its last byte).
        slot, event = await asyncio.gather(
            self.references.snapshot(job, request.provider, number), self.events.event_for(request.provider, number)
        )
        if slot is None:
            raise errors.SlotNotFound(f"There is no slot {request.provider}/{number}.")
        job.slot = slot
        job.record.slot_revision = slot.revision
        job.record.event_id = event.id if event is not None else None
        if not slot.enabled and request.source in ("booth", "api"):
            raise errors.SlotDisabled(f"Slot {slot.provider}/{slot.number} is switched off in the admin UI.")
        if upload.path is None:
            raise errors.MalformedRequest(no_file_message(upload), code="no_file")
        if upload.size == 0:
            raise errors.MalformedRequest("The photo file is empty (0 bytes).", code="empty_file")
        image_type = sniff(upload.head)
        if image_type is None:
            raise errors.UnsupportedImage("The file is not a JPEG, PNG or WEBP image.")
        job.photo = await asyncio.to_thread(self.media.keep_photo, upload.path, job.record.id, image_type)
        job.record.photo_path = self.media.relative(job.photo)
        await self.media.publish(job.record.photo_path)  # in the shared bucket before any provider sees it
        # type from bytes, dimensions before any decode; the upright size the result is shaped to
        job.photo_size = await self.imaging.admit_photo(job.photo)
        job.record.provider_notes["photo_size"] = "{}x{}".format(*job.photo_size)
        provider = self._provider(slot)
        missing = self.slots.problems(slot)
        if slot.kind in KINDS_NEEDING_REFERENCE and job.reference is None:
            missing.append("reference_required")  # the row names a file that is gone
        if "reference_required" in missing:
            raise errors.ProviderNotConfigured(
                f"Slot {slot.provider}/{slot.number} needs a reference image for {slot.kind}.",
                code="slot_incomplete",
            )
        return slot, provider

    def _provider(self, slot: Slot) -> Provider:
        try:
            provider = self.registry.get(slot.provider)
        except UnknownProvider as exc:
            raise errors.SlotNotFound(f"There is no provider {slot.provider}.") from exc
        if provider is None:
            raise errors.ProviderNotConfigured(f"The {slot.provider} provider is not available in this version.")
        problem = provider.problem()
        if problem and not slot.fallback:  # with a fallback, the fall-back step hands the photo on
            raise errors.ProviderNotConfigured(problem)
        return provider

    # --- the guest's copy (issue 30) -----------------------------------------------------------
    def _share_url(self, job: BoothJob) -> str | None:
        token = job.record.share_token
        return page_url(self.config.settings.public_base_url, token) if token else None

    def _give_share_token(self, job: BoothJob) -> None:
        """An admitted booth photo gets its guest page /p/<token> (random, never derived from the job id)."""
        if job.request.source == "booth" and self.config.settings.sharing_enabled:
            job.record.share_token = new_token()

    def _guest_copy(self, job: BoothJob, answer: Answer) -> Answer:
        """After the answer: the page's address in `X-Share-Url`, and a provider run the booth could not
        wait for handed on to background work (booth/late.py) — never delaying this answer."""
        share = self._share_url(job)
        if share is None:
            return answer
        late = self.late.hand_on(job.record, job.spend)
        if job.record.status == "succeeded" or late:
            answer.headers["X-Share-Url"] = share
        return answer

    # --- budget (events) ------------------------------------------------------------------------
    async def _check_budget(self, job: BoothJob, slot: Slot, provider: Provider) -> None:
        """The event's budget: the paid call is reserved now at its estimate and settled when the job
        ends; when the budget is spent the provider is not called — the slot's fallback serves (the
        offline engine is free), else on_failure, with reason `budget_spent`. Mechanics: operator/budget.py."""
        job.spend = await self.budget.admit(job.record.event_id, slot, provider, job.settings)

    # --- the identical photo on another node (issue 27) -------------------------------------------
    async def _join_another_node(self, job: BoothJob, slot: Slot, sha256: str) -> Job | None:
        """Several nodes on one PostgreSQL: the identical photo already running on another node is waited
        for and its result answers this booth too, instead of a second paid call. Mechanics:
        booth/other_nodes.py (on one node the provider-call step's in-memory single-flight does this)."""
        if self.jobs.db.is_sqlite or job.request.source != "booth" or self.calls.running_here(slot, sha256, job.prompt):
            return None
        twin = await other_nodes.twin_to_wait_for(self.jobs, job, job.settings.duplicate_window_seconds)
        if twin is None:
            return None
        return await other_nodes.wait_for(self.jobs, twin, job, ANSWER_MARGIN_SECONDS)

    # --- prompt variables (booth-links) ---------------------------------------------------------
    def _fill_prompt(self, job: BoothJob, slot: Slot, upload: Upload) -> None:
        """`{name}` / `{name|default}` in the slot's prompt, from the booth's fields and the link's query."""
        job.prompt_values = placeholders.values(upload.fields, job.request.query, secret=SECRET_FIELDS)
        filled = placeholders.fill(slot.prompt, job.prompt_values)
        job.prompt = filled.prompt
        job.record.prompt = filled.prompt
        if filled.missing:
            job.record.provider_notes["placeholders_missing"] = filled.missing
        if filled.defaulted:
            job.record.provider_notes["placeholders_defaulted"] = filled.defaulted

    # --- result shape and overlay (booth-links) ------------------------------------------------
    async def _shape(self, job: BoothJob, slot: Slot, data: bytes) -> tuple[bytes, str]:
        """The result fitted to the print layout (shape, size, overlay) and in the slot's format. The result
        has passed the one admission check of every result (provider_call.py), so it is not checked again."""
        settings = self.config.settings
        plan = shaping.plan_for(
            slot,
            job.photo_size,
            settings.result_long_side_pixels,
            settings.jpeg_quality,
            self.slots.overlay_file(slot),
            share_url=self._share_url(job) if settings.public_base_url else None,  # the QR on the print
        )
        if plan is not None:
            try:
                # Shaping is worth a lot, but not a missed deadline: late, the result goes out as returned.
                async with asyncio.timeout_at(job.deadline.at - settings.shaping_reserve_seconds):
                    return await self.imaging.shape(data, plan, job.deadline.at, admitted=True)
            except TimeoutError:
                job.record.provider_notes["shape_skipped"] = "deadline"
        return await self.imaging.finish(data, slot.output_format, job.deadline.at, admitted=True)

    # --- run (once per identical photo in flight) -------------------------------------------
    # --- fall back (between run and fail well) ----------------------------------------------
    async def _run_or_fall_back(self, job: BoothJob, slot: Slot, provider: Provider, sha256: str) -> Outcome:
        """Run the slot; when its provider fails, is offline or cannot finish in time, the slot's fallback
        (and that one's) serves the photo with the time left. Mechanics: run/fallback.py."""
        served = await self.fallbacks.serve(
            slot,
            provider,
            job.deadline.earlier(ANSWER_MARGIN_SECONDS),
            primary=lambda: self.calls.once(job, slot, provider, sha256),
            hop=lambda other, other_provider: self.calls.run(job, other, other_provider, notes={}),
            fallback_only=job.request.fallback_only,
        )
        job.record.served_by, job.record.fallback_reason = served.by, served.reason
        if served.reason is not None:  # the fallback's notes describe the result; the primary's its failure
            primary = clean_notes(job.record.provider_notes)
            job.record.provider_notes = {"fallback_route": served.route, "primary": primary}
        return served.outcome

    # --- moderate (the offline NSFW check before and after the AI) ----------------------------
    async def _moderate_photo(self, job: BoothJob, slot: Slot, prepared: bytes) -> None:
        """A photo that fails the before-check is never sent to a provider (nothing is paid)."""
        if self.moderation is None:
            return
        record: dict[str, Any] = dict(job.record.moderation or {})
        hit = await self.moderation.check("before", prepared, options_for(slot), record)
        job.record.moderation = record
        if hit:
            raise PhotoHeld("The photo did not pass the content check; it was not sent to the AI.")

    async def _moderate_result(self, job: BoothJob, slot: Slot, data: bytes, mime: str) -> None:
        """A result that fails the after-check is kept for the operator (never for the booth)."""
        if self.moderation is None:
            return
        record: dict[str, Any] = dict(job.record.moderation or {})
        hit = await self.moderation.check("after", data, options_for(slot), record, job.deadline.at)
        job.record.moderation = record
        if not hit:
            return
        try:
            path = await asyncio.to_thread(self.media.write_result, job.record.id, data, mime)
        except OSError as exc:
            raise errors.StorageFailed(f"Could not keep the caught result: {exc.strerror or exc}.") from exc
        job.record.result_path, job.record.result_mime = self.media.relative(path), mime
        raise ResultHeld("The AI's result did not pass the content check; it is kept for the operator.")

    # --- cancel (client API) -----------------------------------------------------------------
    async def _cancelled(self, job: BoothJob) -> Answer:
        """The client cancelled its job: it ends here, recorded as cancelled. The provider call in flight
        is stopped with it and never made again (no second bill)."""
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return await self._fail(job, errors.Cancelled("The job was cancelled by the client."))

    # --- answer -----------------------------------------------------------------------------
    async def _succeed(self, job: BoothJob, data: bytes, mime: str, outcome: Outcome) -> None:
        record = job.record
        try:
            path = await asyncio.to_thread(self.media.write_result, record.id, data, mime)
        except OSError as exc:
            raise errors.StorageFailed(f"Could not save the result: {exc.strerror or exc}.") from exc
        notes = {**record.provider_notes, **outcome.result.notes}
        record.provider_notes = clean_notes(notes)
        record.cost_usd = notes.get("cost_usd") if record.reused_from is None else 0.0
        record.provider_seconds = outcome.provider_seconds
        record.result_path = self.media.relative(path)
        record.result_mime = mime
        await self._close(job, "succeeded", 200)

    async def _answer_reused(self, job: BoothJob, reused: Job) -> Answer:
        assert reused.result_path is not None
        try:
            await self.media.fetch(reused.result_path)  # another node's result (shared bucket)
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


def _database_error(exc: Exception) -> errors.BoothError:
    if is_disk_full(exc):
        return errors.StorageFailed("The disk is full: the database cannot take the job.")
    return errors.BoothError(
        "The database is not available; the server needs attention.", code="database_unavailable", status=503
    )


def _too_slow(deadline_seconds: float) -> errors.BoothError:
    return errors.MalformedRequest(
        f"The upload did not arrive within {deadline_seconds:g} s: the connection is too slow.",
        code="upload_too_slow",
    )
