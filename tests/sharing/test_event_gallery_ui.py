"""The event's guest gallery on the Events page (issue 30), in a real Chromium, Russian and English, on a
desktop and a 390 px phone: the operator sets a PIN (a bad one is refused in the page's language, the PIN is
never shown back), copies the link; a guest opening it is asked for the PIN and sees the photos after it;
a photo hidden from the gallery disappears from the guest's page (the button is disabled while it saves)
and comes back when shown; removing the PIN (after a confirmation) opens the gallery. No script or console
error on any page; screenshots in /tmp/gallery-shots."""

from __future__ import annotations

import concurrent.futures
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.cli.booth_client import post_photo
from tests.conftest import ADMIN, UPLOAD_PASSWORD
from tests.sharing.test_sharing import guest_photo
from tests.web.conftest import CHROMIUM, TIMEOUT_MS, admin_page, until

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
SHOTS = Path(os.environ.get("BOOTHGATE_GALLERY_SHOTS", "/tmp/gallery-shots"))
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}
PIN = "4821"
WORDS = {
    "ru": {
        "bad_pin": "PIN — от 4 до 8 цифр.",
        "saved": "PIN сохранён.",
        "on": "Защищена PIN-кодом",
        "off": "Без PIN",
        "set": "Задать PIN",
        "clear": "Убрать PIN",
        "photos": "Фото в галерее",
        "hide": "Скрыть из галереи",
        "show": "Показать в галерее",
        "hidden": "Скрыто",
        "copied": "Ссылка скопирована.",
        "copy": "Копировать ссылку",
        "guest_pin": "PIN-код галереи",
        "wrong": "Неверный PIN-код.",
    },
    "en": {
        "bad_pin": "The PIN is 4 to 8 digits.",
        "saved": "PIN saved.",
        "on": "Protected by a PIN",
        "off": "No PIN",
        "set": "Set PIN",
        "clear": "Remove PIN",
        "photos": "Photos in the gallery",
        "hide": "Hide from gallery",
        "show": "Show in gallery",
        "hidden": "Hidden",
        "copied": "Link copied.",
        "copy": "Copy link",
        "guest_pin": "Gallery PIN",
        "wrong": "Wrong PIN.",
    },
}


def api(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, auth=ADMIN, timeout=30)


POOL = concurrent.futures.ThreadPoolExecutor(1)


def event_with_photos(url: str, number: int, name: str, photos: int = 2) -> tuple[dict[str, Any], list[str]]:
    """An event on slot gemini/<number> with `photos` booth photos made through it (newest first)."""
    with api(url) as client:
        slot = client.put(f"/api/slots/gemini/{number}", json={"enabled": True, "prompt": "x"})
        assert slot.status_code == 200, slot.text
        starts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        made = client.post("/api/events", json={"name": name, "starts_at": starts, "slots": [f"gemini/{number}"]})
        assert made.status_code == 201, made.text
    jobs = []
    for _ in range(photos):
        answer = POOL.submit(post_photo, f"{url}/booth/gemini/{number}", guest_photo(), UPLOAD_PASSWORD).result(60)
        assert answer.status == 200
        jobs.append(answer.headers["x-job-id"])
    return made.json(), jobs[::-1]


class Watched:
    """A page whose script errors and console errors fail the test."""

    def __init__(self, page: Any) -> None:
        self.page, self.errors = page, []
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} {message.location.get('url')}")


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)


def fits(page: Any, viewport: dict[str, int]) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


def guest_images(page: Any) -> list[str]:
    return [str(src) for src in page.locator(".gallery-grid img").evaluate_all("els => els.map(e => e.src)")]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "390"])
