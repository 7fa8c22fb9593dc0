"""Answers to the `openai` SDK are bounded too (issue 31, class 1): the real OpenAI and DeepSeek tabs, the real
SDK, pointed at a hostile loopback service (tests/fakes/hostile.py) that answers a gzip bomb or an answer
that never ends.

The SDK would build its own HTTP client, outside the bounded transport every other provider call goes
through; it gets ours. An OpenAI answer past the limit is the provider's failure (502) and the slot's
fallback serves; a DeepSeek answer past it ends the instruction stage, and the slot renders with its own
prompt. Python's peak allocation meanwhile stays within 100 MB of idle (the server runs in this process,
tracemalloc sees it), and another booth's answer is unchanged.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boothgate.web.app import create_app
from tests.conftest import Booth, BoothAnswer, ScriptedProvider, booth_settings, make_jpeg
from tests.fakes.hostile import Elsewhere, Hostile
from tests.fakes.server import serve

DEADLINE = 8.0
ATTACKS = ("gzip_bomb", "endless")
PEAK_SLACK = 100 << 20

_seed = iter(range(900, 100_000))


def photo() -> bytes:
    return make_jpeg(640, 480, seed=next(_seed))


@pytest.fixture(scope="module")
def elsewhere() -> Elsewhere:
    return Elsewhere()


@pytest.fixture(scope="module")
def hostile_url(elsewhere: Elsewhere) -> Iterator[tuple[Hostile, str]]:
    hostile = Hostile(inflated_bytes=300 << 20)
    hostile.bomb()  # built once, before anything is measured
    with serve(hostile.app) as url, serve(elsewhere.app) as other:
        hostile.redirect_to = other
        yield hostile, url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, hostile_url: tuple[Hostile, str]) -> Iterator[Booth]:
    tmp: Path = tmp_path_factory.mktemp("hostile-sdk")
    url = hostile_url[1]
    settings = booth_settings(
        tmp,
        deadline_seconds=DEADLINE,
        fallback_default_seconds=2.0,
        gemini_api_key="hostile-sdk-gemini-key",
        gemini_base_url=url,
        openai_api_key="sk-hostile-sdk-openai-key",
        openai_base_url=f"{url}/openai",
        deepseek_api_key="sk-hostile-sdk-deepseek-key",
        deepseek_base_url=f"{url}/deepseek",
    )
    app = create_app(settings, {"fal": ScriptedProvider})  # the real OpenAI, DeepSeek, Gemini tabs; a scripted fallback
    with serve(app) as url_:
        yield Booth(url_, settings, app, calls=ScriptedProvider.calls)


@pytest.fixture
def hostile(hostile_url: tuple[Hostile, str]) -> Iterator[Hostile]:
    hostile = hostile_url[0]
    hostile.mode = "image"
    hostile.sdk_received.clear()
    yield hostile
    hostile.sdk_modes.update(openai="image", deepseek="image")


async def measured(*posts: Any) -> tuple[list[BoothAnswer], int]:
    """The answers of `posts`, run at once, and the peak of Python's allocations over idle meanwhile."""
    tracemalloc.start()
    try:
        idle, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        answers = await asyncio.gather(*posts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return list(answers), peak - idle


async def job_notes(booth: Booth, job_id: str) -> dict[str, Any]:
    async with booth.api() as client:
        response = await client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200
    notes: dict[str, Any] = response.json()["provider_notes"]
    return notes


@pytest.mark.parametrize("attack", ATTACKS)
async def test_an_openai_answer_past_the_limit_is_refused_and_the_fallback_serves(
    server: Booth, hostile: Hostile, attack: str
) -> None:
    base = 1 + 4 * ATTACKS.index(attack)
    await server.configure("fal", base + 3, kind="prompt", prompt="x", options={"mode": "invert"})
    await server.configure("openai", base, kind="prompt", prompt="as a pirate")
    await server.configure("openai", base + 1, kind="prompt", prompt="as a pirate", fallback=f"fal/{base + 3}")
    await server.configure("gemini", base + 2, kind="prompt", prompt="as a pirate")
    # the other booth first, as it is when nothing goes wrong
    before = await server.post("gemini", base + 2, photo())
    assert before.status == 200, before.body[:300]
    hostile.sdk_modes["openai"] = attack
    calls = len(ScriptedProvider.calls)

    # one bombed booth at a time (each answer may hold up to its limit), beside a booth of another tab
    (alone, other), peak = await measured(
        server.post("openai", base, photo()), server.post("gemini", base + 2, photo())
    )
    answered_alone = hostile.sdk_received.count("openai")
    (served,), peak_served = await measured(server.post("openai", base + 1, photo()))

    assert peak < PEAK_SLACK, f"peak {peak >> 20} MB over idle"
    assert alone.status == 502, alone.body[:300]
    assert alone.json()["error"] == "provider_answer_too_large"
    assert served.status == 200, served.body[:300]
    assert len(ScriptedProvider.calls) == calls + 1, "the fallback served the second booth"
    assert other.status == 200 and other.headers["content-type"] == before.headers["content-type"]
    assert answered_alone == 1, "a refused answer is not retried"
    assert peak_served < PEAK_SLACK, f"peak {peak_served >> 20} MB over idle"


@pytest.mark.parametrize("attack", ATTACKS)
async def test_a_deepseek_answer_past_the_limit_ends_the_stage_and_the_slot_renders_with_its_prompt(
    server: Booth, hostile: Hostile, attack: str
) -> None:
    number = 10 + ATTACKS.index(attack)
    await server.configure("deepseek", number, kind="prompt", prompt="as a pirate", options={"renderer": "gemini"})
    await server.configure("gemini", number + 2, kind="prompt", prompt="as a pirate")
    hostile.sdk_modes["deepseek"] = attack

    (rendered, other), peak = await measured(
        server.post("deepseek", number, photo()), server.post("gemini", number + 2, photo())
    )

    assert peak < PEAK_SLACK, f"peak {peak >> 20} MB over idle"
    assert rendered.status == 200, rendered.body[:300]
    notes = (await job_notes(server, rendered.headers["x-job-id"]))["deepseek"]
    assert notes["status"] == "fallback" and notes["code"] == "bad_answer", notes
    assert "larger than" in notes["reason"], notes
    assert other.status == 200, other.body[:300]


@pytest.mark.parametrize("tab", ["openai", "deepseek"])
async def test_a_redirect_elsewhere_or_a_corrupt_answer_through_the_sdk_is_refused(
    server: Booth, hostile: Hostile, elsewhere: Elsewhere, tab: str
) -> None:
    """The bounded client keeps class 5 for the SDK's calls: a 307 to another origin carries neither the photo
    nor the key there; compressed data that does not inflate is a bad answer, not a connection to retry."""
    number = 14 if tab == "openai" else 16
    options = {"renderer": "gemini"} if tab == "deepseek" else {}
    await server.configure(tab, number, kind="prompt", prompt="as a pirate", options=options)
    elsewhere.received.clear()
    for mode, code in (("redirect_307", "provider_redirect"), ("corrupt_gzip", "provider_bad_response")):
        hostile.sdk_modes[tab] = mode
        answer = await server.post(tab, number, photo())
        if tab == "openai":
            assert answer.status == 502, answer.body[:300]
            assert answer.json()["error"] == code, mode
        else:  # the stage ends, the slot renders with its own prompt
            assert answer.status == 200, answer.body[:300]
            notes = (await job_notes(server, answer.headers["x-job-id"]))["deepseek"]
            assert notes["code"] == "bad_answer", (mode, notes)
    assert elsewhere.received == [], "nothing may reach the other origin"
