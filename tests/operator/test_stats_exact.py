"""The statistics' p95 is "95 photos out of 100" and their cost is shown in roubles at
`BOOTHGATE_RUB_PER_USD` (README, the statistics panel's help): exact figures from a real server.

A hundred succeeded jobs with known recorded times (1 s … 100 s, stored in shuffled order) and a known cost
each are written into the server's own database; the server's statistics API must say p95 = 95 s and
average = 50.5 s, and its statistics panel, in a real browser, the cost at the rate read from the
environment (100 × $0.039 × 92.5 = 360.75 ₽, shown rounded to whole roubles as 361 ₽).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from boothgate.storage.db import Database
from boothgate.storage.models import Job, utcnow
from tests.conftest import ADMIN, booth_settings
from tests.web.conftest import admin_page

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

SECONDS = [float(s) for s in range(1, 101)]  # the 95th of 100 is 95 s
COST_USD = 0.039  # each job
RATE = 92.5  # roubles per dollar, from BOOTHGATE_RUB_PER_USD
TOTAL_RUB = "361 ₽"  # 100 × 0.039 × 92.5 = 360.75, over 100 ₽ shown without kopecks


async def _write_jobs(data_dir: Path) -> None:
    """The jobs as the server records them (status, recorded total time, cost), in an order that is not sorted."""
    order = SECONDS[:]
    random.Random(95).shuffle(order)
    now = utcnow()
    rows = [
        {"id": f"p95{i:029d}", "created_at": now, "provider": "gemini", "slot_number": 1, "source": "booth",
         "status": "succeeded", "http_status": 200, "total_seconds": seconds, "cost_usd": COST_USD,
         "timings": {}, "meta": {}, "provider_notes": {}}
        for i, seconds in enumerate(order)
    ]  # fmt: skip
    db = Database(f"sqlite+aiosqlite:///{data_dir / 'boothgate.db'}")
    try:
        async with db.write() as session:
            await session.execute(insert(Job), rows)
    finally:
        await db.engine.dispose()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from boothgate.web.app import create_app
    from tests.fakes.server import serve

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BOOTHGATE_RUB_PER_USD", str(RATE))
        patch.setenv("BOOTHGATE_COST_CURRENCY", "rub")
        settings = booth_settings(tmp_path_factory.mktemp("stats-exact"))
    assert (settings.rub_per_usd, settings.cost_currency) == (RATE, "rub"), "read from the environment"
    with serve(create_app(settings, {})) as address:  # the server has migrated its database: add the jobs
        asyncio.run(_write_jobs(settings.data_dir))
        yield address


def test_the_statistics_api_says_p95_is_the_95th_of_100(url: str) -> None:
    stats = httpx.get(f"{url}/api/stats", auth=ADMIN, timeout=30).json()
    today = stats["providers"]["gemini"]["today"]
    assert (today["received"], today["succeeded"]) == (100, 100)
    assert today["p95_seconds"] == 95.0, "p95: 95 photos out of 100 were answered within it"
    assert today["avg_seconds"] == pytest.approx(50.5, abs=1e-3)
    assert today["cost_usd"] == pytest.approx(100 * COST_USD, abs=1e-6)


def test_the_statistics_panel_shows_the_cost_at_the_configured_rate(url: str, browser: Any) -> None:
    with admin_page(browser, url) as page:
        page.goto("/tabs/gemini?lang=en")
        page.click("#stats-open")
        today = page.locator('#stats-providers tbody[data-provider="gemini"] tr[data-period="today"]')
        expect(today.locator(".col-cost")).to_have_text(TOTAL_RUB)
        expect(today.locator(".col-p95")).to_have_text("95.0 s")
        expect(today.locator(".col-avg")).to_have_text("50.5 s")
