"""Image work is bounded: hostile photos are refused by cheap structural limits before any decode, a
provider's oversized result is refused unread, and a busy server answers at once instead of late.

The hostile inputs are made here, for these tests: a progressive JPEG with thousands of scans, a PNG of
hundreds of thousands of tiny chunks, a 10000×10000 progressive JPEG, a 19000×19000 PNG of a few kB.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import re
import struct
import time
import zlib
from typing import Any, ClassVar

import pytest
from PIL import Image

from boothgate.booth.capacity import PACE_TTL_SECONDS, Busy, Capacity
from boothgate.deadline import Deadline
from boothgate.imaging.workers import ImageWorkers
from boothgate.providers.base import ProviderRequest, ProviderResult
from boothgate.storage.models import Slot
from tests.conftest import Booth, ScriptedProvider, make_jpeg, photo_array


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def progressive_with_many_scans(copies: int = 3000) -> bytes:
    """A real progressive JPEG with one of its small scans repeated thousands of times (in a decoder,
    every scan is a pass over all blocks of the image)."""
    buf = io.BytesIO()
    Image.fromarray(photo_array(1200, 800, seed=2)).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    starts = [m.start() for m in re.finditer(rb"\xff\xda", data)]
    scans = [data[a:b] for a, b in itertools.pairwise([*starts, len(data) - 2])]
    smallest = min(scans, key=len)
    return data[:-2] + smallest * copies + b"\xff\xd9"


def png_of_tiny_chunks(chunks: int = 300_000) -> bytes:
    """A valid 64×64 PNG with hundreds of thousands of empty private chunks before its pixels."""
    raw = b"".join(b"\x00" + bytes(64 * 3) for _ in range(64))
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
    tiny = _png_chunk(b"prVt", b"")
    return (
        b"\x89PNG\r\n\x1a\n" + ihdr + tiny * chunks + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b"")
    )


def huge_png(side: int = 19000) -> bytes:
    """A complete, valid 19000×19000 black-and-white PNG of a few kB: 361 million pixels when decoded."""
    row = b"\x00" + bytes((side + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def big_progressive_jpeg() -> bytes:
    """A real 10000×10000 progressive JPEG (grey, so it stays small): its coefficient buffer alone would
    take 200 MB at any output scale."""
    buf = io.BytesIO()
    Image.new("L", (10000, 10000), 128).save(buf, "JPEG", progressive=True, quality=80)
    return buf.getvalue()


async def test_hostile_photos_are_refused_while_ordinary_booths_get_their_results(booth: Booth) -> None:
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    hostile = {
        "scans": progressive_with_many_scans(),
        "chunks": png_of_tiny_chunks(),
        "progressive 100 MP": big_progressive_jpeg(),
    }
    ordinary = make_jpeg(1600, 1200, seed=8)
    answers = await asyncio.gather(
        *(booth.post("gemini", 1, data) for data in hostile.values()),
        *(booth.post("gemini", 1, ordinary + bytes([n])) for n in range(3)),
    )
    got = {name: (a.status, a.json()["error"]) for name, a in zip(hostile, answers, strict=False)}
    assert got == {
        "scans": (422, "image_too_complex"),
        "chunks": (422, "image_too_complex"),
        "progressive 100 MP": (413, "image_too_large"),
    }
    assert [a.status for a in answers[len(hostile) :]] == [200, 200, 200]
    # every hostile original is kept in trash, with its sidecar
    assert len([p for p in booth.trash_files() if p.suffix != ".json"]) == 3
    assert booth.services.imaging.workers.running_jobs() == []


class HugeResultProvider(ScriptedProvider):
    """Answers a small PNG that declares 19000×19000 pixels (what a broken or hostile provider might send)."""

    result: ClassVar[bytes] = b""

    async def run(self, request: ProviderRequest) -> ProviderResult:
        return ProviderResult(self.result, "image/png", {"model": "huge"})


async def test_a_result_over_the_pixel_cap_is_refused_unread(booth_factory: Any) -> None:
    HugeResultProvider.result = huge_png()
    assert len(HugeResultProvider.result) < 1_000_000
    booth = booth_factory({"gemini": HugeResultProvider})
    await booth.configure("gemini", 1, kind="prompt", prompt="x", output_format="png")
    answer = await booth.post("gemini", 1, make_jpeg(800, 600))
    assert answer.status == 502 and answer.json()["error"] == "provider_bad_response"
    await booth.configure("gemini", 1, output_format="jpeg")  # the conversion path refuses it too
    answer = await booth.post("gemini", 1, make_jpeg(800, 600, seed=1))
    assert answer.status == 502 and answer.json()["error"] == "provider_bad_response"


async def test_after_a_call_that_hangs_to_the_deadline_the_next_guest_is_served(booth: Booth) -> None:
    """Issue 31, class 13: one hung call is not a forecast. The provider answers at once again; the slot's
    next guests are served (not 503 busy), whatever the hung call took."""
    await booth.configure("gemini", 1, kind="prompt", prompt="x", options={"delay_seconds": 60.0})
    await booth.configure("gemini", 2, kind="prompt", prompt="x")
    assert (await booth.post("gemini", 2, make_jpeg(400, 300, seed=9))).status == 200  # workers warm
    hung = await booth.post("gemini", 1, make_jpeg(400, 300, seed=1))
    assert hung.status == 504
    await booth.configure("gemini", 1, options={"delay_seconds": 0.0})  # the provider is quick again
    for seed in (2, 3, 4):
        answer = await booth.post("gemini", 1, make_jpeg(400, 300, seed=seed))
        assert answer.status == 200, answer.body[:200]


async def test_health_reports_the_image_workers(booth: Booth) -> None:
    async with booth.api() as client:
        health = (await client.get("/health")).json()
    workers = health["image_workers"]
    assert workers["workers"] == booth.settings.image_workers and workers["stuck"] == 0
    assert health["status"] == "ok"


def test_a_hung_or_failed_call_is_not_a_forecast_and_busy_needs_a_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls cut by the deadline or failed leave the pace alone; one slow success among quick ones does
    not move it (median); with nothing queued ahead a photo is always admitted; a pace is forgotten."""
    workers = ImageWorkers(1)
    capacity = Capacity(workers)
    slot = Slot(provider="gemini", number=1)
    for seconds in (47.9, 31.0, 45.5):
        capacity.record(slot, seconds, succeeded=False)
    assert capacity.pace(slot) == 0.0
    capacity.check(slot, Deadline.after(48.0))
    for seconds in (1.2, 0.9, 44.0, 1.1):
        capacity.record(slot, seconds)
    assert capacity.pace(slot) < 2.0
    capacity.record(slot, 47.0)
    capacity.check(slot, Deadline.after(48.0))  # nothing queued ahead: admitted whatever the pace
    later = time.monotonic() + PACE_TTL_SECONDS + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert capacity.pace(slot) == 0.0
    workers.shutdown()


def test_a_full_queue_of_image_work_is_still_answered_busy() -> None:
    """Busy remains for what it is for: photos waiting ahead for the image workers that leave no time."""
    workers = ImageWorkers(1)
    capacity = Capacity(workers)
    slot = Slot(provider="gemini", number=1)
    capacity.record(slot, 3.0)
    workers._service = 2.0  # seconds one photo's image work takes here (measured in real runs)
    soon = time.monotonic() + 5.0
    for token in range(6):
        workers.announce(token, soon)
    with pytest.raises(Busy):
        capacity.check(slot, Deadline.after(10.0))
    for token in range(6):
        workers.withdraw(token)
    capacity.check(slot, Deadline.after(10.0))
    workers.shutdown()
