"""The answer never waits for the database, and no failure goes unrecorded (issue 14, part 3).

The database is troubled from outside, as in the field: another process holds SQLite's write lock
(a DB browser, a backup script); the database file is deleted under the running server. The provider is
the real Gemini module against the Gemini wire fake (`running_tab`). A full disk under the database and
its journal is a real full filesystem: `tests/reliability/test_disk_full.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Booth, Tab, make_jpeg, running_tab
from tests.fakes.gemini import mode_marker

DEADLINE = 5.0


@pytest.fixture
def tab(tmp_path: Path) -> Iterator[Tab]:
    """One server per test: the tests delete its database file."""
    with running_tab("gemini", tmp_path, deadline_seconds=DEADLINE) as running:
        yield running


@pytest.fixture
def booth(tab: Tab) -> Booth:
    return tab.booth


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


async def test_a_locked_database_delays_no_answer_and_the_jobs_are_counted_once_it_is_free(tab: Tab) -> None:
    deadline = DEADLINE
    booth = tab.booth
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
    await booth.configure("gemini", 2, kind="prompt", prompt=f"x {mode_marker('invalid_key')}")
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
        assert len(tab.fake.received) == 3, "the jobs reached Gemini while the database was locked"
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


async def test_health_reports_a_deleted_database_file_and_booths_get_no_500(booth: Booth) -> None:
    await booth.configure("gemini", 1, kind="prompt", prompt="x")
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


async def test_journaled_rows_reach_a_new_database_at_the_next_start(booth: Booth) -> None:
    """After the database file was deleted, the next start (a new, empty database) gets the rows the
    journal kept: `Services.start` drains the journal before crash recovery runs."""
    from boothgate.runtime import Services

    await booth.configure("gemini", 1, kind="prompt", prompt="x")
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
