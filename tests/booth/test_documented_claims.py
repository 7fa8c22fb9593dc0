"""Documented behaviour that had no test (test audit §4): the duplicate window ends (counted at the Gemini
fake), and `.env` wins over the settings page like the environment does."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_jpeg
from tests.web.test_settings_api import by_name

WINDOW = 3.0  # counted from the first photo's arrival; room for a slow first job on a busy machine
RESEND_SECONDS = 0.25  # how often the booth resends the photo while the window runs
GIVE_UP_SECONDS = 20.0  # the provider must be asked again well before this


async def test_the_same_photo_after_the_duplicate_window_is_run_again(tab_factory: Any) -> None:
    """Counted at the provider's wire fake: inside the window the stored result, no call; the window
    counts from the photo the provider processed — resends answered from it do not keep it open — and
    after it the provider is asked again."""
    tab = tab_factory("gemini", duplicate_window_seconds=WINDOW, deadline_seconds=8.0)
    booth, fake = tab.booth, tab.fake
    await booth.configure("gemini", 1, prompt="as pirates")
    photo = make_jpeg(160, 120, seed=71)
    sent = time.monotonic()
    first = await booth.post("gemini", 1, photo)
    assert first.status == 200, first.body[:300]
    assert len(fake.received) == 1
    reused = 0
    while True:  # the booth resends until its photo is run again (or the test gives up)
        assert time.monotonic() - sent < GIVE_UP_SECONDS, f"still the stored result after {reused} resends"
        again = await booth.post("gemini", 1, photo)
        assert again.status == 200, again.body[:300]
        if "x-reused-from" not in again.headers:
            break
        assert again.headers["x-reused-from"] == first.headers["x-job-id"], "the result of the job that ran"
        assert len(fake.received) == 1, "a stored result costs no provider call"
        reused += 1
        await asyncio.sleep(RESEND_SECONDS)  # the booth's pace, not a wait for the server
    ran_again_after = time.monotonic() - sent
    assert reused >= 1, "inside the window the stored result was answered"
    assert ran_again_after > WINDOW - 0.5, f"asked again after only {ran_again_after:.2f} s"
    assert len(fake.received) == 2, "after the window the provider is asked again"


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
