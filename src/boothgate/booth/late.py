"""The late AI result (issue 30): when a fallback (or the guest's own photo) answered the booth before the
slot's provider finished, that provider's run goes on in the background and its result — shaped like the
print, QR included — becomes the guest page's photo.

How it stays bounded and single:
- Only for a slot with `late_result_seconds` > 0 (at most 600) and a booth job with a share token. The run
  may take until the booth's deadline plus that many seconds; then it is cancelled ("expired").
- While the booth waits, the provider call is an asyncio task the spine *shields* (`keep`): the booth's
  deadline or the winning hedge no longer cancel it. The booth's answer then hands it on (`hand_on`) as a
  durable `late_result` task (`work/`, key `late:<job id>`, idempotent): the task's handler awaits the same
  call — nothing is sent twice.
- After a restart the in-process call is gone. The handler then starts the provider again **once**
  (`late.calls` counts calls in the job row and is raised *before* the call; a second loss ends it as
  "expired"). A delivered late result is recorded before the task is done, and the handler checks it
  first: no restart calls the provider again once the result is stored. Its cost is added once, in the
  same transaction that stores it — to the job and to its event's budget (operator/budget.py): the booth's
  settlement counted the handed-on call at its estimate, the stored result corrects that to the
  provider's figure; a call started again after a restart is reserved against the budget like any paid
  call (a spent budget ends the late run as "expired") and counted when it ends.
- Shaping the late result runs on the same image workers with a due time far past any booth's deadline:
  earliest deadline first serves every waiting booth before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from boothgate import errors
from boothgate.deadline import Deadline
from boothgate.imaging.pool import Imaging
from boothgate.operator.budget import Budget, Spend
from boothgate.operator.slots import SlotService
from boothgate.providers.base import Kind, ProviderRequest, ProviderResult
from boothgate.providers.registry import Registry
from boothgate.records import tallies
from boothgate.records.jobs import JobStore
from boothgate.records.media_links import MediaLinks
from boothgate.run import shaping
from boothgate.sharing.pages import history_entry
from boothgate.sharing.tokens import page_url
from boothgate.storage.config import RuntimeConfig
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Job, Slot, utcnow
from boothgate.work import Context, Permanent, RetryLater, Runner

log = logging.getLogger("boothgate.late")

KIND = "late_result"
MAX_SECONDS = 600
MAX_CALLS = 2  # the booth-time call, and one more when a restart lost it
# Late work waits behind booths on the image workers: its due time is at least this far ahead.
BEHIND_BOOTHS_SECONDS = 120.0
PRIORITY = 50  # before other background work (webhooks, exports) in the task queue
# Provider calls kept going past their booth's answer at once (an outage can send every photo to the
# fallback): beyond this, a slow call is cancelled at the answer as without a late result.
MAX_KEPT = 32


@dataclass
class _Kept:
    task: asyncio.Task[Any]
    until: float  # Unix seconds
    slot: str


class LateResults:
    def __init__(
        self,
        config: RuntimeConfig,
        registry: Registry,
        slots: SlotService,
        jobs: JobStore,
        media: MediaStore,
        imaging: Imaging,
        links: MediaLinks,
        budget: Budget | None = None,
    ) -> None:
        self.config, self.registry, self.slots, self.jobs = config, registry, slots, jobs
        self.media, self.imaging, self.links = media, imaging, links
        self.budget = budget
        self.runner: Runner | None = None  # set by runtime.py
        # Told of each delivered late result (runtime.py: the client API's `job.delivered_late` webhook).
        self.notify: Callable[[str, dict[str, Any]], Awaitable[int]] | None = None
        self._kept: dict[str, _Kept] = {}
        self._handing: set[asyncio.Task[None]] = set()

    # --- while the booth waits ------------------------------------------------------------------
    def seconds_for(self, slot: Slot, record: Job) -> int:
        """The slot's late limit for this job (0: the provider's run ends with the booth's answer)."""
        if not record.share_token or not self.config.settings.sharing_enabled or record.source != "booth":
            return 0
        return max(0, min(MAX_SECONDS, int(slot.late_result_seconds or 0)))

    def provider_deadline(self, slot: Slot, record: Job, booth: Deadline) -> Deadline:
        seconds = self.seconds_for(slot, record)
        return booth if seconds == 0 else Deadline(booth.at + seconds)

    async def keep(
        self, record: Job, slot: Slot, task: asyncio.Task[Any], booth: Deadline, generation: int | None = None
    ) -> Any:
        """Await the provider's run for the booth, without letting the booth's end cancel it. The run keeps
        its providers open after the booth's job ends (a settings save meanwhile retires them for new jobs
        only): it holds the job's registry generation until it is done."""
        seconds = self.seconds_for(slot, record)
        if seconds == 0 or len(self._kept) >= MAX_KEPT:
            return await task
        until = time.time() + booth.remaining() + seconds
        self._kept[record.id] = _Kept(task, until, f"{slot.provider}/{slot.number}")
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)  # never "unretrieved"
        # The job's media links outlive the booth's answer while this call goes on (a service may download
        # the photo only when its turn comes) and end with it.
        task.add_done_callback(lambda _: self.links.revoke(record.id))
        holding = asyncio.create_task(self._hold_providers(task, generation))
        self._handing.add(holding)
        holding.add_done_callback(self._handing.discard)
        return await asyncio.shield(task)

    async def _hold_providers(self, task: asyncio.Task[Any], generation: int | None) -> None:
        async with self.registry.in_use(generation):
            await asyncio.wait({task})

    def keeps(self, job_id: str) -> bool:
        """True while the job's provider call is kept going past the booth's answer (see `keep`)."""
        kept = self._kept.get(job_id)
        return kept is not None and not kept.task.done()

    # --- after the booth's answer ---------------------------------------------------------------
    def hand_on(self, record: Job, spend: Spend | None = None) -> bool:
        """The booth has its answer. A kept run that is still wanted becomes a durable task; else it ends."""
        kept = self._kept.get(record.id)
        if kept is None:
            return False
        served_by_ai = record.status == "succeeded" and (record.served_by in (None, kept.slot))
        failed_run = kept.task.done() and (kept.task.cancelled() or kept.task.exception() is not None)
        # Only a guest who got a print (a fallback's result or their own photo) gets the AI version later.
        answered = record.http_status == 200
        if served_by_ai or failed_run or not answered or self.runner is None:
            self._kept.pop(record.id, None)
            if not kept.task.done():
                kept.task.cancel()
            return False
        served = record.served_by if record.status == "succeeded" else "original"
        late: dict[str, Any] = {
            "status": "running", "served_by": served, "slot": kept.slot, "until": kept.until, "calls": 1,
        }  # fmt: skip
        counted = self.budget.hand_on_late(spend, kept.slot) if self.budget is not None else None
        if counted is not None:
            late["counted_usd"] = counted  # the event's budget has the estimate: the result corrects it
        record.late = late
        handing = asyncio.create_task(self._enqueue(record.id, late))
        self._handing.add(handing)
        handing.add_done_callback(self._handing.discard)
        return True

    async def _enqueue(self, job_id: str, late: dict[str, Any]) -> None:
        assert self.runner is not None
        key, payload = f"late:{job_id}", {"job": job_id}
        try:
            for _ in range(50):  # the job row may still be on its way through the journal
                if await self._set_late(job_id, late):
                    break
                await asyncio.sleep(0.1)
            # Run here, under this node's lease: the call is in this process, and another node that took
            # the task would make it again (paid twice). A node that dies leaves a lease that expires.
            adopted = await self.runner.adopt(KIND, key, payload, priority=PRIORITY, max_attempts=4)
            if not adopted:  # stopping: queued, so the next start makes the lost call again once
                await self.runner.queue.enqueue(KIND, key, payload, priority=PRIORITY, max_attempts=4)
        except Exception:
            log.exception("job=%s the late AI result could not be handed to background work", job_id)
            kept = self._kept.pop(job_id, None)
            if kept is not None:
                kept.task.cancel()

    async def _set_late(self, job_id: str, late: dict[str, Any]) -> bool:
        async with self.jobs.db.write() as session:
            job = await session.get(Job, job_id)
            if job is None:
                return False
            job.late = late
        return True

    async def aclose(self) -> None:
        for handing in list(self._handing):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(handing, 2)
        for kept in self._kept.values():
            kept.task.cancel()
        self._kept.clear()

    # --- the background task --------------------------------------------------------------------
    async def run(self, ctx: Context) -> None:
        job_id = str(ctx.payload.get("job") or "")
        job = await self.jobs.get(job_id)
        if job is None:
            raise RetryLater("the job row is not written yet", 2.0)
        late = dict(job.late or {})
        if late.get("status") != "running" or job.deleted_at is not None:
            return  # delivered, expired or deleted by an earlier attempt: nothing more to do
        until = float(late.get("until") or 0)
        kept = self._kept.pop(job_id, None)
        result: ProviderResult | None
        try:
            if kept is not None:  # the booth-time call, still running in this process
                value = await asyncio.wait_for(kept.task, max(0.0, until - time.time()))
                result = getattr(value, "result", value)  # the spine's outcome wraps the provider's result
            else:
                result = await self._call_again(job, late, until)
        except (TimeoutError, errors.DeadlineReached):  # our bound, or the provider's own at the same instant
            await self._end(job_id, "expired", "limit")
            return
        except (asyncio.CancelledError, RetryLater, Permanent):
            raise
        except Exception as exc:
            log.info("job=%s the late AI run failed: %s", job_id, exc)
            await self._end(job_id, "expired", f"failed: {type(exc).__name__}")
            return
        if result is not None:
            await self._deliver(job, late, result, until)

    async def _call_again(self, job: Job, late: dict[str, Any], until: float) -> ProviderResult | None:
        """The booth-time call was lost (restart): started again once, while the limit allows."""
        calls = int(late.get("calls") or 1)
        remaining = until - time.time()
        if calls >= MAX_CALLS:
            await self._end(job.id, "expired", "provider call lost twice")
            return None
        if remaining <= 1.0:
            await self._end(job.id, "expired", "limit")
            return None
        slot_name = str(late.get("slot") or f"{job.provider}/{job.slot_number}")
        provider_name, _, number = slot_name.partition("/")
        slot = await self.slots.get(provider_name, int(number or 0))
        provider = self.registry.get(provider_name) if slot is not None else None
        source = job.photo_path or job.trash_path
        if slot is None or provider is None or not source or provider.problem():
            await self._end(job.id, "expired", "slot or provider unavailable")
            return None
        if self.budget is not None and job.event_id is not None and provider.paid:
            estimate = _estimate(provider, slot)
            if not await self.budget.reserve_late(job.event_id, estimate, self.config.settings):
                await self._end(job.id, "expired", "budget_spent")
                return None
            late.update(counted_usd=estimate, reserved=True)
        # Counted before the call: a crash during it leaves `calls` at its maximum, never a third call.
        late["calls"] = calls + 1
        await self._set_late(job.id, late)
        deadline = Deadline(time.monotonic() + remaining)
        pixels = provider.input_pixels()
        await self.media.fetch(source)  # the node that answered the booth may be another (shared bucket)
        await self.slots.fetch_files(slot)
        photo = await self.imaging.prepare(
            self.media.resolve(source), pixels, behind_booths(deadline, self.config.settings.deadline_seconds)
        )
        reference = None
        reference_file = self.slots.reference_path(slot)
        if reference_file is not None and slot.reference_sha256:
            reference = await self.imaging.prepare_reference(
                reference_file,
                slot.reference_sha256,
                pixels,
                behind_booths(deadline, self.config.settings.deadline_seconds),
            )
        photo_size = _size(job.provider_notes or {})
        request = ProviderRequest(
            job_id=job.id,
            kind=Kind(slot.kind),
            photo=photo,
            reference=reference,
            prompt=job.prompt if job.prompt is not None else slot.prompt,
            options=provider.Options.model_validate(slot.options or {}),
            deadline=deadline,
            publish=self.links.publisher(job.id) if self.config.settings.public_base_url else None,
            notes={},
            result_aspect=shaping.result_aspect(slot, photo_size),
            print_size=shaping.print_size(slot, photo_size, self.config.settings.result_long_side_pixels),
        )
        try:
            async with asyncio.timeout_at(deadline.at):
                return await provider.run(request)
        finally:
            self.links.revoke(job.id)

    async def _deliver(self, job: Job, late: dict[str, Any], result: ProviderResult, until: float) -> None:
        slot_name = str(late.get("slot") or "")
        provider_name, _, number = slot_name.partition("/")
        slot = await self.slots.get(provider_name, int(number or 0))
        data, mime = result.data, result.mime
        settings = self.config.settings
        if slot is not None:
            share = page_url(settings.public_base_url, job.share_token) if job.share_token else None
            plan = shaping.plan_for(
                slot,
                _size(job.provider_notes or {}),
                settings.result_long_side_pixels,
                settings.jpeg_quality,
                self.slots.overlay_file(slot),
                share_url=share if settings.public_base_url else None,
            )
            due = behind_booths(Deadline(time.monotonic() + max(0.0, until - time.time())), settings.deadline_seconds)
            if plan is not None:
                data, mime = await self.imaging.shape(data, plan, due)
            else:
                data, mime = await self.imaging.finish(data, slot.output_format, due)
        path = await asyncio.to_thread(self.media.write_late, job.id, data, mime)
        relative = self.media.relative(path)
        cost = result.notes.get("cost_usd") if isinstance(result.notes.get("cost_usd"), int | float) else None
        async with self.jobs.db.write() as session:
            row = await session.scalar(select(Job).where(Job.id == job.id))
            if row is None or (row.late or {}).get("status") != "running" or row.deleted_at is not None:
                stale = True
            else:
                stale = False
                row.late = {
                    **(row.late or {}),
                    "status": "delivered",
                    "delivered_at": utcnow().isoformat(),
                    "cost_usd": cost,
                    "model": result.notes.get("model"),
                }
                row.late_result_path = relative
                if cost:
                    row.cost_usd = round((row.cost_usd or 0.0) + float(cost), 6)
                await self._settle(session, row, cost, failed=False)
                await tallies.amend(session, row, delivered_late=1, cost=float(cost or 0.0))
                row.history = [*(row.history or []), history_entry("late_result_delivered", slot=slot_name)]
        if stale:  # deleted by the guest meanwhile: the file goes too
            await asyncio.to_thread(self.media.delete, relative)
        else:
            log.info("job=%s the late AI result of %s is on the guest's page", job.id, slot_name)
            await self._tell(job, slot_name)

    async def _tell(self, job: Job, slot_name: str) -> None:
        """Webhook subscribers hear of the delivery (after it is stored; a failure here is only logged)."""
        if self.notify is None:
            return
        share = page_url(self.config.settings.public_base_url, job.share_token) if job.share_token else None
        try:
            await self.notify("job.delivered_late", {"job_id": job.id, "slot": slot_name, "share_url": share})
        except Exception:
            log.warning("job=%s the delivered_late webhook could not be queued", job.id, exc_info=True)

    async def _end(self, job_id: str, status: str, reason: str) -> None:
        async with self.jobs.db.write() as session:
            row = await session.get(Job, job_id)
            if row is not None and (row.late or {}).get("status") == "running":
                if (row.late or {}).get("reserved"):  # a restarted call's reservation goes back, the call counted
                    await self._settle(session, row, None, failed=reason.startswith("failed"))
                row.late = {**(row.late or {}), "status": status, "reason": reason}
                row.history = [*(row.history or []), history_entry(f"late_result_{status}", reason=reason)]

    async def _settle(self, session: Any, row: Job, cost: float | None, failed: bool) -> None:
        """The event's budget in the transaction that ends the late run (operator/budget.py `settle_late`)."""
        late = row.late or {}
        counted = late.get("counted_usd")
        if self.budget is None or not isinstance(counted, int | float):
            return
        reserved = bool(late.get("reserved"))
        await self.budget.settle_late(session, row.event_id, float(counted), 0.0 if failed else cost, reserved)


def _estimate(provider: Any, slot: Slot) -> float:
    try:
        return max(0.0, float(provider.estimated_cost_usd(slot.options or {}) or 0.0))
    except Exception:  # an estimate is a nicety: never a reason to stop a late result
        return 0.0


def behind_booths(deadline: Deadline, booth_seconds: float) -> float:
    """The due time late work queues with on the image workers: later than any booth photo arriving now
    can be due, so earliest deadline first serves every booth before it."""
    return max(deadline.at, time.monotonic() + max(BEHIND_BOOTHS_SECONDS, booth_seconds + 1.0))


def _size(notes: dict[str, Any]) -> tuple[int, int] | None:
    text = notes.get("photo_size") or (notes.get("primary") or {}).get("photo_size")
    try:
        width, height = str(text).split("x")
        return int(width), int(height)
    except (ValueError, AttributeError):
        return None
