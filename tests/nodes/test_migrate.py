"""Migrations run once: `boothgate migrate` before the nodes, and safely when two nodes start at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from boothgate.runtime import SchemaBehind, prepare_schema
from boothgate.storage.db import Database
from tests.postgres_support import PostgresServer


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
