"""Calls and failures per API key survive a restart and show on the statistics (issue 28).

A real server with the DeepSeek tab and two keys (one answering 429) writes its instructions through the real
`openai` SDK against the loopback fake; after a stop and a start on the same data folder, `/api/stats` still
lists both keys by their masked names with the same figures, and the statistics panel shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from boothgate.providers.keys import mask
from boothgate.web.app import create_app
from tests.conftest import Booth, KeyedProvider, booth_settings, make_jpeg
from tests.fakes.deepseek import API_KEY, running
from tests.fakes.server import serve
from tests.providers.test_deepseek import RecordingRenderer

SECOND = "sk-fake-deepseek-bbbbbbbbbb02"


def settings(tmp_path: Path, url: str) -> Any:
    return booth_settings(
        tmp_path, deepseek_api_key=API_KEY, deepseek_api_keys=SECOND, deepseek_base_url=url,
        deepseek_stage_seconds=1.0, deadline_seconds=4.0,
    )  # fmt: skip


async def test_per_key_figures_are_kept_across_a_restart_and_listed_masked(tmp_path: Path) -> None:
    classes = {"gemini": RecordingRenderer, "turbotext": KeyedProvider}
    with running() as (fake, url):
        fake.more_keys = {SECOND}
        fake.key_modes[API_KEY] = "rate_limited"
        first = create_app(settings(tmp_path, url), classes)
        with serve(first) as base:
            booth = Booth(base, settings(tmp_path, url), first)
            await booth.configure("deepseek", 1, kind="prompt", prompt="as astronauts", options={})
            for seed in range(3):
                assert (await booth.post("deepseek", 1, make_jpeg(seed=seed))).status == 200
        # The stop wrote the figures; a new server on the same data folder reads them.
        second = create_app(settings(tmp_path, url), classes)
        with serve(second) as base:
            booth = Booth(base, settings(tmp_path, url), second)
            keys = {row["key"]: row for row in (await booth.stats())["keys"]}
            assert keys[mask(API_KEY)]["calls"] == 1 and keys[mask(API_KEY)]["failures"] == 1
            assert keys[mask(SECOND)]["calls"] == 3 and keys[mask(SECOND)]["failures"] == 0
            assert {row["provider"] for row in keys.values()} == {"deepseek"}
            # New calls add to the kept figures (and are listed before they are written).
            fake.key_modes.pop(API_KEY)
            assert (await booth.post("deepseek", 1, make_jpeg(seed=9))).status == 200
            stats = await booth.stats()
            after = {row["key"]: row for row in stats["keys"]}
            assert after[mask(API_KEY)]["calls"] + after[mask(SECOND)]["calls"] == 5
            assert API_KEY not in str(stats) and SECOND not in str(stats)
