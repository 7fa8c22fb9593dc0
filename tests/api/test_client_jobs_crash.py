"""A single client API job the server was *running* when its process died (SIGKILL) or stopped (SIGTERM)
is finished after the restart, under the same id, once: a provider call that had already answered is not
made again (its kept answer is used), one cut off before it answered is made again. The server is the real
process (`tests.fakes.crash_app`), the Gemini tab the real module and SDK against its wire fake."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN, make_jpeg
from tests.fakes.gemini import GeminiFake, mode_marker
from tests.fakes.server import serve
from tests.reliability.test_crash import GEMINI_KEY, ServerProcess

FINAL = {"succeeded", "failed", "cancelled"}


class Restartable(ServerProcess):
    """The crash tests' server process, with a short work lease: a dead node's task is taken over soon."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "BOOTHGATE_WORK_LEASE_SECONDS": "2"}


@pytest.fixture
def gemini() -> Iterator[GeminiFake]:
    fake = GeminiFake(api_key=GEMINI_KEY)
    fake.slow_seconds = 30
    with serve(fake.app) as url:
        fake.url = url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture
def server(tmp_path: Path, gemini: GeminiFake) -> Iterator[Restartable]:
    running = Restartable(tmp_path / "data", tmp_path / "server.log", gemini.url)  # type: ignore[attr-defined]
    yield running
    if running.process is not None and running.process.poll() is None:
        running.kill(signal.SIGKILL)


async def _until(condition: Any, seconds: float = 20, step: float = 0.1) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(step)
    raise AssertionError("condition not reached")


async def _setup(server: Restartable) -> str:
    """Slot 1 is held at the fake (its prompt asks for 30 s), slot 2 answers at once; a key for both."""
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=10) as admin:
        for number, prompt in ((1, f"alpha {mode_marker('slow')}"), (2, "bravo")):
            response = await admin.put(
                f"/api/slots/gemini/{number}", json={"enabled": True, "kind": "prompt", "prompt": prompt}
            )
            assert response.status_code == 200, response.text
        created = await admin.post("/api/keys", json={"name": "restart", "rate_per_minute": 6000})
        assert created.status_code in (200, 201), created.text
        return str(created.json()["key"])


async def _post(api: httpx.AsyncClient, slot: str, seed: int) -> dict[str, Any]:
    files = {"file": ("guest.jpg", make_jpeg(640, 480, seed=seed), "image/jpeg")}
    accepted = await api.post("/api/v1/jobs", data={"slot": slot}, files=files)
    assert accepted.status_code == 202, accepted.text
    return dict(accepted.json())


async def _finished(api: httpx.AsyncClient, job: dict[str, Any], seconds: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        view = await api.get(job["status_url"])
        assert view.status_code == 200, view.text
        if view.json()["status"] in FINAL:
            return dict(view.json())
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job['id']} did not finish: {view.json()}")


def _rows(data_dir: Path) -> dict[str, tuple[str, str | None]]:
    with contextlib.closing(sqlite3.connect(data_dir / "boothgate.db")) as db:
        return {i: (s, e) for i, s, e in db.execute("SELECT id, status, error_code FROM jobs WHERE source = 'api'")}


def _calls(fake: GeminiFake, word: str) -> int:
    return sum(word in r.text for r in fake.received)


async def test_jobs_running_at_a_sigkill_finish_after_the_restart_once(server: Restartable, gemini: GeminiFake) -> None:
    server.start()
    key = await _setup(server)
    answers = server.data_dir / "api" / "answers"
    async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": key}, timeout=30) as api:
        held = await _post(api, "gemini/1", 1)  # at the provider, no answer yet, when the process dies
        await _until(lambda: _calls(gemini, "alpha") == 1)
        # Answered by the provider, not yet finished: a big result takes the server a while to check and shape.
        gemini.answer_size = (2400, 1800)
        answered = await _post(api, "gemini/2", 2)
        await _until(lambda: any((answers / answered["id"]).glob("*.json")), seconds=40, step=0.005)
        server.kill(signal.SIGKILL)
    rows = _rows(server.data_dir)
    assert rows[held["id"]][0] == "running" and rows[answered["id"]][0] == "running", rows  # both cut off
    assert _calls(gemini, "bravo") == 1

    gemini.slow_seconds, gemini.answer_size = 0.5, None
    server.start()
    async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": key}, timeout=30) as api:
        done = {job["id"]: await _finished(api, job) for job in (held, answered)}
        results = [await api.get(job["result_url"]) for job in (held, answered)]
        history = (await api.get("/api/v1/jobs")).json()
    assert {j: v["status"] for j, v in done.items()} == {held["id"]: "succeeded", answered["id"]: "succeeded"}, done
    assert all(r.status_code == 200 and r.headers["content-type"].startswith("image/") for r in results)
    assert _calls(gemini, "bravo") == 1, "the call that had answered is not made a second time"
    assert _calls(gemini, "alpha") == 2, "the call cut off before it answered is made again"
    ids = [item["id"] for item in history["jobs"]]
    assert sorted(ids) == sorted([held["id"], answered["id"]]), "each job once, under its own id"
    # From the database alone: finished, not interrupted, nothing left behind.
    assert _rows(server.data_dir) == {held["id"]: ("succeeded", None), answered["id"]: ("succeeded", None)}
    assert not any(answers.glob("*/*")), "kept answers go when their job ends"
    assert list((server.data_dir / "api" / "incoming").glob("*")) == []
    server.kill(signal.SIGTERM)


async def test_a_job_running_at_a_sigterm_is_run_again_not_cancelled(server: Restartable, gemini: GeminiFake) -> None:
    server.start()
    key = await _setup(server)
    async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": key}, timeout=30) as api:
        held = await _post(api, "gemini/1", 3)
        await _until(lambda: _calls(gemini, "alpha") == 1)
        server.kill(signal.SIGTERM)  # a graceful stop: the job is given back, not recorded as cancelled
    assert _rows(server.data_dir)[held["id"]][0] == "running"

    gemini.slow_seconds = 0.5
    server.start()
    async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": key}, timeout=30) as api:
        done = await _finished(api, held)
    assert done["status"] == "succeeded", done
    assert _calls(gemini, "alpha") == 2
    assert _rows(server.data_dir) == {held["id"]: ("succeeded", None)}
    server.kill(signal.SIGTERM)
