"""Documented behaviour that had no test (test audit §4): the duplicate window ends, and `.env` wins over
the settings page like the environment does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_jpeg
from tests.web.test_settings_api import by_name

WINDOW = 3.0  # counted from the first photo's arrival; room for a slow first job on a busy machine


async def test_the_same_photo_after_the_duplicate_window_is_run_again(booth_factory: Any) -> None:
    booth = booth_factory(duplicate_window_seconds=WINDOW)
    await booth.configure("gemini", 1, prompt="x")
    photo = make_jpeg(160, 120, seed=71)
    first = await booth.post("gemini", 1, photo)
    again = await booth.post("gemini", 1, photo)
    assert first.status == again.status == 200
    assert again.headers.get("x-reused-from") == first.headers["x-job-id"], "inside the window: the stored result"
    assert len(booth.calls) == 1
    await asyncio.sleep(WINDOW + 0.3)  # time must pass: the window is over
    later = await booth.post("gemini", 1, photo)
    assert later.status == 200 and "x-reused-from" not in later.headers, "after the window: run again"
    assert len(booth.calls) == 2, "the provider is asked again once the window is over"


async def test_a_dotenv_file_wins_over_the_settings_page(
    booth_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("BOOTHGATE_GEMINI_MODEL=model-from-dotenv\n")
    monkeypatch.chdir(tmp_path)  # pydantic-settings reads `.env` from the working directory, as `make run` does
    booth = booth_factory()
    async with booth.api() as client:
        listing = by_name((await client.get("/api/settings")).json())
        assert listing["gemini_model"]["value"] == "model-from-dotenv"
        assert listing["gemini_model"]["source"] == "environment"
        refused = await client.put("/api/settings", json={"gemini_model": "from-the-page"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["errors"] == {"gemini_model": "set in the environment"}
