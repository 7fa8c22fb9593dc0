"""Model lists every node sees (issue 27): the list one node read from a tab's service, kept in PostgreSQL.

A node that read a list (at start, after a key or base URL change, on "refresh") writes it into its tab's
row of `shared_model_lists` with the fingerprint it was read with (a sha256 of the key and the base URL:
never the key) and tells the other nodes in the same statement (`pg_notify`, sent when it commits). The
others read the rows again and take a list whose fingerprint is their own, so they show it and answer
"is this model offered?" from it without asking the service themselves. Only lists that were read well are
shared: a failed read may be this node's own trouble (its network, its DNS) and must not wipe the list
the other nodes hold.

Nobody waits for the write (background, a 1 s `statement_timeout`, at most `MAX_IN_FLIGHT` at once); a
read that is not back within `wait_seconds` gives nothing and the node reads the service itself, as on
one node. SQLite is one machine: nothing is kept there (the lists stay in memory, read at every start).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from boothgate.storage.changes import CHANNEL, Changes
from boothgate.storage.db import Database
from boothgate.storage.side_statements import SideStatements

TOPIC = "model_lists"
WAIT_SECONDS = 2.0  # the longest a node waits for the stored lists before it asks the services itself
STATEMENT_SECONDS = 1.0
MAX_IN_FLIGHT = 2

_STORE = text(
    """
    WITH stored AS (
        INSERT INTO shared_model_lists (tab, fingerprint, models, checked_at)
        VALUES (:tab, :fingerprint, :models, now())
        ON CONFLICT (tab) DO UPDATE
            SET fingerprint = excluded.fingerprint, models = excluded.models, checked_at = excluded.checked_at,
                claimed = NULL, claimed_until = NULL
        RETURNING tab
    )
    SELECT pg_notify(:channel, :payload) FROM stored
    """
)
# One node reads a list that several need at once (they started together, or all learnt of a new key):
# the claim of a fingerprint is taken when nobody holds it, or the holder's time ran out, and the list
# for it is not there already (stored since the claimant looked). A row is made for the claim if the tab
# has none yet (its empty fingerprint matches no node).
_CLAIM = text(
    """
    INSERT INTO shared_model_lists (tab, fingerprint, models, checked_at, claimed, claimed_until)
    VALUES (:tab, '', '[]', now(), :fingerprint, now() + make_interval(secs => :seconds))
    ON CONFLICT (tab) DO UPDATE SET claimed = excluded.claimed, claimed_until = excluded.claimed_until
        WHERE (shared_model_lists.claimed IS DISTINCT FROM excluded.claimed OR shared_model_lists.claimed_until < now())
            AND NOT (shared_model_lists.fingerprint = excluded.claimed
                     AND shared_model_lists.checked_at > now() - make_interval(secs => :fresh))
    RETURNING tab
    """
)
_READ = text(
    "SELECT tab, fingerprint, models, checked_at, extract(epoch FROM now() - checked_at) FROM shared_model_lists"
)


@dataclass(frozen=True)
class StoredList:
    tab: str
    fingerprint: str
    models: list[dict[str, str]]  # [{"id": ..., "label": ...}]
    checked_at: datetime
    age_seconds: float  # on the database's clock


class SharedLists:
    def __init__(self, db: Database, changes: Changes, wait_seconds: float = WAIT_SECONDS) -> None:
        self.db, self.changes, self.wait_seconds = db, changes, wait_seconds
        self.side = SideStatements(MAX_IN_FLIGHT, "the other nodes read their lists themselves")

    @classmethod
    def on(cls, db: Database, changes: Changes, wait_seconds: float = WAIT_SECONDS) -> SharedLists | None:
        return None if db.is_sqlite else cls(db, changes, wait_seconds)

    def store(self, tab: str, fingerprint: str, models: list[dict[str, str]]) -> None:
        """Keep a list read well for the other nodes (in the background: nobody waits)."""
        values = {"tab": tab, "fingerprint": fingerprint, "models": json.dumps(models), "channel": CHANNEL,
                  "payload": self.changes.payload(TOPIC)}  # fmt: skip
        self.side.start(self._store(values))

    async def claim(self, tab: str, fingerprint: str, seconds: float, fresh: float) -> bool | None:
        """Whether this node is the one to read `tab`'s list for `fingerprint` now (False: another node
        is, for up to `seconds`, or did within `fresh` seconds); None when the database did not answer in time."""
        claimed: bool | None = await self.side.answer(self._claim(tab, fingerprint, seconds, fresh), self.wait_seconds)
        return claimed

    async def read(self) -> list[StoredList] | None:
        """Every stored list; None when the database did not answer within `wait_seconds`."""
        stored: list[StoredList] | None = await self.side.answer(self._read(), self.wait_seconds)
        return stored

    @property
    def missed(self) -> int:
        return self.side.missed

    async def _claim(self, tab: str, fingerprint: str, seconds: float, fresh: float) -> bool:
        values = {"tab": tab, "fingerprint": fingerprint, "seconds": seconds, "fresh": fresh}
        async with self.db.write(timeout=STATEMENT_SECONDS) as session:
            won = (await session.execute(_CLAIM, values)).first()
        return won is not None

    async def _store(self, values: dict[str, Any]) -> None:
        async with self.db.write(timeout=STATEMENT_SECONDS) as session:
            await session.execute(_STORE, values)

    async def _read(self) -> list[StoredList]:
        async with self.db.write(timeout=STATEMENT_SECONDS) as session:
            rows = (await session.execute(_READ)).all()
        found = []
        for tab, fingerprint, models, checked_at, age in rows:
            if not fingerprint:
                continue  # a claim's row: no list in it yet
            try:
                listed = [{"id": str(m["id"]), "label": str(m.get("label") or "")} for m in json.loads(models)]
            except (ValueError, TypeError, KeyError, AttributeError):
                continue  # a row this version cannot read: the node asks the service itself
            found.append(StoredList(str(tab), str(fingerprint), listed, checked_at, float(age)))
        return found
