"""The operator's evening in a real browser (Playwright + Debian's Chromium): the overview list, opening a
slot from it, options shown by kind, the live view following booth posts with its chart, the card's
details (switch state, one-line upload link, sticky bar), and screenshots of every page in both
languages on a desktop and a phone (test-artifacts/)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import Field

from tests.conftest import ScriptedOptions, ScriptedProvider, make_jpeg
from tests.ui_pass_support import booth_base
from tests.web.conftest import browser_server, next_frames, open_admin_page, page_errors, scrolled_by
from tests.web.test_ui_browser import (
    Server,
    card,
    screenshot,
    shown,
    sync_api,
)

pytestmark = pytest.mark.browser
expect = sync_api.expect

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


class ModelledOptions(ScriptedOptions):
    model: str = Field("", description="Model for this slot (empty: the default).")


class ModelledProvider(ScriptedProvider):
    """The scripted provider with a `model` option, like the real Gemini tab's."""

    Options = ModelledOptions  # type: ignore[assignment]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The scripted provider on the Gemini tab (booth posts work); the real Turbotext and DeepSeek
    providers on theirs (their options models are what the card renders)."""
    with browser_server(tmp_path_factory.mktemp("event"), {"gemini": ModelledProvider}, upload_password=None) as served:
        yield Server(served.url)


def new_page(browser: Any, server: Server, viewport: dict[str, int] = DESKTOP, **options: Any) -> tuple[Any, list[str]]:
    page = open_admin_page(browser, server.url, viewport=viewport, **options)
    return page, page_errors(page, console=True)


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    page, errors = new_page(browser, server)
    yield page
    page.context.close()
    assert not errors, f"the page reported errors: {errors}"


# ------------------------------------------------------------------------------------------- tests
def test_overview_lists_each_slot_with_today_and_last_result_and_warns(page: Any, server: Server) -> None:
    server.configure("gemini", 4, name="Van Gogh", kind="prompt", prompt="an oil painting")
    server.configure("gemini", 5, name="Beach", kind="background", prompt="")  # on, but no reference
    before = int(page.goto("/tabs/gemini") and page.locator('[data-slot-row="4"] .row-today').inner_text())
    assert server.booth_post("gemini", 4, make_jpeg(seed=41)).status == 200
    page.reload()
    row = page.locator('[data-slot-row="4"]')
    assert "Van Gogh" in row.inner_text() and "Вкл." in row.locator(".row-state").inner_text()
    assert "Генерация по промпту" in row.locator(".row-kind").inner_text()
    assert row.locator(".row-today").inner_text() == str(before + 1)
    shown(page, row.locator("img.row-thumb"))
    assert re.search(r"/api/jobs/[0-9a-f]+/result/thumbnail$", row.locator("img.row-thumb").get_attribute("src") or "")
    assert row.locator(".row-warning").count() == 0
    beach = page.locator('[data-slot-row="5"]')
    assert beach.locator(".row-warning").count() == 1, "an enabled slot that cannot work shows a warning dot"
    assert "нужно изображение" in (beach.locator(".row-warning").get_attribute("title") or "")
    off = page.locator('[data-slot-row="19"]')
    assert "Выкл." in off.inner_text() and off.locator(".row-warning").count() == 0
    # the whole list fits a laptop screen twice over, not 3,700 px of cards
    assert page.locator(".overview").bounding_box()["height"] < 1300


def test_a_slot_opens_from_the_overview_into_its_card_and_back(page: Any, server: Server) -> None:
    page.goto("/tabs/gemini?lang=en")
    page.locator('[data-slot-row="7"]').click()
    page.wait_for_url("**/tabs/gemini/7")
    slot = card(page, 7)
    assert slot.is_visible() and page.locator("[data-slot]").count() == 1
    slot.locator("[name=name]").fill("Seven")
    slot.locator(".save").click()
    expect(slot.locator(".save-state")).to_have_attribute("data-state", "ok")
    page.locator('a[rel="next"]').click()
    page.wait_for_url("**/tabs/gemini/8")
    page.locator("#back-to-overview").click()
    page.wait_for_url("**/tabs/gemini#slot-8")
    assert "Seven" in page.locator('[data-slot-row="7"]').inner_text()
    # the anchored row (the slot just left) is in view, not hidden under the sticky bar: on a window low enough
    # that the page can scroll the row right to the top (at 900 px every row lands at the end of the scroll)
    page.set_viewport_size({"width": DESKTOP["width"], "height": 500})
    page.goto("/tabs/gemini#slot-8")
    # the browser has scrolled to the anchor (the page moved and the row is on screen) and rendered that
    page.wait_for_function(
        "sel => scrollY > 0 && document.querySelector(sel).getBoundingClientRect().top < innerHeight",
        arg='[data-slot-row="8"]',
    )
    next_frames(page)
    assert page.evaluate("scrollY") < page.evaluate("document.documentElement.scrollHeight - innerHeight"), (
        "the row was scrolled to the top, not to the end of the page"
    )
    bar = page.locator(".topbar").bounding_box()
    row = page.locator('[data-slot-row="8"]').bounding_box()
    assert row["y"] >= bar["y"] + bar["height"] - 1


def test_the_switch_shows_its_state_and_the_upload_link_stays_on_one_line(page: Any, server: Server) -> None:
    page.goto("/tabs/gemini/15")
    slot = card(page, 15)
    text = slot.locator(".switch-text")
    assert text.inner_text() == "Выкл."
    slot.locator(".switch").click()
    assert text.inner_text() == "Вкл."
    link = slot.locator(".upload-url")
    assert link.inner_text() == f"{booth_base(server.url)}/booth/gemini/15"
    line = float(link.evaluate("node => parseFloat(getComputedStyle(node).lineHeight)"))
    padding = 2 * 0.4 * 15 + 2  # two paddings and borders
    assert link.bounding_box()["height"] <= line + padding + 2, "the link is one line"
    assert link.evaluate("node => getComputedStyle(node).textOverflow") == "ellipsis"


def test_turbotext_options_follow_the_slot_kind_and_expert_fields_are_folded(page: Any, server: Server) -> None:
    page.goto("/tabs/turbotext/3?lang=en")
    slot = card(page, 3)
    slot.locator("details.more > summary").click()
    face_restore = slot.locator('[data-field="options.face_restore"]')
    strength = slot.locator('[data-field="options.strength"]')
    slot.locator("[name=kind]").select_option("prompt")
    assert face_restore.is_hidden() and strength.is_visible()
    slot.locator("[name=kind]").select_option("face_swap")
    assert face_restore.is_visible() and strength.is_hidden()
    slot.locator("[name=kind]").select_option("background")
    assert face_restore.is_hidden() and strength.is_hidden()
    method = slot.locator('[data-option="method"]')
    assert method.is_hidden(), "expert fields wait under Advanced"
    slot.locator("details.advanced summary").click()
    assert method.is_visible()
    assert "usual one" in slot.locator('[data-field="options.method"] .hint').inner_text()
    screenshot(slot, "card-turbotext-options-en.png")


def test_deepseek_renderer_options_are_a_sub_form(page: Any, server: Server) -> None:
    page.goto("/tabs/deepseek/2?lang=en")
    slot = card(page, 2)
    slot.locator("details.more > summary").click()
    assert slot.locator('textarea[data-option="renderer_options"]').count() == 0, "no JSON box"
    gemini_part = slot.locator('.subform-part[data-when="gemini"]')
    turbotext_part = slot.locator('.subform-part[data-when="turbotext"]')
    assert gemini_part.is_visible() and turbotext_part.is_hidden()
    slot.locator('[data-option="renderer"]').select_option("turbotext")
    assert gemini_part.is_hidden() and turbotext_part.is_visible()
    slot.locator("[name=kind]").select_option("prompt")
    turbotext_part.locator('[data-option="strength"]').fill("55")
    slot.locator("[name=prompt]").fill("on the moon")
    slot.locator(".save").click()
    expect(slot.locator(".save-state")).to_have_attribute("data-state", "ok")
    stored = server.slot("deepseek", 2)["options"]
    assert stored["renderer"] == "turbotext"
    assert stored["renderer_options"]["strength"] == 55
    assert "mode" not in stored["renderer_options"], "only the chosen renderer's options are sent"
    screenshot(slot, "card-deepseek-subform-en.png")


def test_model_fields_suggest_the_providers_model_list_and_do_without_one(page: Any, server: Server) -> None:
    """The live model list comes from GET /api/providers/{name}/models (another branch serves it): here
    the browser answers that one request with a list first, and the server's own 404 the second time."""
    page.route(
        "**/api/providers/gemini/models",
        lambda route: route.fulfill(
            json={"models": [{"id": "gemini-3-pro-image", "label": "Gemini 3 Pro Image"}, {"id": "gemini-x"}]}
        ),
    )
    page.goto("/tabs/gemini/6?lang=en")
    field = card(page, 6).locator('[data-option="model"]')
    assert field.get_attribute("list") == "models-gemini"
    models = page.locator("datalist#models-gemini")
    expect(models).to_have_attribute("data-loaded", "2")
    assert [o.get_attribute("value") for o in models.locator("option").all()] == ["gemini-3-pro-image", "gemini-x"]
    page.unroute("**/api/providers/gemini/models")
    page.reload()
    page.wait_for_load_state("networkidle")
    assert page.locator("datalist#models-gemini option").count() == 0  # no list: a plain text box, no error


