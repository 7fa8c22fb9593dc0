"""How long each slot's successful runs take: the recent p95, in memory, seeded from the job table.

The hedge needs to know how much time a fallback slot must be given. A slot with no history yet gets
a budget from the settings (the local engine's is short: it runs on this machine).
"""

from __future__ import annotations

from collections import deque

from sqlalchemy import select

from boothgate.records.stats import percentile
from boothgate.storage.db import Database
from boothgate.storage.models import Job

# Enough runs for a stable p95 (the 95th of 100 values), few enough to follow a provider's mood.
HISTORY_RUNS = 100


def slot_key(provider: str, number: int) -> str:
    return f"{provider}/{number}"


class LatencyBook:
    def __init__(self) -> None:
        self._runs: dict[str, deque[float]] = {}

    def add(self, key: str, seconds: float) -> None:
        self._runs.setdefault(key, deque(maxlen=HISTORY_RUNS)).append(seconds)

    def p95(self, key: str) -> float | None:
        runs = self._runs.get(key)
        return percentile(list(runs), 0.95) if runs else None

    async def seed(self, db: Database) -> None:
        """The latest successful runs per serving slot from the job table (the book starts full after
        a restart). Reused answers cost nothing and are left out."""
        query = (
            select(Job.provider, Job.slot_number, Job.served_by, Job.provider_seconds)
            .where(Job.status == "succeeded", Job.provider_seconds.is_not(None), Job.reused_from.is_(None))
            .order_by(Job.created_at.desc())
            .limit(5000)
        )
        async with db.read() as session:
            rows = (await session.execute(query)).all()
        for provider, number, served_by, seconds in reversed(rows):
            key = served_by or (slot_key(provider, number) if number is not None else None)
            if key and seconds is not None:
                self.add(key, float(seconds))  # oldest first: the deque keeps the newest
