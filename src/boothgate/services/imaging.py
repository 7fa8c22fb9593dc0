"""Image work off the event loop, a bounded number at a time, with prepared references cached."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from pathlib import Path

from boothgate import images
from boothgate.providers.base import PreparedImage

REFERENCE_CACHE_SIZE = 64


class Imaging:
    def __init__(self, workers: int, max_source_pixels: int, quality: int) -> None:
        self._slots = asyncio.Semaphore(workers)
        self.max_source_pixels = max_source_pixels
        self.quality = quality
        self._references: OrderedDict[tuple[str, int], PreparedImage] = OrderedDict()

    async def prepare(self, source: Path | bytes, max_pixels: int) -> PreparedImage:
        """Decode, orient, downscale, encode — in a worker thread; at most `workers` at once."""
        async with self._slots:
            return await asyncio.to_thread(images.prepare, source, max_pixels, self.max_source_pixels, self.quality)

    async def prepare_reference(self, path: Path, digest: str, max_pixels: int) -> PreparedImage:
        """A slot's prepared reference, cached until the reference (its digest) changes."""
        key = (digest, max_pixels)
        cached = self._references.get(key)
        if cached is not None:
            self._references.move_to_end(key)
            return cached
        prepared = await self.prepare(path, max_pixels)
        self._references[key] = prepared
        while len(self._references) > REFERENCE_CACHE_SIZE:
            self._references.popitem(last=False)
        return prepared

    async def finish(self, data: bytes, output_format: str) -> tuple[bytes, str]:
        async with self._slots:
            return await asyncio.to_thread(images.finish_result, data, output_format, self.quality)

    async def inspect(self, source: Path | bytes) -> images.ImageInfo:
        return await asyncio.to_thread(images.inspect, source, self.max_source_pixels)

    async def thumbnail(self, source: Path | bytes, size: int) -> bytes:
        async with self._slots:
            return await asyncio.to_thread(images.thumbnail, source, size)
