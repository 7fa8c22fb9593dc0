"""The answer never waits for the database, and no failure goes unrecorded (issue 14, part 3).

The database is troubled from outside, as in the field: another process holds SQLite's write lock
(a DB browser, a backup script); the database file is deleted under the running server; the disk
under the database is full (SQLite's own "database or disk is full" error raised at the driver for
every write to the jobs table, the way a full disk raises it).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from tests.conftest import Booth, make_jpeg

_HOLD_LOCK = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
connection.execute("BEGIN IMMEDIATE")
connection.execute("INSERT INTO stored_settings (key, value, updated_at) VALUES ('lock.test', '1', '2026-01-01')")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
connection.execute("ROLLBACK")
"""


@contextlib.contextmanager
def write_lock(database: Path) -> Iterator[None]:
    """Another process (a DB browser, a backup script) holds SQLite's write lock until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(database)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)


async def _today(booth: Booth) -> dict[str, Any]:
    stats: dict[str, Any] = (await booth.stats())["providers"]["gemini"]["today"]
    return stats


async def _until(condition: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not reached")


async def test_a_locked_database_delays_no_answer_and_the_jobs_are_counted_once_it_is_free(
    booth_factory: Any,
) -> None:
    deadline = 5.0
    booth: Booth = booth_factory(deadline_seconds=deadline)
    await booth.configure("gemini", 1, prompt="x")
    await booth.configure("gemini", 2, prompt="x", options={"mode": "fail"})
    database = booth.settings.data_dir / "boothgate.db"
    with write_lock(database):
        started = time.monotonic()
        answers = await asyncio.gather(
            booth.post("gemini", 1, make_jpeg(200, 150, seed=1)),
            booth.post("gemini", 1, make_jpeg(200, 150, seed=2)),
            booth.post("gemini", 2, make_jpeg(200, 150, seed=3)),
        )
        elapsed = time.monotonic() - started
        assert [a.status for a in answers] == [200, 200, 502]
        assert elapsed < deadline + 1.0, f"answered after {elapsed:.2f} s, past the {deadline:g} s deadline"
        assert [c.job_id for c in booth.calls], "the jobs ran while the database was locked"
        held = await _today(booth)  # reads still work under a write lock (WAL)
        assert held["received"] == 0, "nothing could be written while the lock was held"
        async with httpx.AsyncClient(base_url=booth.url) as client:
            health = (await client.get("/health")).json()
        assert health["journal"]["pending"] >= 3, "the rows wait in the journal"

    async def counted() -> bool:
        today = await _today(booth)
        return (today["received"], today["succeeded"], today["failed"], today["in_progress"]) == (3, 2, 1, 0)

    await _until(counted)
    ids = {a.headers["x-job-id"] for a in answers}
    async with booth.api() as client:
        jobs = {j["id"]: j for j in (await client.get("/api/jobs")).json()}
    assert ids <= set(jobs) and all(jobs[i]["finished_at"] for i in ids)
    assert all(jobs[i]["total_seconds"] <= deadline for i in ids), "on the server's own clock: inside the deadline"
    assert not list((booth.settings.data_dir / "journal").glob("*.draining"))


@pytest.fixture
def jobs_disk_full(booth: Booth) -> Iterator[list[bool]]:
    """Writes to the jobs table fail as on a full disk while `full[0]` is True."""
    full = [True]
    engine = booth.services.db.engine.sync_engine

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if full[0] and statement.lstrip().upper().startswith(("INSERT INTO JOBS", "UPDATE JOBS")):
            raise sqlite3.OperationalError("database or disk is full")

    event.listen(engine, "before_cursor_execute", before)
    yield full
    event.remove(engine, "before_cursor_execute", before)


async def test_a_full_disk_under_the_database_answers_507_and_keeps_the_original(
    booth: Booth, jobs_disk_full: list[bool]
) -> None:
    await booth.configure("gemini", 1, prompt="x")
    photo = make_jpeg(200, 150, seed=7)
    answer = await booth.post("gemini", 1, photo, fields={"id": "db-full-1"})
    assert answer.status == 507 and answer.json()["error"] == "storage_failed"
    assert not booth.calls, "a job that cannot be recorded does not reach the provider"
    job_id = answer.json()["job_id"]
    trash = {p.name: p for p in booth.trash_files()}
    assert trash[f"{job_id}.jpg"].read_bytes() == photo, "the original is kept"
    assert f"{job_id}.json" in trash
    second = await booth.post("gemini", 1, make_jpeg(200, 150, seed=17))
    assert second.status == 507, "still full: the next job is refused too, not run unrecorded"
    assert not booth.calls

    jobs_disk_full[0] = False  # space is back: the journaled row goes in, the statistics are exact
    await _until(lambda: _has_job(booth, job_id))
    async with booth.api() as client:
        job = (await client.get(f"/api/jobs/{job_id}")).json()
    assert (job["status"], job["error"], job["in_trash"]) == ("failed", "storage_failed", True)
    assert job["meta"]["id"] == "db-full-1"
    assert (await booth.post("gemini", 1, make_jpeg(200, 150, seed=8))).status == 200


async def _has_job(booth: Booth, job_id: str) -> bool:
    async with booth.api() as client:
        return (await client.get(f"/api/jobs/{job_id}")).status_code == 200


async def test_health_reports_a_deleted_database_file_and_booths_get_no_500(booth: Booth) -> None:
    await booth.configure("gemini", 1, prompt="x")
    async with httpx.AsyncClient(base_url=booth.url) as client:
        assert (await client.get("/health")).status_code == 200
        for name in ("boothgate.db", "boothgate.db-wal", "boothgate.db-shm"):
            (booth.settings.data_dir / name).unlink(missing_ok=True)
        broken = await client.get("/health")
        assert broken.status_code == 503
        assert broken.json()["database"] is False and "deleted" in broken.json()["database_problem"]
        answer = await booth.post("gemini", 1, make_jpeg(200, 150, seed=9))
        # the booth is served (docs/reliability.md: "booths answered (no 500)"); the row goes to the journal
        assert answer.status == 200, answer.body[:200]
        assert (await client.get("/health")).status_code == 503
    journal = booth.settings.data_dir / "journal"
    kept = "".join(p.read_text() for p in journal.glob("jobs*"))
    assert answer.headers["x-job-id"] in kept, "the job is kept in the journal for the next start"


def test_admin_password_is_not_needed_for_health(booth: Booth) -> None:
    answer = httpx.get(f"{booth.url}/health")  # no credentials at all
    assert answer.status_code == 200 and answer.json()["database"] is True


async def test_a_disk_too_full_even_for_the_journal_uses_its_reserve(
    booth: Booth, jobs_disk_full: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk is full for everything: database writes and journal appends fail with ENOSPC until the
    journal gives up its reserve (the only free space there is). The failure is still recorded."""
    from boothgate.records import journal as journal_module

    journal = booth.services.ingest.recorder.journal
    await _until(_reserve_back(journal))  # set aside in the background at start
    assert journal.reserve.stat().st_size == journal_module.RESERVE_BYTES
    real = journal_module.Journal._append

    def append(self: Any, data: bytes) -> None:
        if self.reserve.exists():
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, data)

    monkeypatch.setattr(journal_module.Journal, "_append", append)
    await booth.configure("gemini", 1, prompt="x")
    answer = await booth.post("gemini", 1, make_jpeg(200, 150, seed=11))
    assert answer.status == 507
    assert not journal.reserve.exists(), "the reserve was given up for the journal"
    assert answer.json()["job_id"] in journal.path.read_text()

    monkeypatch.undo()
    jobs_disk_full[0] = False
    await _until(lambda: _has_job(booth, answer.json()["job_id"]))
    await _until(_reserve_back(journal))


