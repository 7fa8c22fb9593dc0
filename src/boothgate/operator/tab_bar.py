"""Which provider tabs the operator hid from the top bar and the statistics (issue 22).

A hidden tab still works (its slots serve booths, its page opens by address and from the settings page);
it is only left out of the bar and the statistics so that unused services do not fill them. Kept as one
stored value beside the settings (`stored_settings`, key `ui.hidden_tabs`), not an environment setting.
"""

from __future__ import annotations

import json

from boothgate.storage.db import Database
from boothgate.storage.models import StoredSetting, utcnow

KEY = "ui.hidden_tabs"


async def hidden_tabs(db: Database, tabs: list[str]) -> list[str]:
    """The hidden tabs, in the bar's order (names no longer known are dropped)."""
    async with db.read() as session:
        row = await session.get(StoredSetting, KEY)
    stored = json.loads(row.value) if row is not None else []
    return [name for name in tabs if name in stored]


async def set_hidden_tabs(db: Database, tabs: list[str], hidden: list[str]) -> list[str]:
    """Store which tabs are hidden; unknown names are a ValueError. Returns the stored list."""
    unknown = [name for name in hidden if name not in tabs]
    if unknown:
        raise ValueError(f"no such tab: {', '.join(unknown)}")
    chosen = [name for name in tabs if name in hidden]
    async with db.write() as session:
        row = await session.get(StoredSetting, KEY)
        if row is None:
            session.add(StoredSetting(key=KEY, value=json.dumps(chosen)))
        else:
            row.value, row.updated_at = json.dumps(chosen), utcnow()
    return chosen
