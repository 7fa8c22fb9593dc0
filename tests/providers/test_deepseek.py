"""The DeepSeek tab through the whole booth path: the real `openai` SDK against a loopback DeepSeek.

The renderer here is a scripted provider on the gemini tab that records the instruction it gets
(`test_deepseek_gemini.py` does the same with the real Gemini provider and its fake).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from boothgate.providers.base import ProviderRequest, ProviderResult
from boothgate.settings import DEEPSEEK_SYSTEM_PROMPTS
from tests.conftest import KeyedProvider, ScriptedProvider, Tab, make_jpeg, open_image
from tests.fakes.deepseek import API_KEY, INSTRUCTION, USAGE

STAGE_SECONDS = 1.0
DEADLINE_SECONDS = 4.0


class RecordingRenderer(ScriptedProvider):
    """The gemini tab's stand-in: records the instruction and prompt of every render."""

    name = "gemini"
    label = "Gemini"
    renders: ClassVar[list[ProviderRequest]] = []

    async def run(self, request: ProviderRequest) -> ProviderResult:
        self.renders.append(request)
        return await super().run(request)


Start = Callable[..., Tab]


@pytest.fixture
def start(tab_factory: Any) -> Iterator[Start]:
    """Start the DeepSeek tab against its fake (`running_tab` in tests/conftest.py) with chosen settings,
    the recording renderer on the gemini tab."""

    def start_tab(**overrides: Any) -> Tab:
        values = {"deepseek_stage_seconds": STAGE_SECONDS, "deadline_seconds": DEADLINE_SECONDS, **overrides}
        renderers = {"gemini": RecordingRenderer, "turbotext": KeyedProvider}
        tab: Tab = tab_factory("deepseek", renderers, renderer_tab=None, **values)
        return tab

    RecordingRenderer.renders.clear()
    RecordingRenderer.calls.clear()  # the scripted provider's record of every run (what it was given)
    yield start_tab
    RecordingRenderer.renders.clear()
    RecordingRenderer.calls.clear()


async def test_the_instruction_deepseek_writes_reaches_the_renderer(start: Start) -> None:
    tab = start()
    booth, deepseek = tab.booth, tab.fake
    await booth.configure("deepseek", 1, kind="background", prompt="on a sunny beach", options={})
    await booth.set_reference("deepseek", 1, make_jpeg(640, 480, seed=9))

    answer = await booth.post("deepseek", 1, make_jpeg(1600, 1200, seed=1))

    assert answer.status == 200, answer.body[:300]
    assert open_image(answer.body).format == "JPEG"
    [render] = RecordingRenderer.renders
    assert render.instruction == INSTRUCTION
    assert render.prompt == "on a sunny beach"
    assert render.reference is not None
    # on the wire: the key, the model, JSON mode without thinking, both images in the renderer's order
    [sent] = deepseek.received
    assert sent.authorization == f"Bearer {API_KEY}"
    assert sent.model == "deepseek-flash"
    assert sent.body["response_format"] == {"type": "json_object"}
    assert sent.body["thinking"] == {"type": "disabled"}
    assert sent.system.startswith(DEEPSEEK_SYSTEM_PROMPTS["background"]) and "JSON" in sent.system
    assert "on a sunny beach" in sent.text and "background" in sent.text
    assert [(i.mime, i.width, i.height) for i in sent.images] == [
        (render.photo.mime, render.photo.width, render.photo.height),
        (render.reference.mime, render.reference.width, render.reference.height),
    ]
    assert sent.images[0].data == render.photo.data, "DeepSeek reads the same photo the renderer draws from"
    # the job: counted under DeepSeek, the instruction and the renderer's share in its notes
    job = await booth.job(answer.headers["x-job-id"])
    notes = job["provider_notes"]
    assert job["provider"] == "deepseek"
    assert notes["deepseek"]["status"] == "written"
    assert notes["deepseek"]["instruction"] == INSTRUCTION
    assert notes["deepseek"]["people"] == 2
    assert notes["deepseek"]["usage"]["prompt_tokens"] == USAGE["prompt_tokens"]
    assert notes["renderer"]["name"] == "gemini"
    assert notes["renderer"]["model"] == "scripted"
    deepseek_cost = (1200 * 0.30 + 150 * 1.20) / 1_000_000
    assert notes["deepseek"]["cost_usd"] == pytest.approx(deepseek_cost)
    assert job["cost_usd"] == pytest.approx(deepseek_cost + 0.01)
    stats = await booth.stats()
    assert stats["providers"]["deepseek"]["all_time"]["succeeded"] == 1
    assert stats["providers"]["gemini"]["all_time"]["received"] == 0


