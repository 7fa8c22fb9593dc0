"""A single client API job is durable from its 202 on (like a batch): queued when the server stops, it runs
after the restart, once; one cancelled while queued is not run by the restart either."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from boothgate.web.app import create_app
from tests.api.test_client_api import PHOTO, poll
from tests.conftest import ADMIN, ScriptedProvider, booth_settings
from tests.fakes.server import serve
from tests.local_photos import coffee, jpeg


async def test_a_job_queued_at_a_restart_runs_after_it_once(tmp_path: Path) -> None:
    settings = booth_settings(tmp_path)
    ScriptedProvider.calls.clear()
    first = create_app(settings, {"gemini": ScriptedProvider})
    with serve(first) as url:
        runner = first.state.services.desk.runner
        assert runner is not None
        runner.concurrency = 0  # this server takes no job off the queue: both stay queued until it stops
        async with httpx.AsyncClient(base_url=url, auth=ADMIN) as admin:
            assert (await admin.put("/api/slots/gemini/1", json={"enabled": True})).status_code == 200
            key = (await admin.post("/api/keys", json={"name": "restart"})).json()["key"]
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=60) as api:
            files = {"file": ("guest.jpg", PHOTO, "image/jpeg")}
            kept = await api.post("/api/v1/jobs", data={"slot": "gemini/1"}, files=files)
            assert kept.status_code == 202, kept.text
            other = {"file": ("other.jpg", jpeg(coffee(0.5)), "image/jpeg")}
            dropped = await api.post("/api/v1/jobs", data={"slot": "gemini/1"}, files=other)
            assert (await api.delete(dropped.json()["status_url"])).json()["status"] == "cancelled"
            await asyncio.sleep(0.5)
            assert (await api.get(kept.json()["status_url"])).json()["status"] == "queued"
    assert ScriptedProvider.calls == []

    second = create_app(settings, {"gemini": ScriptedProvider})
    with serve(second) as url:
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=60) as api:
            done = await poll(api, kept.json()["status_url"], {"succeeded", "failed", "cancelled"})
            result = await api.get(kept.json()["result_url"])
            gone = (await api.get(dropped.json()["status_url"])).status_code
            await asyncio.sleep(1.0)  # time for a wrong run of the cancelled job
    assert done["status"] == "succeeded", done
    assert result.status_code == 200 and result.headers["content-type"].startswith("image/")
    assert [c.job_id for c in ScriptedProvider.calls] == [kept.json()["id"]]  # once; the cancelled one never
    assert gone == 404  # a job cancelled before it began has no record
    assert list((settings.data_dir / "api" / "incoming").glob("*")) == []  # both uploads removed
