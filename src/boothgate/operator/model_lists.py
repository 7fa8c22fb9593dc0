"""The model list of every provider tab: read live from the services, cached, refreshed when it matters.

Refreshed on start, when a provider's key or base URL changes, and on demand (the settings page's and
the card's "refresh" and the API's `?refresh=1`). A failed read keeps no stale list: it records the
problem in plain words, and "is this model offered?" answers "unknown" rather than a false alarm.

Several nodes on PostgreSQL (issue 27): a list read well is kept in the database with its fingerprint
(storage/shared_lists.py), and the other nodes take it (`sync`) when its fingerprint is theirs, so one
"refresh" updates every node and the service is asked once. At start, and after a key or base URL change,
a node takes a matching list read within `FRESH_SECONDS` instead of asking. On SQLite (one node) the lists
stay in memory only and are read at every start, as before: a list kept from the last run could be stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boothgate.providers.base import ModelInfo, Provider
from boothgate.providers.registry import Registry, UnknownProvider
from boothgate.providers.transport import answer_limit
from boothgate.storage.shared_lists import SharedLists

log = logging.getLogger("boothgate.models")

# A model list that does not come in this long is reported as unreachable (the page never waits longer).
REFRESH_TIMEOUT_SECONDS = 20.0
# Several nodes: a list another node read this recently, with the same key and base URL, is used as it is
# at start and after a settings change (a rolling restart asks each service once, not once per node).
FRESH_SECONDS = 600.0
# Several nodes needing the same list at once: one reads it; the others wait this long for it, then ask.
CLAIM_SECONDS = REFRESH_TIMEOUT_SECONDS + 5.0


@dataclass(frozen=True)
class Listing:
    """One provider's model list as last read."""

    models: list[ModelInfo] | None  # None: this provider has no model list (Turbotext)
    checked_at: datetime | None
    problem: str | None = None

    def ids(self) -> list[str]:
        return [m.id for m in self.models or []]

    def public(self) -> dict[str, Any]:
        return {
            "models": [{"id": m.id, "label": m.label or m.id} for m in self.models or []],
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
            "listed": self.models is not None or self.problem is not None,
            "problem": self.problem,
        }


