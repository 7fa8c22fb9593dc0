"""Migrations run once: `boothgate migrate` before the nodes, and safely when two nodes start at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text

from boothgate.operator.slots import SlotService
from boothgate.runtime import SchemaBehind, prepare_schema
from boothgate.storage.db import Database
from boothgate.storage.models import Slot
from tests.postgres_support import PostgresServer
from tests.waits import eventually


def _migrate_cli(url: str, tmp: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "BOOTHGATE_DATABASE_URL": url,
           "BOOTHGATE_DATA_DIR": str(tmp)}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "boothgate", "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


async def _tables(url: str) -> set[str]:
    db = Database(url)
    try:
        async with db.read() as session:
            rows = await session.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
            return {row[0] for row in rows}
    finally:
        await db.dispose()


def test_two_migrate_commands_at_once_both_succeed(postgres_server: PostgresServer, tmp_path: Path) -> None:
    url = postgres_server.fresh_database()
    runs = [_migrate_cli(url, tmp_path / str(i)) for i in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    said = [out for out, _ in outputs]
    # One migrated, the other waited for it and found the schema done.
    assert sorted("went from empty to" in out for out in said) == [False, True], said
    assert sum("up to date" in out for out in said) == 1, said
    assert {"jobs", "slots", "tasks", "alembic_version"} <= asyncio.run(_tables(url))


async def test_nodes_starting_at_once_migrate_one_at_a_time(postgres_server: PostgresServer) -> None:
    url = postgres_server.fresh_database()
    nodes = [Database(url) for _ in range(3)]
    try:
        await asyncio.gather(*(node.migrate() for node in nodes))  # without the lock: duplicate CREATE TABLE
        current, head = await nodes[0].revisions()
        assert current == head and head
    finally:
        for node in nodes:
            await node.dispose()


async def test_nodes_starting_at_once_create_the_slots_once(postgres_server: PostgresServer) -> None:
    url = postgres_server.fresh_database()
    first, second, watcher = Database(url), Database(url), Database(url)
    tabs: Any = SimpleNamespace(tabs=["gemini", "local"])  # ensure() reads only the tab names

    waits = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"

    async def waiting_on_a_lock() -> bool:  # a session of this database blocked on another's lock
        async with watcher.read() as session:
            return bool((await session.execute(text(waits))).scalar_one())

    try:
        await first.migrate()
        # Node A's start has inserted its slots but not committed yet when node B's start reads the table
        # (empty to B) and inserts the same rows: B waits on A's rows, then must skip them, not fail.
        async with first.write() as session:
            session.add_all([Slot(provider=tab, number=n, options={}) for tab in ("gemini", "local") for n in (1, 2)])
            await session.flush()
            other = asyncio.create_task(SlotService(second, None, tabs, None).ensure())  # type: ignore[arg-type]
            await eventually(waiting_on_a_lock, "node B to wait on A's uncommitted rows", timeout=30)
            assert not other.done()
        await other  # raised IntegrityError (uq_slot_provider_number) when ensure read, then inserted
        async with first.read() as session:
            rows = (await session.execute(text("SELECT provider, number FROM slots"))).all()
        assert sorted(rows) == sorted((tab, n) for tab in ("gemini", "local") for n in range(1, 21))
    finally:
        await first.dispose()
        await second.dispose()
        await watcher.dispose()


async def test_a_node_refuses_an_old_schema_when_it_may_not_migrate(postgres_server: PostgresServer) -> None:
    db = Database(postgres_server.fresh_database())
    try:
        with pytest.raises(SchemaBehind, match="boothgate migrate"):
            await prepare_schema(db, migrate=False)
        await db.migrate()
        await prepare_schema(db, migrate=False)  # at head: starts
    finally:
        await db.dispose()


def test_migrate_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'boothgate.db'}"
    first = _migrate_cli(url, tmp_path).communicate(timeout=120)
    again = _migrate_cli(url, tmp_path).communicate(timeout=120)
    assert "went from empty to" in first[0], first
    assert "up to date" in again[0], again
