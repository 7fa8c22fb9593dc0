"""Prompt variables on the other tabs: Turbotext's `content` field and the text the DeepSeek writer reads,
each checked on the wire of its loopback fake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boothgate.providers.turbotext import TurbotextProvider
from boothgate.web.app import create_app
from tests.conftest import Booth, KeyedProvider, ScriptedProvider, booth_settings, make_jpeg
from tests.fakes.deepseek import API_KEY, running
from tests.fakes.server import free_port, serve
from tests.fakes.turbotext import FakeTurbotext


@pytest.fixture
def turbotext_booth(tmp_path: Path) -> Iterator[tuple[Booth, FakeTurbotext]]:
    fake = FakeTurbotext()
    with serve(fake.app) as fake_url:
        port = free_port()
        settings = booth_settings(
            tmp_path,
            public_base_url=f"http://127.0.0.1:{port}",
            turbotext_api_key="tt-test-key",
            turbotext_base_url=f"{fake_url}/api_ai",
            turbotext_poll_interval_seconds=0.05,
            deadline_seconds=6.0,
        )
        app = create_app(settings, {"turbotext": TurbotextProvider})
        with serve(app, port=port) as url:
            yield Booth(url, settings, app), fake


async def test_turbotext_content_is_the_filled_prompt(turbotext_booth: tuple[Booth, FakeTurbotext]) -> None:
    booth, fake = turbotext_booth
    await booth.configure("turbotext", 1, kind="prompt", prompt="{style|oil} painting of {survey1_type_id}")
    answer = await booth.post(
        "turbotext", "1?style=neon", make_jpeg(640, 480, seed=1), fields={"survey1_type_id": "a cat"}
    )
    assert answer.status == 200, answer.body[:300]
    [create] = fake.calls("create_queue")
    assert create.form["content"] == "neon painting of a cat"


@pytest.fixture
def deepseek() -> Iterator[tuple[Any, str]]:
    with running() as started:
        yield started


async def test_the_deepseek_writer_reads_the_filled_prompt(booth_factory: Any, deepseek: tuple[Any, str]) -> None:
    fake, url = deepseek
    booth: Booth = booth_factory(
        {"gemini": ScriptedProvider, "turbotext": KeyedProvider},
        deepseek_api_key=API_KEY,
        deepseek_base_url=url,
        deepseek_stage_seconds=1.0,
        deadline_seconds=4.0,
    )
    await booth.configure("deepseek", 1, kind="prompt", prompt="turn them into {Theme}")
    answer = await booth.post("deepseek", "1?theme=astronauts", make_jpeg(800, 600, seed=2))
    assert answer.status == 200, answer.body[:300]
    [sent] = fake.received
    assert "turn them into astronauts" in sent.text
    assert "{Theme}" not in sent.text
