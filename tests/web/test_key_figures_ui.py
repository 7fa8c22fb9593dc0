"""The statistics panel lists calls and failures per API key by masked name (issue 28), in Russian and English,
on a 390 px phone, in a real Chromium. The server runs the real Gemini provider (google-genai SDK) with two keys
against the loopback fake; one key answers 401 and is shown as refused; no key's value reaches the page.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from boothgate.cli.booth_client import post_photo
from boothgate.providers.keys import mask
from boothgate.web.app import create_app
from tests.conftest import ADMIN, UPLOAD_PASSWORD, booth_settings, make_jpeg
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import serve
from tests.web.conftest import admin_page

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

GOOD = "gemini-key-good-000000000000001"
REFUSED = "gemini-key-bad0-000000000000002"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    fake = GeminiFake(api_key=GOOD)
    fake.key_modes[REFUSED] = "unauthenticated"
    fake.more_keys = {REFUSED}
    with serve(fake.app) as gemini_url:
        settings = booth_settings(
            tmp_path_factory.mktemp("keys-ui"), gemini_api_key=GOOD, gemini_api_keys=REFUSED,
            gemini_base_url=gemini_url, deadline_seconds=30.0,
        )  # fmt: skip
        with serve(create_app(settings)) as url:
            with httpx.Client(base_url=url, auth=ADMIN, timeout=30) as api:
                answer = api.put("/api/slots/gemini/1", json={"enabled": True, "kind": "prompt", "prompt": "sepia"})
                assert answer.status_code == 200, answer.text
                made = api.post("/api/slots/gemini/1/references/generate", json={"prompt": "a sunny beach at noon"})
                assert made.status_code == 200, made.text  # paid: counted beside the booth's costs
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                for seed in range(3):
                    posted = pool.submit(post_photo, f"{url}/booth/gemini/1", make_jpeg(seed=seed), UPLOAD_PASSWORD)
                    assert posted.result().status == 200
            yield url


@pytest.mark.parametrize(
    ("lang", "refused_word", "spend_text"),
    [("ru", "отклонён", "Gemini: фонов из описания — 1"), ("en", "refused", "Gemini: 1 references made from a prompt")],
)
def test_the_statistics_list_each_key_masked_with_its_calls(
    browser: Any, server: str, lang: str, refused_word: str, spend_text: str
) -> None:
    with admin_page(browser, server, viewport=PHONE) as page:
        page.goto(f"/tabs/gemini?lang={lang}")
        page.locator("#stats-open").click()
        table = page.locator("#stats-keys")
        good = table.locator(f'tr[data-key="{mask(GOOD)}"]')
        bad = table.locator(f'tr[data-key="{mask(REFUSED)}"]')
        expect(good).to_be_visible()
        cells = good.locator("td").all_inner_texts()
        # Three photos and the reference made from a prompt: the refused key was asked once, then never again.
        assert cells[1] == "4" and cells[2] == "0", cells
        assert bad.locator("td").all_inner_texts()[1:] == ["1", "1"]
        expect(bad.locator(".badge")).to_have_text(refused_word)
        spend = page.locator("#stats-operator-spend")
        expect(spend).to_be_visible()
        assert spend_text in spend.inner_text(), spend.inner_text()
        html = page.content()
        assert GOOD not in html and REFUSED not in html
        wrap = page.locator("#stats-keys-section .table-wrap")
        scroll, client = wrap.evaluate("node => [node.scrollWidth, node.clientWidth]")
        assert scroll <= client, f"the key table scrolls sideways on a phone ({scroll} > {client})"
