"""A full disk: the booth gets an error (or its own photo back), and the original is never lost.

The disk is real: the data dir (photos, results, trash, the SQLite database and its journal) sits on a
size-limited tmpfs mounted for this module, and "full" means a filler file allocated until the
filesystem has no (or only a few kB of) space left — the kernel answers ENOSPC, nothing of ours is
patched. The Gemini tab runs its real provider against its wire-format fake; the disk is filled while the
fake holds the photo (its `slow` answer), so the upload is already on disk and the result is not.
Mounting needs root (CI has it); without it the module is skipped and says why.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Booth, Tab, make_jpeg, running_tab

pytestmark = pytest.mark.slow

SIZE_MB = 48
DEADLINE = 6.0


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mountpoint = tmp_path_factory.mktemp("small-disk")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs for the data dir (needs root): {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@pytest.fixture(scope="module")
def rig(small_disk: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tab]:
    with running_tab(
        "gemini", tmp_path_factory.mktemp("disk-full"), data_dir=small_disk / "data", deadline_seconds=DEADLINE
    ) as tab:
        yield tab


@pytest.fixture
def tab(rig: Tab, small_disk: Path) -> Iterator[Tab]:
    rig.reset()
    rig.fake.slow_seconds = 1.5
    yield rig
    _free(small_disk)


def _filler(disk: Path) -> Path:
    return disk / "filler.bin"


def _fill(disk: Path, leave_bytes: int = 0) -> None:
    """Allocate real blocks until only `leave_bytes` (rounded to pages) are free."""
    _free(disk)
    free = _free_bytes(disk)
    with _filler(disk).open("wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, max(4096, free - leave_bytes))
    if leave_bytes:
        return
    fd = os.open(_filler(disk), os.O_WRONLY | os.O_APPEND)
    try:  # the last partial pages too, until the kernel says ENOSPC
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def _free(disk: Path) -> None:
    _filler(disk).unlink(missing_ok=True)


def _free_bytes(disk: Path) -> int:
    stat = os.statvfs(disk)
    return stat.f_bavail * stat.f_frsize


_seed = iter(range(1, 10_000))


def photo() -> bytes:
    """A noisy photo: the fake's result of it (~0.5 MB) cannot fit in the 64 kB left on the disk."""
    return make_jpeg(1200, 900, seed=next(_seed))


async def _at_the_provider(tab: Tab, count: int, seconds: float = 10.0) -> None:
    until = time.monotonic() + seconds
    while len(tab.fake.received) < count:
        assert time.monotonic() < until, "the photo never reached the fake"
        await asyncio.sleep(0.02)


async def _job(booth: Booth, job_id: str) -> dict[str, Any]:
    async with booth.api() as client:
        response = await client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def _post_and_fill_at_the_provider(tab: Tab, disk: Path, number: int, data: bytes, leave: int) -> Any:
    tab.fake.push("slow")
    posting = asyncio.create_task(tab.booth.post("gemini", number, data, fields={"id": f"full-{number}"}))
    await _at_the_provider(tab, 1)
    await asyncio.to_thread(_fill, disk, leave)
    return await posting


async def _journal_drained(booth: Booth) -> None:
    until = time.monotonic() + 15
    async with booth.api() as client:
        while (await client.get("/health")).json()["journal"]["pending"]:
            assert time.monotonic() < until, "the journal never reached the database"
            await asyncio.sleep(0.1)


async def test_no_space_for_the_result_answers_507_and_keeps_the_original(tab: Tab, small_disk: Path) -> None:
    booth = tab.booth
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    data = photo()
    answer = await _post_and_fill_at_the_provider(tab, small_disk, 1, data, leave=64 * 1024)

    assert (answer.status, answer.json()["error"]) == (507, "storage_failed"), answer.body[:300]
    job_id = str(answer.json()["job_id"])
    trash = {p.name: p for p in booth.trash_files()}
    assert trash[f"{job_id}.jpg"].read_bytes() == data, "the original, byte for byte"
    assert json.loads(trash[f"{job_id}.json"].read_text())["metadata"]["id"] == "full-1"
    leftovers = [p for p in (booth.settings.data_dir / "results").rglob("*") if p.is_file()]
    assert not leftovers, f"no half-written result on the full disk: {leftovers}"

    _free(small_disk)  # space freed: the job is recorded and the server carries on
    await _journal_drained(booth)
    job = await _job(booth, job_id)
    assert (job["status"], job["error"], job["in_trash"]) == ("failed", "storage_failed", True)
    stats = (await booth.stats())["providers"]["gemini"]["today"]
    assert (stats["received"], stats["failed"]) == (1, 1), "in the statistics as failed"
    again = await booth.post("gemini", 1, photo())
    assert again.status == 200, again.body[:300]


