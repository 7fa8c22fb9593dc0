"""The statistics panel warns about the trash budget and unrecorded strangers (issue 14), in a real
browser (Debian's Chromium, headless); a screenshot is kept in test-artifacts/."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothgate.web.app import create_app
from tests.bad_inputs import MULTIPART
from tests.conftest import ADMIN, UPLOAD_PASSWORD, ScriptedProvider, booth_settings, make_jpeg
from tests.fakes.server import serve
from tests.web.conftest import CHROMIUM, admin_page
from tests.web.test_ui_browser import ARTIFACTS

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def test_statistics_show_storage_warnings(tmp_path: Path, browser: Any) -> None:
    settings = booth_settings(tmp_path, trash_max_bytes=1024 * 1024, unauthenticated_records_per_minute=1)
    with serve(create_app(settings, {"gemini": ScriptedProvider})) as url:
        with httpx.Client(base_url=url, auth=ADMIN, timeout=30) as client:
            client.put("/api/slots/gemini/1", json={"enabled": True, "prompt": "x", "options": {"mode": "fail"}})
            for i in range(10):
                photo = make_jpeg(700, 500, seed=400 + i, quality=97)
                files = {"fileToUpload": ("a.jpg", photo, "image/jpeg")}
                assert (
                    client.post("/booth/gemini/1", data={"password": UPLOAD_PASSWORD}, files=files).status_code == 502
                )
            for _ in range(3):
                headers = {**MULTIPART, "X-Forwarded-For": "10.7.0.1"}
                assert client.post("/booth/gemini/1", content=b"garbage", headers=headers).status_code == 400
            for _ in range(100):
                if client.get("/api/stats").json()["storage"]["trash"]["removed_entries"]:
                    break
                time.sleep(0.1)
        with admin_page(browser, url) as page:
            page.goto("/tabs/gemini")
            page.locator("#stats-open").click()
            page.wait_for_selector("#stats-title[data-loaded]")
            warnings = page.locator(".storage-warning")
            texts = [warnings.nth(i).inner_text() for i in range(warnings.count())]
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "statistics-storage-warnings.png"))
    assert len(texts) == 2, texts
    assert "Корзина превысила свой лимит (1.0 MB)" in texts[0], "Russian first, with the budget filled in"
    assert texts[1].endswith(": 2."), "two unrecorded requests from the stranger's address"
