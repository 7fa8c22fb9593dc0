"""Calls and failures per API key, kept in the database so a restart does not reset them (issue 28).

The pools count in memory on the hot path (`keys.py`); this store loads the figures at start-up (a key that
comes back continues from them) and writes what was added since the last write every few seconds and at
stop, as increments, so several nodes sharing one database add up instead of overwriting each other. Keys
are stored by their masked names only. A failed write keeps the increments for the next round.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from boothgate.providers.keys import KeyPools
from boothgate.storage.db import Database
from boothgate.storage.models import ProviderKeyFigures, utcnow

log = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0
WRITE_SECONDS = 2.0


class KeyFigures:
    def __init__(self, db: Database, pools: KeyPools) -> None:
        self.db = db
        self.pools = pools

    async def load(self) -> None:
        async with self.db.read() as session:
            rows = (await session.execute(select(ProviderKeyFigures))).scalars().all()
        self.pools.stored = {(r.provider, r.key_masked): (r.calls, r.failures) for r in rows}

    async def listing(self) -> list[dict[str, Any]]:
        """Every key's figures for the statistics page: the stored ones plus what is not written yet."""
        async with self.db.read() as session:
            rows = (await session.execute(select(ProviderKeyFigures))).scalars().all()
        figures: dict[tuple[str, str], dict[str, Any]] = {
            (r.provider, r.key_masked): {
                "provider": r.provider, "key": r.key_masked, "calls": r.calls, "failures": r.failures,
                "updated_at": _iso(r.updated_at), "flagged": None, "in_use": False,
            }
            for r in rows
        }  # fmt: skip
        for provider, state in self.pools.states():
            row = figures.setdefault(
                (provider, state.masked),
                {"provider": provider, "key": state.masked, "calls": 0, "failures": 0, "updated_at": None},
            )
            row["calls"] += state.calls - state.saved_calls
            row["failures"] += state.failures - state.saved_failures
            row["flagged"], row["in_use"] = state.flagged, True
        return sorted(figures.values(), key=lambda r: (r["provider"], r["key"]))

    async def flush(self) -> None:
        pending = [
            (provider, state, state.calls - state.saved_calls, state.failures - state.saved_failures)
            for provider, state in self.pools.states()
            if state.calls != state.saved_calls or state.failures != state.saved_failures
        ]
        if not pending:
            return
        async with self.db.write(timeout=WRITE_SECONDS) as session:
            for provider, state, calls, failures in pending:
                result = await session.execute(
                    update(ProviderKeyFigures)
                    .where(ProviderKeyFigures.provider == provider, ProviderKeyFigures.key_masked == state.masked)
                    .values(
                        calls=ProviderKeyFigures.calls + calls,
                        failures=ProviderKeyFigures.failures + failures,
                        updated_at=utcnow(),
                    )
                )
                if not getattr(result, "rowcount", 0):
                    session.add(
                        ProviderKeyFigures(provider=provider, key_masked=state.masked, calls=calls, failures=failures)
                    )
        for _, state, calls, failures in pending:  # written: what follows is counted from here
            state.saved_calls += calls
            state.saved_failures += failures

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush_quietly()

    async def flush_quietly(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # kept in memory for the next round
            log.warning("could not store the per-key figures: %s", type(exc).__name__)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
