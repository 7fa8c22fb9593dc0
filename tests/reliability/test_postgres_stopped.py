"""A real PostgreSQL stopped mid-burst under a real `boothgate serve` node (issue 29: database faults are real).

The node runs the real Gemini module against the Gemini wire fake (tests/fakes/gemini.py) on a throw-away
PostgreSQL (tests/postgres_support.py). Half of a burst of booths is at the provider when PostgreSQL is
stopped with `pg_ctl stop -m immediate` (every backend killed, as a crash or a pulled plug would; and again
with `-m fast`, which ends the sessions cleanly), the other half arrives while it is down. What the product
promises (docs/reliability.md, records/journal.py): every booth is answered before its deadline and never
with a 500; an original that could not be served is in trash as it was sent; /health says the database is
away while it is; the job rows the database could not take wait in the journal; and once PostgreSQL is back
the node recovers by itself: /health ok, new booths served, and the statistics exact (the journal replayed
into the database, each job once).

A booth that arrives while PostgreSQL is down cannot be served: its slot (prompt, model, enabled) is read
from the database at admission. It is answered 503 `database_unavailable` at once, before Gemini is paid.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.cli.booth_client import BoothAnswer
from tests.conftest import ADMIN, UPLOAD_PASSWORD, make_jpeg, post_photo_async
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import serve
from tests.nodes.cluster import GEMINI_KEY, Node, configure_slot, ready, start_node
from tests.postgres_support import PostgresServer, postgres_server  # noqa: F401

pytestmark = pytest.mark.slow

DEADLINE = 8.0
BURST = 16
PROVIDER_SECONDS = 3.0  # how long each photo is at Gemini: long enough to stop PostgreSQL under it
SLACK = 2.0  # the booth's own clock, over the deadline: the answer's travel on a loaded 2-core machine


@pytest.fixture
def gemini() -> Iterator[tuple[GeminiFake, str]]:
    fake = GeminiFake(api_key=GEMINI_KEY)
    with serve(fake.app) as url:
        yield fake, url


async def _until(condition: Callable[[], Awaitable[bool]], what: str, seconds: float = 30.0) -> None:
    until = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < until, f"not within {seconds:g} s: {what}"
        await asyncio.sleep(0.1)


async def _health(node: Node) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(f"{node.base}/health")


async def _today(node: Node) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=node.base, auth=ADMIN, timeout=30) as client:
        response = await client.get("/api/stats")
    assert response.status_code == 200, response.text
    today: dict[str, Any] = response.json()["providers"]["gemini"]["today"]
    return today


@pytest.mark.parametrize("mode", ["immediate", "fast"])
async def test_postgres_stopped_mid_burst_every_booth_answered_and_the_node_recovers_by_itself(
    mode: str,
    tmp_path: Path,
    gemini: tuple[GeminiFake, str],
    postgres_server: PostgresServer,  # noqa: F811
) -> None:
    fake, url = gemini
    node = start_node("a", tmp_path, url, postgres_server.fresh_database(), deadline_seconds=DEADLINE,
                      image_workers=2)  # fmt: skip
    try:
        await ready(node)
        await configure_slot(node.base)
        fake.default_mode, fake.slow_seconds = "slow", PROVIDER_SECONDS
        booth_url = f"{node.base}/booth/gemini/1"
        photos = [make_jpeg(320, 240, seed=100 + i) for i in range(BURST)]

        def send(i: int) -> asyncio.Task[BoothAnswer]:
            return asyncio.create_task(post_photo_async(booth_url, photos[i], UPLOAD_PASSWORD, timeout=60))

        first = [send(i) for i in range(BURST // 2)]

        async def first_half_at_gemini() -> bool:
            return len(fake.received) >= BURST // 2

        await _until(first_half_at_gemini, "the first half of the burst reached Gemini")
        await asyncio.to_thread(postgres_server.stop, mode)  # under the booths at the provider
        assert not any(task.done() for task in first), "the first half was answered before PostgreSQL stopped"
        second = [send(i) for i in range(BURST // 2, BURST)]  # the rest of the burst finds it down
        answers = await asyncio.gather(*first, *second)
        shown = [(a.status, a.body[:120]) for a in answers]

        # Every booth answered, before its deadline, never with a 500: a photo that reached Gemini before the
        # stop is served; one that arrives while the slot cannot be read says the database is away (503).
        ids = [a.headers["x-job-id"] for a in answers]
        assert len(set(ids)) == BURST, shown
        for i, answer in enumerate(answers):
            assert answer.seconds < DEADLINE + SLACK, f"booth {i} answered after {answer.seconds:.2f} s"
            if i < BURST // 2:
                assert answer.status == 200 and answer.content_type == "image/jpeg", (i, shown[i])
            else:
                assert answer.status == 503, (i, shown[i])
                assert answer.json()["error"] == "database_unavailable", (i, shown[i])

        # While it is down: /health says so (503, database false, the reason), the rows wait in the journal.
        down = await _health(node)
        assert down.status_code == 503 and down.json()["database"] is False, down.text
        assert down.json()["status"] == "broken" and down.json()["database_problem"], down.text
        assert down.json()["journal"]["pending"] >= BURST // 2, down.text
        assert node.process.poll() is None, node.log_text()

        # No original lost: each failed one is in trash as it was sent (the ones served: checked below).
        trash = {p.name: p for p in (tmp_path / "a" / "trash").rglob("*") if p.is_file()}
        for i in range(BURST // 2, BURST):
            original = trash.get(f"{ids[i]}.jpg")
            assert original is not None, f"booth {i}: original of {ids[i]} not in trash"
            assert original.read_bytes() == photos[i], f"booth {i}: the trashed original differs"

        # PostgreSQL back (after an immediate stop it recovers from its WAL): the node recovers by itself.
        await asyncio.to_thread(postgres_server.start)

        async def healthy() -> bool:
            answer = await _health(node)
            return answer.status_code == 200 and answer.json()["status"] == "ok"

        await _until(healthy, "/health ok again after PostgreSQL came back")
        later = await post_photo_async(booth_url, make_jpeg(320, 240, seed=999), UPLOAD_PASSWORD, timeout=60)
        assert later.status == 200, later.body[:200]

        # Exact statistics: every job once, as it was answered (the journal replayed into the database).
        async def counted() -> bool:
            today = await _today(node)
            return today["in_progress"] == 0 and today["received"] == BURST + 1

        await _until(counted, "every job of the burst in the statistics")
        today = await _today(node)
        assert (today["received"], today["succeeded"], today["failed"]) == (BURST + 1, BURST // 2 + 1, BURST // 2)
        assert (await _health(node)).json()["journal"]["pending"] == 0
        assert len(fake.received) == BURST // 2 + 1, "a booth refused at admission never reached (or cost) Gemini"
        assert not list((tmp_path / "a" / "journal").glob("*.draining"))
        async with httpx.AsyncClient(base_url=node.base, auth=ADMIN, timeout=30) as client:
            jobs = {j["id"]: j for j in (await client.get("/api/jobs", params={"limit": 100})).json()}
            assert set(jobs) == {*ids, later.headers["x-job-id"]}
            for i, job_id in enumerate(ids):
                job = jobs[job_id]
                assert job["http_status"] == answers[i].status and job["finished_at"], (i, job)
                # on the server's own clock: each answer inside the deadline
                assert job["total_seconds"] is not None and job["total_seconds"] <= DEADLINE, (i, job)
                if answers[i].status == 200:
                    assert job["status"] == "succeeded", (i, job)
                    photo = await client.get(f"/api/jobs/{job_id}/photo")
                    assert photo.status_code == 200 and photo.content == photos[i], f"booth {i}: original lost"
                else:
                    assert (job["status"], job["error"], job["in_trash"]) == ("failed", "database_unavailable", True)
    finally:
        node.stop()
        if not postgres_server.is_running():  # failed while it was down: the next test gets it running
            postgres_server.start()
