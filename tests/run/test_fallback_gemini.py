"""Gemini (the real google-genai SDK against the loopback fake) as the primary, `local/1` as its fallback:
a hanging Gemini, a Gemini whose address nobody listens on, and the hedge that starts the fallback early.

Each test starts its own boothgate (the breaker and the run-time book are per server).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.cli.booth_client import BoothAnswer
from boothgate.web.app import create_app
from tests.conftest import ADMIN, Booth, booth_settings
from tests.fakes.server import free_port, serve
from tests.fallback_support import TimedGeminiFake, is_black_and_white, local_slot
from tests.gemini_support import PHOTO_TINT, encode, gradient

KEY = "fallback-test-gemini-key"
DEADLINE = 6.0
SLACK = 0.5  # the answer's way back to the booth

_seed = iter(range(1, 10_000))


def photo() -> bytes:
    tint = tuple(max(0, c - next(_seed) % 11) for c in PHOTO_TINT)
    return encode(gradient(900, 600, tint))  # type: ignore[arg-type]


@pytest.fixture
def fake() -> Iterator[tuple[TimedGeminiFake, str]]:
    gemini = TimedGeminiFake(api_key=KEY)
    with serve(gemini.app) as url:
        yield gemini, url


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    stack: list[Any] = []

    def run(gemini_base_url: str, **overrides: Any) -> Booth:
        values: dict[str, Any] = {
            "deadline_seconds": DEADLINE,
            "gemini_api_key": KEY,
            "gemini_base_url": gemini_base_url,
            "local_budget_seconds": 1.0,
            "fallback_margin_seconds": 0.5,
        }
        values.update(overrides)
        settings = booth_settings(tmp_path, **values)
        app = create_app(settings, {})  # the built-in modules: real Gemini SDK, real offline engine
        context = serve(app)
        url = context.__enter__()
        stack.append(context)
        return Booth(url, settings, app)

    yield run
    for context in reversed(stack):
        context.__exit__(None, None, None)


async def gemini_slot(booth: Booth, number: int, fallback: str | None = "local/1") -> None:
    await booth.configure("gemini", number, kind="prompt", prompt="as pirates", fallback=fallback or "")


async def post(booth: Booth, number: int) -> tuple[BoothAnswer, float, float]:
    started = time.monotonic()
    answer = await booth.post("gemini", number, photo())
    return answer, started, time.monotonic() - started


async def test_hanging_gemini_is_answered_by_the_local_fallback_before_the_deadline(
    start: Any, fake: tuple[TimedGeminiFake, str]
) -> None:
    gemini, url = fake
    gemini.default_mode, gemini.slow_seconds = "slow", 60  # Gemini accepts the request and never answers
    booth = start(url)
    await local_slot(booth)
    await gemini_slot(booth, 1)

    answer, _, elapsed = await post(booth, 1)

    assert answer.status == 200, answer.body[:300]
    assert elapsed < DEADLINE + SLACK
    assert is_black_and_white(answer.body)  # the local noir style, not Gemini's (inverted colour) image
    job = await booth.job(answer)
    assert job["served_by"] == "local/1"
    assert job["fallback_reason"] == "slow"
    assert job["status"] == "succeeded" and job["provider"] == "gemini" and job["slot"] == 1
    assert len(gemini.received) == 1  # Gemini was asked once ...
    deadline = time.monotonic() + 3
    while not gemini.gone and time.monotonic() < deadline:  # ... and the call was hung up on, not left running
        await _pause()
    assert gemini.gone


async def test_the_hedge_starts_the_fallback_before_the_slow_primary_finishes(
    start: Any, fake: tuple[TimedGeminiFake, str]
) -> None:
    gemini, url = fake
    gemini.default_mode, gemini.slow_seconds = "slow", 60
    booth = start(url, local_budget_seconds=2.0, fallback_margin_seconds=0.5)
    await local_slot(booth)
    await gemini_slot(booth, 2)

    answer, posted, _ = await post(booth, 2)

    assert answer.status == 200
    [arrived] = gemini.arrived
    assert arrived - posted < DEADLINE - 2.0 - 0.5, "Gemini had the photo before the hedge was due"
    job = await booth.job(answer)
    assert job["served_by"] == "local/1" and job["fallback_reason"] == "slow"
    # The hedge, not a hand-over after a failure: the fallback ran alongside a Gemini that was still working.
    assert job["provider_notes"]["fallback_route"] == ["gemini/2: slow, local/1 started alongside"]
    # On the server's own clock (no booth-side stopwatch): the offline engine started neither at once nor at
    # the deadline. Its start is the job's end less the engine's own run and the finish step; the hedge is due
    # at deadline − its 2 s budget − the 0.5 s margin = 3.5 s, so "Gemini held the photo for at least 1 s
    # first" and "it had its whole budget before the deadline" both leave seconds of slack.
    timings = job["timings"]
    fallback_started = job["total_seconds"] - job["provider_seconds"] - timings["finish"]
    assert fallback_started >= 1.0, f"the fallback started at once, not at the hedge: {timings}"
    assert fallback_started <= DEADLINE - 2.0, f"the fallback was left less than its budget: {timings}"
    assert job["total_seconds"] <= DEADLINE, timings
    await _wait_for(lambda: bool(gemini.gone))
    assert gemini.gone[0] > arrived  # the slow run was cancelled ...
    assert len(gemini.received) == 1  # ... and never asked again


async def test_a_fast_gemini_serves_and_the_fallback_is_not_used(start: Any, fake: tuple[TimedGeminiFake, str]) -> None:
    url = fake[1]
    booth = start(url)
    await local_slot(booth)
    await gemini_slot(booth, 3)

    answer, _, _ = await post(booth, 3)

    assert answer.status == 200
    assert not is_black_and_white(answer.body)
    job = await booth.job(answer)
    assert job["served_by"] == "gemini/3" and job["fallback_reason"] is None
    assert len(fake[0].received) == 1 and not fake[0].gone, "Gemini answered: nothing was cancelled"


async def test_closed_port_goes_to_the_fallback_and_marks_gemini_offline(start: Any) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens here: connections are refused
    booth = start(closed, breaker_failures=2, breaker_open_seconds=30)
    await local_slot(booth)
    await gemini_slot(booth, 4)
    await gemini_slot(booth, 5, fallback=None)

    first, _, elapsed = await post(booth, 4)
    assert first.status == 200
    assert elapsed < 5.0  # straight to the fallback, not after Gemini's retries ran out of time
    job = await booth.job(first)
    assert (job["served_by"], job["fallback_reason"]) == ("local/1", "provider_unreachable")
    assert not (await health(booth))["gemini"]["offline"]  # one failure is not yet "offline"

    second, _, _ = await post(booth, 4)
    assert second.status == 200
    gemini_health = (await health(booth))["gemini"]
    assert gemini_health["offline"] is True and gemini_health["retry_in_seconds"] > 0
    assert gemini_health["failure"] == "ConnectError"

    # While offline, jobs skip Gemini: straight to the fallback, or a fast 503 for a slot without one.
    third, _, _ = await post(booth, 4)
    assert third.status == 200
    assert (await booth.job(third))["fallback_reason"] == "offline"
    alone, _, _ = await post(booth, 5)
    assert alone.status == 503 and alone.json()["error"] == "provider_offline"

    async with httpx.AsyncClient(base_url=booth.url, auth=ADMIN) as client:
        page = await client.get("/tabs/gemini?lang=en")
    assert "badge-offline" in page.text and "Offline" in page.text
    assert (await health(booth))["local"]["offline"] is False


async def health(booth: Booth) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=booth.url) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    providers: dict[str, Any] = response.json()["providers"]
    return providers


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.05)


async def _wait_for(condition: Any, seconds: float = 3.0) -> None:
    until = time.monotonic() + seconds
    while not condition() and time.monotonic() < until:
        await _pause()
