"""The provider registry: which provider serves which tab.

Each tab name maps to a module `boothgate.providers.<name>` that exposes `PROVIDER` (a Provider
subclass). A tab whose module is missing is listed but answers 503 `provider_not_configured`.
Tests register their own provider classes.
"""

from __future__ import annotations

import importlib
import logging

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
    """Provider instances by tab name, rebuilt whenever the settings change."""

    def __init__(self, context: ProviderContext, classes: dict[str, type[Provider]] | None = None) -> None:
        self._classes: dict[str, type[Provider] | None] = {}
        for name in TABS:
            self._classes[name] = builtin_provider_class(name)
        self._classes.update(classes or {})
        self._instances: dict[str, Provider] = {}
        self.context = context
        self._build()

    def _build(self) -> None:
        self.context.lookup = self._instances_get
        self._instances = {name: cls(self.context) for name, cls in self._classes.items() if cls is not None}

    async def rebuild(self, context: ProviderContext) -> None:
        old = self._instances
        self.context = context
        self._build()
        for provider in old.values():
            await provider.aclose()

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
        for provider in self._instances.values():
            await provider.aclose()
