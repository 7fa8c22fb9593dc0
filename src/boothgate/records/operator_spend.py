"""The operator's own paid calls, outside any guest's photo (issue 28): a reference made from a prompt.

The call is paid whether or not the operator keeps the image, so it is recorded when it is made. The
statistics show these costs beside the booth's (`stats.compute`'s `operator_spend`), never as photos.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from boothgate.storage.db import Database
from boothgate.storage.models import OperatorSpend

log = logging.getLogger(__name__)

REFERENCE_FROM_PROMPT = "reference_from_prompt"
WRITE_SECONDS = 2.0


async def record(db: Database, provider: str, what: str, cost_usd: float | None) -> None:
    try:
        async with db.write(timeout=WRITE_SECONDS) as session:
            session.add(OperatorSpend(provider=provider, what=what, cost_usd=float(cost_usd or 0.0)))
    except Exception as exc:  # the image is made and shown either way; only the figure is lost
        log.warning("could not record the operator's %s on %s: %s", what, provider, type(exc).__name__)


async def totals(db: Database, today: datetime, tabs: list[str]) -> dict[str, dict[str, Any]]:
    """Per provider: calls and cost today and all time, by what was made."""
    async with db.read() as session:
        rows = (await session.execute(select(OperatorSpend.provider, OperatorSpend.what, OperatorSpend.cost_usd,
                                             OperatorSpend.created_at))).all()  # fmt: skip
    figures: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"today": {"count": 0, "cost_usd": 0.0}, "all_time": {"count": 0, "cost_usd": 0.0}, "what": {}}
    )
    for provider, what, cost, created_at in rows:
        if provider not in tabs:
            continue
        target = figures[provider]
        periods = ["all_time"] + (["today"] if _aware(created_at) >= today else [])
        for period in periods:
            target[period]["count"] += 1
            target[period]["cost_usd"] = round(target[period]["cost_usd"] + float(cost or 0.0), 6)
        target["what"][what] = target["what"].get(what, 0) + 1
    return dict(figures)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
