"""The admin pages (server-rendered, behind Basic Auth): per provider tab an overview list of its 20 slots
and one card editor per slot, and settings.

The pages carry no secrets: the upload password and statistics are fetched by the page's script
from the JSON API when the operator opens the statistics panel.
"""

from __future__ import annotations

import hashlib
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from boothgate import __version__, i18n
from boothgate.operator import budget as budgets
from boothgate.operator import model_lists, settings_view
from boothgate.operator.events import running
from boothgate.providers.base import KINDS_NEEDING_REFERENCE, Kind
from boothgate.providers.local import BACKGROUND_OPTIONS, Style
from boothgate.providers.registry import TAB_LABELS
from boothgate.records.live import SlotActivity, slot_activity
from boothgate.run.moderation import ModerationOptions
from boothgate.sharing.tokens import reach_problem
from boothgate.storage.models import utcnow
from boothgate.web import model_flags
from boothgate.web.deps import ServicesDep, base_url, booth_address, hidden_tabs, require_admin
from boothgate.web.options_form import option_fields

router = APIRouter(dependencies=[Depends(require_admin)], include_in_schema=False)

WEB = Path(__file__).parent
STATIC_DIR = WEB / "static"
templates = Jinja2Templates(directory=WEB / "templates")
LANG_COOKIE = "boothgate_lang"
LANG_COOKIE_SECONDS = 365 * 24 * 3600
# The prompt is optional on these tabs' prompt slots (DeepSeek writes the instruction itself; offline
# styles are chosen by name and do not read it).
PROMPT_OPTIONAL_TABS = frozenset({"deepseek", "local"})


@cache
def static_version() -> str:
    """A fingerprint of the static files, so browsers fetch new assets after an upgrade."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


@dataclass
class TabState:
    """What the tab bar and a tab's status line show about a provider."""

    name: str
    label: str
    ready: bool
    problem: str | None
    last_error: str | None
    model: str | None
    kinds: list[str]
    options_schema: dict[str, Any]
    offline: bool = False  # its service could not be reached lately: jobs go to fallbacks for a while
    offline_retry_seconds: float = 0.0


def _tab_state(services: ServicesDep, name: str, t: i18n.Translate) -> TabState:
    provider = services.registry.get(name)
    label = t(f"tab.{name}", TAB_LABELS.get(name, name.title()))
    model = getattr(services.settings, f"{name}_model", None)
    if provider is None:
        return TabState(name, label, False, t("provider.unavailable"), None, model, [k.value for k in Kind], {})
    problem = provider.problem()
    if problem and provider.key_setting and not provider.api_key():
        problem = t("provider.no_key", env=f"BOOTHGATE_{provider.key_setting.upper()}")
    elif problem and provider.needs_public_urls and not provider.settings.public_base_url:
        problem = t("provider.no_public_url")
    kinds = [k.value for k in Kind if k in provider.kinds]
    schema = provider.Options.model_json_schema()
    state = TabState(name, label, problem is None, problem, provider.last_error, model, kinds, schema)
    breaker = services.ingest.fallbacks.breaker
    state.offline, state.offline_retry_seconds = breaker.offline(name), breaker.retry_in(name)
    return state


def page_language(request: Request, services: ServicesDep) -> tuple[str, bool]:
    """The page's language: `?lang=` (remembered in a cookie), else the cookie, else the setting."""
    asked = request.query_params.get("lang")
    if asked in i18n.LANGUAGES:
        return asked, True
    remembered = request.cookies.get(LANG_COOKIE)
    if remembered in i18n.LANGUAGES:
        return remembered, False
    return services.settings.language, False


def _render(request: Request, services: ServicesDep, template: str, **context: Any) -> Response:
    language, switched = page_language(request, services)
    t = i18n.translator(language)
    hidden = hidden_tabs(request)
    every_tab = [_tab_state(services, name, t) for name in services.registry.tabs]
    tabs = [state for state in every_tab if state.name not in hidden]
    response = templates.TemplateResponse(
        request,
        template,
        {
            "t": t,
            "lang": language,
            "languages": i18n.LANGUAGES,
            "strings": i18n.catalogue(language),
            "tabs": tabs,
            "every_tab": every_tab,
            "hidden_tabs": hidden,
            "static_version": static_version(),
            "version": __version__,
            "cost_currency": services.settings.cost_currency,
            "cost_rate": services.settings.rub_per_usd,
            **context,
        },
    )
    if switched:
        response.set_cookie(LANG_COOKIE, language, max_age=LANG_COOKIE_SECONDS, samesite="lax", httponly=True)
    response.headers["Cache-Control"] = "no-store"
    return response


