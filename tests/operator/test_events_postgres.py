"""The budget's reservation on PostgreSQL, where writers really run at the same time (no single-writer
queue as on SQLite): 16 booths at once against a budget of 5 paid calls make at most 5."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.operator.test_events import create_event, scripted, wait_settled
from tests.operator.test_events import photo as new_photo
from tests.records.test_postgres import postgres_url  # noqa: F401  (the fixture: a throw-away PostgreSQL server)


async def test_sixteen_booths_against_five_paid_calls_on_postgresql(booth_factory: Any, postgres_url: str) -> None:  # noqa: F811
    booth = booth_factory(database_url=postgres_url, deadline_seconds=20.0, image_workers=2)
    await scripted(booth, 6, delay=0.5)
    event = await create_event(booth, slots=["gemini/6"], budget={"max_paid_calls": 5})
    answers = await asyncio.gather(*(booth.post("gemini", 6, new_photo()) for _ in range(16)))
    codes = [a.status if a.status == 200 else a.json()["error"] for a in answers]
    assert len(booth.calls) <= 5, codes
    assert codes.count(200) == len(booth.calls)
    assert codes.count("budget_spent") >= 16 - 5 - codes.count("busy"), codes
    state = (await wait_settled(booth, event["id"]))["budget"]
    assert state["paid_calls"] == len(booth.calls)
