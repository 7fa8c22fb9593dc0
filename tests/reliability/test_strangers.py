"""Nothing lasting from requests that never proved the upload password (issue 14, part 2).

Hostile requests are raw bytes on a socket, written for these tests: a multipart body whose file part
never ends, and a big file sent before a wrong password. They come from other addresses (the server
trusts X-Forwarded-For from 127.0.0.1, as behind a local proxy) while ordinary booths post.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.cli.booth_client import _read_response
from tests.bad_inputs import BOUNDARY, DSLR_FIELDS, MULTIPART, booth_form, exchange, multipart
from tests.conftest import ADMIN, REAL_TABS, Booth, make_jpeg

MB = 1024 * 1024


def _file_head(password: bytes | None = None) -> bytes:
    """The form up to the start of the photo's bytes (a password field first when given)."""
    fields = [*DSLR_FIELDS, *([(b"password", None, password)] if password is not None else [])]
    head = multipart(fields)[: -len(BOUNDARY) - 6]  # drop the closing boundary
    return (
        head
        + f"--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="fileToUpload"; filename="x.jpg"\r\n'
        + b"Content-Type: image/jpeg\r\n\r\n"
    )


async def _hostile(
    port: int, address: str, head: bytes, garbage: int, tail: bytes = b"", path: str = "/booth/gemini/1"
) -> tuple[int, dict[str, Any]]:
    """POST `head`, then `garbage` bytes of a "photo" in 64 kB pieces (a little paced), then `tail`."""
    total = len(head) + garbage + len(tail)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {address}\r\n"
        f"Content-Type: {MULTIPART['Content-Type']}\r\nContent-Length: {total}\r\n\r\n"
    )
    writer.write(request.encode() + head)
    try:
        sent = 0
        while sent < garbage:
            piece = min(65536, garbage - sent)
            writer.write(b"\xff\xd8\xff" + b"\x5a" * (piece - 3))
            await writer.drain()
            sent += piece
            await asyncio.sleep(0.01)
        writer.write(tail)
        await writer.drain()
    except ConnectionError:
        pass
    try:
        status, _, body = await asyncio.wait_for(_read_response(reader), 20)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return status, json.loads(body)


def _largest_file(folder: Path) -> int:
    sizes = [p.stat().st_size for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    return max(sizes, default=0)


async def _watch_incoming(data_dir: Path, stop: asyncio.Event, seen: list[int]) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError):
            seen.append(max(_largest_file(data_dir / "incoming"), _largest_file(data_dir / "trash")))
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("tab", REAL_TABS)
async def test_hostile_uploads_leave_no_body_and_booths_keep_getting_200(tab_factory: Any, tab: str) -> None:
    booth: Booth = tab_factory(
        tab, auth_max_failures=2, auth_lockout_seconds=60, deadline_seconds=8.0, upload_idle_timeout_seconds=2.0
    ).booth
    await booth.configure(tab, 1, prompt="x")
    port = int(booth.url.rsplit(":", 1)[1])
    data_dir = booth.settings.data_dir
    stop, seen = asyncio.Event(), [0]
    watcher = asyncio.create_task(_watch_incoming(data_dir, stop, seen))

    # 1: no password, a file part that never ends (the body is over after 6 MB of "photo", no boundary).
    never_ends = _hostile(port, "10.9.0.1", _file_head(), 6 * MB, path=f"/booth/{tab}/1")
    # 2: 6 MB of "photo" first, then a wrong password.
    wrong_after = multipart([(b"password", None, b"guess")])
    wrong = _hostile(port, "10.9.0.2", _file_head(), 6 * MB, b"\r\n" + wrong_after, path=f"/booth/{tab}/1")
    hostile = [asyncio.create_task(never_ends), asyncio.create_task(wrong)]
    ordinary = []
    for i in range(6):
        ordinary.append(await booth.post(tab, 1, make_jpeg(320, 240, seed=200 + i)))
        await asyncio.sleep(0.1)
    (status1, body1), (status2, body2) = await asyncio.gather(*hostile)
    stop.set()
    await watcher

    assert [a.status for a in ordinary] == [200] * 6, "ordinary booths are served while strangers are refused"
    assert (status1, body1["error"]) == (400, "upload_incomplete")
    assert (status2, body2["error"]) == (401, "unauthorized")
    assert max(seen) < MB, f"a stranger's body reached the disk ({max(seen):,} bytes)"
    for body in (body1, body2):
        kept = [p for p in booth.trash_files() if p.stem == body["job_id"]]
        assert [p.suffix for p in kept] == [".json"], "only a metadata record is kept"
        sidecar = json.loads(kept[0].read_text())
        assert sidecar["error"] == body["error"] and sidecar["metadata"]["unauthenticated"] is True
    assert not list((data_dir / "incoming").iterdir())

    # The malformed request counted as a wrong password: one more failure locks that address out.
    answer = await exchange(port, f"/booth/{tab}/1", b"garbage", {**MULTIPART, "X-Forwarded-For": "10.9.0.1"})
    assert answer.status == 400
    locked = await exchange(
        port, f"/booth/{tab}/1", booth_form(make_jpeg(64, 48, seed=3)), {**MULTIPART, "X-Forwarded-For": "10.9.0.1"}
    )
    assert locked.status == 429, "malformed requests without a password count for the throttle"
    assert (await booth.post(tab, 1, make_jpeg(64, 48, seed=4))).status == 200, "other addresses unaffected"


