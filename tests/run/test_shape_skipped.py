"""Shaping never costs the guest the print (docs/operator-guide.md, "Result shape"): when the shaping step
would run into the deadline, the result goes out as the provider returned it and the job's notes say
`shape_skipped`.

The real Gemini module against its wire fake, which answers a square 1024×1024 whatever the photo's shape
(as the real service does), so every result of a 4:3 photo needs shaping. Once the fake answers at once
(the result comes back in the photo's shape), once so late that less than the shaping reserve is left
before the deadline, but still in time for the answer: the booth gets the square result, in time.
"""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Booth, Tab, open_image
from tests.gemini_support import PHOTO_TINT, encode, gradient

DEADLINE = 6.0
# Shaping stops this long before the deadline (`shaping_reserve_seconds`, 0.75 s by default; widened here so
# a loaded machine's second either way does not move the answer out of the window).
RESERVE = 3.0
# The fake answers this long before the deadline: inside the shaping reserve, and early enough for the
# answer margin (0.25 s) and the format conversion that is still done.
ANSWER_BEFORE_DEADLINE = 1.5
SLACK = 0.5  # what the booth may wait past the deadline for the answer to travel back


async def _job(booth: Booth, job_id: str) -> dict[str, Any]:
    async with booth.api() as client:
        response = await client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def test_a_result_late_for_shaping_goes_out_as_returned_and_the_job_says_shape_skipped(
    tab_factory: Any,
) -> None:
    assert RESERVE > ANSWER_BEFORE_DEADLINE, "the late answer falls inside the shaping reserve"
    tab: Tab = tab_factory("gemini", deadline_seconds=DEADLINE, shaping_reserve_seconds=RESERVE)
    booth, fake = tab.booth, tab.fake
    fake.answer_size = (1024, 1024)
    await booth.configure("gemini", 1, prompt="as pirates", result_shape="match_photo")

    in_time = await booth.post("gemini", 1, encode(gradient(1200, 900, PHOTO_TINT)))
    assert in_time.status == 200, in_time.body[:300]
    assert open_image(in_time.body).size == (1200, 900), "with time to spare the result is shaped like the photo"
    assert "shape_skipped" not in str((await _job(booth, in_time.headers["x-job-id"]))["provider_notes"])

    fake.default_mode = "slow"
    sent = time.monotonic()  # the deadline starts when the request arrives: a little after this
    fake.slow_until = sent + DEADLINE - ANSWER_BEFORE_DEADLINE
    late = await booth.post("gemini", 1, encode(gradient(1200, 900, (PHOTO_TINT[0] - 9, *PHOTO_TINT[1:]))))
    took = time.monotonic() - sent
    assert late.status == 200, late.body[:300]
    assert took < DEADLINE + SLACK, f"answered after {took:.2f} s"
    assert open_image(late.body).size == (1024, 1024), "the result as the provider returned it"
    assert late.headers["content-type"] == "image/jpeg", "still in the slot's format"
    job = await _job(booth, late.headers["x-job-id"])
    assert job["status"] == "succeeded", job
    assert job["provider_notes"]["shape_skipped"] == "deadline", job["provider_notes"]
    assert len(fake.received) == 2, "one provider call per photo"
