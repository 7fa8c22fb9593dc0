"""A big upload is written to disk in batches off the event loop: the stored photo is byte-identical."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

from boothgate.booth_client import BoothForm, build_multipart
from boothgate.services.multipart import FLUSH_BYTES, Limits, read_upload
from tests.conftest import Booth, make_jpeg


async def test_photo_larger_than_a_batch_is_stored_byte_for_byte(booth: Booth) -> None:
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    photo = make_jpeg(2000, 1500, seed=3, quality=98)
    assert len(photo) > 3 * FLUSH_BYTES, "the photo must span several batched writes"
    answer = await booth.post("gemini", 1, photo)
    assert answer.status == 200, answer.body[:200]
    job_id = answer.headers["x-job-id"]
    async with booth.api() as client:
        stored = (await client.get(f"/api/jobs/{job_id}/photo")).content
    assert hashlib.sha256(stored).digest() == hashlib.sha256(photo).digest()


async def test_the_duplicate_check_hashes_the_whole_photo(booth: Booth) -> None:
    """Two photos that differ only in their last byte are different photos; the same one twice is not."""
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    photo = make_jpeg(2000, 1500, seed=4, quality=98)
    first = await booth.post("gemini", 1, photo + b"A")
    other = await booth.post("gemini", 1, photo + b"B")
    again = await booth.post("gemini", 1, photo + b"A")
    assert first.status == other.status == again.status == 200
    assert "x-reused-from" not in other.headers
    assert again.headers.get("x-reused-from") == first.headers["x-job-id"]


async def test_uploads_parse_only_while_holding_the_shared_gate(tmp_path: Path) -> None:
    """The gate bounds how many uploads parse at once (short event-loop passes during a burst)."""
    photo = make_jpeg(400, 300, seed=5)
    body, content_type = build_multipart(photo, BoothForm("pw"))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    gate = asyncio.Semaphore(1)
    await gate.acquire()  # another upload is parsing
    limits = Limits(max_bytes=10_000_000, idle_timeout_seconds=5)
    reading = asyncio.create_task(read_upload(content_type, chunks(), tmp_path / "photo", limits, gate))
    await asyncio.sleep(0.1)
    assert not reading.done() and not (tmp_path / "photo").exists()
    gate.release()
    upload = await asyncio.wait_for(reading, 5)
    assert (tmp_path / "photo").read_bytes() == photo and upload.fields["password"] == "pw"


async def test_what_arrived_is_on_disk_when_the_booth_pauses(tmp_path: Path) -> None:
    """Bytes below a write batch are not held in memory while the booth is quiet (a crash keeps them)."""
    photo = make_jpeg(400, 300, seed=6)
    body, content_type = build_multipart(photo, BoothForm("pw"))
    half = len(body) // 2
    paused = asyncio.Event()
    resume = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        yield body[:half]
        paused.set()
        await resume.wait()
        yield body[half:]

    limits = Limits(max_bytes=10_000_000, idle_timeout_seconds=5)
    dest = tmp_path / "photo.part"
    reading = asyncio.create_task(read_upload(content_type, chunks(), dest, limits))
    await paused.wait()
    await asyncio.sleep(0.3)
    start = body.index(b"\xff\xd8\xff")
    assert dest.read_bytes() == body[start:half], "the first half must be on disk while the booth pauses"
    resume.set()
    await asyncio.wait_for(reading, 5)
    assert dest.read_bytes() == photo
