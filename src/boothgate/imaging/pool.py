"""Image work in worker processes, a bounded number at a time (earliest deadline first), stopped when its
job no longer needs it, with prepared references cached. `deadline` arguments are monotonic instants
(`Deadline.at`)."""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from boothgate.errors import CorruptImage, ProviderFailed
from boothgate.imaging import images
from boothgate.imaging import shape as shaping
from boothgate.imaging.incremental import DecodeBudget
from boothgate.imaging.prepared import PreparedImage
from boothgate.imaging.worker_process import lower_thread_priority
from boothgate.imaging.workers import DEFAULT_MEMORY_CEILING, ImageWorkers, WorkerLost

REFERENCE_CACHE_SIZE = 64


class Imaging:
    def __init__(
        self,
        workers: int,
        max_source_pixels: int,
        quality: int,
        early_memory_bytes: int = 128 * 1024 * 1024,
        memory_ceiling: int = DEFAULT_MEMORY_CEILING,
    ) -> None:
        self.workers = ImageWorkers(workers, memory_ceiling)
        self.max_source_pixels = max_source_pixels
        self.quality = quality
        # Photos decoded while they arrive (booth/early.py): as many as fit this memory, in threads that
        # wait for bytes most of the time (libjpeg releases the GIL while it decodes a chunk).
        self.budget = DecodeBudget(early_memory_bytes)
        self.early_pool = ThreadPoolExecutor(
            max(2, os.cpu_count() or 2), thread_name_prefix="early-decode", initializer=lower_thread_priority
        )
        self._references: OrderedDict[tuple[str, int], PreparedImage] = OrderedDict()

    async def start(self) -> None:
        await self.workers.start()

    async def prepare(
        self, source: Path | bytes, max_pixels: int, deadline: float | None = None, admitted: bool = False
    ) -> PreparedImage:
        """Decode, orient, downscale, encode — in an image worker. `admitted`: `admit` has checked the
        file's structure already (a booth photo), so the worker does not walk it again."""
        try:
            return await self.workers.run(
                deadline, images.prepare, source, max_pixels, self.max_source_pixels, self.quality, admitted
            )
        except WorkerLost as exc:
            raise CorruptImage(f"The image could not be decoded: {exc}") from exc

    async def prepare_reference(
        self, path: Path, digest: str, max_pixels: int, deadline: float | None = None
    ) -> PreparedImage:
        """A slot's prepared reference, cached until the reference (its digest) changes."""
        key = (digest, max_pixels)
        cached = self._references.get(key)
        if cached is not None:
            self._references.move_to_end(key)
            return cached
        prepared = await self.prepare(path, max_pixels, deadline)
        self._references[key] = prepared
        while len(self._references) > REFERENCE_CACHE_SIZE:
            self._references.popitem(last=False)
        return prepared

    async def finish(
        self, data: bytes, output_format: str, deadline: float | None = None, admitted: bool = False
    ) -> tuple[bytes, str]:
        """The result in the slot's format, admitted with the same pixel cap as photos (502
        provider_bad_response). A result already in that format needs no worker: it must not queue behind
        the photos of a burst while its own deadline runs out; its check reads headers only (a thread).
        `admitted`: `admit_result` has checked these bytes already (the spine's results), not again."""
        if not admitted:
            await asyncio.to_thread(images.check_result, data, self.max_source_pixels)
        passed = images.pass_through(data, output_format)
        if passed is not None:
            return passed
        try:
            return await self.workers.run(deadline, images.finish_result, data, output_format, self.quality)
        except WorkerLost as exc:
            message = f"The provider's image could not be decoded: {exc}"
            raise ProviderFailed(message, code="provider_bad_response") from exc

    async def admit_result(self, data: bytes) -> None:
        """Every provider result, whatever happens to it next: its structure and pixel cap from the headers,
        in a thread (502 provider_bad_image / provider_bad_response). Issue 31, class 2."""
        await asyncio.to_thread(images.check_result, data, self.max_source_pixels)

    # --- result shape and overlay (booth-links) -----------------------------------------------
    async def shape(
        self, data: bytes, plan: shaping.ShapePlan, deadline: float | None = None, admitted: bool = False
    ) -> tuple[bytes, str]:
        """The result cut and sized for the print layout, the overlay laid over it, in the slot's format.

        Admitted first with the same check as every result (issue 31, class 2): structure and pixel cap from
        the headers, before a worker decodes it — a tiny file declaring 200 MP never reaches the reshape.
        `admitted`: that check has been made on these bytes already (`admit_result`), not again."""
        if shaping.already_shaped(data, plan):
            return await self.finish(data, plan.output_format, deadline, admitted)
        if not admitted:
            await self.admit_result(data)
        try:
            return await self.workers.run(deadline, shaping.shape_result, data, plan)
        except WorkerLost as exc:  # it crashed its worker, or needed more memory than a worker may hold
            message = f"The provider's image could not be reshaped: {exc}"
            raise ProviderFailed(message, code="provider_bad_response") from exc

    async def oriented_size(self, path: Path) -> tuple[int, int]:
        """The photo's upright size from its header (no decode): what the result is shaped to."""
        return await asyncio.to_thread(shaping.oriented_size, path)

    async def admit_photo(self, path: Path) -> tuple[int, int]:
        """`inspect` then `oriented_size`, in one trip to a thread (every booth photo goes through both)."""

        def both() -> tuple[int, int]:
            images.admit(path, self.max_source_pixels)
            return shaping.oriented_size(path)

        return await asyncio.to_thread(both)

    async def check_overlay(self, data: bytes) -> dict[str, object]:
        return await self.workers.run(None, shaping.check_overlay, data, self.max_source_pixels)

    async def inspect(self, source: Path | bytes) -> images.ImageInfo:
        """Type, size and structural limits, from the bytes without decoding (a few ms in a thread)."""
        return await asyncio.to_thread(images.admit, source, self.max_source_pixels)

    async def thumbnail(self, source: Path | bytes, size: int) -> bytes:
        return await self.workers.run(None, images.thumbnail, source, size)

    async def small_copy(self, data: bytes, size: int, deadline: float | None) -> bytes:
        """A small JPEG of an admitted image, made in an image worker (the after-check's input)."""
        return await self.workers.run(deadline, images.thumbnail, data, size)

    def snapshot(self) -> dict[str, object]:
        """For `/health`: the worker processes, and the early decodes (started, refused for memory)."""
        return {
            **self.workers.snapshot(),
            "early_decodes": self.budget.started,
            "early_refused": self.budget.refused,
            "early_memory_bytes": self.budget.used_bytes,
        }

    def close(self) -> None:
        self.workers.shutdown()
        self.early_pool.shutdown(wait=False, cancel_futures=True)
