"""The same server on PostgreSQL (asyncpg): migrations, slots, a booth post, statistics, a restart.

The throw-away cluster is tests/records/conftest.py's `postgres_url`.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import make_jpeg
from tests.postgres_support import postgres_url  # noqa: F401  (the fixture; kept importable from here)


async def test_booth_path_on_postgresql(booth_factory: Any, postgres_url: str) -> None:  # noqa: F811
    booth = booth_factory(database_url=postgres_url)
    await booth.configure("gemini", 1, prompt="x", name="Постгрес")
    await booth.configure("gemini", 2, prompt="x", options={"mode": "fail"})
    photo = make_jpeg(seed=1)
    ok = await booth.post("gemini", 1, photo, fields={"id": "X1"})
    failed = await booth.post("gemini", 2, make_jpeg(seed=2))
    again = await booth.post("gemini", 1, photo)
    assert (ok.status, failed.status, again.status) == (200, 502, 200)
    assert again.headers["x-reused-from"] == ok.headers["x-job-id"]
    stats = await booth.stats()
    assert stats["providers"]["gemini"]["today"]["succeeded"] == 2
    assert stats["providers"]["gemini"]["today"]["failed"] == 1

    restarted = booth_factory(database_url=postgres_url)  # migrations are idempotent
    async with restarted.api() as client:
        slot = (await client.get("/api/slots/gemini/1")).json()
        job = (await client.get(f"/api/jobs/{ok.headers['x-job-id']}")).json()
    assert slot["name"] == "Постгрес" and slot["enabled"]
    assert job["meta"]["id"] == "X1"