def _failure_text(provider: Provider, exc: BaseException) -> str:
    if isinstance(exc, LookupError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"{provider.label} did not send its model list within {REFRESH_TIMEOUT_SECONDS:g} s."
    said = " ".join(str(exc).split())[:200]
    return f"{provider.label} could not be asked for its models ({type(exc).__name__}: {said})."


def _fingerprint(provider: Provider) -> str:
    """What the list depends on: the key and the base URL (hashed: secrets are not kept in the clear)."""
    settings = provider.settings
    parts = [provider.api_key() or ""]
    for name in type(settings).model_fields:
        if name.startswith(f"{provider.name}_") and name.endswith("base_url"):
            parts.append(str(getattr(settings, name)))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


class ModelLists:
    def __init__(self, registry: Registry, shared: SharedLists | None = None) -> None:
        self.registry = registry
        self.shared = shared
        self._listings: dict[str, Listing] = {}
        self._fingerprints: dict[str, str] = {}
        self._running: dict[str, asyncio.Task[Listing]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._arrived: dict[str, asyncio.Event] = {}  # set when another node's list for a tab is taken

    def _provider(self, name: str) -> Provider | None:
        try:
            return self.registry.get(name)
        except UnknownProvider:
            return None

    def get(self, name: str) -> Listing | None:
        return self._listings.get(name)

    def offered(self, name: str, model: str) -> bool | None:
        """Whether the service lists `model` now; None when that is not known (no list, or it failed)."""
        listing = self._listings.get(name)
        if listing is None or listing.models is None or listing.problem or not model:
            return None
        return model in listing.ids()

    async def refresh(self, name: str) -> Listing:
        """Read the list now (joining a read already under way)."""
        running = self._running.get(name)
        if running is None or running.done():
            running = asyncio.create_task(self._read(name))
            self._running[name] = running
        return await asyncio.shield(running)

    async def _read(self, name: str) -> Listing:
        provider = self._provider(name)
        now = datetime.now(UTC)
        if provider is None:
            listing = Listing(None, now, "This provider is not available in this version.")
        else:
            self._fingerprints[name] = _fingerprint(provider)
            try:
                # A model list is small: its answer gets a limit of its own (providers/transport.py).
                with answer_limit(provider.settings.provider_list_max_bytes):
                    async with asyncio.timeout(REFRESH_TIMEOUT_SECONDS):
                        models = await provider.list_models()
                listing = Listing(models, datetime.now(UTC))
                if self.shared is not None and models is not None:  # for the other nodes
                    listed = [{"id": m.id, "label": m.label} for m in models]
                    self.shared.store(name, self._fingerprints[name], listed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                listing = Listing([], datetime.now(UTC), _failure_text(provider, exc))
                log.info("model list of %s: %s", name, listing.problem)
        self._listings[name] = listing
        return listing

    def refresh_soon(self, names: list[str] | None = None) -> None:
        """Start reading the lists in the background (start-up, settings changes)."""
        for name in names if names is not None else self.registry.tabs:
            if self._provider(name) is not None:
                task = asyncio.create_task(self.refresh(name))
                task.add_done_callback(_quiet)

    def start(self) -> None:
        """At start, in the background: every tab's list (another node's recent one, else read now)."""
        self._take_or_read(None)

    def settings_changed(self) -> None:
        """After the registry was rebuilt: read again the lists whose key or base URL changed."""
        changed = []
        for name in self.registry.tabs:
            provider = self._provider(name)
            if provider is not None and self._fingerprints.get(name) != _fingerprint(provider):
                changed.append(name)
        self._take_or_read(changed)

    async def sync(self) -> None:
        """Another node stored a list: take the ones read with this node's key and base URL."""
        await self._take(None, None)

    def _take_or_read(self, names: list[str] | None) -> None:
        if self.shared is None:
            self.refresh_soon(names)
            return
        if names == []:
            return

        async def take_or_read() -> None:
            taken = await self._take(names, FRESH_SECONDS)
            for name in names if names is not None else self.registry.tabs:
                if name not in taken and self._provider(name) is not None:
                    self._in_background(self._claim_or_wait(name))

        self._in_background(take_or_read())

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _claim_or_wait(self, name: str) -> None:
        """Read `name`'s list, unless another node is reading it for the same key and address right now:
        then take theirs when it comes (and ask the service only if it did not come in time)."""
        provider = self._provider(name)
        if provider is None or self.shared is None:
            return
        arrived = self._arrived.setdefault(name, asyncio.Event())
        arrived.clear()
        if await self.shared.claim(name, _fingerprint(provider), CLAIM_SECONDS, FRESH_SECONDS) is False:
            if name in await self._take([name], FRESH_SECONDS):
                return  # it came while we asked
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLAIM_SECONDS):
                    await arrived.wait()
            if arrived.is_set():
                return
        with contextlib.suppress(Exception):
            await self.refresh(name)

    async def _take(self, names: list[str] | None, max_age: float | None) -> list[str]:
        """Take the stored lists (of `names`, at most `max_age` old) whose fingerprint is this node's."""
        stored = await self.shared.read() if self.shared is not None else None
        taken = []
        for row in stored or []:
            if (names is not None and row.tab not in names) or (max_age is not None and row.age_seconds > max_age):
                continue
            running = self._running.get(row.tab)
            if running is not None and not running.done():
                continue  # this node's own read is under way: it decides
            provider = self._provider(row.tab)
            if provider is None or _fingerprint(provider) != row.fingerprint:
                continue  # read with another key or base URL: not this node's list
            self._fingerprints[row.tab] = row.fingerprint
            self._listings[row.tab] = Listing([ModelInfo(m["id"], m["label"]) for m in row.models], row.checked_at)
            taken.append(row.tab)
            if row.tab in self._arrived:
                self._arrived[row.tab].set()
        return taken

    async def aclose(self) -> None:
        for task in [*self._background, *self._running.values()]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _quiet(task: asyncio.Task[Listing]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so a failure is not reported as "never retrieved"


def field_report(registry: Registry) -> list[dict[str, Any]]:
    """Issue 28, per provider tab: its keys (masked, with calls, failures, rest and flag), the fields its
    models refused (remembered in the database), and the day its prices were checked. Never a key."""
    report = []
    for name in registry.tabs:
        provider = registry.get(name)
        if provider is None:
            continue
        described = provider.describe()
        report.append(
            {
                "name": name,
                "label": provider.label,
                "keys": described.get("keys", []),
                "refused_fields": described.get("refused_fields", []),
                "prices_checked": provider.prices_checked(),
            }
        )
    return report