FAILURES = [
    ("slow", "timeout"),
    ("blank_lines_forever", "timeout"),
    ("balance", "balance_empty"),
    ("rate_limited", "rate_limited"),
    ("unavailable", "unavailable"),
    ("malformed", "bad_answer"),
    ("not_json", "bad_answer"),
    ("declined", "refused"),
    ("content_filter", "refused"),
    ("invalid_key", "auth"),
]


async def test_every_failure_falls_back_to_the_slot_prompt_within_the_budget(start: Start) -> None:
    tab = start()
    booth, deepseek = tab.booth, tab.fake
    deepseek.slow_seconds = 3 * STAGE_SECONDS
    await booth.configure("deepseek", 2, kind="prompt", prompt="as a watercolour painting")

    for seed, (mode, code) in enumerate(FAILURES, start=100):
        if mode == "blank_lines_forever":
            # DeepSeek keeps a busy connection open with blank lines: every line restarts httpx's read
            # timeout, so only the stage's own clock can stop it
            deepseek.push("blank_lines")
            deepseek.blank_lines, deepseek.blank_interval_seconds = 200, 0.05
        else:
            deepseek.push(mode)
        answer = await booth.post("deepseek", 2, make_jpeg(400, 300, seed=seed))

        assert answer.status == 200, (mode, answer.body[:300])
        assert answer.seconds < DEADLINE_SECONDS, mode
        render = RecordingRenderer.renders[-1]
        assert render.instruction is None, mode
        assert render.prompt == "as a watercolour painting"
        notes = (await booth.job(answer.headers["x-job-id"]))["provider_notes"]["deepseek"]
        assert notes["status"] == "fallback", mode
        assert notes["code"] == code, (mode, notes)
        assert notes["reason"], mode
        assert notes["instruction"] is None
        assert notes["seconds"] <= STAGE_SECONDS + 0.5, (mode, notes["seconds"])  # the stage's own clock
    assert len(deepseek.received) == len(FAILURES)
    assert len(RecordingRenderer.renders) == len(FAILURES)


async def test_blank_lines_before_the_json_are_read_as_an_answer(start: Start) -> None:
    tab = start()
    booth, deepseek = tab.booth, tab.fake
    deepseek.push("blank_lines")
    deepseek.blank_lines, deepseek.blank_interval_seconds = 5, 0.05
    await booth.configure("deepseek", 3, kind="prompt", prompt="pop art")

    answer = await booth.post("deepseek", 3, make_jpeg(seed=3))

    assert answer.status == 200
    assert RecordingRenderer.renders[-1].instruction == INSTRUCTION


async def test_an_empty_balance_shows_on_the_tab_until_deepseek_works_again(start: Start) -> None:
    tab = start()
    booth, deepseek = tab.booth, tab.fake
    await booth.configure("deepseek", 4, kind="prompt", prompt="x")
    deepseek.push("balance")

    assert (await booth.post("deepseek", 4, make_jpeg(seed=41))).status == 200
    message = (await booth.stats())["provider_errors"]["deepseek"]
    assert "balance is empty" in message and "top up" in message
    assert API_KEY not in message

    assert (await booth.post("deepseek", 4, make_jpeg(seed=42))).status == 200
    assert "deepseek" not in (await booth.stats())["provider_errors"]


async def test_the_stage_leaves_the_renderer_at_least_half_the_time(start: Start) -> None:
    tab = start(deepseek_stage_seconds=30.0, deadline_seconds=3.0)
    booth, deepseek = tab.booth, tab.fake
    deepseek.default_mode = "slow"
    await booth.configure("deepseek", 5, kind="prompt", prompt="x")

    answer = await booth.post("deepseek", 5, make_jpeg(seed=5))

    assert answer.status == 200
    notes = (await booth.job(answer.headers["x-job-id"]))["provider_notes"]["deepseek"]
    assert notes["budget_seconds"] <= 1.5
    assert notes["code"] == "timeout"
    # the renderer started with at least the stage's share of the time still left (0.5 s for the hand-over)
    render = RecordingRenderer.calls[-1]
    assert render.deadline_remaining >= notes["budget_seconds"] - 0.5, render