@pytest.mark.parametrize("lang", ["ru", "en"])
def test_the_operator_locks_the_gallery_with_a_pin_and_hides_a_photo(
    browser: Any, server: str, lang: str, viewport: dict[str, int]
) -> None:
    number = {("ru", 1366): 1, ("ru", 390): 2, ("en", 1366): 3, ("en", 390): 4}[(lang, viewport["width"])]
    event, jobs = event_with_photos(server, number, f"Свадьба {number}" if lang == "ru" else f"Wedding {number}")
    words = WORDS[lang]
    tag = f"{lang}-{viewport['width']}"
    guest_context = browser.new_context(viewport=viewport, locale="ru-RU" if lang == "ru" else "en-GB")
    guest_context.set_default_timeout(TIMEOUT_MS)
    guest = Watched(guest_context.new_page())
    with admin_page(browser, server, viewport=viewport, permissions=["clipboard-read", "clipboard-write"]) as page:
        admin = Watched(page)
        page.on("dialog", lambda dialog: dialog.accept())  # the confirmations: the test says yes
        page.goto(f"/events?lang={lang}")
        card = page.locator(f".event-card[data-event-id='{event['id']}']")
        box = card.locator(".event-gallery-box")
        expect(box.locator(".event-gallery-url")).to_have_text(event["gallery_url"])
        expect(box.locator(".event-gallery-pin-state")).to_contain_text(words["off"])
        fits(page, viewport)

        # The link is copied as it is shown.
        box.get_by_role("button", name=words["copy"]).click()
        expect(box.locator(".event-gallery-note")).to_have_text(words["copied"])
        assert page.evaluate("navigator.clipboard.readText()") == event["gallery_url"]

        # A bad PIN is refused in the page's language, before anything is sent.
        pin_input = box.locator(".event-gallery-pin-input")
        pin_input.fill("12")
        box.get_by_role("button", name=words["set"]).click()
        expect(box.locator(".event-gallery-note")).to_have_text(words["bad_pin"])
        with api(server) as client:
            assert not [g for g in client.get("/api/galleries").json() if g["event_id"] == event["id"]]

        pin_input.fill(PIN)
        box.get_by_role("button", name=words["set"]).click()
        expect(box.locator(".event-gallery-note")).to_have_text(words["saved"])
        expect(box.locator(".event-gallery-pin-state")).to_contain_text(words["on"])
        expect(pin_input).to_have_value("")  # never shown back
        assert pin_input.get_attribute("type") == "password"
        with api(server) as client:
            (gallery,) = [g for g in client.get("/api/galleries").json() if g["event_id"] == event["id"]]
        assert gallery["has_pin"] is True and PIN not in str(gallery)
        page.reload()  # after a reload the page still only says that a PIN is set
        expect(box.locator(".event-gallery-pin-state")).to_contain_text(words["on"])
        assert PIN not in page.content()
        shot(page, f"events-gallery-{tag}.png")

        # The guest is asked for the PIN; a wrong one is refused; the right one shows the photos.
        guest.page.goto(event["gallery_url"])
        expect(guest.page.get_by_label(words["guest_pin"])).to_be_visible()
        assert guest_images(guest.page) == []
        fits(guest.page, viewport)
        shot(guest.page, f"guest-gallery-pin-{tag}.png")
        guest.page.get_by_label(words["guest_pin"]).fill("0000")
        guest.page.locator(".gallery-pin button").click()
        expect(guest.page.get_by_role("alert")).to_have_text(words["wrong"])
        guest.page.get_by_label(words["guest_pin"]).fill(PIN)
        guest.page.locator(".gallery-pin button").click()
        expect(guest.page.locator(".gallery-grid img")).to_have_count(2)
        assert all(any(job in src for src in guest_images(guest.page)) for job in jobs)

        # Hide the newest photo: the button waits (disabled) while the server saves, then says "show".
        box.locator(".event-photos summary").click()
        photos = box.locator(".event-photo")
        expect(photos).to_have_count(2)
        newest = box.locator(f".event-photo[data-job-id='{jobs[0]}']")
        held: list[Any] = []
        page.route("**/gallery_hidden", lambda route: held.append(route))
        newest.get_by_role("button", name=words["hide"]).click()
        toggle = newest.locator(".event-photo-toggle")
        expect(toggle).to_be_disabled()
        until(page, lambda: held, "the hide request to reach the held route")
        held[0].continue_()
        page.unroute("**/gallery_hidden")
        expect(toggle).to_be_enabled()
        expect(toggle).to_have_text(words["show"])
        expect(newest.locator(".event-photo-hidden")).to_have_text(words["hidden"])
        fits(page, viewport)
        shot(page, f"events-gallery-photos-{tag}.png")
        guest.page.reload()
        expect(guest.page.locator(".gallery-grid img")).to_have_count(1)
        assert not any(jobs[0] in src for src in guest_images(guest.page))
        assert guest.page.request.get(f"{event['gallery_url']}/i/{jobs[0]}").status == 404
        shot(guest.page, f"guest-gallery-hidden-{tag}.png")

        # Shown again, it is back.
        toggle.click()
        expect(toggle).to_have_text(words["hide"])
        expect(newest.locator(".event-photo-hidden")).to_be_hidden()
        guest.page.reload()
        expect(guest.page.locator(".gallery-grid img")).to_have_count(2)

        # Removing the PIN (confirmed) opens the gallery to anyone with the link.
        box.get_by_role("button", name=words["clear"]).click()
        expect(box.locator(".event-gallery-pin-state")).to_contain_text(words["off"])
        expect(box.get_by_role("button", name=words["clear"])).to_be_hidden()
        stranger_context = browser.new_context(viewport=viewport)
        stranger = stranger_context.new_page()
        stranger.goto(event["gallery_url"])
        expect(stranger.locator(".gallery-grid img")).to_have_count(2)
        stranger_context.close()
        assert admin.errors == [], admin.errors
    guest_context.close()
    # The one wrong PIN's redirect is a plain 303: nothing on the guest's pages logs an error.
    assert guest.errors == [], guest.errors


