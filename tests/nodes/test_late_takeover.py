"""Late AI results on two nodes (issue 27 with issue 30): Gemini slower than the booth's deadline, the
local fallback answers the booths, and Gemini's result is to reach each guest's page later.

- While node A lives, its late results stay with A: the provider call is in A's process, so a node B that
  took the durable task over would make the call again (paid twice). Ten late results at once — more
  than a runner's concurrency of 8 — and B makes no call.
- SIGKILL of A during those calls: B takes each task over once its lease has run out, calls Gemini once
  more per photo (the photo read from the shared bucket: A's disk is gone with A) and delivers all ten.

Real `boothgate serve` processes on one PostgreSQL and one SeaweedFS bucket, the real Gemini module and
SDK against its wire fake, which tells the nodes' calls apart by their keys."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.cli.booth_client import post_photo_async
from tests.conftest import ADMIN, UPLOAD_PASSWORD
from tests.fakes.gemini import mode_marker
from tests.fakes.server import serve
from tests.fallback_support import is_black_and_white, is_colourful
from tests.gemini_support import encode, gradient
from tests.nodes.cluster import ClusterGemini, Node, node_key, ready, start_node
from tests.postgres_support import PostgresServer
from tests.s3_support import S3Server
from tests.waits import eventually

pytestmark = pytest.mark.slow

PHOTOS = 10  # more than the runner's 8 at once: without holding its tasks, A would leave some to B
DEADLINE = 8.0


@pytest.fixture
def gemini() -> Iterator[tuple[ClusterGemini, str]]:
    fake = ClusterGemini(["a", "b"])
    fake.slow_seconds = 600  # A's calls never answer: only a node that calls again gets a result
    with serve(fake.app) as url:
        yield fake, url


async def _jobs(node: Node, ids: list[str]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=node.base, auth=ADMIN, timeout=30) as api:
        return [(await api.get(f"/api/jobs/{job_id}")).json() for job_id in ids]


def _late(jobs: list[dict[str, Any]]) -> list[str | None]:
    return [(job.get("late") or {}).get("status") for job in jobs]


async def test_late_results_stay_with_their_node_and_another_delivers_them_when_it_dies(
    tmp_path: Path, gemini: tuple[ClusterGemini, str], postgres_server: PostgresServer, s3_server: S3Server
) -> None:
    fake, url = gemini
    shared: dict[str, Any] = {
        "database_url": postgres_server.fresh_database(),
        **s3_server.settings("late"),
        "work_lease_seconds": 3,
        "deadline_seconds": DEADLINE,
        "local_budget_seconds": 3.0,
        "fallback_margin_seconds": 0.5,
    }
    nodes = [start_node(name, tmp_path, url, gemini_api_key=node_key(name), **shared) for name in ("a", "b")]
    a, b = nodes
    try:
        await ready(a, b)
        async with httpx.AsyncClient(base_url=a.base, auth=ADMIN, timeout=30) as admin:
            noir = {"enabled": True, "kind": "prompt", "prompt": "noir", "options": {"style": "noir"}}
            assert (await admin.put("/api/slots/local/1", json=noir)).status_code == 200
            slot = {
                "enabled": True, "kind": "prompt", "prompt": f"as pirates {mode_marker('slow')}",
                "fallback": "local/1", "late_result_seconds": 120,
            }  # fmt: skip
            assert (await admin.put("/api/slots/gemini/1", json=slot)).status_code == 200, "slot"

        answers = await asyncio.gather(
            *(
                post_photo_async(
                    f"{a.base}/booth/gemini/1", encode(gradient(900, 600, (40 + i, 90, 160))), UPLOAD_PASSWORD
                )
                for i in range(PHOTOS)
            )
        )
        assert [answer.status for answer in answers] == [200] * PHOTOS, [x.body[:200] for x in answers]
        assert all(is_black_and_white(answer.body) for answer in answers)  # the local fallback, in time
        ids = [answer.headers["x-job-id"] for answer in answers]
        await eventually(lambda: fake.calls("a") == PHOTOS, what="A's ten Gemini calls", timeout=30)
        running = await _jobs(a, ids)
        assert _late(running) == ["running"] * PHOTOS, running
        # B polls for due work every second and its leases would be 3 s: two leases' worth of quiet.
        await asyncio.sleep(6)
        assert fake.calls("b") == 0, "B took over a late result whose call was still running on A"
        assert _late(await _jobs(b, ids)) == ["running"] * PHOTOS

        a.signal(signal.SIGKILL)  # A dies with its ten calls at Gemini
        await a.wait(10)
        fake.slow_seconds = 0.5

        async def all_delivered() -> bool:
            return _late(await _jobs(b, ids)) == ["delivered"] * PHOTOS

        await eventually(all_delivered, what="B delivers the ten late results", timeout=90, step=0.5)
        assert fake.calls("b") == PHOTOS, "each lost call made again once, by B"
        assert fake.calls("a") == PHOTOS
        async with httpx.AsyncClient(base_url=b.base, timeout=30) as guest:
            share = answers[0].headers["x-share-url"]
            download = await guest.get(httpx.URL(share).path + "/download")
        assert download.status_code == 200 and is_colourful(download.content), "Gemini's version on the page"
    finally:
        for node in nodes:
            node.stop()
