"""The card's booth-links parts in a real browser (Playwright + Debian's Chromium, headless): the link
with the password, the placeholders it found, values for Try it, result shape and the overlay."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import KeyedProvider, ScriptedProvider
from tests.ui_pass_support import booth_base
from tests.web.conftest import admin_page, browser_server
from tests.web.test_ui_browser import (
    CHROMIUM,
    SOME_TEXT,
    Server,
    jpeg_file,
    screenshot,
    shown,
)

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    providers = {"gemini": ScriptedProvider, "turbotext": KeyedProvider}
    with browser_server(tmp_path_factory.mktemp("links-ui"), providers, upload_password="Pw-links-UI-42") as served:
        yield Server(served.url)


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    ScriptedProvider.calls.clear()
    with admin_page(browser, server.url, console=True, permissions=["clipboard-read", "clipboard-write"]) as page:
        yield page


def card(page: Any, number: int) -> Any:
    return page.locator(f"#slot-{number}")


def overlay_file() -> dict[str, Any]:
    rgba = np.zeros((200, 300, 4), dtype=np.uint8)
    rgba[:16], rgba[-16:], rgba[:, :16], rgba[:, -16:] = (200, 30, 30, 255), (200, 30, 30, 255), 255, 255
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return {"name": "frame.png", "mimeType": "image/png", "buffer": buf.getvalue()}


def test_try_it_shows_the_placeholders_and_sends_the_typed_values(page: Any, server: Server) -> None:
    server.configure("gemini", 1, kind="prompt", prompt="a {style} portrait")
    page.goto("/tabs/gemini/1?lang=en")
    slot = card(page, 1)
    expect(slot.locator(".placeholders-found")).to_contain_text("{style}")
    # typing in the prompt updates the list and the Try it inputs at once
    slot.locator("[name=prompt]").fill("a {style} portrait of {name|a guest}")
    expect(slot.locator(".placeholders-found code")).to_have_count(2)
    values = slot.locator(".try-values")
    expect(values).to_be_visible()
    expect(values.locator("input")).to_have_count(2)
    assert values.locator("input").nth(1).get_attribute("placeholder") == "a guest"
    values.locator("input").first.fill("noir")
    slot.locator(".try-file").set_input_files(files=[jpeg_file(width=900, height=600, seed=1)])
    summary = slot.locator(".try-summary")
    expect(summary).to_have_text(SOME_TEXT)
    assert "Done" in summary.inner_text(), summary.inner_text()
    shown(page, slot.locator(".try-result"))
    assert ScriptedProvider.calls[-1].prompt == "a noir portrait of a guest"
    screenshot(slot, "card-placeholders-try.png")


def test_the_link_with_password_is_masked_on_screen_and_copied_whole(page: Any, server: Server) -> None:
    page.goto("/tabs/gemini/2")
    slot = card(page, 2)
    shown_link = slot.locator(".upload-url-pw")
    assert "Pw-links-UI-42" not in shown_link.inner_text()
    assert "?password=••••••" in shown_link.inner_text()
    slot.locator(".copy-url-pw").click()
    expect(slot.locator(".copy-status")).to_have_text(SOME_TEXT)
    assert (
        page.evaluate("navigator.clipboard.readText()")
        == f"{booth_base(server.url)}/booth/gemini/2?password=Pw-links-UI-42"
    )
    assert "Breeze Booth" in slot.inner_text()
    slot.locator("details.more summary").click()
    screenshot(slot, "card-links-ru.png")


def test_fixed_size_is_checked_on_save_and_kept(page: Any, server: Server) -> None:
    server.configure("gemini", 3, kind="prompt", prompt="x")
    page.goto("/tabs/gemini/3?lang=en")
    slot = card(page, 3)
    slot.locator("details.more summary").click()
    size = slot.locator('[data-field="result_size"]')
    expect(size).to_be_hidden()
    slot.locator("[name=result_shape]").select_option("fixed")
    expect(size).to_be_visible()
    slot.locator("[name=result_size]").fill("18x12")
    slot.locator(".save").click()
    expect(size.locator(".field-error")).to_have_text(SOME_TEXT)
    slot.locator("[name=result_size]").fill("1800x1200")
    slot.locator(".save").click()
    expect(slot.locator(".save-state")).to_have_text("Saved ✓")
    saved = server.slot("gemini", 3)
    assert (saved["result_shape"], saved["result_size"]) == ("fixed", "1800x1200")


def test_overlay_upload_shows_a_preview_and_a_refusal_in_words(page: Any, server: Server) -> None:
    page.goto("/tabs/gemini/4?lang=en")
    slot = card(page, 4)
    slot.locator("details.more summary").click()
    slot.locator(".overlay-file").set_input_files(files=[jpeg_file()])
    error = slot.locator(".overlay-error")
    expect(error).to_have_text(SOME_TEXT)
    assert "PNG" in error.inner_text()
    slot.locator(".overlay-file").set_input_files(files=[overlay_file()])
    shown(page, slot.locator(".overlay-img"))
    assert server.slot("gemini", 4)["has_overlay"] is True
    screenshot(slot, "card-overlay.png")
    page.once("dialog", lambda dialog: dialog.accept())
    slot.locator(".overlay-remove").click()
    expect(slot.locator(".overlay-img")).to_be_hidden()
    assert server.slot("gemini", 4)["has_overlay"] is False
