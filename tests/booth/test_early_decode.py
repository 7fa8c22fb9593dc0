"""Work while the photo arrives: a booth on a slow network has its photo decoded as the bytes come in,
and that decode is stopped (its worker process ended) when the upload fails."""

from __future__ import annotations

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
    workers = booth.services.imaging.workers
    photo = _photo()
    answer = await _slow_post(booth, photo)
    assert answer.status == 200, answer.body[:200]
    assert workers.snapshot()["early_decodes"] == 1
    # the same preparation as after the last byte: 3000×2000 at the DCT's 1/2 is 1500×1000, no resize
    assert booth.calls[-1].photo_size == (1500, 1000)
    fast = await booth.post("gemini", 1, photo + b"\0")  # over loopback at full speed: prepared after
    assert fast.status == 200 and workers.snapshot()["early_decodes"] == 1
    assert booth.calls[-1].photo_size == (1500, 1000)


async def test_no_early_decode_before_the_password_is_proven(booth: Booth) -> None:
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    answer = await _slow_post(booth, _photo(), password="wrong")
    assert answer.status == 401
    assert booth.services.imaging.workers.snapshot()["early_decodes"] == 0


async def test_a_failed_upload_stops_its_early_decode(booth_factory: Any) -> None:
    booth = booth_factory(upload_idle_timeout_seconds=1.0)
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    workers = booth.services.imaging.workers
    photo = _photo()
    answer = await _slow_post(booth, photo, stop_after=len(photo) * 2 // 3)  # the network drops
    assert answer.status == 400 and answer.json()["error"] == "upload_stalled"
    snapshot = workers.snapshot()
    assert snapshot["early_decodes"] == 1, "the decode had started while the photo arrived"
    # after the answer, nothing of that job runs: its decoder's process was ended and replaced
    assert answer.headers["x-job-id"] not in workers.running_jobs()
    assert snapshot["replaced"] == 1 and snapshot["streams"] == 0
    ok = await booth.post("gemini", 1, photo)
    assert ok.status == 200
