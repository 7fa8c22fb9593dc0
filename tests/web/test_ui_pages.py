"""The admin pages over HTTP: access, language, the catalogue, CSP-clean markup, option forms."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from boothgate import errors, i18n
from boothgate.operator import settings_view
from boothgate.providers.base import Kind
from boothgate.providers.local import Style
from boothgate.records.stats import STATUSES
from boothgate.settings import RUNTIME_EDITABLE
from boothgate.web.options_form import option_fields
from tests.conftest import ADMIN, Booth, ScriptedProvider

WEB = Path(__file__).parents[2] / "src" / "boothgate" / "web"
TEMPLATES = sorted((WEB / "templates").glob("*.html"))
SCRIPTS = sorted((WEB / "static").glob("*.js"))


async def get(booth: Booth, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=booth.url, auth=ADMIN) as client:
        return await client.get(path, **kwargs)


async def test_pages_need_the_admin_password(booth: Booth) -> None:
    async with httpx.AsyncClient(base_url=booth.url) as client:
        for path in ("/", "/tabs/gemini", "/settings"):
            response = await client.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Basic")
        wrong = await client.get("/tabs/gemini", auth=("admin", "nope"))
        assert wrong.status_code == 401


async def test_repeated_wrong_passwords_are_locked_out(booth_factory: Any) -> None:
    booth = booth_factory(auth_max_failures=3)
    async with httpx.AsyncClient(base_url=booth.url) as client:
        statuses = [(await client.get("/tabs/gemini", auth=("admin", f"guess{i}"))).status_code for i in range(4)]
        assert statuses == [401, 401, 401, 429]
        locked = await client.get("/tabs/gemini", auth=ADMIN)
    assert locked.status_code == 429, "even the right password waits until the lockout ends"
    assert int(locked.headers["retry-after"]) > 0


async def test_home_leads_to_the_first_tab_whose_overview_lists_twenty_slots(booth: Booth) -> None:
    home = await get(booth, "/")
    assert home.status_code == 303
    assert home.headers["location"] == "/tabs/gemini"
    for tab in ("gemini", "turbotext", "deepseek"):
        page = await get(booth, f"/tabs/{tab}")
        assert page.status_code == 200
        assert len(re.findall(r'data-slot-row="\d+"', page.text)) == 20
        assert "data-slot\n" not in page.text and "data-slot " not in page.text, "no full cards on the overview"
        assert f'href="/tabs/{tab}/20"' in page.text
        assert page.headers["cache-control"] == "no-store"
        editor = await get(booth, f"/tabs/{tab}/20")
        assert editor.text.count("data-slot\n") + editor.text.count("data-slot ") == 1
        assert f"/booth/{tab}/20" in editor.text
    by_query = await get(booth, "/?tab=turbotext")
    assert 'id="provider-title">Turbotext<' in by_query.text
    assert (await get(booth, "/tabs/nope")).status_code == 404
    assert (await get(booth, "/tabs/gemini/21")).status_code == 404
    assert (await get(booth, "/tabs/nope/1")).status_code == 404


async def test_russian_by_default_english_by_switch_remembered_in_a_cookie(booth: Booth) -> None:
    russian = await get(booth, "/tabs/gemini")
    assert 'lang="ru"' in russian.text
    assert "Статистика" in russian.text
    async with httpx.AsyncClient(base_url=booth.url, auth=ADMIN) as client:
        english = await client.get("/tabs/gemini?lang=en")
        assert 'lang="en"' in english.text
        assert ">\n        Statistics\n" in english.text or "Statistics" in english.text
        assert "boothgate_lang=en" in english.headers["set-cookie"]
        later = await client.get("/tabs/turbotext")  # the client keeps the cookie
        assert 'lang="en"' in later.text


async def test_language_setting_is_the_default(booth: Booth) -> None:
    async with booth.api() as client:
        assert (await client.put("/api/settings", json={"language": "en"})).status_code == 200
    assert 'lang="en"' in (await get(booth, "/settings")).text


async def test_provider_readiness_is_shown_with_a_link_to_fix_it(booth: Booth) -> None:
    ready = (await get(booth, "/tabs/gemini?lang=en")).text
    assert "badge-ok" in ready
    missing_key = (await get(booth, "/tabs/turbotext?lang=en")).text
    assert "Not ready" in missing_key
    assert "BOOTHGATE_TURBOTEXT_API_KEY" in missing_key
    assert 'href="/settings#group-turbotext"' in missing_key


async def test_static_assets_are_served_by_the_app(booth: Booth) -> None:
    page = (await get(booth, "/tabs/gemini/1")).text + (await get(booth, "/live")).text
    assets = re.findall(r'(?:src|href)="(/static/[^"?]+)', page)
    assert {"/static/app.css", "/static/common.js", "/static/slots.js", "/static/stats.js", "/static/live.js"} <= set(
        assets
    )
    async with httpx.AsyncClient(base_url=booth.url) as client:
        for asset in assets:
            response = await client.get(asset)
            assert response.status_code == 200, asset
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page), "no asset from another host (venues are offline)"


def test_markup_and_scripts_obey_the_csp() -> None:
    for path in TEMPLATES:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\sstyle=", text), f"{path.name}: inline style"
        assert not re.search(r"\son[a-z]+=", text), f"{path.name}: inline event handler"
        for tag in re.findall(r"<script[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, f"{path.name}: inline script {tag}"
        assert "javascript:" not in text
    for path in SCRIPTS:
        text = path.read_text(encoding="utf-8")
        assert "innerHTML" not in text, f"{path.name}: build DOM with textContent, not HTML strings"
        assert "eval(" not in text


def _literal_keys(text: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, text))


def _dynamic_keys() -> set[str]:
    """Keys built at run time from values, so the catalogue must hold every one of them."""
    keys = {f"kind.{k.value}" for k in Kind}
    keys |= {f"card.prompt_placeholder.{k.value}" for k in Kind}
    keys |= {f"problem.reference_required.{k}" for k in ("face_swap", "background")}
    keys |= {f"status.{s}" for s in ("received", "running", *STATUSES)}
    keys |= {f"format.{f}" for f in ("jpeg", "png")} | {f"on_failure.{f}" for f in ("error", "original")}
    keys |= {f"settings.group.{g}" for g in settings_view.GROUPS}
    keys |= {f"setting.{name}" for name in RUNTIME_EDITABLE}
    keys |= {"choice.language.ru", "choice.language.en", "choice.turbotext_mode.polling"}
    keys |= {"choice.turbotext_mode.webhook", "stats.today", "stats.all_time"}
    keys |= {"choice.cost_currency.rub", "choice.cost_currency.usd", "option.value.auto"}
    # issue 22: the card's address note, the offline styles, the statistics' short period names
    keys |= {f"links.address.{source}" for source in ("public", "lan", "request", "loopback")}
    keys |= {f"style.{style}" for style in typing.get_args(Style)} | {"stats.today_short", "stats.all_time_short"}
    return keys


def test_catalogue_has_every_string_in_both_languages() -> None:
    russian, english = i18n.catalogue("ru"), i18n.catalogue("en")
    # English help texts come from the settings' and options' own descriptions; Russian ones are here.
    help_keys = {f"setting.{name}.help" for name in RUNTIME_EDITABLE}
    option_help = {key for key in russian if key.startswith("option.") and key.endswith(".help")}
    assert set(russian) - help_keys - option_help == set(english)
    assert help_keys <= set(russian)
    used = set()
    for path in TEMPLATES:
        used |= _literal_keys(path.read_text(encoding="utf-8"), r"""\bt\(\s*["']([a-z_.]+)["']""")
    for path in SCRIPTS:
        used |= _literal_keys(path.read_text(encoding="utf-8"), r'\bt\(\s*"([a-z_.]+)"')
    used = {key for key in used if not key.endswith(".")}  # prefixes of keys built at run time
    used |= _dynamic_keys()
    missing = {key for key in used if key not in english or key not in russian}
    assert not missing, f"missing from the catalogue: {sorted(missing)}"
    assert all(value.strip() for value in [*russian.values(), *english.values()])


def test_error_codes_the_server_raises_have_plain_words() -> None:
    codes = {cls.code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.BoothError)}
    english = i18n.catalogue("en")
    assert {code for code in codes if f"error.{code}" not in english} == set()


class RichOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    aspect_ratio: Literal["1:1", "3:4", "16:9"] = Field("3:4", description="Shape of the result.")
    temperature: float | None = Field(None, ge=0, le=2, description="Creativity.")
    seed: int = Field(7, ge=0, description="Random seed.")
    safe_mode: bool = Field(True, description="Ask for safe results.")
    style_prompt: str = Field("", description="Extra style words.")
    tags: list[str] = Field(default_factory=list, description="Free tags.")


def test_options_schema_becomes_form_fields() -> None:
    fields = {f.name: f for f in option_fields(RichOptions.model_json_schema(), {"seed": 3}, "en", "gemini")}
    assert (fields["aspect_ratio"].widget, fields["aspect_ratio"].choices) == ("select", ["1:1", "3:4", "16:9"])
    assert fields["aspect_ratio"].value == "3:4"
    temperature = fields["temperature"]
    assert (temperature.widget, temperature.type, temperature.nullable) == ("number", "number", True)
    assert (temperature.minimum, temperature.maximum, temperature.step) == (0, 2, "any")
    assert (fields["seed"].value, fields["seed"].step) == (3, "1")
    assert fields["safe_mode"].widget == "checkbox"
    assert fields["style_prompt"].widget == "textarea"
    assert fields["tags"].widget == "json"
    assert fields["temperature"].help == "Creativity."


class RichProvider(ScriptedProvider):
    Options = RichOptions  # type: ignore[assignment]


async def test_card_renders_the_provider_options(booth_factory: Any) -> None:
    booth = booth_factory(registry_classes={"gemini": RichProvider})
    await booth.configure("gemini", 2, options={"aspect_ratio": "16:9", "temperature": 0.5})
    card = (await get(booth, "/tabs/gemini/2?lang=en")).text
    assert 'data-option="aspect_ratio"' in card
    assert re.search(r'<option value="16:9"\s+selected>', card)
    assert re.search(r'data-option="temperature" data-type="number"\s+step="any" value="0.5"', card)
    assert 'min="0.0"' in card and 'max="2.0"' in card
    assert re.search(r'type="checkbox" id="opt-gemini-2-safe_mode" data-option="safe_mode"[^>]*checked', card)


async def test_settings_page_marks_environment_values_and_masks_keys(booth_factory: Any) -> None:
    booth = booth_factory(gemini_api_key="page-key-0123456789zyxw", gemini_model="env-model")
    page = (await get(booth, "/settings?lang=en")).text
    model = page[page.index('data-setting="gemini_model"') :][:1500]
    assert "from the environment" in model
    assert re.search(r'id="setting-gemini_model"[^>]*disabled', model)
    assert "••••zyxw" in page
    assert "page-key-0123456789zyxw" not in page
    # long texts are resizable text areas; variable names are small print / hover, not under every field
    for name in ("deepseek_system_prompt_face_swap", "gemini_template_prompt"):
        assert re.search(rf'<textarea id="setting-{name}"[^>]*class="long-text"', page), name
    hints = re.findall(r'<small class="hint">(.*?)</small>', page, re.S)
    assert hints and not any("BOOTHGATE_GEMINI_BASE_URL" in hint for hint in hints)
    assert 'title="BOOTHGATE_GEMINI_BASE_URL"' in page
    # the catalogue the page embeds for its scripts is the English one, as JSON the browser can parse
    embedded = re.search(r'<script id="i18n" type="application/json">(.*?)</script>', page, re.S)
    assert embedded is not None
    strings = json.loads(embedded.group(1))
    assert strings and all(strings[key] == value for key, value in i18n.catalogue("en").items() if key in strings)


async def test_the_real_providers_options_render_in_the_operators_language(booth_factory: Any) -> None:
    booth = booth_factory(registry_classes={})  # the built-in providers, not the scripted one
    turbotext = (await get(booth, "/tabs/turbotext/1")).text
    assert 'data-option="strength"' in turbotext
    assert "Сила изменения" in turbotext
    assert 'max="80.0"' in turbotext
    gemini = (await get(booth, "/tabs/gemini/1")).text
    assert 'data-option="aspect_ratio"' in gemini
    assert re.search(r'<option value="auto"\s+selected>авто</option>', gemini), "`auto` in the operator's words"
    assert 'list="models-gemini"' in gemini and 'id="models-gemini"' in gemini, "the model field suggests a list"
    # options that apply to one kind say so; expert ones are folded away
    turbotext_options = re.findall(r'data-field="options\.(\w+)"\s*(?:data-kinds="([\w,]+)")?', turbotext)
    assert ("face_restore", "face_swap") in turbotext_options and ("strength", "prompt") in turbotext_options
    advanced = turbotext[turbotext.index('class="advanced"') :]
    assert 'data-option="method"' in advanced and 'data-option="extra_fields"' in advanced
    assert "Соотношение сторон" in gemini
