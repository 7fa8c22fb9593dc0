"""A wrong clock never deletes the event (issue 31, class 8): photos, results and trash written while the
clock was weeks behind survive a start with the right time; they go only once they have been kept here
for their retention (monotonic kept-age), and the jump of the clock is logged and shown in /health."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from boothgate.records import retention
from tests.conftest import Booth, make_jpeg


def _write_event(root: Any, days_behind: int) -> list[str]:
    """What a booth writes with its clock `days_behind` (day folders named from that clock)."""
    day = (datetime.now(UTC) - timedelta(days=days_behind)).date().isoformat()
    written = []
    for folder, name in (("photos", "a.jpg"), ("results", "a.jpg"), ("trash", "b.jpg"), ("trash", "b.json")):
        path = root / folder / day / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_jpeg(64, 48, seed=days_behind) if name.endswith(".jpg") else b"{}")
        written.append(f"{folder}/{day}/{name}")
    return written


@pytest.mark.parametrize("days_behind", [45, 60, 400])
async def test_photos_written_with_the_clock_behind_survive_a_start_with_the_right_time(
    booth_factory: Any, days_behind: int
) -> None:
    booth: Booth = booth_factory(retention_days=30, trash_retention_days=40)
    services = booth.services
    written = _write_event(services.media.root, days_behind)
    for _ in range(2):  # the sweep at start, and the next one
        await retention.sweep(services.settings, services.media, services.db)
    for relative in written:
        assert (services.media.root / relative).exists(), f"{relative} deleted by its folder name alone"


async def test_a_folder_goes_once_it_has_been_kept_for_its_retention(booth_factory: Any, monkeypatch: Any) -> None:
    booth: Booth = booth_factory(retention_days=30, trash_retention_days=40)
    services = booth.services
    written = _write_event(services.media.root, 60)
    ledger = retention.Ledger(services.media.root / retention.LEDGER_NAME)
    await retention.sweep(services.settings, services.media, services.db, ledger=ledger)
    real_mono, real_wall = time.monotonic, time.time
    for days in (29, 31, 41):  # the server keeps running; the monotonic and the wall clock agree
        monkeypatch.setattr(time, "monotonic", lambda d=days: real_mono() + d * retention.DAY)
        monkeypatch.setattr(time, "time", lambda d=days: real_wall() + d * retention.DAY)
        await retention.sweep(services.settings, services.media, services.db, ledger=ledger)
        photos_kept = (services.media.root / written[0]).exists()
        trash_kept = (services.media.root / written[2]).exists()
        assert photos_kept == (days < 30) and trash_kept == (days < 40), days
    assert ledger.jumps == []
    saved = json.loads((services.media.root / retention.LEDGER_NAME).read_text())
    assert saved["kept"] == {}, "the ledger forgets folders that are gone"


async def test_a_clock_jump_is_logged_and_shown(booth_factory: Any, monkeypatch: Any, caplog: Any) -> None:
    booth: Booth = booth_factory()
    services = booth.services
    until = time.monotonic() + 10
    while services.retention.ledger is None and time.monotonic() < until:  # noqa: ASYNC110 (the server's sweep)
        await asyncio.sleep(0.02)
    ledger = services.retention.ledger
    assert ledger is not None
    await retention.sweep(services.settings, services.media, services.db, ledger=ledger)
    real_wall = time.time
    monkeypatch.setattr(time, "time", lambda: real_wall() + 21 * retention.DAY)  # the clock set right: +3 weeks
    with caplog.at_level(logging.WARNING, logger="boothgate.retention"):
        await retention.sweep(services.settings, services.media, services.db, ledger=ledger)
    assert any("clock jump" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(time, "time", real_wall)
    async with httpx.AsyncClient(base_url=booth.url, timeout=30) as client:
        health = (await client.get("/health")).json()
    assert health["retention"]["clock_jumps"] == 1
    assert abs(health["retention"]["last_clock_jump"]["seconds"] - 21 * 86400) < 600
