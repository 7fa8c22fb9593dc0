"""The provider registry: which provider serves which tab.

Each tab name maps to a module `boothgate.providers.<name>` that exposes `PROVIDER` (a Provider
subclass). A tab whose module is missing is listed but answers 503 `provider_not_configured`.
Tests register their own provider classes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator

from boothgate.providers.base import Provider, ProviderContext

log = logging.getLogger(__name__)

TABS: tuple[str, ...] = ("gemini", "turbotext", "deepseek", "local", "openai", "fal")
TAB_LABELS = {
    "gemini": "Gemini",
    "turbotext": "Turbotext",
    "deepseek": "DeepSeek",
    "local": "Offline",
    "openai": "OpenAI",
    "fal": "fal.ai",
}
SLOTS_PER_TAB = 20


class UnknownProvider(LookupError):
    """No tab of that name."""


def builtin_provider_class(name: str) -> type[Provider] | None:
    module_name = f"boothgate.providers.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    provider_class: type[Provider] = module.PROVIDER
    return provider_class


class Registry:
    """Provider instances by tab name, rebuilt whenever the settings change.

    A rebuild replaces the providers for new jobs only (issue 31, class 7): a job runs inside `in_use()`,
    which notes the generation it started in, and the providers a rebuild retires are closed once no job
    of their generation or an earlier one is still running — never under a job that uses them.
    """

    def __init__(self, context: ProviderContext, classes: dict[str, type[Provider]] | None = None) -> None:
        self._classes: dict[str, type[Provider] | None] = {}
        for name in TABS:
            self._classes[name] = builtin_provider_class(name)
        self._classes.update(classes or {})
        self._instances: dict[str, Provider] = {}
        self.context = context
        self._generation = 0
        self._running: dict[int, int] = {}  # generation: jobs started in it still running
        self._retired: list[tuple[int, list[Provider]]] = []  # (last generation they served, providers)
        self._closing: set[asyncio.Task[None]] = set()
        self._build()

    def _build(self) -> None:
        self.context.lookup = self._instances_get
        self._instances = {name: cls(self.context) for name, cls in self._classes.items() if cls is not None}

    async def rebuild(self, context: ProviderContext) -> None:
        self._retired.append((self._generation, list(self._instances.values())))
        self._generation += 1
        self.context = context
        self._build()
        await self._close_unused()

    @contextlib.asynccontextmanager
    async def in_use(self, generation: int | None = None) -> AsyncIterator[int]:
        """`async with registry.in_use() as generation:` around one job: no provider it may use is closed
        meanwhile. A run that outlives its job (the late AI result) holds the job's `generation` again."""
        generation = self._generation if generation is None else generation
        self._running[generation] = self._running.get(generation, 0) + 1
        try:
            yield generation
        finally:
            self._running[generation] -= 1
            if not self._running[generation]:
                del self._running[generation]
            if self._retired:  # closed in the background: the job's answer does not wait for it
                task = asyncio.create_task(self._close_unused())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    @property
    def retired(self) -> int:
        """Replaced providers still open because a job that may use them is running (for /health, tests)."""
        return sum(len(providers) for _, providers in self._retired)

    async def _close_unused(self) -> None:
        oldest = min(self._running, default=self._generation)
        done = [entry for entry in self._retired if entry[0] < oldest]
        self._retired = [entry for entry in self._retired if entry[0] >= oldest]
        for _, providers in done:
            for provider in providers:
                try:
                    await provider.aclose()
                except Exception:  # a client that fails to close must not fail a job or a settings save
                    log.warning("closing a replaced %s provider failed", provider.name, exc_info=True)

    def _instances_get(self, name: str) -> Provider | None:
        return self._instances.get(name)

    def register(self, name: str, provider_class: type[Provider]) -> Provider:
        self._classes[name] = provider_class
        self._instances[name] = provider_class(self.context)
        return self._instances[name]

    @property
    def tabs(self) -> list[str]:
        return list(self._classes)

    def knows(self, name: str) -> bool:
        return name in self._classes

    def get(self, name: str) -> Provider | None:
        """The provider of a tab, or None when the tab exists but has no implementation yet."""
        if name not in self._classes:
            raise UnknownProvider(name)
        return self._instances.get(name)

    async def aclose(self) -> None:
        self._running.clear()
        await self._close_unused()
        for provider in self._instances.values():
            await provider.aclose()
