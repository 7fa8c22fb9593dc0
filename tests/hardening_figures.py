"""Figures for issue 14 (parts 2-3), printed: `python -m tests.hardening_figures`.

A. Answer times of booths posting while another connection holds SQLite's write lock, against the same
   posts without the lock, and how long after the lock is released the statistics are exact again.
B. Bytes on disk while a stranger streams a 30 MB file part that never ends (no password).
C. What one journaled row costs (append + fsync).

Not a unit test: wall-clock figures depend on the machine (run it on a quiet one).
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from boothgate.records.journal import Journal
from boothgate.web.app import create_app
from tests.conftest import ADMIN, ScriptedProvider, booth_settings, make_jpeg
from tests.fakes.server import serve
from tests.reliability.test_strangers import MB, _file_head, _hostile, _largest_file

BOOTHS = 20
DEADLINE = 3.0


async def _post_all(url: str, photos: list[bytes]) -> list[float]:
    from boothgate.cli.booth_client import post_photo_async
    from tests.conftest import UPLOAD_PASSWORD

    async def one(photo: bytes) -> float:
        started = time.monotonic()
        answer = await post_photo_async(f"{url}/booth/gemini/1", photo, UPLOAD_PASSWORD, timeout=30)
        assert answer.status == 200, answer.status
        return time.monotonic() - started

    return list(await asyncio.gather(*(one(p) for p in photos)))


async def _enable(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, auth=ADMIN) as client:
        await client.put("/api/slots/gemini/1", json={"enabled": True, "prompt": "x"})


async def _received(url: str) -> int:
    async with httpx.AsyncClient(base_url=url, auth=ADMIN) as client:
        stats = (await client.get("/api/stats")).json()
    return int(stats["providers"]["gemini"]["today"]["received"])


async def locked_database(root: Path) -> None:
    settings = booth_settings(root, deadline_seconds=DEADLINE)
    with serve(create_app(settings, {"gemini": ScriptedProvider})) as url:
        await _enable(url)
        free = await _post_all(url, [make_jpeg(320, 240, seed=i) for i in range(BOOTHS)])
        lock = sqlite3.connect(settings.data_dir / "boothgate.db", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        held = await _post_all(url, [make_jpeg(320, 240, seed=100 + i) for i in range(BOOTHS)])
        lock.execute("ROLLBACK")
        released = time.monotonic()
        while await _received(url) < 2 * BOOTHS:  # noqa: ASYNC110 (polling the server, not an event)
            await asyncio.sleep(0.05)
        caught_up = time.monotonic() - released
        lock.close()
    print(f"A. {BOOTHS} booths at once, deadline {DEADLINE:g} s")
    print(f"   database free:   max answer {max(free):.2f} s, mean {sum(free) / len(free):.2f} s")
    print(f"   write lock held: max answer {max(held):.2f} s, mean {sum(held) / len(held):.2f} s")
    print(f"   statistics exact {caught_up:.2f} s after the lock was released ({2 * BOOTHS} jobs)")


async def stranger_disk(root: Path) -> None:
    settings = booth_settings(root, deadline_seconds=20.0)
    with serve(create_app(settings, {"gemini": ScriptedProvider})) as url:
        await _enable(url)
        seen: list[int] = [0]
        stop = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                data = settings.data_dir
                seen.append(_largest_file(data / "incoming") + _largest_file(data / "trash"))
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        port = int(url.rsplit(":", 1)[1])
        status, body = await _hostile(port, "10.0.0.9", _file_head(), 29 * MB)
        stop.set()
        await watcher
    print(f"B. stranger streams 29 MB of a file part that never ends: answered {status} {body['error']}, ")
    print(f"   largest file it left in incoming/ + trash/ at any moment: {max(seen):,} bytes")


def journal_cost(root: Path, rows: int = 200) -> None:
    journal = Journal(root / "journal")
    row: dict[str, Any] = {"id": "0" * 32, "status": "succeeded", "meta": {"id": "x" * 40}, "timings": {"total": 1.0}}
    started = time.perf_counter()
    for _ in range(rows):
        journal.append([row])
    per_row = (time.perf_counter() - started) / rows * 1000
    print(f"C. one journaled row (append + fsync): {per_row:.2f} ms ({rows} rows)")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        await locked_database(root / "a")
        await stranger_disk(root / "b")
        journal_cost(root / "c")


if __name__ == "__main__":
    asyncio.run(main())
