"""Short statements on the shared database run beside the request that wants them (the shared counts,
offline marks and model lists of several nodes: storage/counts.py, breakers.py, shared_lists.py).

At most `limit` run at once per node, so a database that hangs holds that many connections and no more;
a caller that needs an answer waits `seconds` for it and otherwise goes on without one (the statement goes
on, bounded by its own `statement_timeout`); every answer not had — late, failed, or never started because
`limit` were running — is counted in `missed`, and failures are logged at most once a minute.

May import: the base modules only (it is a mechanism of storage/).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("boothgate.storage")

WARN_SECONDS = 60.0


class SideStatements:
    def __init__(self, limit: int, failure: str) -> None:
        self.limit = limit
        self.failure = failure  # what a failure leaves deciding, for the log ("the node's own count decides")
        self.missed = 0
        self.running: set[asyncio.Task[Any]] = set()
        self._waited: set[asyncio.Task[Any]] = set()  # their misses are counted by their waiter
        self._warned = -WARN_SECONDS

    def start(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        """`work` in the background; None (and `work` never started) when `limit` are running already."""
        if len(self.running) >= self.limit:
            work.close()
            self.missed += 1
            return None
        task = asyncio.create_task(work)
        self.running.add(task)
        task.add_done_callback(self._done)
        return task

    async def answer(self, work: Coroutine[Any, Any, Any], seconds: float) -> Any:
        """`work`'s result if it comes within `seconds`, else None."""
        task = self.start(work)
        if task is None:
            return None
        self._waited.add(task)
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if not done or task.cancelled() or task.exception() is not None:
            self.missed += 1
            return None
        return task.result()

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.running.discard(task)
        waited = task in self._waited
        self._waited.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        if not waited:
            self.missed += 1
        if time.monotonic() - self._warned > WARN_SECONDS:  # at most once a minute, however many fail
            self._warned = time.monotonic()
            log.warning("a shared statement failed, %s: %s", self.failure, type(task.exception()).__name__)