def _schemas(services: ServicesDep) -> dict[str, dict[str, Any]]:
    """Every available tab's options schema (a DeepSeek slot edits its renderer's options as a sub-form)."""
    found = {}
    for name in services.registry.tabs:
        provider = services.registry.get(name)
        if provider is not None:
            found[name] = provider.Options.model_json_schema()
    return found


def _card(
    slot: dict[str, Any], tab: TabState, language: str, schemas: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    kinds = list(tab.kinds)
    if slot["kind"] not in kinds:
        kinds.append(slot["kind"])  # keep a stored kind visible even if the provider dropped it
    fields = (
        option_fields(tab.options_schema, slot["options"], language, tab.name, schemas or {})
        if tab.options_schema
        else []
    )
    moderation = ModerationOptions.model_validate(slot.get("moderation") or {})
    return {**slot, "kinds": kinds, "option_fields": fields, "moderation_effective": moderation}


def _overview_row(
    slot: dict[str, Any], tab: TabState, activity: SlotActivity | None, t: i18n.Translate
) -> dict[str, Any]:
    """One line of a tab's overview: what the slot does, how it did today, and why it cannot work."""
    options = slot["options"]
    model = options.get("model") or options.get("renderer") or ""
    if tab.name == "local":  # the offline tab has no models: a style slot shows its style (issue 22)
        model = t(f"style.{options.get('style') or 'warm_film'}") if slot["kind"] == Kind.prompt else ""
    warnings: list[str] = []
    if slot["enabled"]:
        if not tab.ready:
            warnings.append(tab.problem or t("provider.not_ready"))
        warnings += [t(f"problem.{code}.{slot['kind']}", _default=t(f"problem.{code}")) for code in slot["problems"]]
        flag = slot.get("model_flag")
        if flag:
            warnings.append(
                t("models.slot_missing", model=flag["model"], provider=flag["provider"], choices=flag["choices"])
            )
    last = activity.last if activity else None
    return {
        **slot,
        "model": model,
        "model_is_default": not model,
        "default_model": tab.model or "",
        "today": activity.today if activity else 0,
        "last": last,
        "warnings": warnings,
    }


def _flagged(services: ServicesDep, publics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 11: a model the service no longer lists is flagged on its slot before a guest meets it."""
    for public in publics:
        public["model_flag"] = model_flags.card_flag(services, public)
    return publics


render = _render  # for pages defined in their own modules (web/live.py)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, services: ServicesDep, tab: str | None = None) -> Response:
    """The first tab that can work (shown in the bar); else a short "get started" page."""
    tabs = services.registry.tabs
    if tab is not None and tab in tabs:
        return await tab_page(tab, request, services)
    language, _ = page_language(request, services)
    t = i18n.translator(language)
    hidden = hidden_tabs(request)
    for name in [n for n in tabs if n not in hidden] + [n for n in tabs if n in hidden]:
        if _tab_state(services, name, t).ready:
            return RedirectResponse(f"/tabs/{name}", status_code=303)
    return _render(request, services, "start.html", active_page="start")


@router.get("/tabs/{provider}", response_class=HTMLResponse)
async def tab_page(provider: str, request: Request, services: ServicesDep) -> Response:
    """The tab's overview: its 20 slots as a compact list; a slot opens into its card editor."""
    if provider not in services.registry.tabs:
        raise HTTPException(404, "There is no such tab.")
    language, _ = page_language(request, services)
    t = i18n.translator(language)
    tab = _tab_state(services, provider, t)
    address = base_url(request, services)
    activity = await slot_activity(services.db, provider)
    publics = _flagged(services, [services.slots.public(slot, address) for slot in await services.slots.find(provider)])
    rows = [_overview_row(public, tab, activity.get(public["number"]), t) for public in publics]
    return _render(
        request,
        services,
        "tab.html",
        tab=tab,
        rows=rows,
        model_notice=model_flags.tab_notice(services, provider, publics),
        budget_warnings=await _budget_warnings(services, provider, t),
    )


async def _budget_warnings(services: ServicesDep, provider: str, t: i18n.Translate) -> list[str]:
    """Issue 23: a running event using this tab's slots whose budget is 80 % used (or spent)."""
    warnings = []
    for event in await services.events.find():
        if not any(key.startswith(provider + "/") for key in event.slots or []):
            continue
        if not running(event, utcnow()):
            continue
        state = budgets.state(event, services.settings)
        if state["spent"]:
            warnings.append(t("events.budget_spent", name=event.name))
        elif state["warning"]:
            warnings.append(t("events.budget_warning", name=event.name, share=round(state["used_share"] * 100)))
    return warnings


@router.get("/tabs/{provider}/{number}", response_class=HTMLResponse)
async def slot_page(provider: str, number: int, request: Request, services: ServicesDep) -> Response:
    """One slot's card editor (today's card), with the way back to the overview and to its neighbours."""
    if provider not in services.registry.tabs:
        raise HTTPException(404, "There is no such tab.")
    slot = await services.slots.get(provider, number)
    if slot is None:
        raise HTTPException(404, "There is no such slot.")
    language, _ = page_language(request, services)
    tab = _tab_state(services, provider, i18n.translator(language))
    address, address_source = booth_address(request, services)
    order = {name: index for index, name in enumerate(services.registry.tabs)}
    every = sorted(await services.slots.find(), key=lambda s: (order.get(s.provider, len(order)), s.number))
    publics = _flagged(services, [services.slots.public(s, address) for s in every if s.provider == provider])
    public = next(p for p in publics if p["number"] == number)
    numbers = [p["number"] for p in publics]
    position = numbers.index(number)
    return _render(
        request,
        services,
        "slot.html",
        tab=tab,
        card_slot=_card(public, tab, language, _schemas(services)),
        share_reach_problem=reach_problem(services.settings.public_base_url),  # issue 30: the QR's address
        previous=numbers[position - 1] if position > 0 else None,
        next=numbers[position + 1] if position + 1 < len(numbers) else None,
        kinds_needing_reference=sorted(k.value for k in KINDS_NEEDING_REFERENCE),
        prompt_optional=provider in PROMPT_OPTIONAL_TABS,
        public_base_url_missing=not services.settings.public_base_url,
        address=address,
        address_source=address_source,
        moderation_available=services.moderation is not None and services.moderation.available,
        model_notice=model_flags.tab_notice(services, provider, publics),
        fallback_choices=_fallback_choices(every, i18n.translator(language)),
        upload_password=services.credentials.upload_password,  # booth-links: the "with password" link
        style_names=list(typing.get_args(Style)),
        background_option_names=list(BACKGROUND_OPTIONS),
    )


def _fallback_choices(slots: list[Any], t: i18n.Translate) -> list[dict[str, str]]:
    """Every slot of every tab for the cards' fallback lists (each card leaves itself out)."""
    choices = []
    for slot in slots:
        label = f"{t(f'tab.{slot.provider}', TAB_LABELS.get(slot.provider, slot.provider))} {slot.number}"
        if slot.name:
            label += f" · {slot.name}"
        if not slot.enabled:
            label += f" {t('card.fallback_off')}"
        choices.append({"value": f"{slot.provider}/{slot.number}", "label": label})
    return choices


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request, services: ServicesDep) -> Response:
    views = [view.public() for view in settings_view.describe(services.config)]
    # grouped by tab, in the bar's order; the offline engine has its own section (issue 22)
    tabs = services.registry.tabs
    order = ["general", *[g for g in tabs if g in settings_view.GROUPS]]
    order += [g for g in settings_view.GROUPS if g not in order]
    groups = [(group, [v for v in views if v["group"] == group]) for group in order]
    language, _ = page_language(request, services)
    t = i18n.translator(language)
    return _render(
        request,
        services,
        "settings.html",
        groups=groups,
        tab_states={name: _tab_state(services, name, t) for name in tabs},
        active_page="settings",
        model_lists=model_flags.datalists(services),
        model_settings=model_flags.model_settings(services),
        checkable=model_flags.checkable(services),
        moderation_available=services.moderation is not None and services.moderation.available,
        providers_field=model_lists.field_report(services.registry),
    )
