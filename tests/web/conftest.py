"""The browser tests' one Chromium: Playwright driving Debian's `/usr/bin/chromium`, headless.

`browser` is launched once per module (Playwright's sync API owns the main thread's event loop while it
runs, so it is not kept alive across the async tests of other modules); `admin_page` opens a page signed in
as the admin that fails the test on any script error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import ADMIN

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000
DESKTOP = {"width": 1366, "height": 900}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (scripts/install-test-system-deps.sh)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@contextmanager
def admin_page(browser: Any, base_url: str, timeout_ms: int = TIMEOUT_MS, **options: Any) -> Iterator[Any]:
    """A page signed in as the admin; the block fails if the page raised a script error."""
    options.setdefault("viewport", DESKTOP)
    context = browser.new_context(
        base_url=base_url, http_credentials={"username": ADMIN[0], "password": ADMIN[1]}, **options
    )
    context.set_default_timeout(timeout_ms)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, errors
