"""/help: the running server serves the built manual (local files only), and the UI's "?" links land on
the manual's sections — checked for every link in the pages, and by clicking one in Chromium."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.web import manual_site
from boothgate.web.app import create_app
from tests.conftest import ADMIN, KeyedProvider, ScriptedProvider, booth_settings
from tests.fakes.server import serve
from tests.web.conftest import admin_page

ROOT = Path(__file__).resolve().parents[2]
MANUAL = manual_site.MANUAL_DIR
HELP_LINK = re.compile(r'<a class="help-link" href="/help/([^"#]*)(?:#([^"]*))?"')
REMOTE = [
    re.compile(r"<script[^>]*\ssrc=\"(?:https?:)?//", re.I),
    re.compile(r"<link[^>]*\shref=\"(?:https?:)?//", re.I),
    re.compile(r"@font-face[^}]*url\(\s*['\"]?(?:https?:)?//", re.I),
    re.compile(r"@import\s+(?:url\()?['\"]?(?:https?:)?//", re.I),
]


@pytest.fixture(scope="module")
def manual() -> Path:
    """The manual as `make docs` builds it, rebuilt here when docs/ changed since (a second or so)."""
    index = MANUAL / "index.html"
    sources = [ROOT / "mkdocs.yml", *(p for p in (ROOT / "docs").rglob("*") if p.is_file())]
    if not index.exists() or max(p.stat().st_mtime for p in sources) > index.stat().st_mtime:
        subprocess.run(
            [sys.executable, "-m", "mkdocs", "build"], cwd=ROOT, check=True, capture_output=True,
            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        )  # fmt: skip
    return MANUAL


@pytest.fixture(scope="module")
def server(manual: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = booth_settings(tmp_path_factory.mktemp("help"))
    with serve(create_app(settings, {"gemini": ScriptedProvider, "turbotext": KeyedProvider})) as url:
        yield url


def test_help_serves_the_built_manual(server: str) -> None:
    with httpx.Client(base_url=server, auth=ADMIN) as client:
        assert client.get("/help/", auth=None).status_code == 401  # behind the admin's password like the UI
        assert client.get("/help").headers["location"] == "/help/"
        home = client.get("/help/")
        assert home.status_code == 200 and "boothgate manual" in home.text
        assert "'unsafe-inline'" not in home.headers["content-security-policy"]
        assert client.get("/help/providers/gemini").headers["location"] == "/help/providers/gemini/"
        page = client.get("/help/providers/gemini/")
        assert page.status_code == 200 and 'id="slot-options"' in page.text
        assert client.get("/help/ru/").status_code == 200
        assert client.get("/help/search/search_index.json").json()["docs"]  # the built-in search's index
        assert client.get("/help/no-such-page/").status_code == 404
        assert client.get("/help/../pyproject.toml").status_code == 404


def test_the_built_manual_loads_nothing_from_another_host(manual: Path) -> None:
    pages = [p for p in manual.rglob("*") if p.suffix in (".html", ".css")]
    assert len(pages) > 20
    for page in pages:
        text = page.read_text(errors="replace")
        for pattern in REMOTE:
            assert not pattern.search(text), f"{page.relative_to(manual)} loads from another host: {pattern.pattern}"


def test_a_clear_page_when_the_manual_was_not_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manual_site, "MANUAL_DIR", tmp_path / "not-built")
    with (
        serve(create_app(booth_settings(tmp_path), {"gemini": ScriptedProvider})) as url,
        httpx.Client(base_url=url, auth=ADMIN) as client,
    ):
        answer = client.get("/help/")
    assert answer.status_code == 404 and "make docs" in answer.text


def test_every_help_link_lands_on_a_heading(server: str, manual: Path) -> None:
    pages = ["/tabs/gemini", "/tabs/gemini/1", "/tabs/turbotext/1", "/tabs/local/1", "/tabs/fal/1", "/tabs/openai/1",
             "/tabs/deepseek/1", "/settings", "/live"]  # fmt: skip
    seen = set()
    with httpx.Client(base_url=server, auth=ADMIN) as client:
        for path in pages:
            answer = client.get(path)
            if answer.status_code == 404:  # a tab this test's registry does not have
                continue
            assert answer.status_code == 200, path
            links = HELP_LINK.findall(answer.text)
            assert links, f"{path} has no help link"
            seen.update(links)
    assert len(seen) >= 8
    for page, section in seen:
        built = manual / page / "index.html"
        assert built.exists(), f"/help/{page}/ is not a page of the manual"
        if section:
            assert f'id="{section}"' in built.read_text(), f"/help/{page}/ has no section #{section}"


@pytest.mark.browser
def test_a_help_link_on_a_slot_card_opens_its_section(server: str, browser: Any) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with admin_page(browser, server, viewport={"width": 1280, "height": 800}) as page:
        page.goto("/tabs/gemini/1")
        card = page.locator("#slot-1")
        card.locator("details.more > summary").click()
        link = card.locator('.field[data-field="fallback"] .help-link')
        with page.context.expect_page() as opened:
            link.click()
        manual: Any = opened.value
        errors: list[str] = []
        manual.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        manual.wait_for_load_state()
        assert manual.url == f"{server}/help/fallback-and-moderation/#set-a-fallback-slot"
        heading = manual.locator("h3#set-a-fallback-slot")
        sync_api.expect(heading).to_be_visible()
        sync_api.expect(heading).to_be_in_viewport()
        # the theme's script runs under the page's policy, and the built-in search answers from local files
        # The theme opens its search dialog on the input's focus, once its script has mounted the search
        # component; focus it again until the dialog is open (a loaded machine may focus it before that).
        search = manual.locator(".md-search__input")
        until = time.monotonic() + 15
        while not manual.evaluate("document.getElementById('__search').checked"):
            assert time.monotonic() < until, "the manual's search dialog never opened on focus"
            search.blur()
            search.focus()
            manual.evaluate("new Promise(r => requestAnimationFrame(r))")  # one frame
        search.fill("hedge")
        sync_api.expect(manual.locator(".md-search-result__item").first).to_be_visible()
        manual.reload()
        manual.wait_for_load_state("networkidle")
        assert not errors, errors
