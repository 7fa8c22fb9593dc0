"""Counts every node sees (issue 27): refused requests per key and minute, kept in PostgreSQL.

Behind a load balancer each node would otherwise count an address's wrong passwords (and a stranger's
records) by itself, and a stranger would get the allowance once per node. On PostgreSQL a refused
request adds one to its key's row of this minute (`INSERT ... ON CONFLICT DO UPDATE ... RETURNING`) and
reads the sum of the minutes its window covers, all in one statement; rows older than `keep_minutes`
are deleted on the way, at most once a minute per node. SQLite is one machine: no shared count there.

Never in a booth's way: a count that has not come back within `wait_seconds` (0.1 s) is None and the caller goes
on with its node's own count. The statement is not cancelled (a cancelled driver call can leave its
connection in doubt); it finishes in the background, bounded by the database's `statement_timeout`, and
no more than `MAX_IN_FLIGHT` of them run at once, so a database that hangs holds at most that many of
the pool's connections. Only refused requests count: a booth with the right password never comes here.

Who counts here, each under keys of its own name: the booth's wrong upload passwords (`booth:<address>`),
the strangers' record budgets (`records:<address>`, `records:*`), wrong admin passwords
(`admin:<address>`) and guesses at guest-page codes and gallery PINs (`guest:<address>`).
"""

from __future__ import annotations

import math
import time

from sqlalchemy import text

from boothgate.storage.db import Database
from boothgate.storage.side_statements import SideStatements

WAIT_SECONDS = 0.1  # the longest a refused request waits for the shared count (BOOTHGATE_SHARED_COUNT_WAIT_SECONDS)
STATEMENT_SECONDS = 1.0  # the longest the statement may run on in the background (statement_timeout)
MAX_IN_FLIGHT = 2
SWEEP_SECONDS = 60.0

_MINUTE = "floor(extract(epoch FROM now()) / 60)::integer"
_COUNT = text(
    f"""
    WITH hit AS (
        INSERT INTO shared_counts (key, minute, hits) VALUES (:key, {_MINUTE}, 1)
        ON CONFLICT (key, minute) DO UPDATE SET hits = shared_counts.hits + 1
        RETURNING minute, hits
    )
    SELECT hit.hits + COALESCE((
        SELECT sum(c.hits) FROM shared_counts c
        WHERE c.key = :key AND c.minute >= hit.minute - :back AND c.minute < hit.minute
    ), 0) FROM hit
    """
)
_FORGET = text("DELETE FROM shared_counts WHERE key = :key")
_SWEEP = text(f"DELETE FROM shared_counts WHERE minute < {_MINUTE} - :keep")


class SharedCounts:
    def __init__(self, db: Database, keep_minutes: int, wait_seconds: float = WAIT_SECONDS) -> None:
        self.db, self.wait_seconds = db, wait_seconds
        self.keep_minutes = max(2, keep_minutes)
        # Counts that did not come back in time (or failed), in `side.missed`: the node's own count decided.
        self.side = SideStatements(MAX_IN_FLIGHT, "the node's own count decides")
        self._swept = 0.0

    @classmethod
    def on(cls, db: Database, keep_minutes: int, wait_seconds: float = WAIT_SECONDS) -> SharedCounts | None:
        """The shared counts of a PostgreSQL database; None on SQLite (one machine counts by itself)."""
        return None if db.is_sqlite else cls(db, keep_minutes, wait_seconds)

    def cover(self, seconds: float) -> None:
        """Keep each key's rows for a window of `seconds` at least (plus two minutes): every throttle that
        shares these counts asks for its lockout window, the longest one decides."""
        self.keep_minutes = max(self.keep_minutes, math.ceil(seconds / 60) + 2)

    async def count(self, key: str, minutes: int = 0) -> int | None:
        """Count one more refused request of `key`: its hits in this minute and the `minutes` before it, on
        every node together. None when the database did not answer within `wait_seconds`."""
        hits: int | None = await self.side.answer(self._count(key[:80], minutes), self.wait_seconds)
        return hits

    @property
    def missed(self) -> int:
        return self.side.missed

    def forget(self, key: str) -> None:
        """Delete `key`'s counts (a right password after wrong ones), in the background: nobody waits."""
        self.side.start(self._forget(key[:80]))

    async def _forget(self, key: str) -> int:
        async with self.db.write(timeout=STATEMENT_SECONDS) as session:
            await session.execute(_FORGET, {"key": key})
        return 0

    async def _count(self, key: str, minutes: int) -> int:
        async with self.db.write(timeout=STATEMENT_SECONDS) as session:
            hits = (await session.execute(_COUNT, {"key": key, "back": minutes})).scalar_one()
            if time.monotonic() - self._swept > SWEEP_SECONDS:
                self._swept = time.monotonic()
                await session.execute(_SWEEP, {"keep": self.keep_minutes})
        return int(hits)