def _reserve_back(journal: Any) -> Any:
    async def check() -> bool:
        return bool(journal.reserve.exists())

    return check


async def test_journaled_rows_reach_a_new_database_at_the_next_start(booth: Booth) -> None:
    """After the database file was deleted, the next start (a new, empty database) gets the rows the
    journal kept: `Services.start` drains the journal before crash recovery runs."""
    from boothgate.runtime import Services

    await booth.configure("gemini", 1, prompt="x")
    for name in ("boothgate.db", "boothgate.db-wal", "boothgate.db-shm"):
        (booth.settings.data_dir / name).unlink(missing_ok=True)
    answers = [await booth.post("gemini", 1, make_jpeg(200, 150, seed=20 + i)) for i in range(2)]
    assert [a.status for a in answers] == [200, 200]
    ids = {a.headers["x-job-id"] for a in answers}

    restarted = await Services.start(booth.settings.model_copy(update={"data_dir": booth.settings.data_dir}))
    try:
        found = {job.id: job for job in await restarted.jobs.find(limit=10)}
        assert ids <= set(found), "every job answered while the file was gone is in the new database"
        assert all(found[i].status == "succeeded" for i in ids)
        assert not list((booth.settings.data_dir / "journal").glob("jobs*"))
    finally:
        await restarted.stop()
