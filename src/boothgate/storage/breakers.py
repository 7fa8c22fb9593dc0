"""Offline marks every node sees (issue 27): which provider tab some node found unreachable, kept in PostgreSQL.

Each node counts its own unreachable runs (run/offline.py). The node whose count opens a tab's breaker
writes the tab's row of `shared_breakers` — open until `now() + breaker_open_seconds` on the database's
clock — and tells the other nodes in the same statement (`pg_notify` on the channel of storage/changes.py,
sent when it commits); a reached run on a node that had the tab open clears the row the same way. The
other nodes read the rows again (`SELECT`, the time left computed by the database) and open or close
their own breaker for what is left, so their booths skip a dead service at once instead of each node
paying its own `breaker_failures` timeouts, and one reached run closes it everywhere.

Never in a booth's way: the decision before a provider call reads the node's memory only. Writes run in
the background (nobody waits for them), each bounded by a 1 s `statement_timeout` and not cancelled (a
cancelled driver call can leave its connection in doubt); at most `MAX_IN_FLIGHT` run at once, so a
database that hangs holds at most that many of the pool's connections, and the node goes on with its own
marks. A read that is not back within `wait_seconds` gives nothing and the node's own marks stand.
SQLite is one machine: nothing is shared there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from boothgate.storage.changes import CHANNEL, Changes
from boothgate.storage.db import Database
from boothgate.storage.side_statements import SideStatements

TOPIC = "breakers"
WAIT_SECONDS = 1.0  # the longest a background read waits before the node's own marks stand
STATEMENT_SECONDS = 1.0  # the longest a statement may run (statement_timeout)
MAX_IN_FLIGHT = 2

_OPEN = text(
    """
    WITH marked AS (
        INSERT INTO shared_breakers (tab, open_until, failure, changed_at)
        VALUES (:tab, now() + make_interval(secs => :seconds), :failure, now())
        ON CONFLICT (tab) DO UPDATE
            SET open_until = excluded.open_until, failure = excluded.failure, changed_at = excluded.changed_at
        RETURNING tab
    )
    SELECT pg_notify(:channel, :payload) FROM marked
    """
)
# Only a row that is still marked is cleared (and only then are the others told).
_CLOSE = text(
    """
    WITH cleared AS (
        UPDATE shared_breakers SET open_until = NULL, changed_at = now()
        WHERE tab = :tab AND open_until IS NOT NULL
        RETURNING tab
    )
    SELECT pg_notify(:channel, :payload) FROM cleared
    """
)
_READ = text("SELECT tab, extract(epoch FROM open_until - now()), failure FROM shared_breakers")


@dataclass(frozen=True)
class Mark:
    """One tab's shared state: seconds it stays open (None: closed; 0 or less: its open period ended)."""

    tab: str
    open_seconds: float | None
    failure: str


class SharedBreakers:
    def __init__(self, db: Database, changes: Changes, wait_seconds: float = WAIT_SECONDS) -> None:
        self.db, self.changes, self.wait_seconds = db, changes, wait_seconds
        # Writes or reads that failed or did not come back in time (`side.missed`): the node's own marks stood.
        self.side = SideStatements(MAX_IN_FLIGHT, "the node's own offline marks decide")
        self.writing: dict[str, int] = {}  # tabs with a write of ours under way (a read must not undo it)

    @classmethod
    def on(cls, db: Database, changes: Changes, wait_seconds: float = WAIT_SECONDS) -> SharedBreakers | None:
        """The shared marks of a PostgreSQL database; None on SQLite (one machine decides by itself)."""
        return None if db.is_sqlite else cls(db, changes, wait_seconds)

    def opened(self, tab: str, seconds: float, failure: str) -> None:
        """This node opened `tab` for `seconds`: mark it for every node (in the background)."""
        self._write(tab, _OPEN, {"seconds": float(seconds), "failure": failure[:80]})

    def closed(self, tab: str) -> None:
        """A run on this node reached `tab` while it was marked: clear the mark everywhere (in the background)."""
        self._write(tab, _CLOSE, {})

    async def read(self) -> list[Mark] | None:
        """Every tab's shared mark; None when the database did not answer within `wait_seconds`."""
        marks: list[Mark] | None = await self.side.answer(self._read(), self.wait_seconds)
        return marks

    @property
    def missed(self) -> int:
        return self.side.missed

    def _write(self, tab: str, statement: Any, values: dict[str, Any]) -> None:
        payload = self.changes.payload(TOPIC)
        values = {**values, "tab": tab, "channel": CHANNEL, "payload": payload}
        task = self.side.start(self._execute(statement, values))
        if task is not None:
            self.writing[tab] = self.writing.get(tab, 0) + 1
            task.add_done_callback(lambda _task: self._written(tab))

    def _written(self, tab: str) -> None:
        left = self.writing.get(tab, 1) - 1
        if left > 0:
            self.writing[tab] = left
        else:
            self.writing.pop(tab, None)

    async def _execute(self, statement: Any, values: dict[str, Any]) -> None:
        async with self.db.write(timeout=STATEMENT_SECONDS) as session:
            await session.execute(statement, values)

    async def _read(self) -> list[Mark]:
        async with self.db.write(timeout=STATEMENT_SECONDS) as session:
            rows = (await session.execute(_READ)).all()
        return [
            Mark(str(tab), None if left is None else float(left), str(failure or "")) for tab, left, failure in rows
        ]
