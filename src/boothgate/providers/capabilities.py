"""Capabilities a service refused, remembered in the database per provider and model (issue 28).

When a model answers 400 naming a field it does not take (`input_fidelity`, `imageSize`, ...), the
provider drops the field, repeats the call once, and records the refusal here: later calls — after a
restart too — leave the field out from the start, so nobody pays for the same refusal twice. The
operator sees the list on the settings page and can forget an entry (the next call sends the field
again). Reads are from memory (loaded at start-up); writes go to the database in the background of the
call that learned them, bounded in time, and a failed write only costs the memory across a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from boothgate import redaction
from boothgate.storage.db import Database
from boothgate.storage.models import RefusedCapability

log = logging.getLogger(__name__)

WRITE_SECONDS = 2.0


@dataclass(frozen=True)
class Refusal:
    provider: str
    model: str
    field: str
    message: str
    created_at: datetime | None


class RefusedCapabilities:
    """In memory for the hot path, in the database for the next start."""

    def __init__(self, db: Database | None = None) -> None:
        self.db = db
        self._known: dict[tuple[str, str, str], Refusal] = {}

    async def load(self) -> None:
        if self.db is None:
            return
        async with self.db.read() as session:
            rows = (await session.execute(select(RefusedCapability))).scalars().all()
        self._known = {
            (r.provider, r.model, r.field): Refusal(r.provider, r.model, r.field, r.message, r.created_at) for r in rows
        }

    def fields(self, provider: str, model: str) -> frozenset[str]:
        return frozenset(f for (p, m, f) in self._known if p == provider and m == model)

    def listing(self) -> list[Refusal]:
        return sorted(self._known.values(), key=lambda r: (r.provider, r.model, r.field))

    async def remember(self, provider: str, model: str, field: str, message: str = "") -> None:
        key = (provider, model[:200], field[:80])
        if key in self._known:
            return
        refusal = Refusal(*key, " ".join(redaction.REDACTOR.scrub(message).split())[:300], None)
        self._known[key] = refusal
        if self.db is None:
            return
        try:
            async with self.db.write(timeout=WRITE_SECONDS) as session:
                exists = await session.execute(
                    select(RefusedCapability.id).where(
                        RefusedCapability.provider == key[0],
                        RefusedCapability.model == key[1],
                        RefusedCapability.field == key[2],
                    )
                )
                if exists.first() is None:
                    session.add(RefusedCapability(provider=key[0], model=key[1], field=key[2], message=refusal.message))
        except Exception as exc:  # the memory still holds it until the next restart
            log.warning("could not store the refused field %s of %s/%s: %s", field, provider, model, type(exc).__name__)

    async def forget(self, provider: str, model: str, field: str) -> bool:
        found = self._known.pop((provider, model, field), None) is not None
        if self.db is not None:
            async with self.db.write(timeout=WRITE_SECONDS) as session:
                result = await session.execute(
                    delete(RefusedCapability).where(
                        RefusedCapability.provider == provider,
                        RefusedCapability.model == model,
                        RefusedCapability.field == field,
                    )
                )
                found = found or bool(getattr(result, "rowcount", 0))
        return found
