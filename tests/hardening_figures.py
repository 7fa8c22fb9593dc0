"""Figures for issue 14 (parts 2-3), printed: `python -m tests.hardening_figures`.

A. Answer times of booths posting while another connection holds SQLite's write lock, against the same
   posts without the lock, and how long after the lock is released the statistics are exact again.
B. Bytes on disk while a stranger streams a 30 MB file part that never ends (no password).
C. What one journaled row costs (append + fsync).

Not a unit test: wall-clock figures depend on the machine (run it on a quiet one). The run writes its
figures into docs/reliability.md between `<!-- hardening_figures:start -->` and `<!-- hardening_figures:end -->`
(`paragraph`); tests/reliability/test_reliability_doc.py checks that the block is this command's wording
with this command's constants, so no figure there is typed by hand.
"""

from __future__ import annotations

import asyncio
import os
import re
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
STRANGER_MB = 29


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


async def locked_database(root: Path, figures: dict[str, Any]) -> None:
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
    figures.update(free_mean=sum(free) / len(free), free_max=max(free), held_mean=sum(held) / len(held),
                   held_max=max(held), caught_up=caught_up)  # fmt: skip


async def stranger_disk(root: Path, figures: dict[str, Any]) -> None:
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
        status, body = await _hostile(port, "10.0.0.9", _file_head(), STRANGER_MB * MB)
        stop.set()
        await watcher
    print(f"B. stranger streams {STRANGER_MB} MB of a file part that never ends: answered {status} {body['error']}, ")
    print(f"   largest file it left in incoming/ + trash/ at any moment: {max(seen):,} bytes")
    figures.update(stranger_status=status, stranger_error=body["error"], stranger_left=max(seen))


def journal_cost(root: Path, figures: dict[str, Any], rows: int = 200) -> None:
    journal = Journal(root / "journal")
    row: dict[str, Any] = {"id": "0" * 32, "status": "succeeded", "meta": {"id": "x" * 40}, "timings": {"total": 1.0}}
    started = time.perf_counter()
    for _ in range(rows):
        journal.append([row])
    per_row = (time.perf_counter() - started) / rows * 1000
    print(f"C. one journaled row (append + fsync): {per_row:.2f} ms ({rows} rows)")
    figures.update(journal_ms=per_row)


PARAGRAPH = (
    "Measured with `python -m tests.hardening_figures` on {date} ({cores} cores, load average {load} at the start;\n"
    "wall times depend on the machine): {booths} booths posting at once with a {deadline} s deadline were answered\n"
    "in {held_mean} s on average ({held_max} s at most) while another connection held the write lock, against\n"
    "{free_mean} s ({free_max} s) with the database free; the statistics were exact {caught_up} s after the lock was\n"
    "released ({jobs} jobs). A stranger streaming {stranger_mb} MB of a file part that never ends got\n"
    "{stranger_status} `{stranger_error}` and left at most {stranger_left} bytes (its metadata sidecar) in\n"
    "`incoming/` and `trash/`. One journaled row costs {journal_ms} ms (append + fsync)."
)


def paragraph(figures: dict[str, Any]) -> str:
    """The page's paragraph for one run's figures (the constants of this module filled in)."""
    shown = {k: f"{figures[k]:.2f}" for k in ("held_mean", "held_max", "free_mean", "free_max", "caught_up")}
    shown["journal_ms"] = f"{figures['journal_ms']:.1f}"
    return PARAGRAPH.format(
        **{**figures, **shown}, booths=BOOTHS, deadline=f"{DEADLINE:g}", jobs=2 * BOOTHS, stranger_mb=STRANGER_MB
    )


def figures_in(text: str) -> dict[str, str] | None:
    """The figures of the paragraph in `text`'s block, read back (None: no block in this command's wording)."""
    block = re.search(r"<!-- hardening_figures:start -->\n(.*?)\n<!-- hardening_figures:end -->", text, re.S)
    if not block:
        return None
    pattern = re.escape(PARAGRAPH).replace(r"\{", "{").replace(r"\}", "}")
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>.+?)", pattern)
    found = re.fullmatch(pattern, block.group(1), re.S)
    return found.groupdict() if found else None


def write_doc(figures: dict[str, Any]) -> None:
    from tests.reliability_doc import DOC

    text = DOC.read_text()
    block = f"<!-- hardening_figures:start -->\n{paragraph(figures)}\n<!-- hardening_figures:end -->"
    new, count = re.subn(r"<!-- hardening_figures:start -->.*?<!-- hardening_figures:end -->", lambda _: block, text,
                         flags=re.S)  # fmt: skip
    assert count == 1, "docs/reliability.md has no hardening_figures block"
    DOC.write_text(new)


async def main() -> None:
    figures: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "cores": os.cpu_count(),
        "load": f"{os.getloadavg()[0]:.1f}",
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        await locked_database(root / "a", figures)
        await stranger_disk(root / "b", figures)
        journal_cost(root / "c", figures)
    write_doc(figures)


if __name__ == "__main__":
    asyncio.run(main())
