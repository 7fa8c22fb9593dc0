"""The must-show: `POST /booth/deepseek/N` with the real `openai` SDK against the fake DeepSeek and the
real Gemini provider (google-genai SDK) against the fake Gemini, everything on loopback sockets.

The instruction DeepSeek writes is what Gemini receives, word for word; when DeepSeek fails in any way,
Gemini receives its own template with the slot's prompt, and the booth still gets its result in time.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from boothgate.cli.booth_client import BoothAnswer
from tests.conftest import Booth, Tab
from tests.fakes.deepseek import INSTRUCTION, FakeDeepSeek
from tests.fakes.gemini import GeminiFake
from tests.gemini_support import PHOTO_TINT, REFERENCE_TINT, encode, gradient, looks_inverted, mean_colour

DEADLINE = 4.0
STAGE = 1.0
SLACK = 0.5  # the answer's trip back to the booth


TAB = "deepseek"  # the module's server and fakes (Gemini's renders): `tab_rig` in tests/conftest.py
TAB_SETTINGS = {"deadline_seconds": DEADLINE, "deepseek_stage_seconds": STAGE}


@pytest.fixture
def fakes(tab: Tab) -> tuple[FakeDeepSeek, GeminiFake]:
    """DeepSeek's fake and the Gemini renderer's, reset for this test."""
    return tab.fake, tab.renderer


@pytest.fixture
def booth(tab: Tab) -> Booth:
    return tab.booth


_seed = iter(range(1, 10_000))
REFERENCE = encode(gradient(600, 900, REFERENCE_TINT))


def photo() -> bytes:
    tint = tuple(max(0, c - next(_seed) % 7) for c in PHOTO_TINT)
    return encode(gradient(1200, 900, tint))  # type: ignore[arg-type]


async def post(booth: Booth, number: int) -> tuple[BoothAnswer, float]:
    started = time.monotonic()
    answer = await booth.post("deepseek", number, photo())
    return answer, time.monotonic() - started


async def notes_of(booth: Booth, answer: BoothAnswer) -> dict[str, Any]:
    async with booth.api() as client:
        response = await client.get(f"/api/jobs/{answer.headers['x-job-id']}")
    assert response.status_code == 200
    job: dict[str, Any] = response.json()
    return {**job["provider_notes"], "job_cost_usd": job["cost_usd"]}


async def test_the_instruction_from_deepseek_is_what_gemini_renders(booth: Booth, fakes: Any) -> None:
    deepseek, gemini = fakes
    await booth.configure("deepseek", 1, kind="background", prompt="on a sunny beach")
    await booth.set_reference("deepseek", 1, REFERENCE)

    answer, seconds = await post(booth, 1)

    assert answer.status == 200, answer.body[:300]
    assert seconds < DEADLINE + SLACK
    [asked] = deepseek.received
    [drawn] = gemini.received
    assert drawn.text == INSTRUCTION, "Gemini gets DeepSeek's instruction verbatim, not its template"
    assert [(i.width, i.height) for i in asked.images] == [(i.width, i.height) for i in drawn.images]
    assert [i.data for i in asked.images] == [i.data for i in drawn.images]
    # the fake Gemini's result is derived from what it received: the photo and the reference both went out
    assert looks_inverted(mean_colour(answer.body, (0.05, 0.1, 0.45, 0.9)), PHOTO_TINT)
    assert looks_inverted(mean_colour(answer.body, (0.55, 0.1, 0.95, 0.9)), REFERENCE_TINT)
    notes = await notes_of(booth, answer)
    assert notes["deepseek"]["instruction"] == INSTRUCTION
    assert notes["renderer"]["name"] == "gemini"
    assert notes["renderer"]["model"] == booth.settings.gemini_model
    assert notes["renderer"]["attempts"] == 1
    expected = notes["deepseek"]["cost_usd"] + booth.settings.gemini_price_per_image_usd
    assert notes["job_cost_usd"] == pytest.approx(expected)


async def test_renderer_options_reach_gemini(booth: Booth, fakes: Any) -> None:
    _, gemini = fakes
    options = {"renderer": "gemini", "renderer_options": {"aspect_ratio": "1:1"}}
    saved = await booth.configure("deepseek", 2, kind="prompt", prompt="pop art", options=options)
    assert saved["options"]["renderer_options"]["aspect_ratio"] == "1:1"

    answer, _ = await post(booth, 2)

    assert answer.status == 200
    assert gemini.last.image_config["aspectRatio"] == "1:1"
    async with booth.api() as client:
        bad = await client.put("/api/slots/deepseek/2", json={"options": {"renderer_options": {"aspect_ratio": "7:1"}}})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["options", "renderer_options", "aspect_ratio"]


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("slow", "timeout"),
        ("blank_lines_forever", "timeout"),
        ("balance", "balance_empty"),
        ("rate_limited", "rate_limited"),
        ("unavailable", "unavailable"),
        ("malformed", "bad_answer"),
        ("declined", "refused"),
    ],
)
async def test_every_deepseek_failure_renders_the_slot_prompt_in_time(
    booth: Booth, fakes: Any, mode: str, code: str
) -> None:
    deepseek, gemini = fakes
    deepseek.slow_seconds = 3 * STAGE
    if mode == "blank_lines_forever":
        deepseek.push("blank_lines")
        deepseek.blank_lines, deepseek.blank_interval_seconds = 200, 0.05
    else:
        deepseek.push(mode)
    await booth.configure("deepseek", 3, kind="background", prompt="under the northern lights")
    await booth.set_reference("deepseek", 3, REFERENCE)

    answer, seconds = await post(booth, 3)

    assert answer.status == 200, answer.body[:300]
    assert seconds < DEADLINE + SLACK
    [drawn] = gemini.received
    assert drawn.text != INSTRUCTION
    assert "under the northern lights" in drawn.text
    assert drawn.text.startswith(booth.settings.gemini_template_background.split("{prompt}")[0].strip()[:60])
    notes = await notes_of(booth, answer)
    assert notes["deepseek"]["status"] == "fallback"
    assert notes["deepseek"]["code"] == code
    assert notes["deepseek"]["instruction"] is None
    assert notes["deepseek"]["seconds"] <= STAGE + 0.5  # the stage's own clock, 0.5 s of slack
    assert looks_inverted(mean_colour(answer.body, (0.05, 0.1, 0.45, 0.9)), PHOTO_TINT)
