"""A per-worker memory ceiling (issue 31, class 2): work that needs more memory than an image worker may hold
fails at once inside that worker (RLIMIT_DATA on Linux), the worker is replaced, its caller gets a clear
answer well before its deadline, and work on the other workers goes on.

The work really allocates (every page written); the ceiling is set low for the test (256 MB, the lowest
the settings take).
"""

from __future__ import annotations

import asyncio
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import Any, ClassVar

import pytest

from boothgate.imaging.workers import ImageWorkers, WorkerOverMemory
from boothgate.providers.base import Provider, ProviderRequest, ProviderResult
from tests import worker_tasks
from tests.conftest import Booth, ScriptedProvider, make_jpeg

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA is Linux's")

CEILING = 256 << 20
DEADLINE_SECONDS = 20.0


@pytest.fixture
async def workers() -> Any:
    pool = ImageWorkers(2, memory_ceiling=CEILING)
    await pool.start()
    yield pool
    pool.shutdown()


@pytest.mark.parametrize("megabytes", [400, 1200, 3000])
async def test_work_over_the_ceiling_fails_at_once_and_its_worker_is_replaced(
    workers: ImageWorkers, tmp_path: Path, megabytes: int
) -> None:
    flag, pid_file = tmp_path / "go", tmp_path / "pid"
    started = time.monotonic()
    deadline = started + DEADLINE_SECONDS
    # another booth's work, running on the other worker meanwhile
    other = asyncio.create_task(workers.run(deadline, worker_tasks.wait_for, str(flag), str(pid_file)))

    with pytest.raises(WorkerOverMemory, match="more memory"):
        await workers.run(deadline, worker_tasks.allocate, megabytes)

    assert time.monotonic() - started < DEADLINE_SECONDS - 5, "answered long before the deadline"
    assert workers.over_memory == 1 and workers.replaced == 1
    assert not other.done(), "the other worker's work goes on"
    flag.touch()
    assert await other == int(pid_file.read_text())
    # the replacement takes work, and work under the ceiling is not affected by it
    assert await workers.run(time.monotonic() + DEADLINE_SECONDS, worker_tasks.allocate, 120) == 120
    assert workers.snapshot()["over_memory"] == 1


async def test_without_the_ceiling_the_same_work_succeeds(tmp_path: Path) -> None:
    """The ceiling is what refuses it: a worker without one does the same work."""
    pool = ImageWorkers(1, memory_ceiling=0)
    try:
        assert await pool.run(time.monotonic() + DEADLINE_SECONDS, worker_tasks.allocate, 400) == 400
    finally:
        pool.shutdown()


# --- a booth whose result needs more memory to reshape than a worker may hold ---------------------------
def solid_png(side: int) -> bytes:
    """A valid side×side RGB PNG of one colour: a few hundred kB, side² × 4 bytes once decoded by Pillow."""
    row = b"\x00" + bytes((40, 120, 200)) * side
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", body) + chunk(b"IEND", b"")


class BigResultProvider(Provider):
    """Answers the result stored under the slot's prompt."""

    name = "gemini"
    label = "Big"
    results: ClassVar[dict[str, bytes]] = {}

    async def run(self, request: ProviderRequest) -> ProviderResult:
        return ProviderResult(self.results[request.prompt], "image/png", {"model": "big"})


async def test_a_result_too_big_for_a_workers_memory_is_answered_in_time_and_other_booths_are_served(
    booth_factory: Any,
) -> None:
    # 9,500 × 9,500 ≈ 90 MP: under the pixel cap (100 MP), ~360 MB once decoded — over the 256 MB ceiling
    BigResultProvider.results = {"big": solid_png(9_500), "small": solid_png(600)}
    booth: Booth = booth_factory(
        {"gemini": BigResultProvider}, deadline_seconds=DEADLINE_SECONDS, image_worker_memory_bytes=CEILING
    )
    await booth.configure("gemini", 1, kind="prompt", prompt="big")  # the default shape: match_photo
    await booth.configure("gemini", 2, kind="prompt", prompt="small")

    started = time.monotonic()
    big, small = await asyncio.gather(
        booth.post("gemini", 1, make_jpeg(800, 600, seed=71)), booth.post("gemini", 2, make_jpeg(800, 600, seed=72))
    )
    took = time.monotonic() - started

    assert big.status == 502, big.body[:300]
    assert big.json()["error"] == "provider_bad_response"
    assert "more memory" in big.json()["message"]
    assert took < DEADLINE_SECONDS - 5, f"answered after {took:.1f} s"
    assert small.status == 200, small.body[:300]
    assert booth.services.imaging.workers.over_memory >= 1
    again = await booth.post("gemini", 2, make_jpeg(800, 600, seed=73))
    assert again.status == 200, "the replaced worker serves the next booth"


class HeavyWorkProvider(Provider):
    """Does its own image work on the workers (as fal's composite and the offline tab do): too much of it."""

    name = "fal"
    label = "Heavy"

    async def run(self, request: ProviderRequest) -> ProviderResult:
        assert self.context.images is not None
        await self.context.images.run(request.deadline.at, worker_tasks.allocate, 1200)
        raise AssertionError("not reached: the work is over the ceiling")


async def test_a_providers_own_work_over_the_ceiling_is_its_failure_and_the_fallback_serves(
    booth_factory: Any,
) -> None:
    booth: Booth = booth_factory(
        {"fal": HeavyWorkProvider, "openai": ScriptedProvider},
        deadline_seconds=DEADLINE_SECONDS,
        fallback_default_seconds=2.0,
        image_worker_memory_bytes=CEILING,
    )
    await booth.configure("openai", 3, kind="prompt", prompt="x")
    await booth.configure("fal", 3, kind="prompt", prompt="x")
    await booth.configure("fal", 4, kind="prompt", prompt="x", fallback="openai/3")

    alone = await booth.post("fal", 3, make_jpeg(800, 600, seed=74))
    served = await booth.post("fal", 4, make_jpeg(800, 600, seed=75))

    assert alone.status == 502, alone.body[:300]
    assert alone.json()["error"] == "provider_bad_response"
    assert served.status == 200, served.body[:300]
    assert served.headers["content-type"] == "image/jpeg"