async def test_no_space_with_on_failure_original_answers_the_guest_photo(tab: Tab, small_disk: Path) -> None:
    await tab.booth.configure("gemini", 2, kind="prompt", prompt="x", on_failure="original")
    data = photo()
    answer = await _post_and_fill_at_the_provider(tab, small_disk, 2, data, leave=64 * 1024)
    assert (answer.status, answer.body) == (200, data)
    assert answer.headers["x-boothgate-fallback"] == "storage_failed"
    job_id = answer.headers["x-job-id"]
    assert {p.name: p for p in tab.booth.trash_files()}[f"{job_id}.jpg"].read_bytes() == data


async def test_no_space_at_all_still_keeps_the_original(tab: Tab, small_disk: Path) -> None:
    """Not even the sidecar fits: the original is moved (a rename needs no blocks) and the job says where."""
    booth = tab.booth
    await booth.configure("gemini", 3, kind="prompt", prompt="x")
    data = photo()
    answer = await _post_and_fill_at_the_provider(tab, small_disk, 3, data, leave=0)
    assert answer.status == 507, answer.body[:300]
    job_id = str(answer.json()["job_id"])
    _free(small_disk)
    await _journal_drained(booth)
    job = await _job(booth, job_id)
    assert job["in_trash"], "the database must say where the original went"
    async with booth.api() as client:
        kept = await client.get(job["photo_url"])
    assert kept.status_code == 200 and kept.content == data


async def test_no_space_while_receiving_answers_507(tab: Tab, small_disk: Path) -> None:
    booth = tab.booth
    await booth.configure("gemini", 4, kind="prompt", prompt="x")
    await asyncio.to_thread(_fill, small_disk, 0)
    assert _free_bytes(small_disk) < 4096
    answer = await booth.post("gemini", 4, photo())
    assert (answer.status, answer.json()["error"]) == (507, "storage_failed"), answer.body[:300]
    assert tab.fake.received == [], "nothing was sent to a paid service for a photo that could not be kept"
    _free(small_disk)
    assert not list((booth.settings.data_dir / "incoming").iterdir()), "nothing left half-received"
    again = await booth.post("gemini", 4, photo())
    assert again.status == 200, again.body[:300]


async def test_a_disk_full_for_the_database_and_the_journal_gives_up_the_reserve_and_loses_no_row(
    tab: Tab, small_disk: Path
) -> None:
    """The whole disk fills while Gemini holds the photo: the database's write of the job fails (the kernel's
    ENOSPC under SQLite) and the journal's append too, until the journal gives up its reserve — the failure
    is still recorded. Once space is back the row reaches the database and the reserve is set aside again."""
    booth = tab.booth
    journal = booth.services.ingest.recorder.journal
    await _until(lambda: journal.reserve.exists(), "the reserve is set aside at start")
    await booth.configure("gemini", 5, kind="prompt", prompt="x")
    data = photo()
    answer = await _post_and_fill_at_the_provider(tab, small_disk, 5, data, leave=0)
    assert (answer.status, answer.json()["error"]) == (507, "storage_failed"), answer.body[:300]
    job_id = str(answer.json()["job_id"])
    assert not journal.reserve.exists(), "the reserve was given up so the failure could be written"
    assert job_id in journal.path.read_text(), "the job's row is in the journal"

    _free(small_disk)
    await _journal_drained(booth)
    job = await _job(booth, job_id)
    assert (job["status"], job["error"], job["in_trash"]) == ("failed", "storage_failed", True)
    assert job["meta"]["id"] == "full-5"
    await _until(lambda: journal.reserve.exists(), "the reserve is taken back once there is room")


async def _until(condition: Any, what: str, seconds: float = 15.0) -> None:
    until = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < until, what
        await asyncio.sleep(0.05)
