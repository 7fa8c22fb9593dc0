"""The circuit breaker of offline detection, on a clock the test moves, and the reachability transport
against a real closed port and a real listening fake."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from boothgate.run.offline import Breaker, Probe, ReachTransport, context_with
from boothgate.settings import Settings, get_settings
from tests.fakes.server import free_port, serve


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings() -> Settings:
    return get_settings(breaker_failures=3, breaker_window_seconds=60, breaker_open_seconds=30)


def test_repeated_failures_within_the_window_open_the_breaker_then_it_is_tried_again() -> None:
    clock = Clock()
    breaker = Breaker(settings, clock)
    for _ in range(2):
        breaker.unreachable("gemini")
        clock.now += 10
    assert breaker.allows("gemini") and not breaker.offline("gemini")
    breaker.unreachable("gemini", "ConnectError")
    assert breaker.offline("gemini") and not breaker.allows("gemini")
    assert breaker.describe("gemini") == {"offline": True, "retry_in_seconds": 30.0, "failure": "ConnectError"}
    assert breaker.allows("local")  # per provider

    clock.now += 31
    assert breaker.allows("gemini")  # tried again ...
    breaker.unreachable("gemini")
    assert breaker.offline("gemini")  # ... and one more failure opens it at once

    clock.now += 31
    assert breaker.allows("gemini")
    breaker.reached("gemini")
    assert breaker.describe("gemini") == {"offline": False}
    breaker.unreachable("gemini")
    assert not breaker.offline("gemini")  # closed again: it takes three failures anew


def test_failures_spread_wider_than_the_window_do_not_open_it() -> None:
    clock = Clock()
    breaker = Breaker(settings, clock)
    for _ in range(5):
        breaker.unreachable("turbotext")
        clock.now += 40
    assert not breaker.offline("turbotext")


def test_an_answer_of_any_kind_counts_as_reached() -> None:
    clock = Clock()
    breaker = Breaker(settings, clock)
    breaker.unreachable("gemini")
    breaker.unreachable("gemini")
    probe = Probe("gemini")
    probe.reached = True
    breaker.record(probe)
    breaker.unreachable("gemini")
    assert not breaker.offline("gemini")


async def _get(client: httpx.AsyncClient, url: str, probe: Probe) -> int:
    async def call() -> int:
        return (await client.get(url)).status_code

    return await asyncio.create_task(call(), context=context_with(probe))


async def test_the_transport_reports_refused_connections_and_answers() -> None:
    app = Starlette(routes=[Route("/", lambda _: PlainTextResponse("busy", status_code=503))])
    async with httpx.AsyncClient(transport=ReachTransport()) as client:
        refused = Probe("gemini")
        with pytest.raises(httpx.ConnectError):
            await _get(client, f"http://127.0.0.1:{free_port()}/", refused)
        assert refused.unreachable.is_set() and not refused.reached and refused.failure == "ConnectError"

        with serve(app) as url:
            answered = Probe("gemini")
            assert await _get(client, url + "/", answered) == 503
        assert answered.reached and not answered.unreachable.is_set()

        # Outside a probed run (an admin's model list, a webhook) nothing is reported and nothing breaks.
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{free_port()}/")
