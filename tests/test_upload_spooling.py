"""A big upload is written to disk in batches off the event loop: the stored photo is byte-identical."""

from __future__ import annotations

import hashlib

from boothgate.services.multipart import FLUSH_BYTES
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
