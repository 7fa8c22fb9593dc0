"""Graceful drain on SIGTERM (issue 27): a real `boothgate serve` with BOOTHGATE_DRAIN_SECONDS. While it
drains, /health answers 503 (a load balancer takes the node out), booths still arriving are answered, every
booth in flight gets its result, and the node exits by itself; then it accepts no connection."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import UPLOAD_PASSWORD, make_jpeg, post_photo_async
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import serve
from tests.nodes.cluster import GEMINI_KEY, configure_slot, ready, start_node

pytestmark = pytest.mark.slow
BOOTHS = 4


@pytest.fixture
def gemini() -> Iterator[tuple[GeminiFake, str]]:
    fake = GeminiFake(api_key=GEMINI_KEY)
    with serve(fake.app) as url:
        yield fake, url


async def test_sigterm_drains_then_answers_every_booth_in_flight(
    tmp_path: Path, gemini: tuple[GeminiFake, str]
) -> None:
    fake, url = gemini
    node = start_node("a", tmp_path, url, drain_seconds=3)
    try:
        await ready(node)
        await configure_slot(node.base)
        fake.slow_seconds, fake.default_mode = 2.0, "slow"
        booth_url = f"{node.base}/booth/gemini/1"
        booths = [
            asyncio.create_task(post_photo_async(booth_url, make_jpeg(seed=40 + i), UPLOAD_PASSWORD, timeout=60))
            for i in range(BOOTHS)
        ]
        until = time.monotonic() + 30
        while not fake.received:
            assert time.monotonic() < until, "no photo reached the provider"
            await asyncio.sleep(0.02)
        node.signal(signal.SIGTERM)
        async with httpx.AsyncClient(timeout=5) as client:
            health = await client.get(f"{node.base}/health")
            while health.status_code == 200:  # the signal is handled within a tick
                assert time.monotonic() < until, "the node never said it drains"
                await asyncio.sleep(0.05)
                health = await client.get(f"{node.base}/health")
        assert health.status_code == 503 and health.json()["draining"] is True, health.text
        # A booth the balancer had already sent here is still answered while the node drains.
        late_comer = await post_photo_async(booth_url, make_jpeg(seed=99), UPLOAD_PASSWORD, timeout=60)
        answers = await asyncio.gather(*booths)
        assert [a.status for a in [*answers, late_comer]] == [200] * (BOOTHS + 1), [a.body[:200] for a in answers]
        exit_code = await node.wait(60)
        assert exit_code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), (exit_code, node.log_text())
        with pytest.raises(httpx.ConnectError):  # gone: a balancer's retry goes to another node
            async with httpx.AsyncClient(timeout=2) as client:
                await client.get(f"{node.base}/health")
    finally:
        node.stop()
