"""What the pages say about models, from the cached live lists: the choices offered beside a model field,
and a flag on every card (and the tab) whose model the service no longer lists — before a guest meets it.

A list that could not be read flags nothing (unknown is not "gone").
"""

from __future__ import annotations

from typing import Any

from boothgate.providers.base import ModelInfo
from boothgate.providers.registry import TAB_LABELS, UnknownProvider
from boothgate.runtime import Services

SUGGESTIONS = 3


def _label(name: str) -> str:
    return TAB_LABELS.get(name, name.title())


def default_model(services: Services, tab: str) -> str | None:
    try:
        provider = services.registry.get(tab)
    except UnknownProvider:
        return None
    if provider is None or not provider.model_setting:
        return None
    return str(getattr(services.settings, provider.model_setting, "") or "") or None


def slot_model(services: Services, slot: dict[str, Any]) -> tuple[str, str] | None:
    """(the tab whose list the slot's model is on, the model id) or None when the slot uses no listed model.

    A DeepSeek slot's image model is its renderer's (`renderer_options.model`)."""
    tab = slot["provider"]
    options = slot.get("options") or {}
    if tab == "deepseek":
        tab = str(options.get("renderer") or "gemini")
        options = options.get("renderer_options") or {}
    model = str(options.get("model") or "").strip() or default_model(services, tab)
    return (tab, model) if model else None


def card_flag(services: Services, slot: dict[str, Any]) -> dict[str, Any] | None:
    """The card's warning when its model is not offered any more, with models to choose instead."""
    found = slot_model(services, slot)
    if found is None:
        return None
    tab, model = found
    if services.model_lists.offered(tab, model) is not False:
        return None
    listing = services.model_lists.get(tab)
    choices = listing.ids()[:SUGGESTIONS] if listing else []
    return {"model": model, "provider": _label(tab), "choices": ", ".join(choices) or "—"}


def tab_notice(services: Services, tab: str, cards: list[dict[str, Any]]) -> dict[str, Any]:
    """The tab's line: how many enabled slots use a model that is gone, and whether the default is."""
    default = default_model(services, tab)
    default_gone = default is not None and services.model_lists.offered(tab, default) is False
    missing = sum(1 for card in cards if card.get("enabled") and card.get("model_flag"))
    listing = services.model_lists.get(tab)
    return {
        "provider": _label(tab),
        "missing_slots": missing,
        "default_gone": default if default_gone else None,
        "choices": ", ".join(listing.ids()[:SUGGESTIONS]) if listing else "",
        "problem": listing.problem if listing else None,
    }


def datalists(services: Services) -> dict[str, list[ModelInfo]]:
    """The models each tab's service lists now (only tabs with a list that was read)."""
    lists: dict[str, list[ModelInfo]] = {}
    for name in services.registry.tabs:
        listing = services.model_lists.get(name)
        if listing is not None and listing.models:
            lists[name] = listing.models
    return lists


def model_settings(services: Services) -> dict[str, str]:
    """Settings field → tab, for the settings page's model fields (e.g. gemini_model → gemini)."""
    found: dict[str, str] = {}
    for name in services.registry.tabs:
        try:
            provider = services.registry.get(name)
        except UnknownProvider:
            continue
        if provider is not None and provider.model_setting:
            found[provider.model_setting] = name
    return found


def checkable(services: Services) -> list[str]:
    """Tabs whose settings group gets a Check button (every tab with an implementation)."""
    return [name for name in services.registry.tabs if services.registry.get(name) is not None]
