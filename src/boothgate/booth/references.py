"""A job's slot and reference files as they were at admission: the slot read once, its reference files
held (storage/media.ContentHolds) until the job's answer, so an operator replacing a reference meanwhile
cannot take it from a running job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from boothgate.booth.booth_job import BoothJob
from boothgate.imaging.pool import Imaging
from boothgate.operator.slots import SlotService
from boothgate.storage.media import MediaStore
from boothgate.storage.models import Slot


class References:
    def __init__(self, slots: SlotService, media: MediaStore, imaging: Imaging) -> None:
        self.slots, self.media, self.imaging = slots, media, imaging

    async def snapshot(self, job: BoothJob, provider: str, number: int) -> Slot | None:
        """The slot as it is now — the job keeps this copy — with its reference file held until the job
        ends, so replacing the reference meanwhile cannot take it away (storage/media.ContentHolds)."""
        for _ in range(3):
            slot = await self.slots.get(provider, number)
            if slot is not None:
                await self.slots.fetch_files(slot)  # stored by another node: from the shared bucket
            if slot is None or not slot.reference_path:
                return slot
            job.reference = self.hold_reference(job, slot)
            if job.reference is not None:
                job.more_references = self.hold_more(job, slot)
                return slot
            # replaced between the read and the hold: read again
        return slot

    def hold_reference(self, job: BoothJob, slot: Slot) -> Path | None:
        """Hold `slot`'s reference file for this job (until its answer), or None when it is gone."""
        if not slot.reference_path:
            return None
        self.media.holds.hold(slot.reference_path)
        path = self.slots.reference_path(slot)
        if path is None:
            self.media.holds.release(slot.reference_path)
            return None
        job.held.append(slot.reference_path)
        return path

    def hold_more(self, job: BoothJob, slot: Slot) -> list[tuple[Path, str]]:
        """Hold the slot's further references (issue 28) like the first; a file already gone is left out."""
        held = []
        for ref in slot.more_references or []:
            relative = ref.get("path")
            if not relative:
                continue
            self.media.holds.hold(relative)
            path = self.media.resolve(relative)
            if not path.exists():
                self.media.holds.release(relative)
                continue
            job.held.append(relative)
            held.append((path, str(ref.get("sha256") or "")))
        return held

    async def prepare_more(self, job: BoothJob, slot: Slot, own: bool, pixels: int) -> list[Any]:
        files = job.more_references if own else self.hold_more(job, slot)
        return [await self.imaging.prepare_reference(path, digest, pixels, job.deadline.at) for path, digest in files]
