"""The admin UI in a real browser: Playwright driving Debian's Chromium, headless.

One server and one browser for the whole module (fast); each test gets a fresh browser context and
works on its own slots. Screenshots of each tab and of the statistics panel go to test-artifacts/.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.cli.booth_client import BoothAnswer, post_photo
from tests.conftest import ADMIN, KeyedProvider, ScriptedProvider, make_jpeg
from tests.fakes.server import serve
from tests.ui_pass_support import booth_base
from tests.web.conftest import CHROMIUM, TIMEOUT_MS, admin_page, browser_server, image_loaded, next_frames

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
SOME_TEXT = re.compile(r"\S")

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (scripts/install-test-system-deps.sh)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


class WritingProvider(ScriptedProvider):
    """Stands in for the DeepSeek tab: records an instruction in the job's notes the way the DeepSeek
    provider does (`provider_notes.deepseek.instruction`), then renders like the scripted provider."""

    async def run(self, request: Any) -> Any:
        request.notes["deepseek"] = {"status": "written", "instruction": f"Two guests, keep faces. {request.prompt}"}
        return await super().run(request)


class Server:
    """boothgate on loopback with the scripted provider on the Gemini tab, and an admin API client."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.api = httpx.Client(base_url=url, auth=ADMIN, timeout=30)
        self._pool = concurrent.futures.ThreadPoolExecutor(1)

    def configure(self, provider: str, number: int, **fields: Any) -> dict[str, Any]:
        fields.setdefault("enabled", True)
        response = self.api.put(f"/api/slots/{provider}/{number}", json=fields)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def slot(self, provider: str, number: int) -> dict[str, Any]:
        result: dict[str, Any] = self.api.get(f"/api/slots/{provider}/{number}").json()
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.api.get("/api/stats").json()
        return result

    def booth_post(self, provider: str, number: int, photo: bytes) -> BoothAnswer:
        """Post like the booth does (its own event loop, in a thread: Playwright's sync API owns this one)."""
        password = self.stats()["upload_password"]
        return self._pool.submit(post_photo, f"{self.url}/booth/{provider}/{number}", photo, password).result()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    providers = {"gemini": ScriptedProvider, "turbotext": KeyedProvider, "deepseek": WritingProvider}
    # no upload password from the environment: generated and stored, so it can be rotated
    with browser_server(tmp_path_factory.mktemp("ui"), providers, upload_password=None) as served:
        yield Server(served.url)


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    # Failed requests are expected in some tests (and shown on the page); script errors never are.
    with admin_page(browser, server.url, console=True, permissions=["clipboard-read", "clipboard-write"]) as page:
        yield page


def card(page: Any, number: int) -> Any:
    return page.locator(f"#slot-{number}")


def shown(page: Any, image: Any) -> None:
    """Wait until an <img> has really loaded: its `load` event (fails after TIMEOUT_MS if it never comes)."""
    image_loaded(image, TIMEOUT_MS)


