"""The browser tests' one Chromium: Playwright driving Debian's `/usr/bin/chromium`, headless.

`browser` is launched once per module (Playwright's sync API owns the main thread's event loop while it
runs, so it is not kept alive across the async tests of other modules); `admin_page` opens a page signed in
as the admin that fails the test on any script error; `browser_server` is the module's boothgate for them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from boothgate.providers.base import Provider
from boothgate.web.app import create_app
from tests.conftest import ADMIN, booth_settings
from tests.fakes.server import free_port, serve

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


def open_admin_page(browser: Any, base_url: str, timeout_ms: int = TIMEOUT_MS, **options: Any) -> Any:
    """A page signed in as the admin, in a context of its own (close it with `page.context.close()`)."""
    options.setdefault("viewport", DESKTOP)
    context = browser.new_context(
        base_url=base_url, http_credentials={"username": ADMIN[0], "password": ADMIN[1]}, **options
    )
    context.set_default_timeout(timeout_ms)
    return context.new_page()


def page_errors(page: Any, console: bool = False) -> list[str]:
    """The page's script errors as they happen; with `console` its console errors too, but for failed
    requests (some tests provoke them, and the page shows them)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    if console:
        page.on(
            "console",
            lambda message: (
                errors.append(message.text)
                if message.type == "error" and not message.text.startswith("Failed to load resource")
                else None
            ),
        )
    return errors


@contextmanager
def admin_page(
    browser: Any, base_url: str, timeout_ms: int = TIMEOUT_MS, console: bool = False, **options: Any
) -> Iterator[Any]:
    """A page signed in as the admin; the block fails if the page raised a script error (`console`: or
    logged an error, as `page_errors` counts them)."""
    page = open_admin_page(browser, base_url, timeout_ms, **options)
    errors = page_errors(page, console)
    try:
        yield page
    finally:
        page.context.close()
    assert not errors, errors


# ------------------------------------------------------------------ waiting for the page's own events
# Each waits for the event itself (a load, a toggle, the end of a scroll, a rendered frame) and fails after
# `timeout_ms` only if it never comes; none is a fixed pause.
IMAGE_LOADED = """(img, ms) => new Promise((done, fail) => {
  const ready = () => img.complete && img.naturalWidth > 0;
  if (ready()) return done(true);
  const timer = setTimeout(() => fail(new Error("the image did not load in " + ms + " ms: " + img.src)), ms);
  img.addEventListener("load", function check() {
    if (!ready()) return;
    clearTimeout(timer);
    img.removeEventListener("load", check);
    done(true);
  });
})"""
FRAMES = (
    "n => new Promise(done => { const step = k => k ? requestAnimationFrame(() => step(k - 1)) : done(); step(n); })"
)
SCROLL_END = """ms => { window.__scrollEnd = new Promise(done => {
  const timer = setTimeout(() => done(null), ms);  // no scroll at all: the caller's assertion says so
  addEventListener("scrollend", () => { clearTimeout(timer); done(scrollY); }, { once: true });
}); }"""


def image_loaded(image: Any, timeout_ms: int = TIMEOUT_MS) -> None:
    """Until the <img> has really loaded (its `load` event, or already complete with pixels)."""
    image.evaluate(IMAGE_LOADED, timeout_ms)


def next_frames(page: Any, frames: int = 2) -> None:
    """Until the browser has rendered `frames` more frames: what was laid out is now on screen."""
    page.evaluate(FRAMES, frames)


def until(page: Any, condition: Any, what: str, timeout_ms: int = TIMEOUT_MS) -> Any:
    """Poll a Python-side `condition` (a route held, an event recorded) once per rendered frame; each frame
    is a round trip that lets Playwright deliver the page's pending events to this side."""
    ends = time.monotonic() + timeout_ms / 1000
    while not (value := condition()):
        if time.monotonic() > ends:
            raise AssertionError(f"waited {timeout_ms} ms for {what}")
        next_frames(page, 1)
    return value


def scrolled_by(page: Any, action: Any, timeout_ms: int = TIMEOUT_MS) -> float | None:
    """Run `action` (a wheel, a tap) and wait for the `scrollend` it causes; the page's scrollY then, or
    None if no scroll ended within `timeout_ms`."""
    page.evaluate(SCROLL_END, timeout_ms)
    action()
    result: float | None = page.evaluate("() => window.__scrollEnd")
    return result


class Served(NamedTuple):
    url: str
    app: Any


@contextmanager
def browser_server(
    folder: Path, providers: dict[str, type[Provider]] | None = None, *, public_url: bool = False, **overrides: Any
) -> Iterator[Served]:
    """boothgate on loopback for a module of browser tests, with `booth_settings(folder, **overrides)` read
    while no `BOOTHGATE_*` variable is set (the autouse guard clears them per test, after a module's fixtures
    start). `providers` replaces provider classes by tab (None: the built-in modules); `public_url` makes the
    server's own address its public base URL (the share links and QR codes point at it)."""
    port = free_port()
    if public_url:
        overrides["public_base_url"] = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("BOOTHGATE_"):
                patch.delenv(name)
        settings = booth_settings(folder, **overrides)
    app = create_app(settings, providers)
    with serve(app, port=port) as url:
        yield Served(url, app)