def test_live_view_follows_booth_posts_and_draws_its_chart(page: Any, server: Server) -> None:
    server.configure("gemini", 11, kind="prompt", prompt="x")
    server.configure("gemini", 12, kind="prompt", prompt="x", options={"mode": "fail"})
    page.goto("/live?lang=en")
    page.wait_for_selector("#live[data-loaded-at]")
    received = int(page.locator("#count-received").inner_text())
    failed = int(page.locator("#count-failed").inner_text())
    assert server.booth_post("gemini", 11, make_jpeg(seed=111)).status == 200
    assert server.booth_post("gemini", 12, make_jpeg(seed=112)).status == 502
    # no reload: the page refreshes itself
    expect(page.locator("#count-received")).to_have_text(str(received + 2), timeout=15_000)
    expect(page.locator("#count-failed")).to_have_text(str(failed + 1))
    newest = page.locator("#live-wall li").first
    expect(newest).to_have_class(re.compile("job-failed"))
    assert "failed to process the photo" in newest.inner_text()
    succeeded = page.locator("#live-wall li.job-succeeded").first
    shown(page, succeeded.locator("img.wall-img").nth(1))
    chart = page.locator("#live-chart svg.chart")
    expect(chart).to_be_visible()
    assert chart.locator('g.series[data-provider="gemini"] circle.point').count() >= 1
    assert "Gemini" in page.locator(".chart-legend").inner_text()
    assert page.locator("#live-chart-empty").is_hidden()
    screenshot(page, "live-en-desktop-after-posts.png")


