"""Strangers who rotate addresses (issue 31, class 11): an IPv6 client is counted by its prefix (a /64 by
default, configurable), what unproven requests may record is bounded in all — not only per address —
and a stranger's record-only trash entries never push a guest's failed original out of the trash.

Requests come through X-Forwarded-For from 127.0.0.1, as behind the documented HTTPS proxy."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bad_inputs import MULTIPART, booth_form, exchange
from tests.conftest import ADMIN, Booth, make_jpeg


async def _flood(booth: Booth, addresses: list[str], parallel: int = 16) -> list[int]:
    port = int(booth.url.rsplit(":", 1)[1])
    body = booth_form(make_jpeg(48, 32, seed=3), password=b"not-the-password")
    gate = asyncio.Semaphore(parallel)

    async def one(address: str) -> int:
        async with gate:
            answer = await exchange(port, "/booth/gemini/1", body, {**MULTIPART, "X-Forwarded-For": address})
            return answer.status

    return list(await asyncio.gather(*(one(a) for a in addresses)))


async def _jobs(booth: Booth) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=booth.url, auth=ADMIN) as client:
        jobs: list[dict[str, Any]] = (await client.get("/api/jobs?limit=5000")).json()
    return jobs


@pytest.mark.parametrize(
    ("prefix", "network", "count"),
    [(64, "2001:db8:77:12", 1000), (56, "2a02:6b8:1:3", 300)],
)
async def test_one_rotating_ipv6_client_is_throttled_by_its_prefix(
    booth_factory: Any, prefix: int, network: str, count: int
) -> None:
    booth: Booth = booth_factory(
        auth_max_failures=10,
        unauthenticated_records_per_minute=20,
        unauthenticated_records_total_per_minute=40,
        ipv6_throttle_prefix=prefix,
    )
    await booth.configure("gemini", 1, prompt="x")
    # Every request from another address of the same prefix (the /56 case also varies the 4th group).
    addresses = [f"{network}:{os.urandom(2).hex()}:{os.urandom(2).hex()}::{i + 1:x}" for i in range(count)]
    if prefix == 56:
        addresses = [a.replace(f"{network}:", f"{network[:-1]}{i % 10}:", 1) for i, a in enumerate(addresses)]
    statuses = await _flood(booth, addresses)
    assert statuses.count(429) >= count - 10 - 16, statuses[:40]  # after the allowance (and those in flight)
    assert set(statuses) <= {401, 429}
    jobs = await _jobs(booth)
    assert len(jobs) <= 40, f"{len(jobs)} records for one client"
    sidecars = [p for p in booth.trash_files() if p.suffix == ".json"]
    assert len(sidecars) <= 40
    assert (await booth.post("gemini", 1, make_jpeg(64, 48, seed=8))).status == 200, "booths are not affected"


async def test_records_of_all_strangers_together_stay_within_the_global_budget(booth_factory: Any) -> None:
    """Many clients, each within its own allowance (one wrong password each), record no more in all."""
    booth: Booth = booth_factory(unauthenticated_records_per_minute=20, unauthenticated_records_total_per_minute=25)
    await booth.configure("gemini", 1, prompt="x")
    addresses = [f"2001:db8:{i:x}::1" for i in range(60)] + [f"198.51.100.{i}" for i in range(1, 61)]
    statuses = await _flood(booth, addresses)
    assert statuses == [401] * len(addresses)
    assert len(await _jobs(booth)) <= 25


def test_addresses_are_counted_by_prefix() -> None:
    from boothgate.booth.throttle import Throttle, client_key

    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("2001:db8:1:2::1", 48) == client_key("2001:db8:1:ff::1", 48)
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7" and client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("unknown") == "unknown"
    throttle = Throttle(3, 60.0)
    for i in range(3):
        throttle.failed(f"2001:db8:5:6::{i + 1:x}")
    assert throttle.retry_after("2001:db8:5:6:dead:beef::9") is not None
    assert throttle.retry_after("2001:db8:5:7::1") is None


def test_record_only_entries_never_push_an_original_out(tmp_path: Path) -> None:
    """The guest's failed original is older than every stranger's sidecar, and the trash is over budget:
    the sidecars go, the original stays."""
    from boothgate.records.trash import remove_oldest

    old_day, new_day = tmp_path / "2026-11-01", tmp_path / "2026-12-02"
    old_day.mkdir()
    new_day.mkdir()
    (old_day / "guest.jpg").write_bytes(make_jpeg(400, 300, seed=4, quality=97))
    (old_day / "guest.json").write_text(json.dumps({"job_id": "guest"}))
    for i in range(300):
        (new_day / f"stranger{i}.json").write_text(json.dumps({"job_id": f"stranger{i}", "pad": "x" * 900}))
    size = sum(p.stat().st_size for p in tmp_path.rglob("*"))
    _, removed, _ = remove_oldest(tmp_path, int(size * 0.8))
    assert "guest" not in removed and (old_day / "guest.jpg").exists()
    assert removed and all(r.startswith("stranger") for r in removed)