def screenshot(target: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    target.screenshot(path=str(ARTIFACTS / name))


def jpeg_file(name: str = "photo.jpg", **kwargs: Any) -> dict[str, Any]:
    return {"name": name, "mimeType": "image/jpeg", "buffer": make_jpeg(**kwargs)}


# ------------------------------------------------------------------------------------------- tests
def test_wrong_credentials_are_answered_401(browser: Any, server: Server) -> None:
    for credentials in ({"username": "admin", "password": "wrong"}, None):
        context = browser.new_context(http_credentials=credentials) if credentials else browser.new_context()
        page = context.new_page()
        statuses: list[int] = []
        page.on("response", lambda response, seen=statuses: seen.append(response.status))
        try:
            page.goto(f"{server.url}/tabs/gemini")
        except sync_api.Error as exc:  # Chromium gives up once the offered credentials are refused
            assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
        assert statuses and set(statuses) == {401}
        context.close()


def test_three_tabs_each_open_on_an_overview_and_a_slot_opens_its_card(page: Any, server: Server) -> None:
    server.configure("gemini", 1, name="Oil painting", kind="prompt", prompt="an oil painting")
    server.api.put("/api/slots/gemini/2/reference", files={"file": ("r.jpg", make_jpeg(3000, 2000), "image/jpeg")})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/")
    assert page.url.endswith("/tabs/gemini")
    tabs = page.locator(".tabs .tab")
    assert [t.strip() for t in tabs.all_inner_texts()][:3] == ["Gemini", "Turbotext", "DeepSeek"]
    for name in ("gemini", "turbotext", "deepseek"):
        page.locator(f'.tabs [data-tab="{name}"]').click()
        page.wait_for_url(f"**/tabs/{name}")
        assert page.locator("[data-slot-row]").count() == 20
        assert page.locator("[data-slot]").count() == 0, "the overview is a list, not 20 cards"
        assert page.locator(f'.tab[data-tab="{name}"]').get_attribute("aria-current") == "page"
        screenshot(page, f"tab-{name}.png")
    page.goto("/tabs/gemini")
    assert "Oil painting" in page.locator('[data-slot-row="1"]').inner_text()
    page.locator('[data-slot-row="2"]').click()
    page.wait_for_url("**/tabs/gemini/2")
    page.wait_for_load_state("networkidle")
    # the card editor loads the reference's thumbnail, never the full-size reference
    references = [url for url in requested if "/reference" in url and "/static/" not in url]
    assert references and all(url.split("?")[0].endswith("/thumbnail") for url in references)
    assert card(page, 2).locator(".ref-preview").is_visible()
    assert "Готов" in page.locator(".provider-status").inner_text()


def test_turbotext_tab_says_it_is_not_ready_and_links_to_settings(page: Any) -> None:
    page.goto("/tabs/turbotext?lang=en")
    status = page.locator(".provider-status")
    assert "Not ready" in status.inner_text()
    assert "API key" in status.inner_text()
    status.locator("a.provider-fix").click()
    page.wait_for_url("**/settings#group-turbotext")
    assert page.locator("#setting-turbotext_api_key").is_visible()


def test_editing_a_slot_survives_a_reload(page: Any, server: Server) -> None:
    page.goto("/tabs/gemini/5")
    slot = card(page, 5)
    save_state = slot.locator(".save-state")
    height_before = slot.bounding_box()["height"]
    slot.locator("[name=kind]").select_option("face_swap")
    slot.locator("[name=prompt]").fill("keep the glasses")
    slot.locator("[name=name]").fill("Astronaut")
    assert save_state.get_attribute("data-state") == "dirty"
    assert "is-dirty" in (slot.get_attribute("class") or "")
    assert slot.locator(".save").is_enabled()
    # switched on, a face swap without a reference cannot be saved: say why, inline
    slot.locator(".switch").click()
    assert slot.locator(".save").is_disabled()
    assert "эталонное" in slot.locator(".card-problems").inner_text()
    slot.locator(".switch").click()
    slot.locator(".save").click()
    expect(save_state).to_have_attribute("data-state", "ok")
    assert slot.locator(".save").is_disabled()
    assert slot.bounding_box()["height"] == height_before, "saving must not make the layout jump"

    page.reload()
    slot = card(page, 5)
    assert slot.locator("[name=kind]").input_value() == "face_swap"
    assert slot.locator("[name=prompt]").input_value() == "keep the glasses"
    assert slot.locator("[name=name]").input_value() == "Astronaut"
    assert slot.locator(".save-state").get_attribute("data-state") == ""
    stored = server.slot("gemini", 5)
    assert (stored["kind"], stored["prompt"], stored["enabled"]) == ("face_swap", "keep the glasses", False)


def test_more_options_are_saved_and_invalid_values_shown_inline(page: Any, server: Server) -> None:
    page.goto("/tabs/gemini/10?lang=en")
    slot = card(page, 10)
    slot.locator("details.more summary").click()
    slot.locator("[name=output_format]").select_option("png")
    slot.locator("[name=on_failure]").select_option("original")
    slot.locator('[data-option="mode"]').fill("png")
    slot.locator('[data-option="delay_seconds"]').fill("-1")
    saves: list[Any] = []

    def watch(request: Any) -> None:
        if request.method == "PUT" and "/api/slots/gemini/10" in request.url:
            saves.append(request)

    page.on("request", watch)
    slot.locator(".save").click()
    error = slot.locator('[data-field="options.delay_seconds"] .field-error')
    expect(error).not_to_have_text("")
    # The browser's own check runs in the click's handler, before any request: once its message shows, the
    # handler is done; a few rendered frames more give a request it might still send time to show up.
    next_frames(page, 5)
    page.remove_listener("request", watch)
    assert not saves, "nothing is sent while a field is invalid"
    assert server.slot("gemini", 10)["output_format"] == "jpeg", "nothing is saved while a field is invalid"
    slot.locator('[data-option="delay_seconds"]').fill("0.5")
    assert error.inner_text() == ""
    slot.locator(".save").click()
    expect(slot.locator(".save-state")).to_have_attribute("data-state", "ok")
    stored = server.slot("gemini", 10)
    assert (stored["output_format"], stored["on_failure"]) == ("png", "original")
    assert stored["options"] == {"mode": "png", "delay_seconds": 0.5}


def test_reference_upload_shows_a_preview_and_remove_clears_it(page: Any, server: Server) -> None:
    page.goto("/tabs/gemini/6")
    slot = card(page, 6)
    preview = slot.locator(".ref-preview")
    assert preview.is_hidden()
    slot.locator(".ref-file").set_input_files(files=[jpeg_file("ref.jpg", width=1200, height=900, seed=6)])
    preview.wait_for(state="visible")
    assert "/api/slots/gemini/6/reference/thumbnail" in (preview.get_attribute("src") or "")
    shown(page, preview)
    assert slot.locator(".ref-choose .when-set").is_visible()
    assert server.slot("gemini", 6)["has_reference"] is True

    slot.locator(".ref-remove").click()
    preview.wait_for(state="hidden")
    assert preview.get_attribute("src") is None
    assert slot.locator(".dropzone-empty").is_visible()
    assert slot.locator(".ref-remove").is_disabled()
    assert server.slot("gemini", 6)["has_reference"] is False

    # dragging a file onto the drop zone uploads it too
    page.evaluate(
        """async () => {
            const canvas = document.createElement("canvas");
            canvas.width = 64; canvas.height = 48;
            canvas.getContext("2d").fillRect(0, 0, 32, 24);
            const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
            const transfer = new DataTransfer();
            transfer.items.add(new File([blob], "dropped.png", { type: "image/png" }));
            const zone = document.querySelector("#slot-6 .dropzone");
            zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }"""
    )
    preview.wait_for(state="visible")
    assert server.slot("gemini", 6)["has_reference"] is True


def test_a_file_that_is_not_an_image_is_refused_in_plain_words(page: Any) -> None:
    page.goto("/tabs/gemini/11?lang=en")
    slot = card(page, 11)
    slot.locator(".ref-file").set_input_files(files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"hi"}])
    error = slot.locator(".ref-error")
    expect(error).to_have_text(SOME_TEXT)
    assert "JPEG" in error.inner_text()
    assert slot.locator(".ref-preview").is_hidden()


