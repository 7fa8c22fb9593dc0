"""Wrong admin passwords do not starve the booths (issue 31, class 12): each check is a scrypt hash, run
in a pool of its own at a global rate; booth work never queues behind it, and /health reports when
sign-ins are being refused. The admin password here is the generated one (a stored scrypt hash)."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx

from boothgate.web.app import create_app
from tests.conftest import Booth, ScriptedProvider, booth_settings, make_jpeg
from tests.fakes.server import serve

_seed = iter(range(40_000, 99_000))


async def _booth_times(booth: Booth, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.monotonic()
        answer = await booth.post("gemini", 1, make_jpeg(1600, 1200, seed=next(_seed)))
        assert answer.status == 200
        times.append(time.monotonic() - started)
    return times


async def test_wrong_admin_passwords_from_many_addresses_leave_booths_at_their_pace(tmp_path: Any) -> None:
    settings = booth_settings(tmp_path, admin_password=None, auth_max_failures=1000, image_workers=1)
    app = create_app(settings, {"gemini": ScriptedProvider})
    with serve(app) as url:
        booth = Booth(url, settings, app)
        services = booth.services
        admin = ("admin", services.generated.admin_password)
        async with httpx.AsyncClient(base_url=url, auth=admin, timeout=30) as client:
            response = await client.put("/api/slots/gemini/1", json={"enabled": True, "kind": "prompt", "prompt": "x"})
            assert response.status_code == 200, response.text

        async def requests(address: int, auth: tuple[str, str] | None, path: str) -> list[int]:
            statuses = []
            headers = {"X-Forwarded-For": f"203.0.113.{address}"}
            async with httpx.AsyncClient(base_url=url, auth=auth, timeout=30) as client:
                for _ in range(10):
                    statuses.append((await client.get(path, headers=headers)).status_code)
            return statuses

        async def guesses(address: int) -> list[int]:
            return await requests(address, ("admin", f"guess{address}"), "/api/stats")

        # The yardstick: the same 400 requests from the same 40 addresses to a page that checks no password.
        # The test's clients share this process and its cores with the server, so the booths' pace under the
        # same traffic without hashing is the fair comparison, on a quiet machine and a loaded one alike.
        control = asyncio.gather(*(requests(a, None, "/health") for a in range(1, 41)))
        normal = await _booth_times(booth, 5)
        await control
        hashed_before = services.credentials.hashing.hashed

        started = time.monotonic()
        flood = asyncio.gather(*(guesses(a) for a in range(1, 41)))
        during = await _booth_times(booth, 5)
        statuses = [s for per in await flood for s in per]
        elapsed = time.monotonic() - started
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            health = (await client.get("/health")).json()
    assert len(statuses) == 400 and set(statuses) <= {401, 429}
    assert 429 in statuses, "past the global rate, checks are refused unhashed"
    hashed = services.credentials.hashing.hashed - hashed_before
    rate = settings.admin_password_checks_per_second
    assert hashed <= rate * elapsed + rate + 1, f"{hashed} hashes in {elapsed:.1f} s"
    assert health["admin_sign_in"]["starved"] is True and health["status"] == "degraded"
    slowdown = statistics.median(during) / statistics.median(normal)
    print(
        f"booth median during 400 requests without a password {statistics.median(normal):.3f} s, "
        f"during 400 wrong passwords {statistics.median(during):.3f} s"
    )
    print(f"slowdown {slowdown:.2f}x, {hashed} hashes in {elapsed:.1f} s, {statuses.count(429)} refused unhashed")
    # Within 20 % of the same traffic without hashing, plus a little slack for the noise of five samples.
    assert statistics.median(during) <= statistics.median(normal) * 1.2 + 0.5
