"""Bad input from the booth side: every case of the corpus gets its status from design.md, nothing is
written outside the data dir, and the server keeps serving. Plus the bad inputs that need time or
their own server: a client trickling one byte per second, a client that stops, wrong passwords.

Every server here runs the Gemini tab's real module and SDK against the Gemini wire-format fake on a socket
(`tests/conftest.py::running_tab`), so a photo that gets through is a real provider call."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.web.app import create_app
from tests.bad_inputs import (
    CORPUS,
    CORPUS_SETTINGS,
    ESCAPE_MARKER,
    MULTIPART,
    TRAVERSAL_NAME,
    Case,
    booth_form,
    exchange,
)
from tests.conftest import ADMIN, Booth, Tab, booth_settings, make_jpeg, running_tab, start_fakes
from tests.fakes.server import free_port, serve
from tests.waits import eventually

MEDIA_NAME = re.compile(r"^[0-9a-f]{32}\.(jpg|png|webp|json|bin)$")


class CorpusServer:
    def __init__(self, root: Path, url: str, tab: Tab) -> None:
        self.root, self.url, self.tab = root, url, tab
        self.data_dir = root / "data"
        self.port = int(url.rsplit(":", 1)[1])
        self.answered = 0  # requests that reached the spine (each must be a job in the statistics)

    def files_outside_data_dir(self) -> set[Path]:
        return {p for p in self.root.rglob("*") if p.is_file() and not p.is_relative_to(self.data_dir)}


@pytest.fixture(scope="module")
def corpus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusServer]:
    root = tmp_path_factory.mktemp("corpus")
    (root / "outside").mkdir()
    (root / "outside" / "witness.txt").write_text("a file outside the data dir")
    with running_tab("gemini", root, **CORPUS_SETTINGS) as tab:
        url = tab.booth.url
        response = httpx.put(f"{url}/api/slots/gemini/1", json={"enabled": True, "prompt": "x"}, auth=ADMIN)
        assert response.status_code == 200
        yield CorpusServer(root, url, tab)


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
async def test_corpus(case: Case, corpus_server: CorpusServer) -> None:
    before = corpus_server.files_outside_data_dir()
    answer = await exchange(
        corpus_server.port,
        case.path,
        case.body(),
        case.headers,
        chunked=case.chunked,
        content_length=case.content_length,
    )
    corpus_server.answered += "x-job-id" in answer.headers  # requests that reached the spine
    if case.status == 200:
        assert (answer.status, answer.headers.get("content-type")) == (200, "image/jpeg"), answer.body[:300]
    elif case.code is None:
        assert answer.status == case.status, answer.body[:300]
    else:
        body = json.loads(answer.body)
        assert (answer.status, body["error"]) == (case.status, case.code), body
        assert body["message"] and body["job_id"]
    assert corpus_server.files_outside_data_dir() == before, "something was written outside the data dir"
    _assert_data_dir_tidy(corpus_server.data_dir)
    async with httpx.AsyncClient(base_url=corpus_server.url) as client:
        assert (await client.get("/health")).status_code == 200, "the server must keep serving"


def _assert_data_dir_tidy(data_dir: Path) -> None:
    """Only our own folders, only names we chose (job ids), never the booth's file name."""
    for path in data_dir.rglob("*"):
        if path.is_dir():
            continue
        relative = path.relative_to(data_dir)
        if len(relative.parts) == 1:
            assert relative.name.startswith("boothgate.db") or relative.stem == "retention-ledger", relative
            continue
        if relative.parts[0] == "journal":  # the job journal and its disk reserve (records/journal.py)
            assert relative.name in ("reserve", "jobs.jsonl") or relative.suffix == ".draining", relative
            continue
        assert relative.parts[0] in ("photos", "results", "trash", "incoming"), relative
        assert MEDIA_NAME.match(relative.name) or relative.name.endswith(".part"), relative
        assert ESCAPE_MARKER not in str(relative)


