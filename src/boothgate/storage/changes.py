"""Edits seen by every node within a second (issue 27): PostgreSQL's LISTEN/NOTIFY through asyncpg.

A node that saves something other nodes keep in memory (the settings page's values) publishes a topic on
one channel; every node holds one listening connection and reloads what the topic names. The notification
is sent only when the saving transaction commits, so a node never reloads before the row is there. On SQLite
(one node) publishing and listening do nothing. A listening connection that drops is opened again, and
every topic's reload runs once after a reconnect (a notification sent meanwhile would otherwise be lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from boothgate.storage.db import Database

log = logging.getLogger("boothgate.changes")
CHANNEL = "boothgate_changes"
RECONNECT_SECONDS = 1.0

Reload = Callable[[], Awaitable[None]]


class Changes:
    def __init__(self, db: Database, node: str) -> None:
        self.db, self.node = db, node
        self._reloads: dict[str, Reload] = {}
        self._at_start: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}  # one reload of a topic at a time: the newest read wins
        self.listening = asyncio.Event()  # set while a listening connection is open (tests wait on it)

    @property
    def shared(self) -> bool:
        return not self.db.is_sqlite

    def on(self, topic: str, reload: Reload, at_start: bool = False) -> None:
        """Run `reload` when another node publishes `topic` (and after a reconnect); with `at_start` also
        once the first listening connection is open (state another node kept while this one was away)."""
        self._reloads[topic] = reload
        if at_start:
            self._at_start.add(topic)

    def payload(self, topic: str) -> str:
        """The notification's text for `topic` (for a statement that sends `pg_notify` itself)."""
        return json.dumps({"topic": topic, "node": self.node})

    async def publish(self, session: AsyncSession, topic: str) -> None:
        """Tell the other nodes, when `session`'s transaction commits, that `topic` changed."""
        if self.shared:
            await session.execute(
                text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": self.payload(topic)}
            )

    def start(self) -> None:
        if self.shared and self._task is None:
            self._task = asyncio.create_task(self._listen_forever(), name="changes-listener")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen_forever(self) -> None:
        import asyncpg

        url = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        first = True
        while True:
            lost = asyncio.Event()
            connection: Any = None
            try:
                connection = await asyncpg.connect(url, timeout=10)
                connection.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, self._received)
                self.listening.set()
                for topic in self._reloads:  # what changed while we were not listening
                    if not first or topic in self._at_start:
                        self._reload(topic)
                first = False
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("changes: listening failed (%s: %s); trying again", type(exc).__name__, str(exc)[:200])
            finally:
                self.listening.clear()
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), 2)
            await asyncio.sleep(RECONNECT_SECONDS)

    def _received(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if message.get("node") != self.node:  # our own edit is already in memory here
            self._reload(str(message.get("topic")))

    def _reload(self, topic: str) -> None:
        reload = self._reloads.get(topic)
        if reload is None:
            return
        task = asyncio.create_task(self._run(topic, reload, self._locks.setdefault(topic, asyncio.Lock())))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _run(topic: str, reload: Reload, lock: asyncio.Lock) -> None:
        try:
            async with lock:
                await reload()
        except Exception:
            log.exception("changes: reloading %s failed", topic)
