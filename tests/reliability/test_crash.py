"""Crashes: a real server process killed with SIGKILL in the middle of jobs loses no photo.

On restart the interrupted jobs are failed with reason `interrupted`, their originals are in trash
with sidecars, an upload that was still arriving is trashed too, the database is consistent, and the
server serves. The logs of both runs never show the upload password, the admin password or a key. The
Gemini tab is the real module and SDK; its wire fake runs in the test process (slot 1's prompt asks it to
hold the photo for 30 s, so the jobs are at the provider when the server is killed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.cli.booth_client import post_photo_async
from tests.bad_inputs import MULTIPART, booth_form
from tests.conftest import ADMIN, UPLOAD_PASSWORD, make_jpeg
from tests.fakes.gemini import GeminiFake, mode_marker
from tests.fakes.server import free_port, serve

REPO = Path(__file__).resolve().parents[2]
GEMINI_KEY = "AIzaSy-crash-test-key-0123456789abcdef"


class ServerProcess:
    """`python -m tests.fakes.crash_app` with its data in `data_dir`; stderr kept in `log`."""

    def __init__(self, data_dir: Path, log: Path, gemini_url: str) -> None:
        self.data_dir, self.log, self.gemini_url = data_dir, log, gemini_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOOTHGATE_")}
        env.update(
            PYTHONPATH=f"{REPO / 'src'}:{REPO}",  # this checkout's code, not whichever copy is installed
            BOOTHGATE_DATA_DIR=str(self.data_dir),
            BOOTHGATE_PORT=str(self.port),
            BOOTHGATE_ADMIN_PASSWORD=ADMIN[1],
            BOOTHGATE_UPLOAD_PASSWORD=UPLOAD_PASSWORD,
            BOOTHGATE_GEMINI_API_KEY=GEMINI_KEY,
            BOOTHGATE_GEMINI_BASE_URL=self.gemini_url,
            BOOTHGATE_DEADLINE_SECONDS="20",
            BOOTHGATE_UPLOAD_IDLE_TIMEOUT_SECONDS="20",
        )
        return env

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.fakes.crash_app"], cwd=REPO, env=self.env(), stdout=log, stderr=log
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited: {self.log.read_text()[-2000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError("server did not come up")

    def kill(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=20)


@pytest.fixture
def gemini() -> Iterator[tuple[GeminiFake, str]]:
    fake = GeminiFake(api_key=GEMINI_KEY)
    fake.slow_seconds = 30
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def server(tmp_path: Path, gemini: tuple[GeminiFake, str]) -> Iterator[ServerProcess]:
    running = ServerProcess(tmp_path / "data", tmp_path / "server.log", gemini[1])
    yield running
    if running.process is not None and running.process.poll() is None:
        running.kill(signal.SIGKILL)


def _api(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=10)


async def _wait_for(condition: Any, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


async def _half_sent_upload(server: ServerProcess) -> tuple[asyncio.StreamWriter, bytes]:
    """An upload whose first half has arrived when the server dies."""
    body = booth_form(make_jpeg(320, 240, seed=90))
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = f"POST /booth/gemini/2 HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART['Content-Type']}\r\n"
    writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
    await writer.drain()
    return writer, body[body.index(b"\xff\xd8\xff") : len(body) // 2]


def _plant_unrecorded_photo(data_dir: Path) -> tuple[str, bytes]:
    """What a kill between moving the photo into photos/ and writing its job row leaves behind."""
    job_id = "0123456789abcdef0123456789abcdef"
    day = data_dir / "photos" / datetime.now(UTC).strftime("%Y-%m-%d")
    day.mkdir(parents=True, exist_ok=True)
    photo = make_jpeg(64, 48, seed=91)
    (day / f"{job_id}.jpg").write_bytes(photo)
    return job_id, photo


async def test_sigkill_in_the_middle_of_jobs_loses_no_photo(
    server: ServerProcess, gemini: tuple[GeminiFake, str]
) -> None:
    fake = gemini[0]
    server.start()
    async with _api(server) as api:
        for number, prompt in ((1, f"x {mode_marker('slow')}"), (2, "x")):
            response = await api.put(
                f"/api/slots/gemini/{number}", json={"enabled": True, "kind": "prompt", "prompt": prompt}
            )
            assert response.status_code == 200, response.text
        done = await post_photo_async(f"{server.url}/booth/gemini/2", make_jpeg(320, 240, seed=80), UPLOAD_PASSWORD)
        assert done.status == 200

        photos = [make_jpeg(320, 240, seed=81 + i) for i in range(3)]
        booths = [
            asyncio.create_task(post_photo_async(f"{server.url}/booth/gemini/1", p, UPLOAD_PASSWORD, timeout=30))
            for p in photos
        ]
        writer, partial = await _half_sent_upload(server)

        async def all_running() -> bool:
            jobs = (await api.get("/api/jobs?status=running")).json()
            at_gemini = sum(mode_marker("slow") in r.text for r in fake.received)
            return len(jobs) == 3 and at_gemini == 3 and any((server.data_dir / "incoming").glob("*.part"))

        await _wait_for(all_running)
        server.kill(signal.SIGKILL)

    for booth in booths:  # the booths see the connection drop: nothing can answer for a killed process
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError, OSError)):
            await booth
    writer.close()
    orphan_id, orphan = _plant_unrecorded_photo(server.data_dir)

    server.start()
    async with _api(server) as api:
        jobs = (await api.get("/api/jobs?limit=100")).json()
        after = await post_photo_async(f"{server.url}/booth/gemini/2", make_jpeg(320, 240, seed=99), UPLOAD_PASSWORD)
        stats = (await api.get("/api/stats")).json()["providers"]["gemini"]["today"]
    assert after.status == 200, "the restarted server serves"

    interrupted = [j for j in jobs if j["error"] == "interrupted"]
    assert len(interrupted) == 3 and all(j["status"] == "failed" and j["in_trash"] for j in interrupted)
    trash = {p.name: p for p in (server.data_dir / "trash").rglob("*") if p.is_file()}
    kept = sorted(trash[f"{j['id']}.jpg"].read_bytes() for j in interrupted)
    assert kept == sorted(photos), "every interrupted original is in trash, byte for byte"
    for job in interrupted:
        assert json.loads(trash[f"{job['id']}.json"].read_text())["error"] == "interrupted"
    # the half-received upload keeps its type by content (a JPEG's first half is a .jpg)
    known = {j["id"] for j in interrupted} | {orphan_id}
    partials = [p for name, p in trash.items() if name.endswith(".jpg") and name.split(".")[0] not in known]
    assert [p.read_bytes() for p in partials] == [partial], "the half-received upload is kept"
    assert trash[f"{orphan_id}.jpg"].read_bytes() == orphan, "a photo without a job row is trashed, not lost"
    assert not list((server.data_dir / "incoming").iterdir())

    _assert_database_consistent(server.data_dir)
    assert (stats["received"], stats["succeeded"], stats["failed"], stats["in_progress"]) == (5, 2, 3, 0)

    server.kill(signal.SIGTERM)
    _assert_no_secret_in(server.log)


def _assert_database_consistent(data_dir: Path) -> None:
    with contextlib.closing(sqlite3.connect(data_dir / "boothgate.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM jobs WHERE status IN ('received', 'running')").fetchone() == (0,)
        for column in ("photo_path", "result_path", "trash_path"):
            for (path,) in db.execute(f"SELECT {column} FROM jobs WHERE {column} IS NOT NULL"):
                assert (data_dir / path).is_file(), f"{column} {path} points at nothing"


def _assert_no_secret_in(log: Path) -> None:
    text = log.read_text()
    assert "recovered" in text and "job=" in text, "the log must have been captured"
    for secret in (UPLOAD_PASSWORD, ADMIN[1], GEMINI_KEY):
        assert secret not in text, "a secret reached the log"
