"""The statistics panel of the top bar shows one event (issue 23): an event selector beside the server's
figures, in Russian and English, at 1366 px and on a 390 px phone. Screenshots go to test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.web.app import create_app
from tests.conftest import ADMIN, UPLOAD_PASSWORD, ScriptedProvider, booth_settings, make_jpeg
from tests.fakes.server import serve
from tests.web.conftest import admin_page

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = booth_settings(tmp_path_factory.mktemp("stats-panel"), deadline_seconds=8.0)
    with serve(create_app(settings, {"gemini": ScriptedProvider})) as address:
        api = httpx.Client(base_url=address, auth=ADMIN, timeout=30)
        for number in (1, 2):
            slot = {"enabled": True, "kind": "prompt", "prompt": "a portrait", "name": f"Look {number}"}
            assert api.put(f"/api/slots/gemini/{number}", json=slot).status_code == 200
        event = api.post("/api/events", json={"name": "Smith wedding", "slots": ["gemini/1"]})
        assert event.status_code == 201, event.text
        for index, number in enumerate((1, 1, 2)):  # two guests at the event, one at a slot outside it
            answer = httpx.post(
                f"{address}/booth/gemini/{number}",
                data={"password": UPLOAD_PASSWORD},
                files={"fileToUpload": ("IMG.JPG", make_jpeg(400, 300, seed=90 + index), "image/jpeg")},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
        key = api.post("/api/keys", json={"name": "Kiosk app"}).json()["key"]
        job = httpx.post(
            f"{address}/api/v1/jobs",
            params={"wait": 20},
            headers={"X-API-Key": key},
            data={"slot": "gemini/2"},
            files={"file": ("guest.jpg", make_jpeg(400, 300, seed=99), "image/jpeg")},
            timeout=30,
        )
        assert job.status_code == 200, job.text
        yield address


def _fits(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    panel = page.evaluate("(() => { const r = document.getElementById('stats-panel').getBoundingClientRect();"
                          " return r.right - document.documentElement.clientWidth; })()")  # fmt: skip
    assert overflow <= 0 and panel <= 1, (overflow, panel)


def test_the_statistics_panel_shows_one_event(url: str, browser: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with admin_page(browser, url) as page:
        page.goto("/events?lang=en")
        page.click("#stats-open")
        panel = page.locator("#stats-panel")
        expect(panel.locator("#stats-slots tbody tr")).to_have_count(2)  # the whole server: both slots
        expect(panel.locator("#stats-event-summary")).to_be_hidden()
        clients = panel.locator("#stats-clients")  # the client API's jobs under their key's name
        expect(clients.locator("tbody tr")).to_have_count(1)
        expect(clients.locator("tbody th")).to_have_text("Kiosk app")
        expect(clients.locator("tbody td").first).to_contain_text("1")
        page.select_option("#stats-event", label="Smith wedding · running now")
        summary = panel.locator("#stats-event-summary")
        expect(summary).to_be_visible()
        expect(summary.locator("h4")).to_have_text("Statistics of “Smith wedding”")
        expect(summary.locator(".event-count", has_text="Received").locator("dd")).to_have_text("2")
        expect(summary.locator(".event-slot-table tr")).to_have_count(2)  # header + gemini/1 only
        expect(panel.locator("#stats-slots")).to_be_hidden()  # the server's tables give way to the event's
        expect(clients).to_be_hidden()
        expect(panel.locator("#stats-jobs li")).to_have_count(2)  # the event's photos only
        page.select_option("#stats-event", value="")
        expect(summary).to_be_hidden()
        expect(panel.locator("#stats-jobs li")).to_have_count(3)
        page.screenshot(path=str(ARTIFACTS / "stats-event-1366-en.png"))

    for lang, received in (("ru", "Получено"), ("en", "Received")):
        with admin_page(browser, url, viewport=PHONE) as phone:
            phone.goto(f"/events?lang={lang}")
            phone.click("#stats-open")
            select = phone.locator("#stats-event")
            expect(select.locator("option")).to_have_count(2)
            phone.select_option("#stats-event", index=1)
            summary = phone.locator("#stats-event-summary")
            expect(summary.locator(".event-count", has_text=received).locator("dd")).to_have_text("2")
            _fits(phone)
            phone.screenshot(path=str(ARTIFACTS / f"stats-event-390-{lang}.png"))
            phone.select_option("#stats-event", value="")
            expect(phone.locator("#stats-clients tbody tr")).to_have_count(1)
            phone.locator("#stats-clients").scroll_into_view_if_needed()
            _fits(phone)
            phone.screenshot(path=str(ARTIFACTS / f"stats-clients-390-{lang}.png"))
