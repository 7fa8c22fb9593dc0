"""The fallback in the admin UI, in a real browser (Playwright driving Debian's Chromium): the card's
fallback list, its refusal of a loop, Try the fallback, the job list's "served by", and the tab's
offline badge. Screenshots go to test-artifacts/."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from boothgate.cli.booth_client import post_photo
from boothgate.providers.registry import SLOTS_PER_TAB
from tests.conftest import ADMIN, KeyedProvider, ScriptedProvider, make_jpeg
from tests.web.conftest import CHROMIUM, admin_page, browser_server
from tests.web.test_ui_browser import screenshot

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    providers = {"gemini": ScriptedProvider, "openai": ScriptedProvider, "turbotext": KeyedProvider}
    with browser_server(tmp_path_factory.mktemp("fallback-ui"), providers, deadline_seconds=30.0) as served:
        yield served.url, served.app


@pytest.fixture
def api(server: tuple[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0], auth=ADMIN, timeout=30) as client:
        yield client


@pytest.fixture
def page(browser: Any, server: tuple[str, Any]) -> Iterator[Any]:
    with admin_page(browser, server[0]) as page:
        yield page


def configure(api: httpx.Client, provider: str, number: int, **fields: Any) -> None:
    fields.setdefault("enabled", True)
    response = api.put(f"/api/slots/{provider}/{number}", json=fields)
    assert response.status_code == 200, response.text


def test_choose_a_fallback_on_the_card_and_try_it_alone(page: Any, api: httpx.Client) -> None:
    configure(api, "openai", 1, kind="prompt", prompt="x", name="Backup")
    configure(api, "gemini", 1, kind="prompt", prompt="x")
    page.goto("/tabs/gemini/1?lang=en")
    card = page.locator("#slot-1")
    card.locator("details.more summary").click()
    choice = card.locator("[name=fallback]")
    values = choice.locator("option").evaluate_all("options => options.map(o => o.value)")
    tabs = api.get("/api/providers").json()
    assert values[0] == "" and len(values) == 1 + len(tabs) * SLOTS_PER_TAB - 1
    assert "gemini/1" not in values and "local/1" in values and "openai/1" in values
    assert card.locator(".try-fallback").is_hidden()

    choice.select_option("openai/1")
    card.locator(".save").click()
    expect(card.locator(".save-state")).to_have_attribute("data-state", "ok")
    assert api.get("/api/slots/gemini/1").json()["fallback"] == "openai/1"
    assert card.locator(".try-fallback").is_visible()
    screenshot(card, "fallback-card.png")

    card.locator(".try-fallback").click()  # opens the file chooser: give it the photo directly
    card.locator(".try-file").set_input_files(
        files=[{"name": "p.jpg", "mimeType": "image/jpeg", "buffer": make_jpeg(seed=5)}]
    )
    summary = card.locator(".try-summary")
    expect(summary).to_contain_text("Served by the fallback openai/1.")
    expect(summary).to_contain_text("fallback tried alone")


def test_a_loop_is_refused_on_the_card_with_the_reason(page: Any, api: httpx.Client) -> None:
    configure(api, "gemini", 2, kind="prompt", prompt="x", fallback="openai/2")
    configure(api, "openai", 2, kind="prompt", prompt="x")
    page.goto("/tabs/openai/2?lang=en")
    card = page.locator("#slot-2")
    card.locator("details.more summary").click()
    card.locator("[name=fallback]").select_option("gemini/2")
    card.locator(".save").click()
    error = card.locator('[data-field="fallback"] .field-error')
    expect(error).to_contain_text("loop")
    assert "openai/2 → gemini/2 → openai/2" in error.inner_text()
    assert api.get("/api/slots/openai/2").json()["fallback"] is None


def test_the_job_list_says_who_served_and_the_tab_shows_offline(
    page: Any, api: httpx.Client, server: tuple[str, Any]
) -> None:
    configure(api, "openai", 3, kind="prompt", prompt="x")
    configure(api, "gemini", 3, kind="prompt", prompt="x", options={"mode": "fail"}, fallback="openai/3")
    password = api.get("/api/stats").json()["upload_password"]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(post_photo, f"{server[0]}/booth/gemini/3", make_jpeg(seed=33), password).result()
    assert answer.status == 200
    page.goto("/tabs/gemini?lang=en")
    page.locator("#stats-open").click()
    page.wait_for_selector("#stats-title[data-loaded]")
    served = page.locator("#stats-jobs li").first.locator(".job-fallback")
    expect(served).to_contain_text("served by openai/3")
    expect(served).to_contain_text("failed to process")  # the primary's error, explained
    row = page.locator('#stats-slots tr[data-slot="gemini/3"] .fallback-count')
    expect(row).to_have_text("1 / 1")
    screenshot(page.locator("#stats-jobs li").first, "fallback-jobs.png")

    # The breaker's state as offline detection leaves it after a provider could not be reached
    # (the real path, a closed port, is tested in test_fallback_gemini.py).
    breaker = server[1].state.services.ingest.fallbacks.breaker
    for _ in range(server[1].state.services.settings.breaker_failures):
        breaker.unreachable("gemini", "ConnectError")
    page.goto("/tabs/gemini?lang=en")
    status = page.locator(".provider-status")
    expect(status.locator(".badge-offline")).to_have_text("Offline")
    assert "tried again in" in status.inner_text()
    assert page.locator('.tabs [data-tab="gemini"] .dot').get_attribute("title") == "Offline"
    screenshot(status, "tab-offline.png")
    breaker.reached("gemini")