def test_copy_puts_the_absolute_upload_link_in_the_clipboard(page: Any, server: Server) -> None:
    page.goto("/tabs/gemini/7")
    slot = card(page, 7)
    assert slot.locator(".upload-url").inner_text().replace("\n", "") == f"{booth_base(server.url)}/booth/gemini/7"
    slot.locator(".copy-url").click()
    status = slot.locator(".copy-status")
    expect(status).to_have_text(SOME_TEXT)
    assert "Скопировано" in status.inner_text()
    assert page.evaluate("navigator.clipboard.readText()") == f"{booth_base(server.url)}/booth/gemini/7"


def test_try_it_shows_the_original_and_the_result(page: Any, server: Server) -> None:
    server.configure("gemini", 8, kind="prompt", prompt="invert it", options={"delay_seconds": 0.6})
    page.goto("/tabs/gemini/8?lang=en")
    slot = card(page, 8)
    slot.locator(".try-file").set_input_files(files=[jpeg_file(width=1000, height=750, seed=8)])
    slot.locator(".try-progress").wait_for(state="visible")
    assert slot.locator(".try-open").is_disabled()
    summary = slot.locator(".try-summary")
    expect(summary).to_have_text(SOME_TEXT)
    assert re.fullmatch(r"Done in \d+\.\d+ s\.", summary.inner_text()), summary.inner_text()
    assert slot.locator(".try-progress").is_hidden()
    result = slot.locator(".try-result")
    assert re.search(r"/api/jobs/[0-9a-f]+/result$", result.get_attribute("src") or "")
    shown(page, result)
    shown(page, slot.locator(".try-original"))
    assert (slot.locator(".try-original").get_attribute("src") or "").startswith("blob:")
    screenshot(slot, "try-it.png")


