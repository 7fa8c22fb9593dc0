"""Settings saved during the event never fail a running job (issue 31, class 7): the real OpenAI tab and
SDK against the loopback OpenAI fake; while a slow edit is in flight the operator saves settings (several
kinds of change), and the job still gets its image. The replaced providers close after their last job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boothgate.web.app import create_app
from tests.conftest import Booth, booth_settings, make_jpeg
from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.fakes.server import serve

DEADLINE = 12.0
_seed = iter(range(7_000, 90_000))


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeOpenAI, str]]:
    running = FakeOpenAI(api_key=API_KEY)
    with serve(running.app) as url:
        yield running, url + "/v1"


@pytest.fixture(scope="module")
def booth(tmp_path_factory: pytest.TempPathFactory, fake: tuple[FakeOpenAI, str]) -> Iterator[Booth]:
    tmp: Path = tmp_path_factory.mktemp("settings-during-jobs")
    settings = booth_settings(tmp, deadline_seconds=DEADLINE, openai_api_key=API_KEY, openai_base_url=fake[1])
    app = create_app(settings, {})
    with serve(app) as url:
        yield Booth(url, settings, app)


async def _wait_for_call(fake: FakeOpenAI, count: int, timeout: float = 10.0) -> None:
    until = time.monotonic() + timeout
    while len(fake.received) < count:
        assert time.monotonic() < until, "the provider was never called"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    "change",
    [{"rehearsal_concurrency": 2}, {"provider_input_pixels": 1_500_000}, {"language": "en"}],
)
async def test_a_settings_save_during_a_slow_openai_job_leaves_it_to_succeed(
    booth: Booth, fake: tuple[FakeOpenAI, str], change: dict[str, Any]
) -> None:
    running = fake[0]
    running.reset()
    running.slow_seconds = 2.5
    running.push("slow")
    await booth.configure("openai", 1, kind="prompt", prompt="as a pirate")
    job = asyncio.create_task(booth.post("openai", 1, make_jpeg(800, 600, seed=next(_seed))))
    await _wait_for_call(running, 1)
    async with booth.api() as client:
        saved = await client.put("/api/settings", json=change)
    assert saved.status_code == 200, saved.text
    answer = await job
    assert answer.status == 200, answer.body[:300]
    assert answer.headers.get("content-type", "").startswith("image/")
    registry = booth.services.registry
    until = time.monotonic() + 5.0
    while registry.retired and time.monotonic() < until:  # noqa: ASYNC110 (state of the server)
        await asyncio.sleep(0.02)
    assert registry.retired == 0, "the replaced providers close after their last job"
    after = await booth.post("openai", 1, make_jpeg(800, 600, seed=next(_seed)))
    assert after.status == 200
