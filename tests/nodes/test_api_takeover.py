"""A client API job taken over by another node (issue 27): node A accepts the job and is killed (SIGKILL,
its whole process group) while the provider still works on it; node B, on the same PostgreSQL and S3
bucket, takes the durable task over once A's lease has run out and finishes the job under the same id,
with the guest's photo read from the bucket (A's disk is gone with A). The provider call A had made and
never saw answered is made again once, not more. Real `boothgate serve` processes, the real Gemini module
and SDK against its wire fake."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import ADMIN, make_jpeg
from tests.fakes.gemini import GeminiFake, mode_marker
from tests.fakes.server import serve
from tests.nodes.cluster import GEMINI_KEY, Node, ready, start_node
from tests.postgres_support import PostgresServer
from tests.s3_support import S3Server

pytestmark = pytest.mark.slow


@pytest.fixture
def gemini() -> Iterator[tuple[GeminiFake, str]]:
    fake = GeminiFake(api_key=GEMINI_KEY)
    fake.slow_seconds = 30
    with serve(fake.app) as url:
        yield fake, url


def _calls(fake: GeminiFake, word: str) -> int:
    return sum(word in r.text for r in fake.received)


async def _until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not reached in {seconds} s")


async def test_a_client_job_on_a_killed_node_is_finished_by_the_other_once(
    tmp_path: Path, gemini: tuple[GeminiFake, str], postgres_server: PostgresServer, s3_server: S3Server
) -> None:
    fake, url = gemini
    shared: dict[str, Any] = {
        "database_url": postgres_server.fresh_database(),
        **s3_server.settings("takeover"),
        "work_lease_seconds": 3,
    }
    nodes: list[Node] = [start_node(name, tmp_path, url, **shared) for name in ("a", "b")]
    a, b = nodes
    try:
        await ready(a, b)
        async with httpx.AsyncClient(base_url=a.base, auth=ADMIN, timeout=30) as admin:
            slot = {"enabled": True, "kind": "prompt", "prompt": f"alpha {mode_marker('slow')}"}
            put = await admin.put("/api/slots/gemini/1", json=slot)
            assert put.status_code == 200, put.text
            created = await admin.post("/api/keys", json={"name": "takeover", "rate_per_minute": 6000})
            assert created.status_code in (200, 201), created.text
            key = str(created.json()["key"])
        files = {"file": ("guest.jpg", make_jpeg(640, 480, seed=27), "image/jpeg")}
        async with httpx.AsyncClient(base_url=a.base, headers={"X-API-Key": key}, timeout=30) as api:
            accepted = await api.post("/api/v1/jobs", data={"slot": "gemini/1"}, files=files)
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        # Wait until a node is at the provider with it; if B happened to take the task, kill B instead.
        await _until(lambda: _calls(fake, "alpha") == 1, 30, "the provider call")
        pid = await _lease_holder(shared["database_url"])
        worker = next(node for node in nodes if node.process.pid == pid)
        other = b if worker is a else a
        worker.signal(signal.SIGKILL)
        await worker.wait(10)
        fake.slow_seconds = 0.5

        async with httpx.AsyncClient(base_url=other.base, headers={"X-API-Key": key}, timeout=30) as api:
            deadline = time.monotonic() + 60
            while True:
                view = (await api.get(f"/api/v1/jobs/{job['id']}")).json()
                if view["status"] in ("succeeded", "failed", "cancelled"):
                    break
                assert time.monotonic() < deadline, view
                await asyncio.sleep(0.2)
            result = await api.get(f"/api/v1/jobs/{job['id']}/result")
            listed = (await api.get("/api/v1/jobs")).json()
        assert view["status"] == "succeeded", (view, other.log_text())
        assert result.status_code == 200 and result.headers["content-type"].startswith("image/")
        assert _calls(fake, "alpha") == 2, "the call cut off by the kill is made again once"
        assert [item["id"] for item in listed["jobs"]] == [job["id"]], "one job, under its own id"
    finally:
        for node in nodes:
            node.stop()


async def _lease_holder(database_url: str) -> int:
    """The pid of the node holding the lease of the one client-API task (its owner is host-pid-random)."""
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        owners = await connection.fetch("SELECT owner FROM tasks WHERE state = 'running'")
    finally:
        await connection.close()
    assert len(owners) == 1, owners
    return int(str(owners[0]["owner"]).rsplit("-", 2)[1])