def test_try_it_shows_what_deepseek_wrote(page: Any, server: Server) -> None:
    server.configure("deepseek", 3, kind="prompt", prompt="on the moon")
    page.goto("/tabs/deepseek/3?lang=en")
    slot = card(page, 3)
    slot.locator(".try-file").set_input_files(files=[jpeg_file(width=800, height=600, seed=3)])
    note = slot.locator(".try-summary .deepseek-note")
    expect(note).to_contain_text("The instruction DeepSeek wrote:")
    expect(note).to_contain_text("Two guests, keep faces. on the moon")
    screenshot(slot, "try-it-deepseek.png")


def test_try_it_explains_a_failure_in_plain_words(page: Any, server: Server) -> None:
    server.configure("gemini", 12, kind="prompt", prompt="x", options={"mode": "refuse"})
    page.goto("/tabs/gemini/12?lang=en")
    slot = card(page, 12)
    slot.locator(".try-file").set_input_files(files=[jpeg_file(seed=12)])
    expect(slot.locator(".try-summary")).to_have_text(SOME_TEXT)
    text = slot.locator(".try-summary").inner_text()
    assert text.startswith("Failed after")
    assert "refused the photo (safety filter)" in text
    assert slot.locator(".try-result").get_attribute("src") is None


def test_try_it_saves_unsaved_changes_first(page: Any, server: Server) -> None:
    server.configure("gemini", 13, kind="prompt", prompt="old")
    page.goto("/tabs/gemini/13")
    slot = card(page, 13)
    slot.locator("[name=prompt]").fill("new words")
    slot.locator(".try-file").set_input_files(files=[jpeg_file(seed=13)])
    expect(slot.locator(".try-summary")).to_have_text(SOME_TEXT)
    assert server.slot("gemini", 13)["prompt"] == "new words"
    assert ScriptedProvider.calls[-1].prompt == "new words"


def _cell(page: Any, provider: str, period: str, column: int) -> int:
    row = page.locator(f'#stats-providers tbody[data-provider="{provider}"] tr[data-period="{period}"]')
    cells = row.locator("td")
    return int(cells.nth(column).inner_text())


def test_statistics_panel_shows_the_password_and_counts_that_follow_booth_posts(page: Any, server: Server) -> None:
    server.configure("gemini", 9, kind="prompt", prompt="x")
    page.goto("/tabs/gemini")
    page.locator("#stats-open").click()
    panel = page.locator("#stats-panel")
    panel.wait_for(state="visible")
    page.wait_for_selector("#stats-title[data-loaded]")
    password = page.locator("#upload-password")
    assert password.inner_text() != server.stats()["upload_password"], "masked until asked"
    page.locator("#pw-show").click()
    assert password.inner_text() == server.stats()["upload_password"]
    # a tab without a single guest photo yet is left out of the table (issue 22), so it may not be there yet
    used = page.locator('#stats-providers tbody[data-provider="gemini"]').count() > 0
    succeeded_before = _cell(page, "gemini", "today", 1) if used else 0

    answer = server.booth_post("gemini", 9, make_jpeg(seed=99))
    assert answer.status == 200
    page.locator("#stats-refresh").click()
    today = page.locator('#stats-providers tbody[data-provider="gemini"] tr[data-period="today"] td').nth(1)
    expect(today).to_have_text(str(succeeded_before + 1))
    # the cost in the operator's currency (roubles by default, at the configured rate)
    cost = page.locator('#stats-providers tbody[data-provider="gemini"] tr[data-period="today"] td').nth(8)
    assert re.fullmatch(r"\d+(,\d+)? ₽", cost.inner_text()) and cost.inner_text() != "0 ₽", cost.inner_text()
    assert _cell(page, "gemini", "all_time", 1) >= succeeded_before + 1
    assert page.locator('#stats-slots tr[data-slot="gemini/9"]').is_visible()
    latest = page.locator("#stats-jobs li").first
    assert "9" in latest.locator("strong").inner_text()
    shown(page, page.locator("#stats-jobs li img.thumb").first)
    screenshot(page, "statistics.png")

    page.keyboard.press("Tab")
    assert page.evaluate("document.getElementById('stats-panel').contains(document.activeElement)")
    page.keyboard.press("Escape")
    panel.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.id") == "stats-open"