def test_a_declined_confirmation_changes_nothing(browser: Any, server: str) -> None:
    event, jobs = event_with_photos(server, 5, "Declined", photos=1)
    with admin_page(browser, server) as page:
        page.on("dialog", lambda dialog: dialog.dismiss())
        page.goto("/events?lang=en")
        box = page.locator(f".event-card[data-event-id='{event['id']}'] .event-gallery-box")
        box.locator(".event-photos summary").click()
        toggle = box.locator(f".event-photo[data-job-id='{jobs[0]}'] .event-photo-toggle")
        toggle.click()
        expect(toggle).to_have_text("Hide from gallery")
        with api(server) as client:
            assert client.get(f"/api/jobs/{jobs[0]}").json()["gallery_hidden"] is False
    assert re.match(r"^http://127\.0\.0\.1:\d+/g/[A-Za-z0-9_-]{20,}$", event["gallery_url"])


def test_a_guest_deletes_their_photo_from_a_phone_browser(browser: Any, server: str) -> None:
    """The guest pages send no referrer, so a real browser's form post carries `Origin: null`: the delete
    (like the gallery's PIN above) must still be taken as coming from our own page."""
    event, jobs = event_with_photos(server, 6, "Delete", photos=1)
    with api(server) as client:
        share_url = client.get(f"/api/jobs/{jobs[0]}").json()["share_url"]
    context = browser.new_context(viewport=PHONE, locale="en-GB", is_mobile=True)
    context.set_default_timeout(TIMEOUT_MS)
    guest = Watched(context.new_page())
    guest.page.goto(share_url)
    guest.page.get_by_role("link", name="Delete my photo").click()
    guest.page.get_by_role("button", name="Yes, delete it for good").click()
    expect(guest.page.locator("h1")).to_have_text("Photo deleted")
    expect(guest.page.locator("img.guest-photo")).to_have_count(0)
    assert "Cross-site" not in guest.page.content()
    context.close()
    # The page of a deleted photo answers 410 Gone by design (Chromium logs a document's 4xx); nothing else.
    assert [e for e in guest.errors if not e.endswith(f"(Gone) {share_url}")] == [], guest.errors
    with api(server) as client:
        assert client.get(f"/api/jobs/{jobs[0]}").json()["deleted_by_guest"] is True
        assert client.get(f"{event['gallery_url']}/i/{jobs[0]}").status_code == 404
