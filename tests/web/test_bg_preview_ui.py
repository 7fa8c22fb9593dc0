"""Issue 24 in a real browser: on an offline background slot's card, moving a slider redraws the live
preview of the guest on the slot's background (the previous one kept while the next renders), an
unusable photo gives an error line, and the block fits 1440 px and a 390 px phone, in Russian and English."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from boothgate.local import models
from boothgate.web.app import create_app
from tests.conftest import ADMIN, booth_settings
from tests.fakes.server import serve
from tests.web.conftest import CHROMIUM, TIMEOUT_MS
from tests.web.test_references_ui import fits, new_page
from tests.web.test_ui_browser import jpeg_file, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.skipif(models.problem() is not None, reason=str(models.problem()))]
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

NUMBER = 4

# The shown preview, shrunk to 24×16 grey values (drawn through a canvas: what the operator sees).
PIXELS = """img => { const c = document.createElement('canvas'); c.width = 24; c.height = 16;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0, 24, 16);
  return Array.from(g.getImageData(0, 0, 24, 16).data).filter((_, i) => i % 4 === 0); }"""


# Notes whether the progress indicator was shown while the previous preview was still on screen.
WATCH_BUSY = """card => { const root = document.querySelector(card); window.sawBusyOverOld = false;
  const busy = root.querySelector('.bg-preview-busy'), img = root.querySelector('.bg-preview-img');
  new MutationObserver(() => { if (!busy.hidden && !img.hidden && img.naturalWidth > 0) window.sawBusyOverOld = true; })
    .observe(busy, { attributes: true }); }"""


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("BOOTHGATE_"):
                patch.delenv(name)
        app = create_app(booth_settings(tmp_path_factory.mktemp("ui-bg-preview")), {})
        with serve(app) as server_url:
            slot = {"enabled": True, "kind": "background", "prompt": "", "options": {"backdrop": "green_screen"}}
            assert httpx.put(f"{server_url}/api/slots/local/{NUMBER}", json=slot, auth=ADMIN).is_success
            chosen = {"name": "bokeh_gold"}
            assert httpx.put(
                f"{server_url}/api/slots/local/{NUMBER}/reference/backdrop", json=chosen, auth=ADMIN
            ).is_success
            yield server_url


def rendered(page: Any, after: int = 0) -> tuple[int, list[int]]:
    """Wait for a preview newer than `after`; its number and its pixels."""
    image = page.locator(f"#slot-{NUMBER} .bg-preview-img")
    page.wait_for_function(
        "([sel, after]) => { const i = document.querySelector(sel); return i && !i.hidden && i.complete &&"
        " Number(i.dataset.rendered || 0) > after; }",
        arg=[f"#slot-{NUMBER} .bg-preview-img", after],
        timeout=TIMEOUT_MS,
    )
    return int(image.get_attribute("data-rendered")), image.evaluate(PIXELS)


def difference(a: list[int], b: list[int]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


@pytest.mark.parametrize(("lang", "width"), [("en", 1440), ("ru", 390), ("ru", 1440), ("en", 390)])
def test_a_slider_redraws_the_preview_on_the_slots_background(browser: Any, url: str, lang: str, width: int) -> None:
    page = new_page(browser, url, width)
    page.goto(f"/tabs/local/{NUMBER}?lang={lang}")
    box = page.locator(f"#slot-{NUMBER} .bg-preview")
    expect(box).to_be_visible()
    expect(box.locator("legend")).to_have_text(
        "Вырезание и положение — превью" if lang == "ru" else "Key and placement — preview"
    )
    first, before = rendered(page)
    # the guest is smaller and on the left: the preview follows the unsaved slider (no Save pressed)
    page.evaluate(WATCH_BUSY, f"#slot-{NUMBER}")
    box.locator('select[data-option="subject_position"]').select_option("left")
    scale = box.locator('input[type=range][data-option="subject_scale"]')
    scale.fill("0.6")
    box.locator('input[type=range][data-option="safe_margin"]').fill("0.1")
    expect(box.locator('[data-field="options.subject_scale"] output')).to_have_text("0.60")
    second, after = rendered(page, first)
    # while it rendered, the progress showed over the previous preview (which stayed)
    assert page.evaluate("window.sawBusyOverOld") is True
    assert difference(before, after) > 8, difference(before, after)
    expect(box.locator(".bg-preview-busy")).to_be_hidden()
    expect(page.locator(f"#slot-{NUMBER} .save-state")).to_have_text("Не сохранено" if lang == "ru" else "Unsaved")
    fits(page)
    box.evaluate("e => { e.scrollIntoView({block: 'start'}); window.scrollBy(0, -80); }")
    screenshot(page, f"bg-preview-{lang}-{width}.png")
    # scrolled down to the last slider: the preview is still in sight (it sticks to the top)
    box.locator(".bg-preview-own").scroll_into_view_if_needed()
    preview_box = box.locator(".bg-preview-img").bounding_box()
    assert preview_box is not None and preview_box["y"] >= 0 and preview_box["y"] + 40 < page.viewport_size["height"]
    screenshot(page, f"bg-preview-{lang}-{width}-scrolled.png")
    # a photo with nobody in it: an error line in the page's language, the last preview stays
    box.locator(".bg-preview-file").set_input_files(jpeg_file(width=400, height=300))
    error = box.locator(".bg-preview-error")
    expect(error).to_contain_text("никого" if lang == "ru" else "Nobody")
    assert box.locator(".bg-preview-img").get_attribute("data-rendered") == str(second)
    # the caption still says what the shown preview is of: the sample, not the refused photo
    expect(box.locator(".bg-preview-source")).to_contain_text("Пример" if lang == "ru" else "Sample")
    box.locator(".bg-preview-figure").evaluate("e => { e.scrollIntoView({block: 'start'}); window.scrollBy(0, -80); }")
    screenshot(page, f"bg-preview-{lang}-{width}-error.png")
    box.locator(".bg-preview-sample").click()
    rendered(page, second)
    expect(error).to_have_text("")
    assert not page.errors, page.errors
    page.context.close()