async def test_a_wrong_password_before_the_file_ends_the_upload_with_nothing_written(tab_factory: Any) -> None:
    booth: Booth = tab_factory("gemini", deadline_seconds=8.0).booth
    await booth.configure("gemini", 1, prompt="x")
    port = int(booth.url.rsplit(":", 1)[1])
    status, body = await _hostile(
        port, "10.9.1.1", _file_head(b"guess"), 8 * MB, b"\r\n--" + BOUNDARY.encode() + b"--\r\n"
    )
    assert (status, body["error"]) == (401, "unauthorized")
    assert not any(p.suffix != ".json" for p in booth.trash_files())
    assert not list((booth.settings.data_dir / "photos").rglob("*.*"))


async def test_a_password_after_the_file_still_works(tab_factory: Any) -> None:
    booth: Booth = tab_factory("gemini").booth
    """A client that sends the file first (curl -F in that order) is held in memory, then written."""
    await booth.configure("gemini", 1, prompt="x")
    photo = make_jpeg(400, 300, seed=9)
    body = multipart([(b"fileToUpload", b"a.jpg", photo), (b"password", None, booth.upload_password.encode())])
    answer = await exchange(int(booth.url.rsplit(":", 1)[1]), "/booth/gemini/1", body, MULTIPART)
    assert answer.status == 200 and answer.headers["content-type"] == "image/jpeg"
    job = booth.services.jobs
    stored = await job.get(answer.headers["x-job-id"])
    assert stored is not None and (booth.settings.data_dir / stored.photo_path).read_bytes() == photo


async def test_records_of_strangers_are_bounded_per_address_and_minute(tab_factory: Any) -> None:
    booth: Booth = tab_factory("gemini", unauthenticated_records_per_minute=3, auth_max_failures=1000).booth
    await booth.configure("gemini", 1, prompt="x")
    port = int(booth.url.rsplit(":", 1)[1])
    headers = {**MULTIPART, "X-Forwarded-For": "10.9.2.1"}
    answers = [await exchange(port, "/booth/gemini/1", b"garbage" * 100, headers) for _ in range(8)]
    assert [a.status for a in answers] == [400] * 8, "every request is still answered"
    async with httpx.AsyncClient(base_url=booth.url, auth=ADMIN) as client:
        jobs = (await client.get("/api/jobs?limit=100")).json()
        stats = (await client.get("/api/stats")).json()
    assert len(jobs) == 3, "at most the budget of records per address and minute"
    assert len([p for p in booth.trash_files() if p.suffix == ".json"]) == 3
    assert stats["storage"]["unauthenticated_unrecorded"] == 5
    assert "unauthenticated_unrecorded" in stats["storage"]["warnings"]
    # another address has its own budget; a booth with the password is never limited by it
    other = await exchange(port, "/booth/gemini/1", b"garbage", {**MULTIPART, "X-Forwarded-For": "10.9.2.2"})
    assert other.status == 400
    assert (await booth.post("gemini", 1, make_jpeg(64, 48, seed=5))).status == 200


@pytest.mark.parametrize("entries", [10])
async def test_trash_has_a_size_budget_oldest_removed_first(tab_factory: Any, entries: int) -> None:
    tab = tab_factory("gemini", trash_max_bytes=MB)
    tab.fake.default_mode = "invalid_key"  # every photo fails at once (a wrong key is never retried)
    booth: Booth = tab.booth
    await booth.configure("gemini", 1, prompt="x")
    photos = [make_jpeg(700, 500, seed=300 + i, quality=97) for i in range(entries)]
    assert sum(len(p) for p in photos) > 2 * MB
    ids = []
    for photo in photos:
        answer = await booth.post("gemini", 1, photo)
        assert answer.status == 502
        ids.append(answer.json()["job_id"])
    async with httpx.AsyncClient(base_url=booth.url, auth=ADMIN) as client:
        for _ in range(100):
            storage = (await client.get("/api/stats")).json()["storage"]
            if storage["trash"]["removed_entries"]:
                break
            await asyncio.sleep(0.1)
        oldest = (await client.get(f"/api/jobs/{ids[0]}")).json()
        newest = (await client.get(f"/api/jobs/{ids[-1]}")).json()
    assert "trash_over_budget" in storage["warnings"]
    used = sum(p.stat().st_size for p in booth.trash_files())
    assert used <= MB, f"trash holds {used:,} bytes, over its budget"
    kept = {p.stem for p in booth.trash_files()}
    assert ids[0] not in kept and ids[-1] in kept, "the oldest entries go first"
    assert not oldest["in_trash"] and newest["in_trash"]
    removed = [i for i in ids if i not in kept]
    assert removed == ids[: len(removed)], "removed in age order"
