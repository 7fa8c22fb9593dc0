"""A DeepSeek slot rendered by the real Turbotext provider (its fake downloads boothgate's media links):
Turbotext's text field carries DeepSeek's instruction, or the slot's prompt when DeepSeek fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boothgate.web.app import create_app
from tests.conftest import Booth, booth_settings, make_jpeg
from tests.fakes.deepseek import API_KEY, INSTRUCTION, FakeDeepSeek
from tests.fakes.server import free_port, serve
from tests.fakes.turbotext import FakeTurbotext


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Booth, FakeDeepSeek, FakeTurbotext]]:
    deepseek, turbotext = FakeDeepSeek(), FakeTurbotext()
    with serve(deepseek.app) as deepseek_url, serve(turbotext.app) as turbotext_url:
        port = free_port()
        settings = booth_settings(
            tmp_path,
            public_base_url=f"http://127.0.0.1:{port}",
            turbotext_api_key="tt-test-key",
            turbotext_base_url=f"{turbotext_url}/api_ai",
            turbotext_poll_interval_seconds=0.05,
            deepseek_api_key=API_KEY,
            deepseek_base_url=deepseek_url,
            deepseek_stage_seconds=1.0,
            deadline_seconds=4.0,
        )
        app = create_app(settings, {})
        with serve(app, port=port) as url:
            yield Booth(url, settings, app), deepseek, turbotext


@pytest.mark.parametrize(("mode", "expected"), [("instruction", INSTRUCTION), ("balance", "neon city at night")])
async def test_turbotext_draws_what_deepseek_wrote_or_the_slot_prompt(setup: Any, mode: str, expected: str) -> None:
    booth, deepseek, turbotext = setup
    deepseek.push(mode)
    options = {"renderer": "turbotext", "renderer_options": {"strength": 30}}
    await booth.configure("deepseek", 1, kind="prompt", prompt="neon city at night", options=options)

    answer = await booth.post("deepseek", 1, make_jpeg(640, 480, seed=21))

    assert answer.status == 200, answer.body[:300]
    [create] = turbotext.calls("create_queue")
    assert create.form["content"] == expected
    assert create.form["strength"] == "30"
    assert len(deepseek.received) == 1
