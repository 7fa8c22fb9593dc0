"""Figures for the fallback chain (not a test: `python -m tests.measure_fallback [posts]`).

Posts photos to a Gemini slot whose fallback is `local/1`, with the real google-genai SDK pointed at
(1) the loopback fake told to hang, and (2) a closed port, all other settings at their defaults
(deadline 48 s, local budget 5 s, margin 2 s, breaker after 3). Prints each answer's time and who served.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from boothgate.web.app import create_app
from tests.conftest import Booth, booth_settings
from tests.fakes.server import free_port, serve
from tests.fallback_support import TimedGeminiFake, local_classes, local_slot
from tests.gemini_support import encode, gradient

KEY = "measure-key"


async def measure(label: str, base_url: str, posts: int) -> None:
    settings = booth_settings(
        Path(tempfile.mkdtemp()), deadline_seconds=48.0, gemini_api_key=KEY, gemini_base_url=base_url
    )
    with serve(create_app(settings, local_classes())) as url:
        booth = Booth(url, settings, None)
        await local_slot(booth)
        await booth.configure("gemini", 1, kind="prompt", prompt="x", fallback="local/1")
        times, served = [], []
        for i in range(posts):
            started = time.monotonic()
            answer = await booth.post("gemini", 1, encode(gradient(1200, 800, (200, 40 + i, 40))))
            times.append(time.monotonic() - started)
            async with booth.api() as client:
                job = (await client.get(f"/api/jobs/{answer.headers['x-job-id']}")).json()
            served.append(f"{answer.status} {job['served_by']} ({job['fallback_reason']})")
        shown = ", ".join(f"{t:.2f}" for t in times)
        print(f"{label}: answers after {shown} s (median {statistics.median(times):.2f} s); {'; '.join(served)}")


async def main(posts: int) -> None:
    fake = TimedGeminiFake(api_key=KEY)
    fake.default_mode, fake.slow_seconds = "slow", 120
    with serve(fake.app) as fake_url:
        await measure("Gemini hangs", fake_url, posts)
    await measure("Gemini's port closed", f"http://127.0.0.1:{free_port()}", posts + 2)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