async def test_traversal_file_name_is_kept_only_as_text(corpus_server: CorpusServer) -> None:
    body = booth_form(make_jpeg(64, 48, seed=14), filename=TRAVERSAL_NAME)
    answer = await exchange(corpus_server.port, "/booth/gemini/1", body, MULTIPART)
    assert answer.status == 200
    corpus_server.answered += 1
    for candidate in (Path("/tmp") / f"{ESCAPE_MARKER}.jpg", Path.cwd() / f"{ESCAPE_MARKER}.jpg"):
        assert not candidate.exists()
    async with httpx.AsyncClient(base_url=corpus_server.url, auth=ADMIN) as client:
        job = (await client.get(f"/api/jobs/{answer.headers['x-job-id']}")).json()
    name = job["meta"]["filename"]
    assert ESCAPE_MARKER in name, "the booth's file name is kept as metadata"
    assert "/" not in name and "\\" not in name and "\x00" not in name


def test_corpus_leaves_the_server_serving_and_counting(corpus_server: CorpusServer) -> None:
    """After the whole corpus: a normal photo still works, and every answer was recorded."""
    answer = httpx.post(
        f"{corpus_server.url}/booth/gemini/1",
        content=booth_form(make_jpeg(200, 150, seed=77)),
        headers=MULTIPART,
        timeout=10,
    )
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    jobs = httpx.get(f"{corpus_server.url}/api/jobs?limit=500", auth=ADMIN).json()
    assert len(jobs) == corpus_server.answered + 1, "every request that reached the spine is a job"
    assert all(job["status"] in ("succeeded", "rejected") for job in jobs), "bad input is rejected, never lost"
    succeeded = [job for job in jobs if job["status"] == "succeeded"]
    assert len(corpus_server.tab.fake.received) == len(succeeded), "each photo let through was one Gemini call"
    stats = httpx.get(f"{corpus_server.url}/api/stats", auth=ADMIN).json()["providers"]
    on_tabs = [job for job in jobs if job["provider"] in stats]
    assert sum(p["all_time"]["received"] for p in stats.values()) == len(on_tabs)
    assert sum(p["all_time"]["in_progress"] for p in stats.values()) == 0


