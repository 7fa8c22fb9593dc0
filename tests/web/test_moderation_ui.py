"""The content check in the admin UI (Chromium): the slot's moderation fields are saved, a caught job's
images stay blurred in the statistics until clicked, and the settings page offers the global mask."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import make_jpeg
from tests.web.test_ui_browser import Server, card, page, screenshot, server, shown  # noqa: F401

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def test_moderation_fields_save_and_a_caught_job_stays_blurred_until_clicked(page: Any, server: Server) -> None:  # noqa: F811
    server.configure("gemini", 14, name="Checked", kind="prompt", prompt="a watercolour")
    page.goto("/tabs/gemini/14?lang=en")
    slot = card(page, 14)
    slot.locator("details.more summary").click()
    block = slot.locator("[data-moderation-block]")
    expect(block.locator("legend")).to_have_text("Content check (NSFW)")
    shown(page, block.locator(".mask-preview"))  # the built-in mask, shaped like a 3:2 photo
    block.locator('[data-moderation="before"]').check()
    block.locator('[data-moderation="threshold"]').fill("0")
    slot.locator(".save").click()
    expect(slot.locator(".save-state")).to_have_attribute("data-state", "ok")
    assert server.slot("gemini", 14)["moderation"] == {
        "before": True,
        "after": True,
        "threshold": 0.0,
        "on_hit": "mask",
        "provider_refusal": "error",
    }
    screenshot(slot, "card-moderation.png")

    answer = server.booth_post("gemini", 14, make_jpeg(seed=1414))
    assert answer.status == 200 and answer.headers["x-boothgate-moderation"] == "photo_refused"

    page.locator("#stats-open").click()
    page.wait_for_selector("#stats-title[data-loaded]")
    latest = page.locator("#stats-jobs li").first
    expect(latest.locator(".badge-moderated")).to_have_text("Caught by the check")
    held = latest.locator("img.thumb").first
    expect(held).to_have_class("thumb is-held")
    screenshot(page.locator("#stats-panel"), "stats-moderated.png")
    held.click()
    expect(held).to_have_class("thumb")


def test_settings_page_offers_the_global_mask(page: Any, server: Server) -> None:  # noqa: F811
    page.goto("/settings")
    section = page.locator("#group-moderation")
    expect(section.locator("h2")).to_have_text("Проверка содержимого (NSFW)")
    shown(page, section.locator(".mask-preview"))
    mask_url = section.locator("[data-mask-url]").get_attribute("data-mask-url")

    def mask_answer(method: str) -> Any:
        return lambda response: response.request.method == method and response.url.split("?")[0].endswith(mask_url)

    with page.expect_file_chooser() as chooser:
        section.locator(".mask-choose").click()
    with page.expect_response(mask_answer("PUT")) as uploaded:
        chooser.value.set_files({"name": "m.jpg", "mimeType": "image/jpeg", "buffer": make_jpeg(600, 400, seed=5)})
    assert uploaded.value.ok, uploaded.value.status
    expect(section.locator(".mask-error")).to_have_text("")  # "uploading…" until the page has the answer
    assert server.api.get("/api/moderation").json()["global_mask"] is True
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_response(mask_answer("DELETE")) as removed:
        section.locator(".mask-remove").click()
    assert removed.value.ok, removed.value.status
    assert server.api.get("/api/moderation").json()["global_mask"] is False