async def test_renderer_options_are_checked_by_the_renderer(start: Start) -> None:
    tab = start()
    booth = tab.booth
    async with booth.api() as client:
        bad = await client.put(
            "/api/slots/deepseek/6", json={"options": {"renderer": "gemini", "renderer_options": {"mode": 3}}}
        )
        unknown = await client.put("/api/slots/deepseek/6", json={"options": {"renderer": "dall-e"}})
        extra = await client.put("/api/slots/deepseek/6", json={"options": {"renderer_options": {"colour": "red"}}})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["options", "renderer_options", "mode"]
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["options", "renderer"]
    assert extra.status_code == 422
    assert extra.json()["detail"][0]["loc"] == ["options", "renderer_options", "colour"]

    saved = await booth.configure("deepseek", 6, prompt="x", options={"renderer_options": {"mode": "png"}})
    assert saved["options"]["renderer"] == "gemini"
    assert saved["options"]["renderer_options"] == {"mode": "png", "delay_seconds": 0.0}
    answer = await booth.post("deepseek", 6, make_jpeg(seed=6))
    assert answer.status == 200
    assert answer.content_type == "image/png", "the renderer ran with the slot's renderer options"


async def test_a_renderer_that_is_not_ready_stops_the_job_before_deepseek_is_paid(start: Start) -> None:
    tab = start()
    booth, deepseek = tab.booth, tab.fake
    await booth.configure("deepseek", 7, prompt="x", options={"renderer": "turbotext"})

    answer = await booth.post("deepseek", 7, make_jpeg(seed=7))

    assert answer.status == 503
    body = answer.json()
    assert body["error"] == "provider_not_configured"
    assert "Turbotext" in str(body["message"]) and "BOOTHGATE_TURBOTEXT_API_KEY" in str(body["message"])
    assert deepseek.received == []


async def test_without_a_deepseek_key_the_tab_is_not_configured(start: Start) -> None:
    tab = start(deepseek_api_key=None)
    booth, deepseek = tab.booth, tab.fake
    await booth.configure("deepseek", 8, prompt="x")

    answer = await booth.post("deepseek", 8, make_jpeg(seed=8))

    assert answer.status == 503
    assert "BOOTHGATE_DEEPSEEK_API_KEY" in str(answer.json()["message"])
    async with booth.api() as client:
        providers = {p["name"]: p for p in (await client.get("/api/providers")).json()}
    assert providers["deepseek"]["configured"] is False
    assert providers["deepseek"]["renderers"]["gemini"]["configured"] is True
    assert providers["deepseek"]["renderers"]["turbotext"]["configured"] is False
    assert deepseek.received == []


async def test_try_it_shows_the_instruction(start: Start) -> None:
    tab = start()
    booth = tab.booth
    await booth.configure("deepseek", 9, prompt="x", enabled=False)
    async with booth.api() as client:
        response = await client.post(
            "/api/slots/deepseek/9/try", files={"fileToUpload": ("t.jpg", make_jpeg(seed=9), "image/jpeg")}
        )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == 200
    assert body["job"]["provider_notes"]["deepseek"]["instruction"] == INSTRUCTION


async def test_a_failing_renderer_fails_the_job_but_keeps_the_instruction(start: Start) -> None:
    tab = start()
    booth = tab.booth
    await booth.configure("deepseek", 10, prompt="x", options={"renderer_options": {"mode": "fail"}})

    answer = await booth.post("deepseek", 10, make_jpeg(seed=10))

    assert answer.status == 502
    job = await booth.job(answer.headers["x-job-id"])
    assert job["status"] == "failed"
    assert job["provider_notes"]["deepseek"]["instruction"] == INSTRUCTION
    assert job["provider_notes"]["renderer"]["name"] == "gemini"
