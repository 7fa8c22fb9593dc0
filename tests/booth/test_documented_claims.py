"""Documented behaviour that had no test (test audit §4): the duplicate window ends (counted at the Gemini
fake), and `.env` wins over the settings page like the environment does."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_jpeg, running_tab
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


PAGE_MODEL = "gemini-3-pro-image"  # both in the Gemini fake's catalogue, neither the default
DOTENV_MODEL = "gemini-3.1-flash-lite-image"


async def test_a_dotenv_file_wins_over_the_settings_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model saved on the settings page, then the opposite written to `.env` in the server's working
    directory and the server started again on the same data: the model the provider is asked for (at the
    Gemini wire fake) is the `.env` one, the page shows it as set in the environment and refuses to change it."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # pydantic-settings reads `.env` from the working directory, as `make run` does
    with running_tab("gemini", tmp_path) as tab:
        await tab.booth.configure("gemini", 1, prompt="as pirates")
        async with tab.booth.api() as client:
            saved = await client.put("/api/settings", json={"gemini_model": PAGE_MODEL})
        assert saved.status_code == 200, saved.text
        assert (await tab.booth.post("gemini", 1, make_jpeg(160, 120, seed=72))).status == 200
        assert tab.fake.last.model == PAGE_MODEL, "without a .env the page's value is the one used"

    (workdir / ".env").write_text(f"BOOTHGATE_GEMINI_MODEL={DOTENV_MODEL}\n")
    with running_tab("gemini", tmp_path) as tab:  # the same data folder: the page's value is still stored
        async with tab.booth.api() as client:
            listing = by_name((await client.get("/api/settings")).json())
            refused = await client.put("/api/settings", json={"gemini_model": PAGE_MODEL})
        assert listing["gemini_model"]["value"] == DOTENV_MODEL
        assert listing["gemini_model"]["source"] == "environment"
        assert refused.status_code == 409, refused.text
        assert refused.json()["errors"] == {"gemini_model": "set in the environment"}
        assert (await tab.booth.post("gemini", 1, make_jpeg(160, 120, seed=73))).status == 200
        assert tab.fake.last.model == DOTENV_MODEL, "the .env value wins over the one saved on the page"
