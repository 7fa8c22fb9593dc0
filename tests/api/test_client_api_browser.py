"""The client API page in a real browser (Chromium): create a key (shown once), rotate and revoke it, add a
webhook and send a test event — at 1440 px and 390 px, in Russian and English, never wider than the screen."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from boothgate.web.app import create_app
from tests.conftest import ADMIN, KeyedProvider, ScriptedProvider, booth_settings
from tests.fakes.server import serve
from tests.web.conftest import TIMEOUT_MS
from tests.web.test_ui_browser import ARTIFACTS, screenshot, sync_api  # noqa: F401

pytestmark = pytest.mark.browser
expect = sync_api.expect


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = booth_settings(tmp_path_factory.mktemp("clients"), webhooks_allow_private=True)
    app = create_app(settings, {"gemini": ScriptedProvider, "turbotext": KeyedProvider})
    with serve(app) as base:
        yield base


def open_page(browser: Any, url: str, width: int, lang: str) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(
        base_url=url,
        http_credentials={"username": ADMIN[0], "password": ADMIN[1]},
        viewport={"width": width, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"/clients?lang={lang}")
    return context, page, errors


def fits(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    assert width <= viewport, f"page is {width} px wide in a {viewport} px window"


@pytest.mark.parametrize(("width", "lang"), [(1440, "en"), (390, "ru")])
def test_keys_and_webhooks_page(browser: Any, url: str, width: int, lang: str) -> None:
    context, page, errors = open_page(browser, url, width, lang)
    try:
        title = {"en": "Client API", "ru": "Клиентский API"}[lang]
        expect(page.locator("h1")).to_have_text(title)
        name = f"kiosk-{width}"
        page.fill("#key-name", name)
        page.fill("#key-scopes", "gemini/1, gemini")
        page.locator("#key-form button[type=submit]").click()
        expect(page.locator("#key-shown")).to_be_visible()
        key = page.locator("#key-value").inner_text()
        assert key.startswith("bg_")
        item = page.locator(".client-item", has_text=name)
        expect(item).to_contain_text(key[:10])
        expect(item).not_to_contain_text(key[10:])  # the list shows the prefix only
        with httpx.Client(base_url=url, headers={"X-API-Key": key}) as api:
            assert api.get("/api/v1/slots").status_code == 200
            item.locator("select").select_option("0")
            item.locator("button", has_text=re.compile("Rotate|Заменить")).click()
            expect(page.locator("#key-value")).not_to_have_text(key)
            new_key = page.locator("#key-value").inner_text()
            assert api.get("/api/v1/slots").status_code == 401  # no grace: the old key stops now
            assert api.get("/api/v1/slots", headers={"X-API-Key": new_key}).status_code == 200
            item.locator("button", has_text=re.compile("Revoke|Отозвать")).click()
            expect(item.locator(".badge")).to_be_visible()
            assert api.get("/api/v1/slots", headers={"X-API-Key": new_key}).status_code == 401
        fits(page)
        screenshot(page, f"clients-keys-{width}-{lang}.png")

        page.fill("#hook-url", f"{url}/health")  # answers 405 to POST: the delivery is retried
        page.locator("#hook-form button[type=submit]").click()
        expect(page.locator("#hook-value")).to_contain_text("whsec_")
        hook = page.locator(".client-item", has_text=f"{url}/health")
        hook.locator("button", has_text=re.compile("Send test event|Отправить тестовое событие")).click()
        expect(hook.locator(".delivery").first).to_contain_text("webhook.test", timeout=15_000)
        hook.locator("button", has_text=re.compile("^(Deliveries|Доставки)$")).click()
        expect(hook.locator(".delivery").first).to_contain_text("HTTP 405", timeout=15_000)
        fits(page)
        screenshot(page, f"clients-webhooks-{width}-{lang}.png")
        hook.locator("button", has_text=re.compile("^(Delete|Удалить)$")).click()
        expect(page.locator(".client-item", has_text=f"{url}/health")).to_have_count(0)
    finally:
        context.close()
    assert not [e for e in errors if "Failed to load resource" not in e], errors
