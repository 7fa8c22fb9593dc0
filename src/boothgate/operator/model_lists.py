"""The model list of every provider tab: read live from the services, cached, refreshed when it matters.

Refreshed on start, when a provider's key or base URL changes, and on demand (the settings page's and
the card's "refresh" and the API's `?refresh=1`). A failed read keeps no stale list: it records the
problem in plain words, and "is this model offered?" answers "unknown" rather than a false alarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boothgate.providers.base import ModelInfo, Provider
from boothgate.providers.registry import Registry, UnknownProvider
from boothgate.providers.transport import answer_limit

log = logging.getLogger("boothgate.models")

# A model list that does not come in this long is reported as unreachable (the page never waits longer).
REFRESH_TIMEOUT_SECONDS = 20.0


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
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._listings: dict[str, Listing] = {}
        self._fingerprints: dict[str, str] = {}
        self._running: dict[str, asyncio.Task[Listing]] = {}

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

    def settings_changed(self) -> None:
        """After the registry was rebuilt: read again the lists whose key or base URL changed."""
        changed = []
        for name in self.registry.tabs:
            provider = self._provider(name)
            if provider is not None and self._fingerprints.get(name) != _fingerprint(provider):
                changed.append(name)
        self.refresh_soon(changed)

    async def aclose(self) -> None:
        for task in self._running.values():
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
