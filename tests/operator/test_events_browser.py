"""Issue 23 in a real browser: create an event, assign slots, send photos, see its statistics and the
budget warning — at 1440 px and on a 390 px phone, in English and Russian; the live view filtered to
the event. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.web.app import create_app
from tests.conftest import ADMIN, UPLOAD_PASSWORD, ScriptedProvider, booth_settings, make_jpeg
from tests.fakes.server import serve

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
# Latin words a Russian page may show: the event and slot names the test made, brands, units
LATIN_NAMES = {"Smith", "wedding", "Monday", "Look", "Gemini", "Turbotext", "DeepSeek", "OpenAI", "fal", "PIN", "ZIP"}
LATIN_NAMES |= {"RUB", "USD", "gemini", "API", "event"}  # "event:1" is the scope a client API key names
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = booth_settings(tmp_path_factory.mktemp("events-ui"), deadline_seconds=8.0)
    with serve(create_app(settings, {"gemini": ScriptedProvider})) as address:
        api = httpx.Client(base_url=address, auth=ADMIN, timeout=30)
        for number in (1, 2, 3):
            response = api.put(
                f"/api/slots/gemini/{number}",
                json={"enabled": True, "kind": "prompt", "prompt": "a portrait", "name": f"Look {number}"},
            )
            assert response.status_code == 200
        yield address


def _page(browser: Any, url: str, width: int, height: int, locale: str = "en-GB") -> Any:
    context = browser.new_context(
        base_url=url,
        locale=locale,
        http_credentials={"username": ADMIN[0], "password": ADMIN[1]},
        viewport={"width": width, "height": height},
    )
    context.set_default_timeout(15_000)
    return context, context.new_page()


def _fits(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    if overflow > 0:
        wide = page.evaluate(
            "Array.from(document.querySelectorAll('*'))"
            ".filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)"
            ".slice(0, 8).map(e => e.tagName + '.' + e.className + '#' + e.id)"
        )
        raise AssertionError(f"page is {overflow}px wider than its viewport: {wide}")


def _import_preset_and_end(page: Any, url: str, tmp_path: Path) -> None:
    """The Smith wedding's preset into Monday's gemini/5 and 6: the page asks first, naming where each
    slot goes; ending Monday asks too, and then its card shows the date its photos will be deleted."""
    api = httpx.Client(base_url=url, auth=ADMIN, timeout=30)
    [smith] = [e for e in api.get("/api/events").json() if e["name"] == "Smith wedding"]
    preset = tmp_path / "smith.boothgate-preset.json"
    preset.write_bytes(api.get(f"/api/events/{smith['id']}/preset").content)
    assert api.post("/api/events", json={"name": "Monday", "slots": ["gemini/5", "gemini/6"]}).status_code == 201
    page.reload()
    monday = page.locator(".event-card", has_text="Monday")
    asked: list[str] = []

    def answer(dialog: Any, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, True))
    monday.locator("input[type=file]").set_input_files(str(preset))
    expect(monday.locator(".event-note")).to_contain_text("gemini/1 → gemini/5, gemini/2 → gemini/6")
    assert "Monday" in asked[0] and "gemini/2 → gemini/6" in asked[0], asked
    assert api.get("/api/slots/gemini/5").json()["name"] == "Look 1"
    page.once("dialog", lambda d: answer(d, False))  # "End now?" — no: nothing changes
    monday.locator(".event-end").click()
    expect(monday.locator(".badge")).to_have_text("Running")
    page.once("dialog", lambda d: answer(d, True))
    monday.locator(".event-end").click()
    ended = page.locator(".event-card", has_text="Monday")
    expect(ended.locator(".badge")).to_have_text("Ended")
    expect(ended.locator(".event-clean")).to_contain_text("Photos will be deleted on")
    assert "End “Monday” now?" in asked[1] and len(asked) == 3, asked
    _fits(page)


def test_create_event_assign_slots_and_see_its_statistics(url: str, browser: Any, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    context, page = _page(browser, url, 1440, 900)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/events?lang=en")
    expect(page.locator("#events-empty")).to_be_visible()
    page.fill("#event-name", "Smith wedding")
    group = page.locator(".slot-group[data-tab=gemini]")
    group.locator("summary").click()
    group.locator("input[value='gemini/1']").check()
    group.locator("input[value='gemini/2']").check()
    page.fill("#event-max-calls", "2")
    page.fill("#event-retention", "14")
    page.click("#event-save")
    card = page.locator(".event-card", has_text="Smith wedding")
    expect(card).to_be_visible()
    expect(card.locator(".event-slots")).to_have_text("Gemini 1 — Look 1, Gemini 2 — Look 2")
    expect(card.locator(".event-scope")).to_have_text(re.compile(r"For a client API key: event:\d+$"))
    expect(card.locator(".badge")).to_have_text("Running")
    expect(card.locator(".event-clean")).to_contain_text("14 days after the end")
    _fits(page)

    # Two guests at the event's slot, one at a slot outside it.
    for index, number in enumerate((1, 1, 3)):
        answer = httpx.post(
            f"{url}/booth/gemini/{number}",
            data={"password": UPLOAD_PASSWORD},
            files={"fileToUpload": ("IMG.JPG", make_jpeg(400, 300, seed=70 + index), "image/jpeg")},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    page.reload()
    card = page.locator(".event-card", has_text="Smith wedding")
    card.locator(".event-stats-open").click()
    stats = card.locator(".event-stats")
    expect(stats).to_be_visible()
    expect(stats.locator(".event-count", has_text="Received").locator("dd")).to_have_text("2")
    expect(stats.locator(".event-count", has_text="Paid calls").locator("dd")).to_have_text("2")
    expect(stats.locator(".event-slot-table tr")).to_have_count(2)  # header + gemini/1 only
    expect(page.locator("#events-warnings")).to_contain_text("is spent")
    _fits(page)
    page.screenshot(path=str(ARTIFACTS / "events-1440-en.png"), full_page=True)
    _import_preset_and_end(page, url, tmp_path)

    page.goto("/live?lang=en")
    page.select_option("#live-event", label="Smith wedding")
    expect(page.locator("#count-received")).to_have_text("2")
    expect(page.locator("#live-warnings")).to_contain_text("Smith wedding")
    page.goto("/tabs/gemini?lang=en")
    expect(page.locator(".budget-warning")).to_contain_text("Smith wedding")
    context.close()

    for lang, locale in (("ru", "ru-RU"), ("en", "en-GB")):  # the browser's own language, as an operator's
        context, phone = _page(browser, url, 390, 844, locale)
        phone.on("pageerror", lambda error: errors.append(str(error)))
        phone.goto(f"/events?lang={lang}")
        card = phone.locator(".event-card").first
        expect(card).to_be_visible()
        card.locator(".event-stats-open").click()
        expect(card.locator(".event-stats")).to_be_visible()
        phone.locator(".slot-group[data-tab=gemini] summary").click()
        # Tabs are named in the page's language, as in the top bar (not the English "Offline" on a Russian page)
        offline = phone.locator(".slot-group[data-tab=local] summary")
        expect(offline).to_have_text("Без интернета" if lang == "ru" else "Offline")
        # Money in the statistics currency's sign (the server's default currency is roubles), not "RUB"
        expect(phone.locator("label[for=event-max-cost]")).to_contain_text("₽")
        _fits(phone)
        if lang == "ru":  # the page's own words are Russian: only names, slots, links and brands stay Latin
            text = phone.evaluate(
                "(() => { const m = document.querySelector('main').cloneNode(true);"
                " m.querySelectorAll('code, .mono, input, script').forEach(e => e.remove()); return m.textContent; })()"
            )
            latin = set(re.findall(r"[A-Za-z]{3,}", text)) - LATIN_NAMES
            assert not latin, latin
        else:
            expect(phone.locator("h1")).to_have_text("Events")
        phone.screenshot(path=str(ARTIFACTS / f"events-390-{lang}.png"), full_page=True)
        context.close()
    assert not errors, errors