def test_statistics_show_no_broken_images_and_reasons_in_the_ui_language(page: Any, server: Server) -> None:
    server.configure("gemini", 13, kind="prompt", prompt="x")
    not_a_photo = server.booth_post("gemini", 13, b"%PDF-1.4 this is no photo at all" * 20)
    assert not_a_photo.status == 415
    kept = server.api.get(f"/api/jobs/{not_a_photo.json()['job_id']}").json()
    assert kept["photo_thumbnail_url"], "the original is kept (in trash), but it is no picture"
    assert server.api.get(kept["photo_thumbnail_url"]).status_code >= 400
    page.goto("/tabs/gemini")
    page.locator("#stats-open").click()
    page.wait_for_selector("#stats-title[data-loaded]")
    job = page.locator(f'#stats-jobs li[data-job="{not_a_photo.json()["job_id"]}"]')
    expect(job).to_be_visible()
    page.wait_for_load_state("networkidle")
    # the kept original cannot be shown as a picture: a quiet dash, never a broken-image icon
    assert job.locator("img").count() == 0, "no <img> left that failed to load"
    reason = job.locator(".job-error")
    assert "Это не изображение" in reason.inner_text(), "the reason in Russian"
    headers = page.locator("#stats-providers thead th").all_inner_texts()
    assert "Отклонено" in headers, "rejected has its own column"
    assert "95 фото из 100" in page.locator("#stats-p95-help").inner_text()
    assert re.search(r"₽", page.locator("#stats-providers").inner_text())


def test_phone_bar_is_small_and_not_in_the_way(browser: Any, server: Server) -> None:
    page, errors = new_page(browser, server, PHONE, is_mobile=True, has_touch=True)
    page.goto("/tabs/gemini")
    bar = page.locator(".topbar").bounding_box()
    assert bar["height"] < 90, bar
    assert scrolled_by(page, lambda: page.mouse.wheel(0, 1500)), "the wheel scrolled the page"
    after = page.locator(".topbar").bounding_box()
    assert after["y"] + after["height"] <= 0, "on a phone the bar scrolls away with the page"
    # the Russian prompt placeholder fits its box on a phone (measured as text: a placeholder cannot scroll)
    page.goto("/tabs/gemini/16")
    prompt = card(page, 16).locator("[name=prompt]")
    for kind in ("prompt", "face_swap", "background"):
        card(page, 16).locator("[name=kind]").select_option(kind)
        placeholder = prompt.get_attribute("placeholder") or ""
        assert len(placeholder) > 20
        prompt.fill(placeholder)
        assert prompt.evaluate("node => node.scrollHeight <= node.clientHeight + 1"), f"cut off: {placeholder}"
        prompt.fill("")
    page.context.close()
    assert not errors


PAGES = [
    ("overview-gemini", "/tabs/gemini"),
    ("overview-turbotext", "/tabs/turbotext"),
    ("slot-gemini", "/tabs/gemini/4"),
    ("slot-turbotext", "/tabs/turbotext/3"),
    ("slot-deepseek", "/tabs/deepseek/2"),
    ("live", "/live"),
    ("settings", "/settings"),
]


@pytest.mark.parametrize("device", ["desktop", "phone"])
@pytest.mark.parametrize("language", ["ru", "en"])
def test_screenshots_of_every_page(browser: Any, server: Server, language: str, device: str) -> None:
    viewport = DESKTOP if device == "desktop" else PHONE
    extra = {} if device == "desktop" else {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}
    page, errors = new_page(browser, server, viewport, **extra)
    for name, path in PAGES:
        page.goto(f"{path}?lang={language}")
        if path.startswith("/tabs/") and path.count("/") == 3:
            page.locator("details.more > summary").click()
        if path == "/live":
            page.wait_for_selector("#live[data-loaded-at]")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(screenshot_path(f"{name}-{language}-{device}.png")), full_page=True)
        assert page.locator("html").get_attribute("lang") == language
    page.goto(f"/tabs/gemini?lang={language}")
    page.locator("#stats-open").click()
    page.wait_for_selector("#stats-title[data-loaded]")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(screenshot_path(f"statistics-{language}-{device}.png")))
    page.context.close()
    assert not errors, errors


def screenshot_path(name: str) -> Any:
    from tests.web.test_ui_browser import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
