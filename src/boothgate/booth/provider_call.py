"""The provider-call step of the spine: one run of a slot's provider for one photo.

Single-flight (an identical photo already on its way to the same slot joins that run), the event budget's
hold, the inputs prepared (early decode, references, the before-check), the call bounded by the deadline,
and the one admission check of every result. The spine (spine.py) decides when to call and what happens
after; the fallback chain (run/fallback.py) calls `run` for each hop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from boothgate import errors
from boothgate.booth.booth_job import BoothJob
from boothgate.booth.capacity import Capacity
from boothgate.booth.failwell import ANSWER_MARGIN_SECONDS
from boothgate.booth.late import LateResults
from boothgate.booth.references import References
from boothgate.booth.traffic import Traffic
from boothgate.imaging.pool import Imaging
from boothgate.operator.budget import Budget
from boothgate.providers import transport
from boothgate.providers.base import KINDS_NEEDING_REFERENCE, Kind, Provider, ProviderRequest, ProviderResult
from boothgate.records.media_links import MediaLinks
from boothgate.run import placeholders, shaping
from boothgate.storage.models import Slot

log = logging.getLogger("boothgate.jobs")


@dataclass
class Outcome:
    """What one provider run produced; shared by identical requests that joined it."""

    result: ProviderResult
    provider_seconds: float
    job_id: str


class ProviderCalls:
    def __init__(
        self,
        budget: Budget,
        capacity: Capacity,
        imaging: Imaging,
        references: References,
        late: LateResults,
        links: MediaLinks,
        traffic: Traffic,
        moderate_photo: Callable[[BoothJob, Slot, bytes], Awaitable[None]],
    ) -> None:
        self.budget, self.capacity, self.imaging, self.references = budget, capacity, imaging, references
        self.late, self.links, self.traffic, self.moderate_photo = late, links, traffic, moderate_photo
        self.inflight: dict[tuple[str, int, int, str], asyncio.Task[Outcome]] = {}

    def running_here(self, slot: Slot, sha256: str, prompt: str) -> bool:
        """Whether this node is running the identical photo for this slot now (`once` will join it)."""
        return (slot.provider, slot.number, slot.revision, f"{sha256}:{hash(prompt)}") in self.inflight

    async def once(self, job: BoothJob, slot: Slot, provider: Provider, sha256: str) -> Outcome:
        """Run the slot's provider once for this photo: an identical photo already on its way to the same
        slot (a booth resending after a timeout) joins that run instead of paying twice."""
        key = (slot.provider, slot.number, slot.revision, f"{sha256}:{hash(job.prompt)}")
        running = self.inflight.get(key)
        if running is not None:
            try:
                outcome = await asyncio.shield(running)
            except asyncio.CancelledError:
                if running.cancelled():  # the run we joined hit its own deadline
                    raise errors.DeadlineReached("The identical photo sent earlier ran out of time.") from None
                raise
            job.record.reused_from = outcome.job_id
            return outcome
        task = asyncio.create_task(self.run(job, slot, provider))
        if job.request.source != "api":  # a client may cancel its job: no booth may be joined to that run
            self.inflight[key] = task
        task.add_done_callback(lambda _: self.inflight.pop(key, None))
        # Awaited directly (not shielded): when this request's deadline cancels us, the provider call
        # is cancelled too, so nothing talks to the provider after the booth has its answer — unless the
        # slot wants its late result (booth/late.py keeps the call going for the guest's page).
        return await self.late.keep(job.record, slot, task, job.deadline, job.generation)  # type: ignore[no-any-return]

    async def run(self, job: BoothJob, slot: Slot, provider: Provider, notes: dict[str, Any] | None = None) -> Outcome:
        """One call of `provider` for `slot`: the budget's hold, the inputs prepared (early decode,
        references, the before-check), the call under the deadline, the result's admission check."""
        assert job.photo is not None
        notes = job.record.provider_notes if notes is None else notes
        # The admitted slot's file is held since admission; a fallback slot's is held from now on.
        own = job.slot is not None and (slot.provider, slot.number) == (job.slot.provider, job.slot.number)
        hold = await self.budget.for_call(job.spend, slot, provider, own, job.settings)  # or BudgetSpent
        pixels = provider.input_pixels()
        started = time.monotonic()
        photo = (job.early and await job.early.take(pixels)) or await self.capacity.prepare(
            self.imaging, slot, job.deadline, job.photo, pixels
        )
        reference = None
        reference_file = job.reference if own else self.references.hold_reference(job, slot)
        if reference_file is not None and slot.reference_sha256:
            reference = await self.imaging.prepare_reference(
                reference_file, slot.reference_sha256, pixels, job.deadline.at
            )
        if reference is None and slot.kind in KINDS_NEEDING_REFERENCE:  # never bill a swap without one
            raise errors.ProviderNotConfigured(f"Slot {slot.provider}/{slot.number} has no reference image.")
        more_references = await self.references.prepare_more(job, slot, own, pixels) if reference else []
        job.marks["prepare"] = round(time.monotonic() - started, 4)
        await self.moderate_photo(job, slot, photo.data)
        notes["input_bytes"] = len(photo.data) + (len(reference.data) if reference else 0)
        notes["input_size"] = f"{photo.width}x{photo.height}"
        request = ProviderRequest(
            job_id=job.record.id,
            kind=Kind(slot.kind),
            photo=photo,
            reference=reference,
            references=more_references,
            # A fallback slot's own prompt, filled from the same booth fields and link.
            prompt=job.prompt if own else placeholders.fill(slot.prompt, job.prompt_values).prompt,
            options=provider.Options.model_validate(slot.options or {}),
            deadline=self.late.provider_deadline(slot, job.record, job.deadline.earlier(ANSWER_MARGIN_SECONDS))
            if own
            else job.deadline.earlier(ANSWER_MARGIN_SECONDS),
            publish=self.links.publisher(job.record.id) if job.settings.public_base_url else None,
            notes=notes,
            result_aspect=shaping.result_aspect(slot, job.photo_size),
            print_size=shaping.print_size(slot, job.photo_size, job.settings.result_long_side_pixels),
        )
        job.stage = "provider"
        self.traffic.at_provider(job)
        provider_start = time.monotonic()
        succeeded = False
        if hold is not None:
            hold.called = True  # counted from here; a call cut off mid-way costs its estimate
        try:
            result = await self._call(job, slot, provider, request)
            if hold is not None:
                hold.cost_usd = result.notes.get("cost_usd")  # the provider's figure (None: the estimate)
            # One admission check for every result, inside the hop: a refused result is this provider's
            # failure, and the fallback serves (issue 31, class 2).
            await self.imaging.admit_result(result.data)
            succeeded = True
        except Exception as exc:
            if hold is not None:
                hold.cost_usd = 0.0  # a call that failed is not billed
            # A provider that lets a connection reset or an unreadable body escape still gives the
            # booth a provider error (502), not an internal error (500), and the fallback serves.
            mapped = transport.answer_error(exc, provider.label, request.deadline)
            if mapped is None:
                raise
            if not isinstance(exc, errors.BoothError):
                log.warning("job=%s %s answer not understood: %s", job.record.id, provider.label, type(exc).__name__)
            raise mapped from exc
        finally:
            job.record.provider_seconds = round(time.monotonic() - provider_start, 4)
            self.capacity.record(slot, job.record.provider_seconds, succeeded)
        return Outcome(result, job.record.provider_seconds, job.record.id)

    async def _call(self, job: BoothJob, slot: Slot, provider: Provider, request: ProviderRequest) -> ProviderResult:
        """The provider's answer. A durable API job run again after a restart uses the answer its cut-off
        run kept (api/job_queue.py): a call that answered is never made, or billed, a second time."""
        replay = job.request.replay
        name = f"{slot.provider}/{slot.number}"
        if replay is not None and (kept := await replay.load(name)) is not None:
            request.notes["replayed"] = True
            return kept
        result = await provider.run(request)
        if replay is not None:
            await replay.save(name, result)  # before anything else can fail or a stop can come
        return result