def test_statistics_panel_lists_failures_with_their_reason(page: Any, server: Server) -> None:
    server.configure("gemini", 14, kind="prompt", prompt="x", options={"mode": "fail"})
    failed_before = server.stats()["providers"]["gemini"]["today"]["failed"]  # the module's server is shared
    assert server.booth_post("gemini", 14, make_jpeg(seed=14)).status == 502
    page.goto("/tabs/gemini?lang=en")
    page.locator("#stats-open").click()
    page.wait_for_selector("#stats-title[data-loaded]")
    failed = page.locator("#stats-jobs li.job-failed").first
    assert "failed to process the photo" in failed.inner_text()
    assert _cell(page, "gemini", "today", 2) == failed_before + 1, "this failure, counted once"


def test_rotating_the_upload_password_asks_first(page: Any, server: Server) -> None:
    old = server.stats()["upload_password"]
    page.goto("/tabs/gemini")
    page.locator("#stats-open").click()
    page.wait_for_selector("#stats-title[data-loaded]")
    page.locator("#pw-rotate").click()
    assert page.locator("#pw-confirm").is_visible()
    page.locator("#pw-rotate-no").click()
    assert page.locator("#pw-confirm").is_hidden()
    assert server.stats()["upload_password"] == old

    page.locator("#pw-rotate").click()
    page.locator("#pw-rotate-yes").click()
    expect(page.locator("#upload-password")).not_to_have_class(re.compile("is-masked"))
    expect(page.locator("#upload-password")).not_to_have_text(old)
    new = page.locator("#upload-password").inner_text()
    assert new == server.stats()["upload_password"] != old
    page.locator("#pw-copy").click()
    expect(page.locator("#pw-status")).to_have_text(SOME_TEXT)
    assert page.evaluate("navigator.clipboard.readText()") == new


def test_settings_page_saves_a_key_and_shows_it_masked(page: Any, server: Server) -> None:
    page.goto("/settings?lang=en")
    assert page.locator("#settings-save").is_disabled()
    page.locator("#setting-turbotext_api_key").fill("turbo-key-from-the-page-7777")
    page.locator("#setting-retention_days").fill("0")
    page.locator("#settings-save").click()
    error = page.locator('[data-setting="retention_days"] .field-error')
    expect(error).to_have_text(SOME_TEXT)
    page.locator("#setting-retention_days").fill("14")
    page.locator("#settings-save").click()
    # Wait for the reloaded page's new masked tail, not for any badge (one may be there from before).
    expect(page.locator("#setting-turbotext_api_key")).to_have_attribute("placeholder", re.compile("••••7777"))
    page.wait_for_selector('[data-setting="turbotext_api_key"] .badge-ok')
    assert "turbo-key-from-the-page-7777" not in page.content()
    assert page.locator("#setting-retention_days").input_value() == "14"
    assert page.locator("#setting-deadline_seconds").is_disabled(), "set at start-up: shown as from the environment"
    screenshot(page, "settings.png")
    page.goto("/tabs/turbotext?lang=en")
    assert "Ready" in page.locator(".provider-status").inner_text()
    server.api.put("/api/settings", json={"retention_days": None})


def test_language_switch(page: Any) -> None:
    page.goto("/tabs/gemini")
    assert page.locator("#stats-open").inner_text().strip() == "Статистика"
    page.locator('.lang-switch a[hreflang="en"]').click()
    page.wait_for_url("**?lang=en")
    assert page.locator("#stats-open").inner_text().strip() == "Statistics"
    page.goto("/tabs/deepseek/1")
    assert page.locator("html").get_attribute("lang") == "en"
    assert card(page, 1).locator("[name=kind] option:checked").inner_text() == "Generation from a prompt"


def test_cross_site_post_is_refused(browser: Any, server: Server) -> None:
    """A page on another origin submits a form to the API; the browser adds the admin's credentials."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    target = f"{server.url}/api/upload-password/rotate"

    async def attacker(_: Any) -> HTMLResponse:
        return HTMLResponse(f'<form method="post" action="{target}"><button id="go">win a prize</button></form>')

    before = server.stats()["upload_password"]
    with serve(Starlette(routes=[Route("/", attacker)])) as evil:
        context = browser.new_context(http_credentials={"username": ADMIN[0], "password": ADMIN[1]})
        page = context.new_page()
        page.goto(evil)
        with page.expect_navigation() as navigation:
            page.locator("#go").click()
        assert navigation.value.status == 403
        context.close()
    assert server.stats()["upload_password"] == before