# ---------------------------------------------------------------- slow and stopped clients
async def _trickle(port: int, body: bytes, stop: asyncio.Event, pace_seconds: float) -> tuple[int, bytes, float]:
    """Send headers, then the body one byte per `pace_seconds`, until the server answers."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /booth/gemini/1 HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART['Content-Type']}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode())

    async def drip() -> None:
        for i in range(len(body)):
            if stop.is_set():
                return
            writer.write(body[i : i + 1])
            try:
                await writer.drain()
            except ConnectionError:
                return
            await asyncio.sleep(pace_seconds)

    dripping = asyncio.create_task(drip())
    try:
        line = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        status = int(line.split()[1])
        length = int(re.search(rb"(?i)content-length: (\d+)", line).group(1))  # type: ignore[union-attr]
        answer = await reader.readexactly(length)
        return status, answer, time.monotonic() - started
    finally:
        stop.set()
        dripping.cancel()
        writer.close()


async def test_one_byte_per_second_is_cut_off_and_other_booths_are_served(tab_factory: Any) -> None:
    deadline = 3.0
    booth: Booth = tab_factory("gemini", deadline_seconds=deadline, upload_idle_timeout_seconds=2.0).booth
    await booth.configure("gemini", 1, prompt="x")
    port = int(booth.url.rsplit(":", 1)[1])
    slow = asyncio.create_task(_trickle(port, booth_form(make_jpeg(64, 48, seed=20)), asyncio.Event(), 1.0))

    # the trickling upload has reached the server (its job is on the way to the provider) before the other posts
    await eventually(lambda: booth.services.ingest.traffic.coming >= 1, "the trickling upload to arrive")
    other_started = time.monotonic()
    other = await booth.post("gemini", 1, make_jpeg(200, 150, seed=21))
    assert other.status == 200, "another booth must be served while one trickles"
    assert not slow.done() and time.monotonic() - other_started < deadline - 0.5

    status, body, seconds = await slow
    assert status == 400 and json.loads(body)["error"] == "upload_too_slow"
    assert seconds <= deadline + 1.0, f"the trickling client was cut off only after {seconds:.1f} s"
    _assert_trashed_with_sidecar(booth, json.loads(body)["job_id"], "upload_too_slow")
    stats = (await booth.stats())["providers"]["gemini"]["today"]
    assert (stats["rejected"], stats["timed_out"]) == (1, 0), "a slow client is the booth's fault, not the provider's"


async def test_a_client_that_stops_sending_is_cut_off_by_the_idle_timeout(tab_factory: Any) -> None:
    booth: Booth = tab_factory("gemini", deadline_seconds=10.0, upload_idle_timeout_seconds=1.0).booth
    await booth.configure("gemini", 1, prompt="x")
    port = int(booth.url.rsplit(":", 1)[1])
    body = booth_form(make_jpeg(64, 48, seed=22))
    # claims the whole body, sends the first half, then nothing
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST /booth/gemini/1 HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART['Content-Type']}\r\n"
    writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
    started = time.monotonic()
    line = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    elapsed = time.monotonic() - started
    answer = json.loads(await reader.readexactly(int(re.search(rb"(?i)content-length: (\d+)", line).group(1))))  # type: ignore[union-attr]
    writer.close()
    assert b" 400 " in line.split(b"\r\n")[0] and answer["error"] == "upload_stalled"
    assert 0.9 <= elapsed <= 2.5, f"cut off after {elapsed:.2f} s; the idle timeout is 1 s"
    photo_start = body.index(b"\xff\xd8\xff")
    _assert_trashed_with_sidecar(booth, answer["job_id"], "upload_stalled", body[photo_start : len(body) // 2])


def _assert_trashed_with_sidecar(booth: Booth, job_id: str, code: str, partial: bytes | None = None) -> None:
    trash = {p.name: p for p in booth.trash_files()}
    sidecar = json.loads(trash[f"{job_id}.json"].read_text())
    assert sidecar["error"] == code
    if partial is not None:
        # the type comes from the content: the first half of a JPEG is kept as .jpg
        assert trash[f"{job_id}.jpg"].read_bytes() == partial, "what did arrive of the photo is kept in trash"


# ---------------------------------------------------------------- wrong passwords
async def test_repeated_wrong_passwords_slow_down_then_lock_out(tab_factory: Any) -> None:
    tab: Tab = tab_factory("gemini", auth_max_failures=8, auth_lockout_seconds=60)
    booth = tab.booth
    await booth.configure("gemini", 1, prompt="x")
    photo = make_jpeg(64, 48, seed=30)
    timings = []
    for _ in range(8):
        started = time.monotonic()
        answer = await booth.post("gemini", 1, photo, password="guess")
        timings.append(time.monotonic() - started)
        assert answer.status == 401
    # the 8th guess is held 1.6 s (0.1 s doubling from the 4th), the first three not at all: a lower bound
    # the server guarantees, and a growth over the median of the first three, which one slow request cannot
    # hide (0.6 s of slack)
    assert timings[-1] >= 1.6, f"the last wrong guess must be held 1.6 s: {timings}"
    assert timings[-1] > sorted(timings[:3])[1] + 1.0, f"later wrong guesses must be held longer: {timings}"
    locked = await booth.post("gemini", 1, photo)
    assert locked.status == 429 and locked.json()["error"] == "rate_limited"
    assert not tab.fake.received, "a locked-out address never reaches the provider"


async def test_a_client_that_hangs_up_mid_upload_is_recorded_as_rejected(tab_factory: Any, caplog: Any) -> None:
    booth: Booth = tab_factory("gemini").booth
    await booth.configure("gemini", 1, prompt="x")
    body = booth_form(make_jpeg(64, 48, seed=23))
    _, writer = await asyncio.open_connection("127.0.0.1", int(booth.url.rsplit(":", 1)[1]))
    head = f"POST /booth/gemini/1 HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART['Content-Type']}\r\n"
    writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
    await writer.drain()
    photo_start = body.index(b"\xff\xd8\xff")
    partial = body[photo_start : len(body) // 2]
    incoming = booth.services.media.root / "incoming"
    # the server has read the half and spooled it at the booth's pause (its file is opened on the first write);
    # a hang-up drops what the server has not read yet
    await eventually(lambda: any(incoming.glob("*.part")), "the half upload to be spooled")
    writer.close()

    async def recorded() -> list[dict[str, Any]]:
        async with booth.api() as client:
            jobs: list[dict[str, Any]] = (await client.get("/api/jobs")).json()
        return jobs if jobs and jobs[0]["status"] != "received" else []

    [job] = await eventually(recorded, "the hang-up to be recorded")
    assert (job["status"], job["error"], job["http_status"]) == ("rejected", "client_disconnected", 400)
    assert "Traceback" not in caplog.text, "a booth hanging up is not a server bug"
    _assert_trashed_with_sidecar(booth, job["id"], "client_disconnected", partial)


# ---------------------------------------------------------------- slow request heads (slowloris)
async def _closed_after(port: int, pace_seconds: float, head: bytes, opened: asyncio.Event) -> float:
    """Trickle `head` one byte per `pace_seconds`; seconds until the server closes the connection (timed from
    before connecting, so never less than the server's own timer). `opened` is set once the first byte is out."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(len(head)):
            writer.write(head[i : i + 1])
            await writer.drain()
            opened.set()
            try:
                if await asyncio.wait_for(reader.read(1), pace_seconds) == b"":
                    break  # closed by the server
            except TimeoutError:
                continue
    except ConnectionError:
        pass
    finally:
        writer.close()
    return time.monotonic() - started


async def test_a_request_head_trickled_byte_by_byte_is_cut_off(tmp_path: Path) -> None:
    from boothgate.web.server import uvicorn_options

    with ExitStack() as stack:  # as `boothgate serve` runs uvicorn (its head timer is uvicorn's protocol)
        _, _, _, _, values = start_fakes("gemini", stack)
        settings = booth_settings(tmp_path, upload_idle_timeout_seconds=1.0, **values)
        url = stack.enter_context(serve(create_app(settings, {}), port=free_port(), **uvicorn_options(settings)))
        port = int(url.rsplit(":", 1)[1])
        async with httpx.AsyncClient(base_url=url, auth=ADMIN) as client:
            assert (await client.put("/api/slots/gemini/1", json={"enabled": True, "prompt": "x"})).status_code == 200
            head = b"POST /booth/gemini/1 HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data\r\n" * 3
            opened = asyncio.Event(), asyncio.Event()
            slow = asyncio.create_task(_closed_after(port, 0.2, head, opened[0]))
            silent = asyncio.create_task(_closed_after(port, 5.0, b"P", opened[1]))
            await asyncio.wait_for(asyncio.gather(opened[0].wait(), opened[1].wait()), 10)  # both are trickling
            meanwhile = await client.post(
                "/booth/gemini/1", content=booth_form(make_jpeg(64, 48, seed=40)), headers=MULTIPART
            )
            assert meanwhile.status_code == 200, "other booths are served while one trickles its head"
            # a kept-alive connection idle between requests is not cut by the head timer early
            await asyncio.sleep(0.5)
            assert (await client.get("/health")).status_code == 200
        assert 0.9 <= await slow <= 3.0, "a head trickled byte by byte is cut after the 1 s head timeout"
        assert 0.9 <= await silent <= 3.0, "a connection that sends nothing is closed too"
