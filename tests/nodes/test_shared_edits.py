"""Edits on one node are used by the others (issue 27): two servers on one PostgreSQL, each its own data
dir. A slot edited on node A is what node B's next photo runs with (slots are read from the database per
photo); a setting saved on node A reaches node B through LISTEN/NOTIFY without a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import text

from boothgate.storage.db import Database
from tests.conftest import make_jpeg
from tests.postgres_support import PostgresServer


async def _until(check: Any, seconds: float = 15.0) -> None:
    """Wait for a condition another node's notification makes true (bounded; not a timing claim)."""
    # The condition is set on the servers' own event loops (threads): polled, since no event crosses loops.
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the other node never saw the change")


async def test_slot_and_setting_edits_on_one_node_are_used_by_the_other(
    booth_factory: Any,
    postgres_server: PostgresServer,
    tmp_path: Path,
) -> None:
    url = postgres_server.fresh_database()
    a = booth_factory(database_url=url, data_dir=tmp_path / "a")
    b = booth_factory(database_url=url, data_dir=tmp_path / "b")
    await _until(lambda: a.services.changes.listening.is_set() and b.services.changes.listening.is_set())

    await a.configure("gemini", 1, kind="prompt", prompt="as a pirate")
    first = await b.post("gemini", 1, make_jpeg(1600, 1200, seed=1))
    assert first.status == 200 and b.calls[-1].prompt == "as a pirate"
    await a.configure("gemini", 1, prompt="as an astronaut")
    second = await b.post("gemini", 1, make_jpeg(1600, 1200, seed=2))
    assert second.status == 200 and b.calls[-1].prompt == "as an astronaut"
    width, height = b.calls[-1].photo_size
    assert width * height > 1_000_000  # 1600x1200 goes to the provider whole by default

    async with a.api() as client:
        saved = await client.put("/api/settings", json={"provider_input_pixels": 300_000})
    assert saved.status_code == 200, saved.text
    await _until(lambda: b.services.settings.provider_input_pixels == 300_000)
    third = await b.post("gemini", 1, make_jpeg(1600, 1200, seed=3))
    assert third.status == 200
    width, height = b.calls[-1].photo_size
    assert width * height <= 300_000, (width, height)  # node B's registry was rebuilt with A's setting


async def test_a_node_whose_listening_connection_drops_catches_up(
    booth_factory: Any,
    postgres_server: PostgresServer,
    tmp_path: Path,
) -> None:
    url = postgres_server.fresh_database()
    a = booth_factory(database_url=url, data_dir=tmp_path / "a")
    b = booth_factory(database_url=url, data_dir=tmp_path / "b")
    changes = b.services.changes
    await _until(changes.listening.is_set)
    admin = Database(url)  # B's listener is cut (a PostgreSQL restart, a network blip) ...
    try:
        async with admin.write() as session:
            await session.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
            )
    finally:
        await admin.dispose()
    await _until(lambda: not changes.listening.is_set())
    async with a.api() as client:  # ... and the setting is saved while it is away: no notification reaches it
        saved = await client.put("/api/settings", json={"rub_per_usd": 123.0})
    assert saved.status_code == 200, saved.text
    await _until(lambda: b.services.settings.rub_per_usd == 123.0)  # re-read after reconnecting
