"""Client API batches (issue 26): files or one ZIP, progress, the results ZIP with its manifest, hostile
archives refused with nothing written, and booths first while a batch runs."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from boothgate.api.batch_intake import BatchLimits
from boothgate.storage.models import Batch, BatchItem, Job
from boothgate.web.app import create_app
from tests.api.test_client_api import client, make_key
from tests.conftest import ADMIN, Booth, ScriptedProvider, booth_settings
from tests.fakes.server import serve
from tests.local_photos import astronaut, coffee, grace_hopper, jpeg


def photos(n: int) -> list[bytes]:
    """`n` distinct real photos (people; sizes differ, so no two are the same bytes)."""
    sources = (astronaut, grace_hopper)
    return [jpeg(sources[i % 2](0.2 + (i % 20) / 100)) for i in range(n)]


def zipped(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buf.getvalue()


async def wait_batch(api: httpx.AsyncClient, url: str, timeout: float = 120.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        body: dict[str, Any] = (await api.get(url)).json()
        if body["status"] in ("completed", "cancelled") or loop.time() > end:
            return body
        await asyncio.sleep(0.1)


async def nothing_kept(booth: Booth) -> None:
    folder = booth.settings.data_dir / "api" / "batches"
    assert not folder.exists() or list(folder.iterdir()) == []
    async with booth.services.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Batch)) == 0
        assert await session.scalar(select(func.count()).select_from(BatchItem)) == 0


async def test_batch_of_40_while_16_booths_post_booths_first(booth: Booth) -> None:
    await booth.configure("gemini", 1, options={"delay_seconds": 0.25})
    await booth.configure("gemini", 2, options={"delay_seconds": 0.25})
    booth.services.batches.limits = BatchLimits(concurrency=6)  # more batch photos at once than booths' cores
    created = await make_key(booth, photos_per_day=100)
    inputs = photos(40)
    async with client(booth, created["key"]) as api:
        files = [("files", (f"guest-{i:02d}.jpg", data, "image/jpeg")) for i, data in enumerate(inputs)]
        accepted = await api.post("/api/v1/batches", data={"slot": "gemini/1"}, files=files)
        assert accepted.status_code == 202, accepted.text
        batch = accepted.json()
        assert batch["total"] == 40 and batch["status"] == "queued"
        # The booths post once the batch is under way.
        loop = asyncio.get_running_loop()
        end = loop.time() + 60
        while (await api.get(batch["status_url"])).json()["done"] < 2 and loop.time() < end:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        during = (await api.get(batch["status_url"])).json()
        assert during["total"] == 40 and 0 <= during["done"] <= 40  # progress is counted (its pace is the machine's)
        booth_photos = [jpeg(coffee(0.3 + i / 50)) for i in range(16)]

        async def guest(n: int, photo: bytes) -> Any:
            await asyncio.sleep(n * 0.08)  # booths post over ~1.3 s, as at a venue, not all in one instant
            return await booth.post("gemini", 2, photo)

        answers = await asyncio.gather(*(guest(n, p) for n, p in enumerate(booth_photos)))
        deadline = booth.settings.deadline_seconds
        assert [a.status for a in answers] == [200] * 16, [a.body[:200] for a in answers if a.status != 200]
        # in time (a late answer would be a 504 above): the booth's stopwatch, with 0.5 s for the trip back
        assert max(a.seconds for a in answers) < deadline + 0.5
        finished = await wait_batch(api, batch["status_url"])
        assert finished["status"] == "completed" and finished["done"] == 40 and finished["failed"] == 0
        assert not (booth.settings.data_dir / "api" / "batches" / batch["id"]).exists()  # inputs let go
        download = await api.get(batch["zip_url"])
        assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
        results = [n for n in names if n.startswith("results/")]
        assert len(results) == 40 and "manifest.json" in names
        assert all(archive.read(n)[:2] == b"\xff\xd8" for n in results)
    assert [item["input"] for item in manifest["items"]] == [f"guest-{i:02d}.jpg" for i in range(40)]
    assert {item["status"] for item in manifest["items"]} == {"succeeded"}
    assert sorted(item["result"] for item in manifest["items"]) == sorted(results)
    # Booths first: no batch photo entered the spine while a booth photo was on its way to its provider
    # (from its arrival to its provider call; 20 ms of slack for a batch photo already past the gate).
    async with booth.services.db.read() as session:
        jobs = (await session.scalars(select(Job))).all()
    api_jobs = [j for j in jobs if j.source == "api"]
    booth_jobs = [j for j in jobs if j.source == "booth"]
    assert len(api_jobs) == 40 and all(j.batch_id == batch["id"] for j in api_jobs) and len(booth_jobs) == 16
    overlaps = [
        (b.id, a.id)
        for b in booth_jobs
        for a in api_jobs
        if b.created_at + timedelta(seconds=0.02) < a.created_at < b.created_at + timedelta(seconds=at_provider(b))
    ]
    assert overlaps == []


def at_provider(job: Job) -> float:
    """Seconds from the job's arrival to its provider call (the spine's recorded marks)."""
    marks = job.timings or {}
    return float(marks.get("receive", 0) + marks.get("admit", 0) + marks.get("prepare", 0))


async def test_zip_of_photos_and_partial_failures_in_manifest(booth: Booth) -> None:
    await booth.configure("gemini", 1)
    created = await make_key(booth)
    good = photos(3)
    archive = zipped({"a/one.jpg": good[0], "two.jpg": good[1], "three.jpg": b"not an image", "__MACOSX/x": b""})
    async with client(booth, created["key"]) as api:
        accepted = await api.post(
            "/api/v1/batches", data={"slot": "gemini/1"}, files={"files": ("photos.zip", archive, "application/zip")}
        )
        assert accepted.status_code == 202, accepted.text
        finished = await wait_batch(api, accepted.json()["status_url"])
        assert (finished["total"], finished["done"], finished["failed"]) == (3, 2, 1)
        download = await api.get(finished["zip_url"])
    with zipfile.ZipFile(io.BytesIO(download.content)) as result:
        manifest = json.loads(result.read("manifest.json"))["items"]
        by_input = {m["input"]: m for m in manifest}
        assert by_input["three.jpg"]["status"] == "failed" and by_input["three.jpg"]["error"] == "unsupported_image"
        assert by_input["three.jpg"]["result"] is None
        assert by_input["one.jpg"]["status"] == "succeeded" and by_input["one.jpg"]["result"] in result.namelist()


async def test_zip_bomb_is_refused_and_nothing_is_written(booth: Booth) -> None:
    await booth.configure("gemini", 1)
    created = await make_key(booth)
    bomb = zipped({"photo.jpg": b"\0" * (20 * 1024 * 1024)})
    assert len(bomb) < 100_000
    async with client(booth, created["key"]) as api:
        refused = await api.post(
            "/api/v1/batches", data={"slot": "gemini/1"}, files={"files": ("b.zip", bomb, "application/zip")}
        )
    assert refused.status_code == 422 and refused.json()["error"] == "zip_ratio"
    await nothing_kept(booth)


async def test_dot_dot_entry_and_nested_archive_are_refused(booth: Booth) -> None:
    await booth.configure("gemini", 1)
    created = await make_key(booth)
    photo = photos(1)[0]
    cases = {
        "zip_unsafe_path": zipped({"ok.jpg": photo, "../evil.jpg": photo}),
        "zip_nested": zipped({"ok.jpg": photo, "more.zip": zipped({"x.jpg": photo})}),
    }
    absolute = zipped({"ok.jpg": photo, "/etc/evil.jpg": photo})
    async with client(booth, created["key"]) as api:
        for code, archive in [*cases.items(), ("zip_unsafe_path", absolute)]:
            refused = await api.post(
                "/api/v1/batches", data={"slot": "gemini/1"}, files={"files": ("b.zip", archive, "application/zip")}
            )
            assert refused.status_code == 422 and refused.json()["error"] == code, refused.text
    await nothing_kept(booth)
    assert not (booth.settings.data_dir.parent / "evil.jpg").exists()


async def test_batch_limits_and_scope(booth: Booth) -> None:
    await booth.configure("gemini", 1)
    booth.services.batches.limits = BatchLimits(max_files=3, max_entry_bytes=200_000)
    created = await make_key(booth, scopes=["gemini/1"])
    many = [("files", (f"{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos(4))]
    async with client(booth, created["key"]) as api:
        too_many = await api.post("/api/v1/batches", data={"slot": "gemini/1"}, files=many)
        assert too_many.status_code == 422 and too_many.json()["error"] == "too_many_files"
        big = jpeg(astronaut(1.0), quality=100)
        assert len(big) > 200_000
        too_big = await api.post("/api/v1/batches", data={"slot": "gemini/1"}, files={"files": ("big.jpg", big)})
        assert too_big.status_code == 422
        scope = await api.post("/api/v1/batches", data={"slot": "gemini/2"}, files=many[:1])
        assert scope.status_code == 403
        empty = await api.post("/api/v1/batches", data={"slot": "gemini/1"}, files={"other": ("x.txt", b"x")})
        assert empty.status_code == 422 and empty.json()["error"] == "no_file"
    await nothing_kept(booth)


async def test_cancel_a_batch(booth: Booth) -> None:
    await booth.configure("gemini", 1, options={"delay_seconds": 0.5})
    created = await make_key(booth)
    files = [("files", (f"{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos(10))]
    async with client(booth, created["key"]) as api:
        batch = (await api.post("/api/v1/batches", data={"slot": "gemini/1"}, files=files)).json()
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        while (await api.get(batch["status_url"])).json()["status"] != "running" and loop.time() < end:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        cancelled = await api.delete(batch["status_url"])
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        await asyncio.sleep(1.0)
        final = (await api.get(batch["status_url"])).json()
        assert final["status"] == "cancelled" and final["done"] < 10
        calls = len(booth.calls)
        await asyncio.sleep(1.0)
        assert len(booth.calls) == calls  # nothing more is sent to the provider
        download = await api.get(batch["zip_url"])
    with zipfile.ZipFile(io.BytesIO(download.content)) as result:
        statuses = [m["status"] for m in json.loads(result.read("manifest.json"))["items"]]
    assert "cancelled" in statuses


async def test_a_batch_goes_on_after_a_restart_without_running_done_photos_again(tmp_path: Path) -> None:
    settings = booth_settings(tmp_path)
    ScriptedProvider.calls.clear()
    first = create_app(settings, {"gemini": ScriptedProvider})
    with serve(first) as url:
        async with httpx.AsyncClient(base_url=url, auth=ADMIN) as admin:
            await admin.put("/api/slots/gemini/1", json={"enabled": True, "options": {"delay_seconds": 0.4}})
            key = (await admin.post("/api/keys", json={"name": "restart"})).json()["key"]
        first.state.services.batches.limits = BatchLimits(concurrency=1)
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=60) as api:
            files = [("files", (f"{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos(6))]
            batch = (await api.post("/api/v1/batches", data={"slot": "gemini/1"}, files=files)).json()
            loop = asyncio.get_running_loop()
            end = loop.time() + 60
            while (await api.get(batch["status_url"])).json()["done"] < 2 and loop.time() < end:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    done_before = {c.job_id for c in ScriptedProvider.calls}
    assert 2 <= len(done_before) < 6
    second = create_app(settings, {"gemini": ScriptedProvider})
    with serve(second) as url:
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=60) as api:
            finished = await wait_batch(api, batch["status_url"])
            download = await api.get(finished["zip_url"])
    assert finished["status"] == "completed" and (finished["done"], finished["failed"]) == (6, 0)
    with zipfile.ZipFile(io.BytesIO(download.content)) as result:
        manifest = json.loads(result.read("manifest.json"))["items"]
    assert [m["status"] for m in manifest] == ["succeeded"] * 6
    # A photo whose job succeeded before the restart was not sent again: at most the one cut off by the
    # stop was called twice.
    assert len(ScriptedProvider.calls) <= 7
    succeeded_jobs = {m["job_id"] for m in manifest}
    calls_per_job = [c.job_id for c in ScriptedProvider.calls if c.job_id in succeeded_jobs]
    assert len(calls_per_job) == 6
