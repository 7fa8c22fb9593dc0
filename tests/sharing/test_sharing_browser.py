"""The guest's page in a real phone-sized Chromium (Playwright + Debian's Chromium, headless, JavaScript
*off*): it says the photo is being made, then shows the result without anyone reloading it (the page's
own meta refresh). Also the page at 390 and 1440 px in Russian and English, never wider than the screen,
and the gallery and slideshow; the screenshots are the ones in docs/sharing.md."""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.cli.booth_client import post_photo
from boothgate.web.app import create_app
from tests.conftest import ADMIN, UPLOAD_PASSWORD, ScriptedProvider, booth_settings
from tests.fakes.server import serve
from tests.sharing.test_sharing import guest_photo
from tests.web.conftest import CHROMIUM, TIMEOUT_MS, image_loaded, next_frames
from tests.web.test_ui_browser import ARTIFACTS

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
DOCS_IMAGES = Path(__file__).parents[2] / "docs" / "sharing"
# The screenshots in docs/sharing.md are refreshed on request only (a test run must not rewrite tracked files):
# BOOTHGATE_UPDATE_DOC_IMAGES=1 .venv/bin/python -m pytest tests/sharing/test_sharing_browser.py
UPDATE_DOCS = os.environ.get("BOOTHGATE_UPDATE_DOC_IMAGES") == "1"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


def api(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, auth=ADMIN, timeout=30)


def configure(url: str, number: int, **fields: Any) -> None:
    with api(url) as client:
        response = client.put(f"/api/slots/gemini/{number}", json={"enabled": True, **fields})
    assert response.status_code == 200, response.text


def running_share_url(url: str, timeout: float = 20.0) -> str:
    """The page of the job now running (its token exists from admission on, before any result)."""
    end = time.monotonic() + timeout
    with api(url) as client:
        while time.monotonic() < end:
            for job in client.get("/api/jobs", params={"status": "running"}).json():
                if job["share_url"]:
                    return str(job["share_url"])
            time.sleep(0.05)
    raise AssertionError("no running job with a page")


POOL = concurrent.futures.ThreadPoolExecutor(1)


def post(server: str, number: int) -> Any:
    """Post like the booth does (its own event loop, in a thread: Playwright's sync API owns this one)."""
    return POOL.submit(post_photo, f"{server}/booth/gemini/{number}", guest_photo(), UPLOAD_PASSWORD).result(60)


def keep(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    if UPDATE_DOCS:
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / name, DOCS_IMAGES / name)


def test_phone_sees_being_made_then_the_result_without_reloading(browser: Any, server: str) -> None:
    configure(server, 1, prompt="x", options={"delay_seconds": 3.0}, share={"qr": True, "label": "Ваше фото"})
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        posted = pool.submit(post_photo, f"{server}/booth/gemini/1", guest_photo(), UPLOAD_PASSWORD)
        share_url = running_share_url(server)
        context = browser.new_context(viewport=PHONE, java_script_enabled=False, locale="en-GB", is_mobile=True)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto(share_url)
        expect(page.locator("h1")).to_have_text("Your photo is being made…")
        keep(page, "guest-making-en-390.png")
        # Nobody touches the page: its meta refresh brings the result once it exists.
        expect(page.locator("img.guest-photo")).to_be_visible(timeout=30_000)
        expect(page.locator("h1")).to_have_text("Your photo is ready")
        expect(page.get_by_role("link", name="Download")).to_be_visible()
        answer = posted.result(timeout=30)
    assert answer.status == 200 and answer.headers["x-share-url"] == share_url
    context.close()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390", "1440"])
