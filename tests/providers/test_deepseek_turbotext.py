"""A DeepSeek slot rendered by the real Turbotext provider (its fake downloads boothgate's media links):
Turbotext's text field carries DeepSeek's instruction, or the slot's prompt when DeepSeek fails."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Booth, make_jpeg
from tests.fakes.deepseek import INSTRUCTION, FakeDeepSeek
from tests.fakes.turbotext import FakeTurbotext


@pytest.fixture
def setup(tab_factory: Any) -> tuple[Booth, FakeDeepSeek, FakeTurbotext]:
    """The DeepSeek tab with Turbotext's fake as its renderer (`running_tab` in tests/conftest.py)."""
    tab = tab_factory("deepseek", renderer_tab="turbotext", deadline_seconds=4.0)
    return tab.booth, tab.fake, tab.renderer


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
