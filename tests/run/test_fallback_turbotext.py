"""A polling provider losing the hedge: Turbotext (the real provider against its loopback fake) never
finishes, `local/1` answers, and Turbotext is not polled again once the booth has its answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from boothgate.providers.turbotext import TurbotextProvider
from boothgate.web.app import create_app
from tests.conftest import Booth, booth_settings, make_jpeg
from tests.fakes.server import free_port, serve
from tests.fakes.turbotext import FakeTurbotext
from tests.fallback_support import LocalStandIn, is_black_and_white, local_classes, local_slot

DEADLINE = 5.0


@pytest.fixture
def fake() -> Iterator[tuple[FakeTurbotext, str]]:
    turbotext = FakeTurbotext()
    with serve(turbotext.app) as url:
        yield turbotext, url


@pytest.fixture
def booth(tmp_path: Path, fake: tuple[FakeTurbotext, str]) -> Iterator[Booth]:
    port = free_port()
    settings = booth_settings(
        tmp_path,
        public_base_url=f"http://127.0.0.1:{port}",
        turbotext_api_key="tt-test-key",
        turbotext_base_url=f"{fake[1]}/api_ai",
        turbotext_poll_interval_seconds=0.1,
        deadline_seconds=DEADLINE,
        local_budget_seconds=1.0,
        fallback_margin_seconds=0.5,
    )
    LocalStandIn.started.clear()
    app = create_app(settings, {"turbotext": TurbotextProvider, **local_classes()})
    with serve(app, port=port) as url:
        yield Booth(url, settings, app)


async def test_a_turbotext_job_that_never_finishes_loses_to_the_fallback_and_is_not_polled_again(
    booth: Booth, fake: tuple[FakeTurbotext, str]
) -> None:
    turbotext = fake[0]
    turbotext.mode = "slow"  # queued, then "reconnect" for ever
    await local_slot(booth)
    await booth.configure("turbotext", 1, kind="prompt", prompt="neon city", fallback="local/1")

    answer = await booth.post("turbotext", 1, make_jpeg(640, 480, seed=21))
    answered = time.monotonic()

    assert answer.status == 200, answer.body[:300]
    assert is_black_and_white(answer.body)
    async with booth.api() as client:
        job = (await client.get(f"/api/jobs/{answer.headers['x-job-id']}")).json()
    assert (job["served_by"], job["fallback_reason"]) == ("local/1", "slow")
    assert len(turbotext.calls("create_queue")) == 1 and turbotext.calls("get_result")  # it was polled ...
    await asyncio.sleep(0.5)
    assert turbotext.incoming_after(answered) == []  # ... and not once after the booth had its answer