@pytest.mark.parametrize("locale", ["ru-RU", "en-GB"])
def test_the_page_fits_the_screen_in_both_languages(browser: Any, server: str, viewport: Any, locale: str) -> None:
    configure(server, 2, prompt="x", share={"qr": True, "label": "Scan me"})
    answer = post(server, 2)
    assert answer.status == 200
    context = browser.new_context(viewport=viewport, locale=locale)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(answer.headers["x-share-url"])
    heading = "Ваше фото готово" if locale.startswith("ru") else "Your photo is ready"
    expect(page.locator("h1")).to_have_text(heading)
    image = page.locator("img.guest-photo")
    expect(image).to_be_visible()
    image_loaded(image)
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    keep(page, f"guest-ready-{locale[:2]}-{viewport['width']}.png")
    if viewport is PHONE and locale.startswith("ru"):
        page.get_by_role("link", name="Удалить моё фото").click()
        expect(page.get_by_role("button", name="Да, удалить навсегда")).to_be_visible()
        keep(page, "guest-delete-ru-390.png")
    context.close()


def test_gallery_and_slideshow_fit_and_show_the_newest(browser: Any, server: str) -> None:
    configure(server, 3, prompt="x")
    for _ in range(3):
        assert post(server, 3).status == 200
    with api(server) as client:
        gallery = client.post("/api/galleries", json={"name": "Свадьба Анны и Олега", "slots": ["gemini/3"]}).json()
    for viewport in (PHONE, DESKTOP):
        context = browser.new_context(viewport=viewport, locale="ru-RU")
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto(gallery["url"])
        expect(page.locator(".gallery-grid img")).to_have_count(3)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        keep(page, f"gallery-ru-{viewport['width']}.png")
        context.close()
    context = browser.new_context(viewport={"width": 1280, "height": 720}, locale="ru-RU")
    page = context.new_page()
    page.goto(gallery["slideshow_url"])
    expect(page.locator("#slide")).to_be_visible()
    qr = page.locator(".slideshow-qr img")
    expect(qr).to_be_visible()
    image_loaded(qr)  # fails if the gallery's QR code never loads
    slide = page.locator("#slide")
    image_loaded(slide)  # the first photo itself, not a fade in progress, is what the picture shows
    expect(slide).not_to_have_class(re.compile("is-fading"))
    next_frames(page)
    keep(page, "slideshow-1280.png")
    context.close()


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_the_card_sets_the_qr_and_the_late_result_and_warns_about_the_address(
    browser: Any, tmp_path: Path, lang: str
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("BOOTHGATE_"):
                patch.delenv(name)
        settings = booth_settings(tmp_path, public_base_url="http://192.168.1.20:8000")  # a LAN address
    app = create_app(settings, {"gemini": ScriptedProvider})
    with serve(app) as url:
        configure(url, 4, prompt="x")
        for viewport in (DESKTOP, PHONE):
            context = browser.new_context(
                base_url=url, viewport=viewport, http_credentials={"username": ADMIN[0], "password": ADMIN[1]}
            )
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            page.goto(f"/tabs/gemini/4?lang={lang}")
            slot = page.locator("#slot-4")
            slot.locator("details.more summary").click()
            warning = slot.locator(".share-warning")
            expect(warning).to_be_visible()
            assert "Wi-Fi" in warning.inner_text()  # both languages name the venue's Wi-Fi
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            if viewport is DESKTOP:
                slot.locator("[name=share_qr]").check()
                slot.locator("[name=share_corner]").select_option("top_left")
                slot.locator("[name=share_label]").fill("Scan me")
                slot.locator("[name=late_result_seconds]").fill("120")
                slot.locator(".save").click()
                expect(slot.locator(".save-state")).to_have_text("Сохранено ✓" if lang == "ru" else "Saved ✓")
                with api(url) as client:
                    saved = client.get("/api/slots/gemini/4").json()
                assert saved["share"] == {"qr": True, "corner": "top_left", "size": 0.12, "label": "Scan me"}
                assert saved["late_result_seconds"] == 120
                share = slot.locator("fieldset.share")
                share.scroll_into_view_if_needed()
                ARTIFACTS.mkdir(exist_ok=True)
                share.screenshot(path=str(ARTIFACTS / f"card-share-{lang}.png"))
                if UPDATE_DOCS:
                    shutil.copyfile(ARTIFACTS / f"card-share-{lang}.png", DOCS_IMAGES / f"card-share-{lang}.png")
            context.close()
