"""The admin pages (server-rendered, behind Basic Auth): a page per provider tab, and settings.

The pages carry no secrets: the upload password and statistics are fetched by the page's script
from the JSON API when the operator opens the statistics panel.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from boothgate import __version__, i18n
from boothgate.providers.base import KINDS_NEEDING_REFERENCE, Kind
from boothgate.providers.registry import TAB_LABELS
from boothgate.services import settings_view
from boothgate.web.deps import ServicesDep, base_url, require_admin
from boothgate.web.options_form import option_fields

router = APIRouter(dependencies=[Depends(require_admin)], include_in_schema=False)

WEB = Path(__file__).parent
STATIC_DIR = WEB / "static"
templates = Jinja2Templates(directory=WEB / "templates")
LANG_COOKIE = "boothgate_lang"
LANG_COOKIE_SECONDS = 365 * 24 * 3600
# The prompt is optional on these tabs' prompt slots (DeepSeek writes the instruction itself).
PROMPT_OPTIONAL_TABS = frozenset({"deepseek"})


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


def _tab_state(services: ServicesDep, name: str, t: i18n.Translate) -> TabState:
    provider = services.registry.get(name)
    label = TAB_LABELS.get(name, name.title())
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
    return TabState(name, label, problem is None, problem, provider.last_error, model, kinds, schema)


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
    tabs = [_tab_state(services, name, t) for name in services.registry.tabs]
    response = templates.TemplateResponse(
        request,
        template,
        {
            "t": t,
            "lang": language,
            "languages": i18n.LANGUAGES,
            "strings": i18n.catalogue(language),
            "tabs": tabs,
            "static_version": static_version(),
            "version": __version__,
            **context,
        },
    )
    if switched:
        response.set_cookie(LANG_COOKIE, language, max_age=LANG_COOKIE_SECONDS, samesite="lax", httponly=True)
    response.headers["Cache-Control"] = "no-store"
    return response


def _card(slot: dict[str, Any], tab: TabState, language: str) -> dict[str, Any]:
    kinds = list(tab.kinds)
    if slot["kind"] not in kinds:
        kinds.append(slot["kind"])  # keep a stored kind visible even if the provider dropped it
    fields = option_fields(tab.options_schema, slot["options"], language, tab.name) if tab.options_schema else []
    return {**slot, "kinds": kinds, "option_fields": fields}


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, services: ServicesDep, tab: str | None = None) -> Response:
    tabs = services.registry.tabs
    if tab is not None and tab in tabs:
        return await tab_page(tab, request, services)
    return RedirectResponse(f"/tabs/{tabs[0]}", status_code=303)


@router.get("/tabs/{provider}", response_class=HTMLResponse)
async def tab_page(provider: str, request: Request, services: ServicesDep) -> Response:
    if provider not in services.registry.tabs:
        raise HTTPException(404, "There is no such tab.")
    language, _ = page_language(request, services)
    tab = _tab_state(services, provider, i18n.translator(language))
    address = base_url(request, services)
    cards = [_card(services.slots.public(slot, address), tab, language) for slot in await services.slots.find(provider)]
    return _render(
        request,
        services,
        "tab.html",
        tab=tab,
        cards=cards,
        kinds_needing_reference=sorted(k.value for k in KINDS_NEEDING_REFERENCE),
        prompt_optional=provider in PROMPT_OPTIONAL_TABS,
        public_base_url_missing=not services.settings.public_base_url,
        upload_password=services.credentials.upload_password,  # booth-links: the "with password" link
    )


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request, services: ServicesDep) -> Response:
    views = [view.public() for view in settings_view.describe(services.config)]
    groups = [(group, [v for v in views if v["group"] == group]) for group in settings_view.GROUPS]
    return _render(request, services, "settings.html", groups=groups, active_page="settings")
