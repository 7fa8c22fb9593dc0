"""A stop that loses no booth (issue 31, class 6): `boothgate serve` in a process group of its own, the
real Gemini tab against the loopback fake answering slowly; while 8 booths are in flight the whole group
gets SIGTERM (systemd's control-group stop) or SIGINT (Ctrl+C in a terminal). Every booth gets its 200,
no new connection is accepted, and the server exits by itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN, UPLOAD_PASSWORD, make_jpeg, post_photo_async
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import free_port, serve

KEY = "graceful-stop-gemini-key"
BOOTHS = 8


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[GeminiFake, str]]:
    running = GeminiFake(api_key=KEY)
    with serve(running.app) as url:
        yield running, url


def _start(tmp: Path, url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "BOOTHGATE_DATA_DIR": str(tmp / "data"),
        "BOOTHGATE_HOST": "127.0.0.1",
        "BOOTHGATE_PORT": str(port),
        "BOOTHGATE_ADMIN_PASSWORD": ADMIN[1],
        "BOOTHGATE_UPLOAD_PASSWORD": UPLOAD_PASSWORD,
        "BOOTHGATE_GEMINI_API_KEY": KEY,
        "BOOTHGATE_GEMINI_BASE_URL": url,
        "BOOTHGATE_DEADLINE_SECONDS": "40",
        "BOOTHGATE_IMAGE_WORKERS": "2",
        "BOOTHGATE_PUBLIC_BASE_URL": "",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "boothgate", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "server.log").open("wb"),
        start_new_session=True,  # the server leads a process group of its own, as under a terminal or systemd
    )
    return process, f"http://127.0.0.1:{port}"


async def _ready(base: str, process: subprocess.Popen[bytes]) -> None:
    until = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while time.monotonic() < until:
            assert process.poll() is None, "the server ended at start"
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("the server did not start")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_to_the_whole_group_lets_every_booth_in_flight_finish(
    tmp_path: Path, fake: tuple[GeminiFake, str], signum: int
) -> None:
    running, url = fake
    running.reset()
    running.slow_seconds = 3.0
    running.default_mode = "slow"
    process, base = _start(tmp_path, url)
    try:
        await _ready(base, process)
        async with httpx.AsyncClient(base_url=base, auth=ADMIN, timeout=30) as client:
            response = await client.put(
                "/api/slots/gemini/1", json={"enabled": True, "kind": "prompt", "prompt": "as a pirate"}
            )
            assert response.status_code == 200, response.text
        # Big photos: while the first is at the provider, the others are still being prepared in the image
        # workers — the signal reaches the server in the middle of image work.
        photos = [make_jpeg(3000, 2250, seed=700 + i + signum * 10) for i in range(BOOTHS)]
        booths = [
            asyncio.create_task(post_photo_async(f"{base}/booth/gemini/1", photo, UPLOAD_PASSWORD, timeout=60))
            for photo in photos
        ]
        until = time.monotonic() + 20
        while not running.received:  # the first photo is at the provider
            assert time.monotonic() < until, "no photo reached the provider"
            await asyncio.sleep(0.02)
        assert len(running.received) < BOOTHS, "the signal must come while photos are still being prepared"
        os.killpg(process.pid, signum)  # the whole group, as Ctrl+C or systemctl stop does
        answers = await asyncio.gather(*booths)
        statuses = [a.status for a in answers]
        assert statuses == [200] * BOOTHS, [a.body[:200] for a in answers if a.status != 200]
        exit_code = await asyncio.to_thread(process.wait, 30)
        # uvicorn re-raises the signal it caught once it has stopped: an exit by that signal is a clean stop.
        assert exit_code in (0, -signum, 128 + signum), exit_code
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        running.default_mode = "image"
