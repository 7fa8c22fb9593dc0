"""Rehearsal: the sample photo (a real person) through every enabled slot, for real, through the spine.

The server runs the built-in Gemini provider against the loopback fake; `boothgate rehearse` runs as a
separate process talking to the server's API, like an operator's terminal.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from boothgate.booth.rehearsal import SAMPLE_PHOTO
from boothgate.web.app import create_app
from tests.conftest import ADMIN, Booth, booth_settings
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import serve

KEY = "rehearsal-gemini-key"


@pytest.fixture
def fake() -> Iterator[GeminiFake]:
    fake = GeminiFake(api_key=KEY)
    with serve(fake.app) as url:
        fake.url = url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture
def booth(tmp_path: Path, fake: GeminiFake) -> Iterator[Booth]:
    settings = booth_settings(
        tmp_path,
        gemini_api_key=KEY,
        gemini_base_url=fake.url,
        deadline_seconds=8.0,  # type: ignore[attr-defined]
    )
    app = create_app(settings, {})
    with serve(app) as url:
        yield Booth(url, settings, app)


async def three_slots(booth: Booth) -> None:
    await booth.configure("gemini", 1, kind="prompt", prompt="as an astronaut on the moon", name="Moon")
    # A model Google no longer offers: the rehearsal must show it before a guest meets it.
    await booth.configure("gemini", 2, kind="prompt", prompt="p", options={"model": "gemini-3.1-flash-image"})
    await booth.configure("gemini", 3, kind="prompt", prompt="as a painting")
    await booth.configure("gemini", 4, kind="prompt", prompt="p", enabled=False)


def run_cli(booth: Booth, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOTHGATE_")}
    command = [sys.executable, "-m", "boothgate", "rehearse", "--url", booth.url, "--user", ADMIN[0], *args]
    env["BOOTHGATE_ADMIN_PASSWORD"] = ADMIN[1]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


async def test_cli_prints_a_line_per_enabled_slot_and_fails_when_one_fails(booth: Booth, fake: GeminiFake) -> None:
    await three_slots(booth)
    done = await asyncio.to_thread(run_cli, booth, "--tab", "gemini", "--yes")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    # $0.1008 in the statistics currency (roubles by default, issue 22)
    assert re.search(r"Rehearsal: 3 paid calls, estimated \d+\.\d\d ₽\.", out), out
    lines = [line for line in out.splitlines() if line.startswith(("ok ", "FAILED "))]
    assert len(lines) == 3
    assert any(line.startswith("ok     gemini/1 «Moon»") and re.search(r"\d+\.\d\d ₽", line) for line in lines)
    assert any(line.startswith("ok     gemini/3") for line in lines)
    failed = next(line for line in lines if line.startswith("FAILED"))
    assert "gemini/2" in failed and "provider_model" in failed and "gemini-3.1-flash-image" in failed
    assert "gemini/4" not in out
    assert "2 of 3 slots worked, 1 failed" in out

    # The sample photo went to Gemini: a real person's photo, prepared like a guest's.
    with Image.open(SAMPLE_PHOTO) as sample:
        assert {(i.width, i.height) for r in fake.received for i in r.images} == {sample.size}

    # Marked in the job list, kept out of the guest statistics.
    async with booth.api() as client:
        jobs = (await client.get("/api/jobs")).json()
        stats = (await client.get("/api/stats")).json()
    assert len(jobs) == 3 and {j["source"] for j in jobs} == {"rehearsal"}
    assert stats["providers"]["gemini"]["all_time"]["received"] == 0


async def test_cli_exit_zero_when_every_slot_works_with_the_operators_photo(
    booth: Booth, fake: GeminiFake, tmp_path: Path
) -> None:
    await booth.configure("gemini", 1, kind="prompt", prompt="p")
    own = tmp_path / "guest.jpg"
    Image.new("RGB", (900, 600), (120, 80, 200)).save(own, quality=90)
    first = await asyncio.to_thread(run_cli, booth, "--photo", str(own), "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 of 1 slots worked" in first.stdout
    # Again with the same photo: a rehearsal meets the real service, never the stored answer.
    second = await asyncio.to_thread(run_cli, booth, "--photo", str(own), "--yes")
    assert second.returncode == 0
    assert len(fake.received) == 2 and fake.received[-1].images[0].width == 900


async def test_cli_without_a_terminal_asks_for_yes_before_paying(booth: Booth, fake: GeminiFake) -> None:
    await booth.configure("gemini", 1, kind="prompt", prompt="p")
    done = await asyncio.to_thread(run_cli, booth)
    assert done.returncode == 2 and "--yes" in done.stdout
    assert not fake.received


async def api(booth: Booth, method: str, path: str, **kwargs: Any) -> Any:
    async with booth.api() as client:
        response = await client.request(method, path, **kwargs)
    return response


async def test_api_plans_runs_and_warns_about_slow_slots(booth: Booth, fake: GeminiFake) -> None:
    await three_slots(booth)
    plan = (await api(booth, "GET", "/api/rehearsals/plan", params={"tab": "gemini"})).json()
    assert plan["paid_calls"] == 3 and plan["estimated_cost_usd"] == pytest.approx(0.1008)
    assert [s["slot"] for s in plan["slots"]] == ["gemini/1", "gemini/2", "gemini/3"]

    fake.default_mode = "slow"
    fake.slow_seconds = 5.5  # 69 % of the 8 s deadline: over the 60 % warning, with room for a loaded machine
    photo = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 200, 90)).save(photo, "JPEG")
    started = await api(
        booth, "POST", "/api/rehearsals", data={"tab": "gemini"}, files={"photo": ("me.jpg", photo.getvalue())}
    )
    assert started.status_code == 202
    run = started.json()
    for _ in range(100):
        run = (await api(booth, "GET", f"/api/rehearsals/{run['id']}")).json()
        if run["done"]:
            break
        await asyncio.sleep(0.2)
    assert run["done"] and run["failed"] == 1
    slots = {s["slot"]: s for s in run["slots"]}
    assert slots["gemini/1"]["status"] == "succeeded" and slots["gemini/1"]["job_id"]
    assert "60%" in slots["gemini/1"]["warning"]
    assert slots["gemini/2"]["error"] == "provider_model" and slots["gemini/2"]["warning"] is None
    thumb = await api(booth, "GET", f"/api/jobs/{slots['gemini/1']['job_id']}/result/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"


async def test_rehearsing_nothing_is_refused(booth: Booth) -> None:
    response = await api(booth, "POST", "/api/rehearsals", data={"tab": "gemini"})
    assert response.status_code == 409 and response.json()["paid_calls"] == 0
