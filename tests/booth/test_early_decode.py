"""Work while the photo arrives: a booth on a slow network has its photo decoded as the bytes come in
(an incremental decoder, bounded by a memory budget rather than by the number of image workers), and
that decode is stopped (its memory given back) when the upload fails."""

from __future__ import annotations

import asyncio
from typing import Any

from boothgate.cli.booth_client import BoothForm, build_multipart, post_photo_async
from tests.conftest import UPLOAD_PASSWORD, Booth, make_jpeg

RATE = 1_500_000  # bytes per second: a booth on a modest network


def _photo() -> bytes:
    photo = make_jpeg(3000, 2000, seed=11, quality=95)
    assert len(photo) > 1_500_000, "the upload must last long enough for an early decode to pay"
    return photo


async def _slow_post(booth: Booth, photo: bytes, password: str = UPLOAD_PASSWORD, **kwargs: Any) -> Any:
    body, content_type = build_multipart(photo, BoothForm(password))
    return await post_photo_async(
        f"{booth.url}/booth/gemini/1",
        b"",
        body=body,
        headers={"Content-Type": content_type},
        bytes_per_second=RATE,
        **kwargs,
    )


async def test_a_slow_upload_is_decoded_while_it_arrives(booth: Booth) -> None:
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    imaging = booth.services.imaging
    photo = _photo()
    answer = await _slow_post(booth, photo)
    assert answer.status == 200, answer.body[:200]
    assert imaging.snapshot()["early_decodes"] == 1
    # the same preparation as after the last byte: 3000×2000 at the DCT's 1/2 is 1500×1000, no resize
    assert booth.calls[-1].photo_size == (1500, 1000)
    early_input = booth.calls[-1].photo_bytes
    fast = await booth.post("gemini", 1, photo + b"\0")  # over loopback at full speed: prepared after
    assert fast.status == 200 and imaging.snapshot()["early_decodes"] == 1
    assert booth.calls[-1].photo_size == (1500, 1000)
    assert booth.calls[-1].photo_bytes == early_input, "the provider gets the same photo either way"
    assert imaging.budget.used_bytes == 0


async def test_no_early_decode_before_the_password_is_proven(booth: Booth) -> None:
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    answer = await _slow_post(booth, _photo(), password="wrong")
    assert answer.status == 401
    assert booth.services.imaging.snapshot()["early_decodes"] == 0


async def test_a_failed_upload_stops_its_early_decode(booth_factory: Any) -> None:
    booth = booth_factory(upload_idle_timeout_seconds=1.0)
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    imaging = booth.services.imaging
    photo = _photo()
    answer = await _slow_post(booth, photo, stop_after=len(photo) * 2 // 3)  # the network drops
    assert answer.status == 400 and answer.json()["error"] == "upload_stalled"
    assert imaging.snapshot()["early_decodes"] == 1, "the decode had started while the photo arrived"
    # after the answer, nothing of that job runs: its decoder was stopped and its memory given back
    assert answer.headers["x-job-id"] not in imaging.workers.running_jobs()
    assert imaging.budget.used_bytes == 0
    ok = await booth.post("gemini", 1, photo)
    assert ok.status == 200


async def test_booths_that_start_together_are_all_decoded_as_their_photos_arrive(booth_factory: Any) -> None:
    """More simultaneous uploads than image workers: every one is decoded early (the memory allows it)."""
    booth = booth_factory(deadline_seconds=30.0)  # several slow uploads at once on a shared machine
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    imaging = booth.services.imaging
    n = imaging.workers.workers + 2
    photos = [make_jpeg(3000, 2000, seed=20 + i, quality=95) for i in range(n)]
    answers = await asyncio.gather(*(_slow_post(booth, p) for p in photos))
    assert [a.status for a in answers] == [200] * n
    assert imaging.snapshot()["early_decodes"] == n
    assert imaging.budget.used_bytes == 0


async def test_uploads_over_the_memory_budget_are_prepared_after_their_last_byte(booth_factory: Any) -> None:
    """Room for one early decoder: the other booths are refused an early decode (never over the budget) and
    still get their results, prepared as usual."""
    one = 1500 * 1000 * 3 * 2 + 2 * 1024 * 1024  # a 3000×2000 photo's scaled image, its copy, working memory
    booth = booth_factory(early_decode_memory_bytes=one + one // 2, deadline_seconds=30.0)
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    imaging = booth.services.imaging
    reserved: list[int] = []
    original = imaging.budget.reserve

    def watched(size: int) -> bool:
        ok = original(size)
        reserved.append(imaging.budget.used_bytes)
        return ok

    imaging.budget.reserve = watched  # type: ignore[method-assign]
    photos = [make_jpeg(3000, 2000, seed=40 + i, quality=95) for i in range(3)]
    answers = await asyncio.gather(*(_slow_post(booth, p) for p in photos))
    assert [a.status for a in answers] == [200] * 3
    snapshot = imaging.snapshot()
    assert snapshot["early_refused"] >= 1 and snapshot["early_decodes"] >= 1
    assert max(reserved) <= imaging.budget.total_bytes, "never more reserved than the budget"
    assert {c.photo_size for c in booth.calls[-3:]} == {(1500, 1000)}
    assert imaging.budget.used_bytes == 0
