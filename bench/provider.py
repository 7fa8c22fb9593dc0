"""The bench's fake AI provider: sleeps a fixed latency, answers a small JPEG, records what it got.

It is registered in place of the `gemini` tab (see `bench.server`), so the booth path is the real
one — receive, admit, prepare, run, answer, store — and only the AI is replaced. The provider's time
is the configured latency (`BOOTHGATE_BENCH_PROVIDER_SECONDS`), so the server's overhead is the
booth's answer time minus that latency. Each call appends one JSON line to
`BOOTHGATE_BENCH_PROVIDER_LOG` (bytes received, pixels, measured sleep) for the report.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import os
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from boothgate.providers.base import Provider, ProviderRequest, ProviderResult


@functools.cache
def result_jpeg() -> bytes:
    """A 1024×1024 JPEG with photo-like noise (~250 kB), like an image model's answer."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(60, 200, 1024, dtype=np.float32)
    pixels = ramp[None, :, None] + rng.normal(0, 12, (1024, 1024, 3)).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


class BenchProvider(Provider):
    name: ClassVar[str] = "gemini"
    label: ClassVar[str] = "Bench (fake)"
    key_setting: ClassVar[str] = ""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        result_jpeg()  # made at start-up, not in the event loop during the first job

    def latency_seconds(self) -> float:
        return float(os.environ.get("BOOTHGATE_BENCH_PROVIDER_SECONDS", "1.0"))

    async def run(self, request: ProviderRequest) -> ProviderResult:
        started = time.monotonic()
        # Never past the deadline, like a real provider whose call is bounded by it.
        await asyncio.sleep(min(self.latency_seconds(), request.deadline.remaining()))
        slept = time.monotonic() - started
        self._record(request, slept)
        request.notes["model"] = "bench"
        return ProviderResult(result_jpeg(), "image/jpeg", {"model": "bench"})

    def _record(self, request: ProviderRequest, slept: float) -> None:
        path = os.environ.get("BOOTHGATE_BENCH_PROVIDER_LOG")
        if not path:
            return
        line = {
            "job_id": request.job_id,
            "photo_bytes": len(request.photo.data),
            "photo_pixels": request.photo.pixels,
            "photo_mime": request.photo.mime,
            "reference_bytes": len(request.reference.data) if request.reference else 0,
            "slept_seconds": round(slept, 4),
        }
        # One short append per job: cheap enough for the loop, and survives a killed server.
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")


PROVIDER = BenchProvider
