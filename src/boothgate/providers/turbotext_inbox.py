"""Turbotext webhook deliveries, matched to the jobs waiting for them.

In webhook mode `create_queue` answers `{"success":true,"asyncid":N}` and Turbotext later POSTs the
finished answer (the same shape as `get_result`'s, carrying the same `asyncid`) to our hook URL. The
URL holds a random secret, so only someone who was given it can deliver.

Deliveries are idempotent: a duplicate, a late one (the job gave up) or an unknown one is logged and
otherwise ignored. A delivery may beat `create_queue`'s own answer to us, so unmatched ones are kept
for a short while and claimed when the job starts waiting. The webhook route and the job may run on
different event loops (tests run the hook in another server), hence the lock and call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from boothgate.deadline import Deadline

log = logging.getLogger(__name__)

EARLY_KEEP_SECONDS = 120.0
MEMORY = 512  # ids remembered for duplicate / late detection, and early deliveries kept


class WebhookInbox:
    def __init__(self) -> None:
        self.secret = secrets.token_urlsafe(32)
        self._lock = threading.Lock()
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._early: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._closed: OrderedDict[str, str] = OrderedDict()  # asyncid → "delivered" | "gave up"

    def hook_url(self, public_base_url: str) -> str:
        return f"{public_base_url.rstrip('/')}/hooks/turbotext/{self.secret}"

    def accepts(self, secret: str) -> bool:
        return hmac.compare_digest(secret.encode(), self.secret.encode())

    def deliver(self, body: Mapping[str, Any]) -> str:
        """Hand a delivery to its job. Returns what happened: delivered, early, duplicate, late, unknown."""
        asyncid = _id_of(body)
        if asyncid is None:
            log.warning("turbotext webhook without asyncid ignored")
            return "unknown"
        with self._lock:
            future = self._waiting.pop(asyncid, None)
            if future is None:
                return self._unmatched(asyncid, dict(body))
            self._remember(asyncid, "delivered")
        future.get_loop().call_soon_threadsafe(_settle, future, dict(body))
        log.info("turbotext webhook delivered asyncid=%s", asyncid)
        return "delivered"

    def _unmatched(self, asyncid: str, body: dict[str, Any]) -> str:
        closed = self._closed.get(asyncid)
        if closed is not None:
            outcome = "duplicate" if closed == "delivered" else "late"
            log.info("turbotext webhook %s for asyncid=%s ignored", outcome, asyncid)
            return outcome
        self._sweep_early()
        if asyncid in self._early:
            log.info("turbotext webhook duplicate for asyncid=%s ignored", asyncid)
            return "duplicate"
        self._early[asyncid] = (time.monotonic(), body)
        log.info("turbotext webhook for unknown asyncid=%s kept for a while", asyncid)
        return "early"

    async def wait(self, asyncid: str | int, until: Deadline) -> dict[str, Any] | None:
        """The delivery for `asyncid`, or None when none came before `until`."""
        key = str(asyncid)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        with self._lock:
            early = self._early.pop(key, None)
            if early is not None:
                self._remember(key, "delivered")
                return early[1]
            self._waiting[key] = future
        try:
            async with until.timeout():
                return await future
        except TimeoutError:
            return None
        finally:
            with self._lock:
                if self._waiting.pop(key, None) is not None:
                    self._remember(key, "gave up")

    def _remember(self, asyncid: str, outcome: str) -> None:
        self._closed[asyncid] = outcome
        while len(self._closed) > MEMORY:
            self._closed.popitem(last=False)

    def _sweep_early(self) -> None:
        now = time.monotonic()
        while self._early:
            first, (at, _) = next(iter(self._early.items()))
            if now - at < EARLY_KEEP_SECONDS and len(self._early) < MEMORY:
                break
            del self._early[first]

    @property
    def waiting(self) -> int:
        return len(self._waiting)


def _settle(future: asyncio.Future[dict[str, Any]], body: dict[str, Any]) -> None:
    if not future.done():
        future.set_result(body)


def _id_of(body: Mapping[str, Any]) -> str | None:
    for key in ("asyncid", "queueid"):
        value = body.get(key)
        if isinstance(value, int | str) and str(value).strip():
            return str(value).strip()
    return None
